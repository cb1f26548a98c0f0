#pragma once
// Small helpers shared by the emulator's S3 and HealthLake halves: encodings, digests computed by
// streaming a file (request bodies are spooled to disk, never held whole in memory), AWS time
// formats, XML escaping. (Hashing and JSON come from common/.)
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "common/hashing.hpp"

namespace fe::hll {

inline std::string hex(std::string_view raw) {
  return fe::to_hex(raw);
}  // common/hashing
std::string base64(std::string_view raw);
std::optional<std::string> base64_decode(std::string_view text);  // nullopt on malformed input
std::string be32(uint32_t v);                                     // 4 raw bytes, big endian

// CRC32C is the project's one (common/hashing.hpp); CRC32 (IEEE, ISA-L crc32_gzip_refl) only the
// emulator needs. Both chainable: pass the previous result as `crc` to continue over more bytes.
// (string_view only: with fe::crc32c's pointer overload too, crc32c("text", crc) is ambiguous.)
inline uint32_t crc32c(std::string_view data, uint32_t crc = 0) {
  return fe::crc32c(data, crc);
}
uint32_t crc32(std::string_view data, uint32_t crc = 0);
std::string md5(std::string_view data);     // raw 16 bytes
std::string sha256(std::string_view data);  // raw 32 bytes

// Everything S3 may be asked to verify or echo about a body. `have` says which digests were
// computed: a request pays only for what it needs (the ETag's MD5 always; SHA-256, CRC32C, CRC32
// when a header, a trailer or the upload's algorithm asks for them). S3Store recomputes from the
// file whatever a caller left out that a rule needs, so a missing bit costs time, never a check.
enum DigestBits : unsigned {
  kDigestMd5 = 1,
  kDigestSha256 = 2,
  kDigestCrc32c = 4,
  kDigestCrc32 = 8,
  kDigestAll = 15,
};
struct Digests {
  uint64_t size = 0;
  std::string md5;     // raw
  std::string sha256;  // raw
  uint32_t crc32c = 0;
  uint32_t crc32 = 0;
  unsigned have = kDigestAll;
};
// The bit of an x-amz-checksum algorithm ("CRC32C", "CRC32", "SHA256"); 0 for any other.
unsigned digest_bit(std::string_view algorithm);

// The digests in `which`, over bytes given in pieces (each piece hashed by every digest while it
// is still in cache).
class DigestStream {
 public:
  explicit DigestStream(unsigned which);
  ~DigestStream();
  DigestStream(const DigestStream&) = delete;
  DigestStream& operator=(const DigestStream&) = delete;
  void update(const char* data, size_t n);
  Digests final();  // once

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};
Digests digest_file(const std::filesystem::path& path, unsigned which = kDigestAll);

std::string xml_escape(std::string_view s);
std::string url_decode(std::string_view s, bool plus_is_space = true);
std::string url_encode(std::string_view s, bool keep_slash);  // RFC 3986 unreserved kept

using SysTime = std::chrono::system_clock::time_point;
std::string iso8601_ms(SysTime t);  // 2026-11-26T09:00:00.000Z (S3 XML)
std::string http_date(SysTime t);   // Thu, 26 Nov 2026 09:00:00 GMT
double epoch_seconds(SysTime t);
std::string random_hex(size_t bytes);

// Write a whole file through a temp file + rename, so readers never see a partial file.
void write_file_atomic(const std::filesystem::path& path, std::string_view content);
std::string read_file(const std::filesystem::path& path);

}  // namespace fe::hll
