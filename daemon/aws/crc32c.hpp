#pragma once
// The AWS layer's names for the project's one CRC32C (common/hashing.hpp, issue 14 item 5), kept
// so code that says aws::crc32c still reads as "the checksum S3 wants"; there is no second
// implementation behind them.
#include "common/hashing.hpp"

namespace fe::aws {

using fe::Crc32c;
using fe::crc32c;
using fe::crc32c_base64;
using fe::crc32c_combine;
using fe::crc32c_from_base64;

}  // namespace fe::aws
