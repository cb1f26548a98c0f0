#include "spool/crc32c.hpp"

#include <isa-l.h>

#include <climits>

namespace fe::spool {

uint32_t crc32c(uint32_t crc, const void* data, size_t size) {
  // crc32_iscsi works on the inverted register and takes an int length.
  uint32_t reg = ~crc;
  auto* p = static_cast<unsigned char*>(const_cast<void*>(data));
  while (size > 0) {
    size_t n = size > (1u << 30) ? (1u << 30) : size;
    reg = crc32_iscsi(p, static_cast<int>(n), reg);
    p += n;
    size -= n;
  }
  return ~reg;
}

std::string crc32c_base64(uint32_t crc) {
  static constexpr char kB64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  unsigned char b[4] = {static_cast<unsigned char>(crc >> 24),
                        static_cast<unsigned char>(crc >> 16), static_cast<unsigned char>(crc >> 8),
                        static_cast<unsigned char>(crc)};
  std::string out;
  out += kB64[b[0] >> 2];
  out += kB64[((b[0] & 3) << 4) | (b[1] >> 4)];
  out += kB64[((b[1] & 15) << 2) | (b[2] >> 6)];
  out += kB64[b[2] & 63];
  out += kB64[b[3] >> 2];
  out += kB64[(b[3] & 3) << 4];
  out += "==";
  return out;
}

}  // namespace fe::spool
