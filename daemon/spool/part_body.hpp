#pragma once
// Part bodies: the bytes of one upload part read out of the spool, streamed, never staged.
//
// Contract:
// - frame_stream: spool frame N decompressed while the consumer reads it (one ZSTD_DCtx and one
//   ZSTD_DStreamInSize() input buffer per stream, ~200 KiB whatever the part size, allocated at
//   the first read, so an unread fallback costs an open descriptor only): upload part N
//   of the import object. rewind() restarts the frame (the HTTP layer retries a part with it).
//   A frame that ends before its uncompressed size, or that zstd refuses, makes read() return -1
//   (a damaged spool is never sent as a shorter body).
// - range_stream: a byte range of a file read with pread (archive parts, report, rejects).
// - sha256_of_range: hex SHA-256 of a byte range ("" when it cannot be read), the signed payload
//   hash of an archive part, computed off the control thread by the caller.
// - source_stream: a part streamed while its file spools, read back from the export's source file
//   where the frame's bytes sit verbatim (Frame::source_offset) instead of decompressed from the
//   spool: the same bytes, still in the page cache from spooling, for a copy instead of a zstd
//   decompression (issue 13 item 2). Used only while the file is the one taken: opened O_NOFOLLOW,
//   its fstat identity (dev, inode, size, mtime) must equal `taken` at open and at each rewind.
//   The bytes given are CRC32C-checked against the frame's; when they differ (the file rewritten
//   in place) the read that would give the last byte returns -1 instead, so a changed file is
//   never sent as the part. After that, or when the file no longer matches at a rewind, the
//   stream is `fallback` (the spool frame) for good. A stream without read when the file cannot
//   be used at open (the caller then sends the fallback).
// - file_crc32c: standard CRC32C and size of a whole file (report.json and rejects, one PUT each).
// The stream types know nothing about HTTP: upload/ wraps them into aws::BodySource.
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <span>
#include <string>

#include "common/file_identity.hpp"
#include "spool/spool.hpp"

namespace fe::spool {

struct ByteStream {
  std::uint64_t size = 0;
  // Copies up to buf.size() bytes; returns the count (0 once size bytes were given) or -1.
  std::function<std::ptrdiff_t(std::span<char> buf)> read;
  std::function<bool()> rewind;  // back to byte 0; false when impossible
};

ByteStream frame_stream(const std::filesystem::path& spool_file, const Frame& frame);
ByteStream range_stream(const std::filesystem::path& path, std::uint64_t offset,
                        std::uint64_t length);
ByteStream source_stream(const std::filesystem::path& source, const FileIdentity& taken,
                         const Frame& frame, ByteStream fallback);
std::string sha256_of_range(const std::filesystem::path& path, std::uint64_t offset,
                            std::uint64_t length);

struct FileChecksum {
  std::uint64_t size = 0;
  std::uint32_t crc32c = 0;
};
// Throws Error naming the file when it cannot be opened or read.
FileChecksum file_crc32c(const std::filesystem::path& path);

}  // namespace fe::spool
