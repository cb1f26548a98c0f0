#pragma once
// CRC32C (Castagnoli), as S3's x-amz-checksum-crc32c, computed with ISA-L's crc32_iscsi. A tiny
// local wrapper so the spool does not depend on the AWS stage.
#include <cstddef>
#include <cstdint>
#include <string>

namespace fe::spool {

// Standard CRC32C: crc32c(0, "123456789", 9) == 0xE3069283. Chain calls by passing the previous
// result: crc32c(crc32c(0, a, n), b, m) == crc32c over a then b.
uint32_t crc32c(uint32_t crc, const void* data, size_t size);

// Base64 of the big-endian 4 bytes (the x-amz-checksum-crc32c header value).
std::string crc32c_base64(uint32_t crc);

}  // namespace fe::spool
