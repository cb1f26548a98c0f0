#include "common/hashing.hpp"

#include <isa-l.h>
#include <openssl/evp.h>

#include <climits>
#include <stdexcept>

namespace fe {

std::uint32_t crc32c(const void* data, std::size_t n, std::uint32_t prev) {
  // crc32_iscsi neither inverts the seed nor the result; the standard CRC does both.
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));  // ISA-L API is not const
  unsigned int crc = ~prev;
  while (n > 0) {
    // Its length is an int: feed huge buffers in chunks.
    int chunk = n > static_cast<std::size_t>(INT_MAX / 2) ? INT_MAX / 2 : static_cast<int>(n);
    crc = crc32_iscsi(p, chunk, crc);
    p += chunk;
    n -= static_cast<std::size_t>(chunk);
  }
  return ~crc;
}

namespace {
// zlib crc32_combine, with the reflected Castagnoli polynomial.
constexpr std::uint32_t kPoly = 0x82F63B78u;

std::uint32_t gf2_times(const std::uint32_t* mat, std::uint32_t vec) {
  std::uint32_t sum = 0;
  while (vec) {
    if (vec & 1) sum ^= *mat;
    vec >>= 1;
    ++mat;
  }
  return sum;
}

void gf2_square(std::uint32_t* square, const std::uint32_t* mat) {
  for (int n = 0; n < 32; ++n) square[n] = gf2_times(mat, mat[n]);
}
}  // namespace

std::uint32_t crc32c_combine(std::uint32_t crc1, std::uint32_t crc2, std::uint64_t len2) {
  if (len2 == 0) return crc1;
  std::uint32_t even[32], odd[32];
  odd[0] = kPoly;  // operator for one zero bit
  std::uint32_t row = 1;
  for (int n = 1; n < 32; ++n) {
    odd[n] = row;
    row <<= 1;
  }
  gf2_square(even, odd);  // two zero bits
  gf2_square(odd, even);  // four zero bits
  do {
    gf2_square(even, odd);  // first pass: one zero byte
    if (len2 & 1) crc1 = gf2_times(even, crc1);
    len2 >>= 1;
    if (len2 == 0) break;
    gf2_square(odd, even);
    if (len2 & 1) crc1 = gf2_times(odd, crc1);
    len2 >>= 1;
  } while (len2 != 0);
  return crc1 ^ crc2;
}

std::string crc32c_base64(std::uint32_t crc) {
  unsigned char be[4] = {static_cast<unsigned char>(crc >> 24),
                         static_cast<unsigned char>(crc >> 16),
                         static_cast<unsigned char>(crc >> 8), static_cast<unsigned char>(crc)};
  unsigned char out[9] = {};
  int n = EVP_EncodeBlock(out, be, 4);
  return std::string(reinterpret_cast<char*>(out), static_cast<std::size_t>(n));
}

bool crc32c_from_base64(std::string_view b64, std::uint32_t& out) {
  if (b64.size() != 8 || b64[6] != '=' || b64[7] != '=') return false;
  unsigned char buf[8] = {};
  int n = EVP_DecodeBlock(buf, reinterpret_cast<const unsigned char*>(b64.data()), 8);
  if (n != 6) return false;  // EVP_DecodeBlock counts the padding bytes as zero output
  out = (std::uint32_t{buf[0]} << 24) | (std::uint32_t{buf[1]} << 16) |
        (std::uint32_t{buf[2]} << 8) | std::uint32_t{buf[3]};
  return true;
}

std::string to_hex(const void* data, std::size_t n) {
  static constexpr char kHex[] = "0123456789abcdef";
  const auto* p = static_cast<const unsigned char*>(data);
  std::string out(n * 2, '0');
  for (std::size_t i = 0; i < n; ++i) {
    out[2 * i] = kHex[p[i] >> 4];
    out[2 * i + 1] = kHex[p[i] & 0xF];
  }
  return out;
}

Sha256Digest sha256(std::string_view bytes) {
  Sha256Digest md{};
  unsigned int len = 0;
  if (EVP_Digest(bytes.data(), bytes.size(), md.data(), &len, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 failed (OpenSSL)");
  return md;
}

std::string sha256_hex(std::string_view bytes) {
  return to_hex(sha256(bytes));
}

Sha256::Sha256() : ctx_(EVP_MD_CTX_new()) {
  if (!ctx_ || EVP_DigestInit_ex(static_cast<EVP_MD_CTX*>(ctx_), EVP_sha256(), nullptr) != 1) {
    EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
    throw std::runtime_error("SHA-256 init failed (OpenSSL)");
  }
}

Sha256::~Sha256() {
  EVP_MD_CTX_free(static_cast<EVP_MD_CTX*>(ctx_));
}

void Sha256::update(const void* data, std::size_t n) {
  if (EVP_DigestUpdate(static_cast<EVP_MD_CTX*>(ctx_), data, n) != 1)
    throw std::runtime_error("SHA-256 update failed (OpenSSL)");
}

Sha256Digest Sha256::final_digest() {
  Sha256Digest md{};
  unsigned int len = 0;
  auto* ctx = static_cast<EVP_MD_CTX*>(ctx_);
  if (EVP_DigestFinal_ex(ctx, md.data(), &len) != 1 ||
      EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) != 1)
    throw std::runtime_error("SHA-256 final failed (OpenSSL)");
  return md;
}

}  // namespace fe
