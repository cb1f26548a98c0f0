#pragma once
// The aws-chunked body of an S3 upload signed `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (issue 13 item
// 4): the payload is not hashed for the signature; its integrity rides in a trailing
// `x-amz-checksum-crc32c` that S3 checks against the bytes it received (BadDigest when they
// differ), as the AWS SDKs send uploads. No second pass over the bytes is needed to sign.
//
// Wire format (AWS "Signature calculations for trailing headers (chunked uploads)"; the same bytes
// botocore's AwsChunkedWrapper and the JS SDK's getAwsChunkedEncodingStream write):
//
//   <hex size>\r\n<size bytes>\r\n        one per chunk, lower-case hex, no chunk signature
//   ...
//   0\r\n                                  the empty final chunk
//   x-amz-checksum-crc32c:<base64>\r\n     the trailer
//   \r\n
//
// sent with the headers Content-Encoding: aws-chunked, x-amz-decoded-content-length: <payload
// bytes>, x-amz-trailer: x-amz-checksum-crc32c, x-amz-content-sha256:
// STREAMING-UNSIGNED-PAYLOAD-TRAILER, and a Content-Length of the encoded size.
//
// Contract:
// - Every chunk but the last carries exactly `chunk_size` bytes, so the encoded length is known
//   before the first byte is read (aws_chunked_length) and curl sends a plain Content-Length.
// - The CRC32C is the caller's when it knows it (the spool index records each part's); otherwise
//   it is computed from the bytes as they stream through, and written after the last chunk.
// - rewind() rewinds the payload and starts the framing again, so a retry re-sends exactly the same
//   encoded bytes.
// - A payload that ends before its declared size, or fails to read, aborts the request (-1).
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

#include "aws/http.hpp"

namespace fe::aws {

constexpr std::string_view kStreamingUnsignedTrailer = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
constexpr std::string_view kCrc32cTrailer = "x-amz-checksum-crc32c";
// 64 KiB: what the Java SDK v2 uses for its async trailer uploads is of that order; the framing
// costs ~10 bytes per chunk (0.015 %).
constexpr std::size_t kAwsChunkSize = 64 * 1024;

// Encoded size of a `decoded`-byte payload with the CRC32C trailer.
std::uint64_t aws_chunked_length(std::uint64_t decoded, std::size_t chunk_size = kAwsChunkSize);

// `payload` framed as above. `crc32c`: of the whole payload when known; nullopt = computed while
// streaming. The returned source's size is aws_chunked_length(payload.size).
BodySource aws_chunked_body(BodySource payload, std::optional<std::uint32_t> crc32c,
                            std::size_t chunk_size = kAwsChunkSize);

}  // namespace fe::aws
