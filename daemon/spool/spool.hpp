#pragma once
// The spool: what an export becomes between validation and upload, on local disk, compressed.
//
// Layout (DESIGN "Spool"), under the configured spool dir:
//   <export>/import/<File>.ndjson.zst       valid lines, a sequence of independent zstd frames
//   <export>/import/<File>.ndjson.zst.idx   its frame index (text, see FrameIndex)
//   <export>/rejected/<File>.ndjson.zst     rejected lines (same format, with its own index)
//   <export>/report.json                    written by the pipeline with write_durable()
//
// Frames: frame N holds exactly part_size bytes of the uncompressed NDJSON (the last one fewer), so
// upload part N of the import object is frame N decompressed, and can be re-sent after a crash
// without touching any other frame. A frame boundary is a byte offset, not a line boundary: a line
// may span two frames. That is deliberate: S3 parts are byte ranges of one object, every part but
// the last must be the same size >= 5 MiB, and concatenating the frames gives the exact NDJSON.
// Each frame carries zstd's own content checksum, and the index records the CRC32C of its
// uncompressed bytes (the x-amz-checksum-crc32c of the part).
//
// Crash safety: a writer writes <name>.tmp files; finish() fsyncs the data and the index, renames
// the index into place, then the data file (the commit point), then fsyncs the directory. A spool
// file without a matching index, or whose size differs from the index, is incomplete
// (SpoolFile::open throws Incomplete) and the caller redoes it; remove_partials() clears leftover
// .tmp files. Only after finish() returns may the journal record the file as spooled.
//
// Memory: a writer holds one zstd context, a fixed output buffer and four 256 KiB hand-off chunks;
// a reader streams a frame in chunks of ZSTD_DStreamOutSize() (~128 KiB). Neither grows with the
// file or part size.
//
// Threads (issue 13 item 3): a writer compresses and writes on its own thread. The caller (a pool
// worker validating the source) appends lines and computes the frame checksums; full 256 KiB
// chunks go to the writer's compressor thread, which runs zstd and writes the .tmp file. So one
// big file is validated on one core and compressed on the other, and the output is byte for byte
// what a single thread writes (one zstd stream, frames ended at the same offsets).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "common/hashing.hpp"

namespace fe::spool {

class Error : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};
// A spool file that was not finished (crash mid-write) or was truncated since: redo it.
class Incomplete : public Error {
 public:
  using Error::Error;
};
// Quota::shutdown() was called while waiting for room.
class Cancelled : public Error {
 public:
  using Error::Error;
};

struct Frame {
  uint64_t compressed_offset = 0;  // byte range in the .zst file (= archive object)
  uint64_t compressed_size = 0;
  uint64_t uncompressed_offset = 0;  // byte range of the NDJSON (= import object)
  uint64_t uncompressed_size = 0;
  uint32_t crc32c = 0;  // of the uncompressed bytes of this frame
  // Hex SHA-256 of the uncompressed bytes: the part's signed payload hash (x-amz-content-sha256),
  // computed while the frame is written so the upload needs no extra read pass over the part.
  // Empty in indexes written before it was recorded, and when the writer was told the parts go
  // unsigned (WriterOptions::frame_sha256): an upload that signs after all hashes the part itself.
  std::string sha256;
  // Where these bytes sit, verbatim, in the source file the writer was fed from (see
  // SpoolWriter::write), or -1. Set by the writer only and never in the index file: it serves the
  // live upload of a part while its file is spooling (issue 13: the part is read back from the
  // source, still in the page cache, instead of decompressed from the spool).
  std::int64_t source_offset = -1;
};

struct FrameIndex {
  uint64_t part_size = 0;
  std::vector<Frame> frames;
  uint64_t uncompressed_size = 0;
  uint64_t compressed_size = 0;
  uint32_t crc32c = 0;  // of the whole uncompressed content

  // "fhir-edge-spool-index 1\n" then key=value lines and one "frame c_off c_size u_off u_size crc
  // [sha256]" line per frame (hex CRC, hex SHA-256). Text so an operator can read it.
  std::string serialize() const;
  static FrameIndex parse(std::string_view text, const std::filesystem::path& where);
};

