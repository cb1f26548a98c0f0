// CRC32C against RFC 3720 B.4 vectors and the well-known check value, incremental use, combine,
// and the base64 form S3 puts in x-amz-checksum-crc32c.
#include "aws/crc32c.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

using namespace fe::aws;

TEST(Crc32c, CheckValue) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
}

TEST(Crc32c, Rfc3720Vectors) {
  EXPECT_EQ(crc32c(std::string(32, '\0')), 0x8A9136AAu);
  EXPECT_EQ(crc32c(std::string(32, '\xff')), 0x62A8AB43u);
  std::string inc, dec;
  for (int i = 0; i < 32; ++i) {
    inc.push_back(static_cast<char>(i));
    dec.push_back(static_cast<char>(31 - i));
  }
  EXPECT_EQ(crc32c(inc), 0x46DD794Eu);
  EXPECT_EQ(crc32c(dec), 0x113FDB5Cu);
  EXPECT_EQ(crc32c(""), 0u);
}

TEST(Crc32c, IncrementalEqualsOneShotAndCombine) {
  std::mt19937 rng(42);
  std::string data(100000, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  const std::uint32_t whole = crc32c(data);
  for (std::size_t cut :
       {std::size_t{0}, std::size_t{1}, std::size_t{4095}, std::size_t{65536}, data.size()}) {
    std::string_view a(data.data(), cut), b(data.data() + cut, data.size() - cut);
    EXPECT_EQ(crc32c(b, crc32c(a)), whole) << cut;
    EXPECT_EQ(crc32c_combine(crc32c(a), crc32c(b), b.size()), whole) << cut;
  }
  Crc32c inc;
  for (std::size_t off = 0; off < data.size(); off += 777)
    inc.update(std::string_view(data).substr(off, 777));
  EXPECT_EQ(inc.value(), whole);
  EXPECT_EQ(inc.length(), data.size());
}

TEST(Crc32c, Base64RoundTrip) {
  // 0xE3069283 = bytes E3 06 92 83 -> base64 "4waSgw==" (worked by hand).
  EXPECT_EQ(crc32c_base64(0xE3069283u), "4waSgw==");
  EXPECT_EQ(crc32c_base64(0), "AAAAAA==");
  std::uint32_t v = 0;
  ASSERT_TRUE(crc32c_from_base64("4waSgw==", v));
  EXPECT_EQ(v, 0xE3069283u);
  EXPECT_FALSE(crc32c_from_base64("4waSgw==-3", v));
  EXPECT_FALSE(crc32c_from_base64("4waS", v));
}
