// healthlake-local's one-pass body receiver (tools/healthlake-local/body.hpp) on its own: the
// stored bytes, the digests and every aws-chunked verdict must not depend on how the body was cut
// into reads (one byte at a time, a buffer smaller than a chunk, all at once).
#include <gtest/gtest.h>

#include <cstdio>
#include <optional>
#include <string>
#include <vector>

#include "aws/sigv4.hpp"
#include "body.hpp"
#include "common/hashing.hpp"
#include "temp_dir.hpp"
#include "util.hpp"

namespace {
using fe::hll::BodyReceiver;
namespace fs = std::filesystem;

struct Outcome {
  std::string stored;  // the file's bytes
  fe::hll::Digests decoded;
  uint64_t raw_size = 0;
  std::string raw_sha256_hex;
  std::map<std::string, std::string> trailers;
  std::string error;  // "<code>: <message>" or ""
  bool operator==(const Outcome& o) const {
    return stored == o.stored && decoded.size == o.decoded.size && decoded.md5 == o.decoded.md5 &&
           decoded.sha256 == o.decoded.sha256 && decoded.crc32c == o.decoded.crc32c &&
           decoded.crc32 == o.decoded.crc32 && decoded.have == o.decoded.have &&
           raw_size == o.raw_size && raw_sha256_hex == o.raw_sha256_hex && trailers == o.trailers &&
           error == o.error;
  }
};

// Feeds `body` in pieces of `piece` bytes (0: all at once) into a receiver whose buffer holds
// `buffer` bytes; odd pieces go through put() (the header read's leftovers), even ones through
// space()/commit() (the socket reads).
Outcome receive(const fs::path& dir, const std::string& body, BodyReceiver::Options o, size_t piece,
                size_t buffer) {
  o.buffer_size = buffer;
  fs::path out = dir / "body";
  Outcome r;
  {
    BodyReceiver rx(out, o);
    size_t at = 0, n = 0;
    while (at < body.size()) {
      size_t k = piece == 0 ? body.size() - at : std::min(piece, body.size() - at);
      if (n++ % 2) {
        rx.put(body.data() + at, k);
        at += k;
      } else {
        std::span<char> s = rx.space();
        EXPECT_FALSE(s.empty());
        k = std::min(k, s.size());
        std::copy_n(body.data() + at, k, s.data());
        rx.commit(k);
        at += k;
      }
    }
    rx.finish();
    r.decoded = rx.decoded();
    r.raw_size = rx.raw_size();
    r.raw_sha256_hex = rx.raw_sha256_hex();
    r.trailers = rx.trailers();
    if (rx.error()) r.error = rx.error()->code + ": " + rx.error()->message;
  }
  r.stored = fe::hll::read_file(out);
  return r;
}

// The same outcome whatever the cut; returns it.
Outcome receive_every_way(const fs::path& dir, const std::string& body,
                          const BodyReceiver::Options& o) {
  Outcome whole = receive(dir, body, o, 0, 1 << 20);
  for (size_t piece : {1, 2, 3, 7, 64, 4096})
    for (size_t buffer : {2, 5, 16, 100, 70000}) {
      Outcome cut = receive(dir, body, o, piece, buffer);
      EXPECT_TRUE(cut == whole) << "piece " << piece << ", buffer " << buffer << ": error '"
                                << cut.error << "' vs '" << whole.error << "', stored "
                                << cut.stored.size() << " vs " << whole.stored.size();
    }
  return whole;
}

std::string chunk(const std::string& bytes) {
  char size[32];
  std::snprintf(size, sizeof size, "%zx", bytes.size());
  return std::string(size) + "\r\n" + bytes + "\r\n";
}

TEST(BodyReceiver, PlainBodyIsStoredAndHashedOnceWhateverTheReads) {
  fe::test::TempDir dir;
  std::string body;
  for (int i = 0; i < 9000; ++i) body += static_cast<char>((i * 7919) % 251);
  BodyReceiver::Options o;
  o.raw_sha256 = true;
  o.decoded = fe::hll::kDigestMd5 | fe::hll::kDigestCrc32;
  Outcome r = receive_every_way(dir.path(), body, o);
  EXPECT_EQ(r.stored, body);
  EXPECT_EQ(r.raw_size, body.size());
  EXPECT_EQ(r.decoded.size, body.size());
  EXPECT_EQ(r.decoded.md5, fe::hll::md5(body));
  EXPECT_EQ(r.decoded.crc32, fe::hll::crc32(body));
  EXPECT_EQ(r.raw_sha256_hex, fe::sha256_hex(body));
  EXPECT_EQ(r.decoded.sha256, fe::hll::sha256(body))
      << "a plain body's payload hash is its SHA-256";
  EXPECT_EQ(r.decoded.have, fe::hll::kDigestMd5 | fe::hll::kDigestCrc32 | fe::hll::kDigestSha256);
  EXPECT_EQ(r.error, "");

  o.raw_sha256 = false;
  o.decoded = fe::hll::kDigestMd5;
  Outcome md5_only = receive(dir.path(), body, o, 0, 1 << 20);
  EXPECT_EQ(md5_only.raw_sha256_hex, "") << "no SHA-256 unless asked for";
  EXPECT_EQ(md5_only.decoded.have, unsigned{fe::hll::kDigestMd5});
  EXPECT_THROW(fe::hll::checksum_b64(md5_only.decoded, "CRC32C"), std::logic_error)
      << "a digest never computed never passes for a value";
}

// Every verdict of the unsigned-trailer cases in server_test.cpp (and a few more), judged the same
// whatever the reads.
TEST(BodyReceiver, AwsChunkedVerdictsDoNotDependOnTheReads) {
  fe::test::TempDir dir;
  const std::string a(3000, 'a'), b = "tail\n", data = a + b;
  const std::string crc = fe::crc32c_base64(fe::crc32c(data));
  const std::string frames = chunk(a) + chunk(b);
  const std::string good = frames + "0\r\nx-amz-checksum-crc32c:" + crc + "\r\n\r\n";
  struct Case {
    std::string name, body, error;  // error: the code ("" = accepted)
    std::set<std::string> declared = {"x-amz-checksum-crc32c"};
  };
  const std::vector<Case> cases = {
      {"good", good, ""},
      {"good with bare LFs",
       "bb8\n" + a + "\n5\n" + b + "\n0\nx-amz-checksum-crc32c:" + crc + "\n\n", ""},
      {"trailer value trimmed", frames + "0\r\nx-amz-checksum-crc32c:  " + crc + " \r\n\r\n", ""},
      {"no trailers declared, body ends after 0", frames + "0", "", {}},
      {"no trailers declared, 0 CRLF", frames + "0\r\n", "", {}},
      {"no trailers declared, 0 CRLF CRLF", frames + "0\r\n\r\n", "", {}},
      {"trailer signature line skipped",
       frames + "0\r\nx-amz-checksum-crc32c:" + crc + "\r\nx-amz-trailer-signature:ab\r\n\r\n", ""},
      {"declared trailer missing", frames + "0\r\n\r\n", "MalformedTrailerError"},
      {"declared trailer missing, body ends at the last chunk", frames + "0\r\n",
       "MalformedTrailerError"},
      {"another trailer than declared", frames + "0\r\nx-amz-checksum-crc32:" + crc + "\r\n\r\n",
       "MalformedTrailerError"},
      {"trailer not declared", good, "MalformedTrailerError", {}},
      {"trailer line without ':'", frames + "0\r\nx-amz-checksum-crc32c " + crc + "\r\n\r\n",
       "MalformedTrailerError"},
      {"trailer line starting with ':'", frames + "0\r\n:" + crc + "\r\n\r\n",
       "MalformedTrailerError"},
      {"trailer cut off", frames + "0\r\nx-amz-checksum-crc32c:" + crc, "MalformedTrailerError"},
      {"trailers not ended", frames + "0\r\nx-amz-checksum-crc32c:" + crc + "\r\n",
       "MalformedTrailerError"},
      {"trailer twice",
       frames + "0\r\nx-amz-checksum-crc32c:" + crc + "\r\nx-amz-checksum-crc32c:" + crc +
           "\r\n\r\n",
       "MalformedTrailerError"},
      {"chunk size not hex", "zz\r\n" + a + "\r\n" + chunk(b) + "0\r\n", "IncompleteBody"},
      {"negative chunk size", "-1\r\n" + a + "\r\n", "IncompleteBody"},
      {"chunk size of 17 digits", "00000000000000001\r\nx\r\n0\r\n", "IncompleteBody"},
      {"chunk without CRLF", "bb8\r\n" + a + chunk(b) + "0\r\n", "IncompleteBody"},
      {"chunk cut off", frames.substr(0, 100), "IncompleteBody"},
      {"cut off after a chunk", chunk(a), "IncompleteBody"},
      {"cut off in a chunk's CRLF", chunk(a).substr(0, chunk(a).size() - 1), "IncompleteBody"},
      {"no final chunk", frames, "IncompleteBody"},
      {"empty body", "", "IncompleteBody"},
      {"bytes after the end", good + "junk", "IncompleteBody"},
      {"bytes after the end and a trailer missing", frames + "0\r\n\r\njunk",
       "MalformedTrailerError"},
      {"header line too long", std::string(9000, '1') + "\r\n", "IncompleteBody"},
      {"trailer line too long", frames + "0\r\n" + std::string(9000, 'x') + "\r\n\r\n",
       "IncompleteBody"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    BodyReceiver::Options o;
    o.aws_chunked = true;
    o.declared_trailers = c.declared;
    o.decoded = fe::hll::kDigestMd5 | fe::hll::kDigestCrc32c;
    o.raw_sha256 = true;
    Outcome r = receive_every_way(dir.path(), c.body, o);
    EXPECT_EQ(r.error.substr(0, r.error.find(':')), c.error) << r.error;
    EXPECT_EQ(r.raw_size, c.body.size());
    EXPECT_EQ(r.raw_sha256_hex, fe::sha256_hex(c.body)) << "the payload as received";
    if (c.error.empty()) {
      EXPECT_EQ(r.stored, data);
      EXPECT_EQ(r.decoded.md5, fe::hll::md5(data));
      EXPECT_EQ(r.decoded.crc32c, fe::crc32c(data));
      if (!c.declared.empty()) {
        EXPECT_EQ(r.trailers.at("x-amz-checksum-crc32c"), crc);
      }
    }
  }
}

// STREAMING-AWS4-HMAC-SHA256-PAYLOAD: each chunk's signature chains from the previous one; a
// tampered chunk or signature is SignatureDoesNotMatch, wherever the reads cut the body.
TEST(BodyReceiver, ChunkSignaturesAreCheckedAsTheChunksArrive) {
  fe::test::TempDir dir;
  fe::hll::ChunkSigning s;
  s.key = fe::aws::derive_signing_key("secret", "20261206", "us-east-1", "s3");
  s.amz_date = "20261206T100000Z";
  s.scope = "20261206/us-east-1/s3/aws4_request";
  s.seed_signature = std::string(64, 'c');
  const std::vector<std::string> chunks = {std::string(5000, 'x'), "last bytes"};
  auto body = [&](int tamper_data, int tamper_sig) {
    std::string prev = s.seed_signature, out;
    std::vector<std::string> all = chunks;
    all.push_back("");
    for (size_t i = 0; i < all.size(); ++i) {
      std::string sts = "AWS4-HMAC-SHA256-PAYLOAD\n" + s.amz_date + "\n" + s.scope + "\n" + prev +
                        "\n" + fe::aws::sha256_hex("") + "\n" + fe::aws::sha256_hex(all[i]);
      auto mac = fe::aws::hmac_sha256(
          std::string_view(reinterpret_cast<const char*>(s.key.data()), 32), sts);
      prev = fe::aws::hex(mac.data(), mac.size());
      std::string d = all[i], sig = prev;
      if (static_cast<int>(i) == tamper_data) d[0] ^= 1;
      if (static_cast<int>(i) == tamper_sig) sig[5] = sig[5] == '0' ? '1' : '0';
      char size[32];
      std::snprintf(size, sizeof size, "%zx", d.size());
      out += std::string(size) + ";chunk-signature=" + sig + "\r\n" + d + "\r\n";
    }
    return out;
  };
  BodyReceiver::Options o;
  o.aws_chunked = true;
  o.signing = s;
  Outcome ok = receive_every_way(dir.path(), body(-1, -1), o);
  EXPECT_EQ(ok.error, "");
  EXPECT_EQ(ok.stored, chunks[0] + chunks[1]);
  for (auto [data, sig] : {std::pair{0, -1}, {1, -1}, {-1, 0}, {-1, 2}}) {
    Outcome bad = receive_every_way(dir.path(), body(data, sig), o);
    EXPECT_EQ(bad.error.substr(0, bad.error.find(':')), "SignatureDoesNotMatch")
        << "data " << data << " sig " << sig;
  }
  Outcome unsigned_chunks = receive_every_way(dir.path(), chunk(chunks[0]) + "0\r\n\r\n", o);
  EXPECT_EQ(unsigned_chunks.error.substr(0, unsigned_chunks.error.find(':')),
            "SignatureDoesNotMatch");
}

}  // namespace