// Spool byte quota shared by every writer (thread-safe). It counts bytes on disk under the spool
// dir: writers add() what they write, retention release()s what it deletes. When used() >= max,
// writers wait in wait_for_room() before starting a new frame: ingest pauses while uploads go on
// (back-pressure). A spool therefore exceeds max by at most one frame per active writer.
class Quota {
 public:
  explicit Quota(uint64_t max_bytes) : max_(max_bytes) {}
  uint64_t max_bytes() const;
  void set_max_bytes(uint64_t max);  // configuration reload; wakes waiters when raised
  uint64_t used() const;
  bool full() const;
  void set_used(uint64_t bytes);  // after scanning the spool dir at start (disk_usage)
  void add(uint64_t bytes);
  void release(uint64_t bytes);
  // Blocks until used < max; false on timeout. Throws Cancelled after shutdown().
  bool wait_for_room(std::chrono::milliseconds timeout = std::chrono::hours(24 * 365));
  void shutdown();  // wakes every waiter (daemon stopping)
  // Called (without the lock held) whenever a writer starts waiting, e.g. to log or set status.
  void on_full(std::function<void()> f);
  // Called (without the lock held, on the releasing thread) when a full quota gets room again:
  // the control thread uses it (via asio::post) to resume starting new exports, which it holds
  // back while full() is true instead of blocking.
  void on_room(std::function<void()> f);

 private:
  mutable std::mutex mu_;
  std::condition_variable cv_;
  uint64_t max_;
  uint64_t used_ = 0;
  bool shutdown_ = false;
  std::function<void()> on_full_;
  std::function<void()> on_room_;
  template <typename F>
  void update(F&& change);
};

// Bytes of regular files under `dir` (recursively, symlinks not followed); 0 when absent.
uint64_t disk_usage(const std::filesystem::path& dir);

// fsync a file or a directory by path; throws Error naming the path.
void fsync_path(const std::filesystem::path& path);
// Writes `content` to `path` durably: <path>.tmp, fsync, rename, fsync of the directory.
void write_durable(const std::filesystem::path& path, std::string_view content);

// Paths of the layout above.
std::filesystem::path export_dir(const std::filesystem::path& spool_dir,
                                 std::string_view export_name);
std::filesystem::path import_path(const std::filesystem::path& spool_dir,
                                  std::string_view export_name,
                                  std::string_view file_name);  // .../import/<File>.zst
std::filesystem::path rejected_path(const std::filesystem::path& spool_dir,
                                    std::string_view export_name, std::string_view file_name);
std::filesystem::path report_path(const std::filesystem::path& spool_dir,
                                  std::string_view export_name);
std::filesystem::path index_path(const std::filesystem::path& spool_file);  // <file>.idx

struct WriterOptions {
  uint64_t part_size = 8 * 1024 * 1024;  // uncompressed bytes per frame (= upload part size)
  int zstd_level = 1;
  Quota* quota = nullptr;  // optional back-pressure and accounting
  bool fsync = true;       // false only for throw-away data (tests of other stages, benchmarks)
  // Record each frame's SHA-256 (Frame::sha256, the signed payload hash of its upload part).
  // False when the parts will go STREAMING-UNSIGNED-PAYLOAD-TRAILER (no hash needed) and for
  // rejected-lines files (uploaded whole, hashed then): one pass over the bytes less.
  bool frame_sha256 = true;
  // With frame_sha256: the SHA-256 of the source file's pieces as the content digest computed
  // them before the file was taken (journal/digest.hpp: piece k = source bytes [k * part_size,
  // (k + 1) * part_size), the last one ending at source_size), or null. A frame whose bytes are
  // exactly piece k of the source, verbatim (Frame::source_offset == k * part_size and the same
  // length), gets that digest and its bytes are not hashed a second time (issue 13 item 4: over
  // plain http every part is signed). Used only when part_size is the piece size, and only for
  // the source the digest read (the caller checks its identity). A frame that starts at a piece
  // but then turns out not to be that piece (a line not kept) is left without a SHA-256: the
  // upload hashes that one part itself.
  std::shared_ptr<const std::vector<fe::Sha256Digest>> source_pieces{};
  std::uint64_t source_size = 0;
  // source_pieces grows while the file is written: the spool pass's own read of the source
  // hashes each piece (journal::SourceHasher) before the lines in it reach write(), on the same
  // thread, so piece k is known by the time its frame ends. A frame that starts at a piece is
  // taken as that piece's (left unhashed) when the piece is one of the first `source_pieces_max`.
  bool source_pieces_live = false;
  std::uint64_t source_pieces_max = 0;
  // Called on the compressor thread as soon as frame N (0-based, in order) is compressed and
  // written to the .tmp file, with its complete Frame (compressed range included). The bytes are
  // readable from the .tmp path (or, once finish() renamed it, from the final path) but not yet
  // durable: whoever reads them early (the upload of a part while its file is still spooling,
  // issue 13 item 5) must not count on them surviving a crash. Must not throw or block long.
  std::function<void(std::size_t n, const Frame& frame)> on_frame{};
};

