// Cross-check with a peer: botocore (Debian python3-botocore, run by /usr/bin/python3) signs the
// same requests; our signer must produce the same canonical request and Authorization header,
// and our verifier must accept what botocore signed (that is what healthlake-local does with
// requests from the AWS SDKs).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "aws/sigv4.hpp"

using namespace fe::aws;
namespace fs = std::filesystem;

namespace {

const char* kPython = "/usr/bin/python3";

struct PeerCase {
  std::string name;
  std::string method, scheme = "http", host = "127.0.0.1:9000", path, query;
  std::vector<Header> headers;  // besides Host
  std::string body;
  std::string service = "s3", region = "us-east-1";
  bool s3 = true;
  bool unsigned_payload = false;
  std::string token;
};

std::string json_str(std::string_view s) {
  std::string o = "\"";
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o.push_back('\\');
      o.push_back(static_cast<char>(c));
    } else if (c < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", c);
      o += buf;
    } else {
      o.push_back(static_cast<char>(c));
    }
  }
  return o + "\"";
}

const char* kTime = "20261126T100000Z";
const char* kKey = "AKIDPEERTEST";
const char* kSecret = "peer/Secret+Key=";

std::vector<PeerCase> cases() {
  std::vector<PeerCase> v;
  PeerCase c;
  c.name = "s3 upload part, key with space plus tilde unicode, session token";
  c.method = "PUT";
  c.path = "/bucket/" + uri_encode("exports/2026 11/a+b~c/\xC3\xA9.ndjson", false);
  c.query = "partNumber=2&uploadId=" + uri_encode("u+1/x=", true);
  c.headers = {{"x-amz-checksum-crc32c", "4waSgw=="}, {"Content-Type", "application/x-ndjson"}};
  c.body = "{\"resourceType\":\"Patient\"}\n";
  c.token = "FwoGZXIvYXdzE//token+with/slashes==";
  v.push_back(c);

  c = PeerCase{};
  c.name = "s3 unsigned payload over https";
  c.method = "PUT";
  c.scheme = "https";
  c.path = "/bucket/big.ndjson";
  c.query = "partNumber=10000&uploadId=abc";
  c.body = "payload not hashed";
  c.unsigned_payload = true;
  v.push_back(c);

  c = PeerCase{};
  c.name = "s3 create multipart (?uploads), SSE-KMS, same-prefix meta headers";
  c.method = "POST";
  c.path = "/bucket/exports/x.ndjson";
  c.query = "uploads";
  c.headers = {{"x-amz-server-side-encryption", "aws:kms"},
               {"x-amz-server-side-encryption-aws-kms-key-id", "arn:aws:kms:us-east-1:1:key/k"},
               {"x-amz-meta-a-b", "2"},
               {"x-amz-meta-a", "1   spaced    out"},
               {"x-amz-checksum-algorithm", "CRC32C"}};
  v.push_back(c);

  c = PeerCase{};
  c.name = "s3 list objects v2 with encoded prefix and token";
  c.method = "GET";
  c.path = "/bucket";
  c.query = "list-type=2&prefix=" + uri_encode("exports/a b", true) +
            "&continuation-token=" + uri_encode("1ab/c+d==", true) + "&max-keys=1000";
  v.push_back(c);

  c = PeerCase{};
  c.name = "s3 key with double slash and dot segments kept";
  c.method = "HEAD";
  c.path = "/bucket/a//b/./c/../d";
  v.push_back(c);

  c = PeerCase{};
  c.name = "healthlake json 1.0";
  c.method = "POST";
  c.service = "healthlake";
  c.s3 = false;
  c.host = "127.0.0.1:4566";
  c.path = "/";
  c.headers = {{"Content-Type", "application/x-amz-json-1.0"},
               {"X-Amz-Target", "HealthLake.StartFHIRImportJob"}};
  c.body = R"({"JobName":"e1","ClientToken":"abc-123","ValidationLevel":"structure-only"})";
  c.token = "session-token";
  v.push_back(c);

  c = PeerCase{};
  c.name = "other service: path encoded twice and normalised";
  c.method = "GET";
  c.service = "execute-api";
  c.s3 = false;
  c.path = "/stage/a%20b/./c//d";
  c.query = "q=" + uri_encode("x y", true);
  v.push_back(c);
  return v;
}

}  // namespace

