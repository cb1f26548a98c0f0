// The aws-chunked body of STREAMING-UNSIGNED-PAYLOAD-TRAILER uploads (aws/aws_chunked.hpp): the
// exact bytes S3 (and botocore / the JS SDK, which write the same framing) expect, the declared
// length, the CRC32C given or computed while streaming, identical bytes after a rewind, and which
// bodies are sent that way (s3.hpp payload_mode).
#include "aws/aws_chunked.hpp"

#include <gtest/gtest.h>

#include <string>

#include "aws/crc32c.hpp"
#include "aws/s3.hpp"

using namespace fe::aws;

namespace {

// Reads a source to its end in reads of at most `step` bytes; "<error>" when a read fails.
std::string drain(BodySource& s, std::size_t step) {
  std::string out, buf(step, '\0');
  for (;;) {
    auto n = s.read(std::span<char>(buf.data(), buf.size()));
    if (n < 0) return "<error>";
    if (n == 0) return out;
    out.append(buf.data(), static_cast<std::size_t>(n));
  }
}

}  // namespace

TEST(AwsChunked, FramingIsTheDocumentedWireFormat) {
  const std::string payload = "hello world";  // 11 bytes in chunks of 4: 4, 4, 3, then 0
  const std::string trailer = "x-amz-checksum-crc32c:" + crc32c_base64(crc32c(payload)) + "\r\n";
  const std::string want = "4\r\nhell\r\n4\r\no wo\r\n3\r\nrld\r\n0\r\n" + trailer + "\r\n";
  auto body = aws_chunked_body(BodySource::from_view(payload), crc32c(payload), 4);
  EXPECT_EQ(body.size, want.size());
  EXPECT_EQ(aws_chunked_length(payload.size(), 4), want.size());
  EXPECT_EQ(drain(body, 1 << 16), want);
  // Read a byte at a time (curl may ask for any amount): the same bytes.
  ASSERT_TRUE(body.rewind());
  EXPECT_EQ(drain(body, 1), want);
}

TEST(AwsChunked, CrcIsTheCallersOrComputedWhileStreaming) {
  std::string payload(200000, '\0');
  for (std::size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 31 + 7);
  auto computed = aws_chunked_body(BodySource::from_view(payload), std::nullopt);
  const std::string enc = drain(computed, 7000);
  ASSERT_EQ(enc.size(), computed.size);
  EXPECT_TRUE(enc.ends_with("\r\n0\r\nx-amz-checksum-crc32c:" + crc32c_base64(crc32c(payload)) +
                            "\r\n\r\n"))
      << enc.substr(enc.size() - 60);
  // 200000 = 3 chunks of 0x10000 and one of 0xd40 (3392).
  EXPECT_TRUE(enc.starts_with("10000\r\n"));
  EXPECT_NE(enc.find("\r\nd40\r\n"), std::string::npos);

  // A known CRC is written as given, without looking at the bytes (the spool index has it; a
  // payload that does not match it is S3's BadDigest, not ours to hide).
  auto given = aws_chunked_body(BodySource::from_view(payload), 0x01020304u);
  EXPECT_TRUE(drain(given, 1 << 16).ends_with(crc32c_base64(0x01020304u) + "\r\n\r\n"));
}

TEST(AwsChunked, RewindAfterAPartialSendRepeatsTheSameBytes) {
  const std::string payload(150000, 'x');
  auto body = aws_chunked_body(BodySource::from_view(payload), std::nullopt, 50000);
  const std::string full = drain(body, 4096);
  ASSERT_TRUE(body.rewind());
  std::string buf(70001, '\0');  // stop in the middle of the second chunk, as a broken send does
  ASSERT_EQ(body.read(std::span<char>(buf.data(), buf.size())), 70001);
  ASSERT_TRUE(body.rewind());
  EXPECT_EQ(drain(body, 3000), full);  // the CRC is computed afresh, not over 1.5 payloads
}

TEST(AwsChunked, EmptyPayloadAndAShortSource) {
  auto empty = aws_chunked_body(BodySource::from_view(""), std::nullopt);
  EXPECT_EQ(drain(empty, 100),
            "0\r\nx-amz-checksum-crc32c:" + crc32c_base64(crc32c("")) + "\r\n\r\n");
  EXPECT_EQ(empty.size, aws_chunked_length(0));

  // A source that ends before its declared size aborts the request rather than framing a lie.
  auto src = BodySource::from_view("abc");
  src.size = 10;
  auto shorter = aws_chunked_body(std::move(src), std::nullopt);
  EXPECT_EQ(drain(shorter, 100), "<error>");

  // Not rewindable in, not rewindable out.
  BodySource once;
  once.size = 0;
  once.read = [](std::span<char>) -> std::ptrdiff_t { return 0; };
  EXPECT_FALSE(aws_chunked_body(std::move(once), std::nullopt).rewind);
}

TEST(PayloadMode, AutoIsTheTrailerOverHttpsAndSignedOverHttp) {
  ClientConfig cfg;
  const std::uint64_t big = cfg.signed_payload_max_bytes + 1;
  // auto: plain http has only the signature to protect the bytes; https has TLS and the CRC32C.
  EXPECT_EQ(payload_mode(cfg, "http://127.0.0.1:4566", big), PayloadMode::signed_sha256);
  EXPECT_EQ(payload_mode(cfg, "https://b.s3.eu-west-1.amazonaws.com", big),
            PayloadMode::unsigned_trailer);
  EXPECT_EQ(payload_mode(cfg, "https://b.s3.eu-west-1.amazonaws.com", 100),
            PayloadMode::signed_sha256);
  cfg.payload_signing = PayloadSigning::signed_payload;
  EXPECT_EQ(payload_mode(cfg, "https://b.s3.eu-west-1.amazonaws.com", big),
            PayloadMode::signed_sha256);
  cfg.payload_signing = PayloadSigning::unsigned_trailer;
  EXPECT_EQ(payload_mode(cfg, "http://127.0.0.1:4566", 100), PayloadMode::unsigned_trailer);
}