// Writes one spool file (valid or rejected lines). Not thread-safe; one writer per file. Owned by
// a pool thread while it streams a source file; the destructor of an unfinished writer removes its
// temporary files (and returns their bytes to the quota).
class SpoolWriter {
 public:
  SpoolWriter(std::filesystem::path final_path, WriterOptions options);
  ~SpoolWriter();
  SpoolWriter(const SpoolWriter&) = delete;
  SpoolWriter& operator=(const SpoolWriter&) = delete;

  // Appends uncompressed bytes (typically one NDJSON line with its '\n'); may wait on the quota
  // or for a free hand-off chunk. Throws Error when the compressor thread failed (disk full...).
  // `source_offset`: where `bytes` sit verbatim in the source file, or -1. A frame whose every
  // write was verbatim and contiguous in the source gets Frame::source_offset.
  void write(std::string_view bytes, std::int64_t source_offset = -1);
  // write(line + "\n", source_offset) without joining them first: the line is copied once, into
  // the compressor's chunk.
  void write_line(std::string_view line, std::int64_t source_offset = -1);
  // Ends the last frame, waits for the compressor thread, makes data and index durable and
  // commits them (see above).
  const FrameIndex& finish();

  uint64_t uncompressed_bytes() const { return index_.uncompressed_size + frame_in_; }
  const std::filesystem::path& path() const { return final_; }

 private:
  void begin_frame();
  void end_frame();

  std::filesystem::path final_, tmp_;
  WriterOptions opt_;
  struct Impl;  // the compressor thread, its hand-off queue and what only it touches
  std::unique_ptr<Impl> impl_;
  FrameIndex index_;                // the frames' compressed ranges are filled in by finish()
  uint64_t frame_in_ = 0;           // uncompressed bytes in the current frame
  std::int64_t frame_source_ = -1;  // source offset of the current frame's byte 0, or -1
  bool frame_known_ = false;        // the frame began at a piece of WriterOptions::source_pieces
  bool in_frame_ = false;
  bool finished_ = false;
};

// A committed spool file and its index; reads are positional (thread-safe for concurrent parts).
class SpoolFile {
 public:
  // Throws Incomplete when the file or its index is missing or they disagree (crash mid-write or
  // truncation); Error for other I/O problems.
  static SpoolFile open(const std::filesystem::path& path);
  SpoolFile(SpoolFile&&) noexcept;
  SpoolFile& operator=(SpoolFile&&) noexcept;
  ~SpoolFile();

  const FrameIndex& index() const { return index_; }
  size_t frame_count() const { return index_.frames.size(); }
  const std::filesystem::path& path() const { return path_; }

  // Streams frame n (0-based; upload part n+1) decompressed to `sink` in bounded chunks, then
  // checks its size and CRC32C against the index (throws Error on mismatch: a damaged spool).
  void read_frame(size_t n, const std::function<void(std::span<const char>)>& sink) const;
  // Convenience: frame n into `out` (resized to the frame's uncompressed size).
  void read_frame(size_t n, std::string& out) const;
  // Raw bytes of the .zst (archive object parts): [offset, offset+length) in chunks to sink.
  void read_raw(uint64_t offset, uint64_t length,
                const std::function<void(std::span<const char>)>& sink) const;
  // Decompresses every frame and checks it; throws Error/Incomplete on the first problem.
  void verify() const;

 private:
  SpoolFile() = default;
  std::filesystem::path path_;
  int fd_ = -1;
  FrameIndex index_;
};

// Removes leftover *.tmp files under an export's spool dir (after a crash); returns their paths.
std::vector<std::filesystem::path> remove_partials(const std::filesystem::path& export_spool_dir,
                                                   Quota* quota = nullptr);

// Deletes the spool of an export (after retention); returns the bytes freed (released from quota).
uint64_t remove_export(const std::filesystem::path& spool_dir, std::string_view export_name,
                       Quota* quota = nullptr);

// Retention: deletes export spool dirs whose newest file is older than keep_for and for which
// may_delete(export_name) is true (the caller asks the journal whether it is finished). Returns
// the names removed.
std::vector<std::string> remove_expired(const std::filesystem::path& spool_dir,
                                        std::chrono::seconds keep_for,
                                        const std::function<bool(const std::string&)>& may_delete,
                                        Quota* quota = nullptr);

}  // namespace fe::spool