TEST(BotocorePeer, SameSignatureAndVerifierAcceptsBotocore) {
  if (!fs::exists(kPython)) GTEST_SKIP() << kPython << " not installed";
  if (std::system((std::string(kPython) + " -c 'import botocore.auth' 2>/dev/null").c_str()) != 0)
    GTEST_SKIP() << "python3-botocore not installed (apt-get install python3-botocore)";
  const auto all = cases();
  std::string input = "[";
  for (std::size_t i = 0; i < all.size(); ++i) {
    const auto& c = all[i];
    std::string hdrs = "{\"Host\":" + json_str(c.host);
    for (const auto& h : c.headers) hdrs += "," + json_str(h.name) + ":" + json_str(h.value);
    hdrs += "}";
    std::string url = c.scheme + "://" + c.host + c.path + (c.query.empty() ? "" : "?" + c.query);
    input += (i ? "," : "") + std::string("{\"method\":") + json_str(c.method) +
             ",\"url\":" + json_str(url) + ",\"headers\":" + hdrs +
             ",\"body\":" + json_str(c.body) + ",\"service\":" + json_str(c.service) +
             ",\"region\":" + json_str(c.region) + ",\"s3\":" + (c.s3 ? "true" : "false") +
             ",\"unsigned\":" + (c.unsigned_payload ? "true" : "false") +
             ",\"time\":" + json_str(kTime) + ",\"access_key\":" + json_str(kKey) +
             ",\"secret_key\":" + json_str(kSecret) + ",\"token\":" + json_str(c.token) + "}";
  }
  input += "]";
  fs::path in = fs::temp_directory_path() / ("fe-botocore-" + std::to_string(getpid()) + ".json");
  std::ofstream(in) << input;
  std::string cmd = std::string(kPython) + " " + FE_SOURCE_DIR +
                    "/tests/unit/aws-sigv4/botocore_sign.py < " + in.string();
  FILE* p = popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int rc = pclose(p);
  fs::remove(in);
  ASSERT_EQ(rc, 0) << "botocore_sign.py failed";

  simdjson::dom::parser parser;
  simdjson::dom::array results = parser.parse(out).get_array().value();
  ASSERT_EQ(results.size(), all.size());
  std::size_t i = 0;
  for (simdjson::dom::element r : results) {
    const PeerCase& c = all[i++];
    SCOPED_TRACE(c.name);
    std::string boto_auth(r["authorization"].get_string().value());
    std::string boto_cr(r["canonical_request"].get_string().value());

    Credentials creds;
    creds.access_key_id = kKey;
    creds.secret_access_key = kSecret;
    creds.session_token = c.token;
    SignableRequest req;
    req.method = c.method;
    req.path = c.path;
    req.query = c.query;
    req.headers = {{"Host", c.host}};
    for (const auto& h : c.headers) req.headers.push_back(h);
    req.payload_hash = c.unsigned_payload ? "UNSIGNED-PAYLOAD" : sha256_hex(c.body);
    SigningOptions o;
    o.region = c.region;
    o.service = c.service;
    o.time = parse_amz_date(kTime).value();
    o.s3_rules = c.s3;
    Signed s = sign(req, creds, o);
    EXPECT_EQ(s.canonical_request, boto_cr);
    EXPECT_EQ(s.authorization, boto_auth);

    // What botocore sent, checked by our verifier.
    SignableRequest got;
    got.method = c.method;
    got.path = c.path;
    got.query = c.query;
    simdjson::dom::object sent = r["headers"].get_object().value();
    for (auto [k, v] : sent)
      got.headers.push_back({std::string(k), std::string(v.get_string().value())});
    got.payload_hash = sha256_hex(c.body);
    VerifyOptions vo;
    vo.region = c.region;
    vo.service = c.service;
    vo.now = o.time;
    vo.s3_rules = c.s3;
    auto lookup = [&](std::string_view id) -> std::optional<Credentials> {
      if (id == kKey) return creds;
      return std::nullopt;
    };
    VerifyResult vr = verify(got, lookup, vo);
    EXPECT_TRUE(vr.ok()) << vr.message;
  }
}
