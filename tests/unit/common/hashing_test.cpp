// common/hashing: known answers. CRC32C against RFC 3720 B.4 and the check value; SHA-256 against
// the NIST FIPS 180-2 / CSRC examples ("abc", the 448- and 896-bit messages, one million 'a').
#include "common/hashing.hpp"

#include <gtest/gtest.h>

#include <random>
#include <string>

using namespace fe;

TEST(CommonCrc32c, Rfc3720AndCheckValue) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);
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

TEST(CommonCrc32c, ChainingCombineAndIncremental) {
  std::mt19937 rng(7);
  std::string data(70000, '\0');
  for (auto& c : data) c = static_cast<char>(rng());
  const std::uint32_t whole = crc32c(data);
  for (std::size_t cut : {std::size_t{0}, std::size_t{1}, std::size_t{4096}, data.size()}) {
    std::string_view a(data.data(), cut), b(data.data() + cut, data.size() - cut);
    EXPECT_EQ(crc32c(b, crc32c(a)), whole) << cut;
    EXPECT_EQ(crc32c(b.data(), b.size(), crc32c(a.data(), a.size())), whole) << cut;
    EXPECT_EQ(crc32c_combine(crc32c(a), crc32c(b), b.size()), whole) << cut;
  }
  Crc32c inc;
  for (std::size_t off = 0; off < data.size(); off += 1000)
    inc.update(std::string_view(data).substr(off, 1000));
  EXPECT_EQ(inc.value(), whole);
  EXPECT_EQ(inc.length(), data.size());
}

TEST(CommonCrc32c, Base64) {
  EXPECT_EQ(crc32c_base64(0xE3069283u), "4waSgw==");  // bytes E3 06 92 83
  EXPECT_EQ(crc32c_base64(0), "AAAAAA==");
  std::uint32_t v = 0;
  ASSERT_TRUE(crc32c_from_base64("4waSgw==", v));
  EXPECT_EQ(v, 0xE3069283u);
  EXPECT_FALSE(crc32c_from_base64("4waSgw==-3", v));
  EXPECT_FALSE(crc32c_from_base64("4waS", v));
}

TEST(CommonSha256, NistVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(
      sha256_hex("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmn"
                 "opqklmnopqrlmnopqrsmnopqrstnopqrstu"),
      "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
  EXPECT_EQ(sha256_hex(std::string(1'000'000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  auto raw = sha256("abc");
  EXPECT_EQ(raw[0], 0xba);
  EXPECT_EQ(raw[31], 0xad);
}

TEST(CommonSha256, IncrementalEqualsOneShotAndResets) {
  Sha256 h;
  const std::string a(1'000'000, 'a');
  for (std::size_t off = 0; off < a.size(); off += 4093)
    h.update(std::string_view(a).substr(off, 4093));
  EXPECT_EQ(h.final_hex(), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  h.update("ab");
  h.update("c");
  EXPECT_EQ(to_hex(h.final_digest()), sha256_hex("abc"));
  EXPECT_EQ(h.final_hex(), sha256_hex(""));  // final_digest() started over
}

TEST(CommonHex, LowerCase) {
  EXPECT_EQ(to_hex(std::string_view("\x00\x0f\xab\xff", 4)), "000fabff");
  EXPECT_EQ(to_hex(""), "");
}
