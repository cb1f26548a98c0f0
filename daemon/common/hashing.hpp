#pragma once
// The project's one CRC32C and one SHA-256 (issue 14 item 5): every stage and tool hashes through
// here, so there is one argument order, one hex spelling and one set of known-answer tests
// (tests/unit/common/hashing_test.cpp).
//
// CRC32C (Castagnoli, the iSCSI CRC) for S3's x-amz-checksum-crc32c, on ISA-L's crc32_iscsi
// (SSE4.2/PCLMUL/AVX-512 where the CPU has them). Values are the standard CRC-32C (RFC 3720:
// crc32c("123456789") == 0xE3069283), i.e. init ~0 and final xor ~0 are applied; ISA-L applies
// neither, so this wrapper does. `crc32c(data, n, prev)` continues a previous standard value, so
// hashing a stream in chunks gives the same value as hashing it at once.
//
// SHA-256 on OpenSSL's EVP interface; hex is always lower case (SigV4, the journal's digests and
// the spool's index all want lower case).
#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace fe {

// ---- CRC32C ----------------------------------------------------------------------------------

// Standard CRC-32C of [data, data+n), continuing `prev` (0 = start of stream).
std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t prev = 0);
inline std::uint32_t crc32c(std::string_view bytes, std::uint32_t prev = 0) {
  return crc32c(bytes.data(), bytes.size(), prev);
}

// CRC of A||B from crc(A), crc(B) and len(B), without the data (zlib's GF(2) method). Lets
// per-part checksums computed in parallel give the whole object's CRC (S3 FULL_OBJECT checksums).
std::uint32_t crc32c_combine(std::uint32_t crc_a, std::uint32_t crc_b, std::uint64_t len_b);

// Base64 of the 4 big-endian bytes, the form S3 wants in x-amz-checksum-crc32c ("4waSgw==").
std::string crc32c_base64(std::uint32_t crc);
// Inverse, for checksums S3 returns (ListParts ChecksumCRC32C, HeadObject); false if malformed.
// A composite multipart value ("xxxx==-3") is not a plain CRC: the suffix makes it fail.
bool crc32c_from_base64(std::string_view b64, std::uint32_t& out);

// Incremental CRC32C that also counts the bytes (for crc32c_combine).
class Crc32c {
 public:
  void update(const void* data, std::size_t n) {
    value_ = crc32c(data, n, value_);
    length_ += n;
  }
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  std::uint32_t value() const { return value_; }
  std::uint64_t length() const { return length_; }
  std::string base64() const { return crc32c_base64(value_); }

 private:
  std::uint32_t value_ = 0;
  std::uint64_t length_ = 0;
};

// ---- SHA-256 ---------------------------------------------------------------------------------

using Sha256Digest = std::array<unsigned char, 32>;

// Lower-case hex of raw bytes ("0a1b...").
std::string to_hex(const void* data, std::size_t n);
inline std::string to_hex(std::string_view raw) {
  return to_hex(raw.data(), raw.size());
}
inline std::string to_hex(const Sha256Digest& d) {
  return to_hex(d.data(), d.size());
}

Sha256Digest sha256(std::string_view bytes);
std::string sha256_hex(std::string_view bytes);

// Incremental SHA-256 for files and bodies hashed while streaming. final_digest() (or final_hex())
// returns the digest and starts over, so one object can hash several inputs in turn. Throws
// std::runtime_error when OpenSSL fails (it does not, short of memory exhaustion).
class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void update(const void* data, std::size_t n);
  void update(std::string_view bytes) { update(bytes.data(), bytes.size()); }
  Sha256Digest final_digest();
  std::string final_hex() { return to_hex(final_digest()); }

 private:
  void* ctx_;  // EVP_MD_CTX, kept opaque so this header needs no OpenSSL include
};

}  // namespace fe
