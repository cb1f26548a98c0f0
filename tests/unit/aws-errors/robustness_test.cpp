// Hostile or broken input to every parser of the AWS layer: seeded random mutations of valid
// documents must give errors, never crashes or hangs (the CI runs this under ASan+UBSan).
#include <gtest/gtest.h>

#include <random>

#include "aws/credentials.hpp"
#include "aws/errors.hpp"
#include "aws/sigv4.hpp"
#include "aws/xml.hpp"

using namespace fe::aws;

namespace {
std::string mutate(std::string s, std::mt19937& rng) {
  static const std::string alphabet = "<>/&;#=\"' \n\t\\%:,[]{}aZ09\xC3\xFF\x00";
  int edits = 1 + static_cast<int>(rng() % 6);
  for (int i = 0; i < edits; ++i) {
    std::size_t pos = s.empty() ? 0 : rng() % s.size();
    switch (rng() % 4) {
      case 0:
        if (!s.empty()) s.erase(pos, 1 + rng() % 8);
        break;
      case 1:
        s.insert(pos, 1, alphabet[rng() % alphabet.size()]);
        break;
      case 2:
        if (!s.empty()) s[pos] = alphabet[rng() % alphabet.size()];
        break;
      case 3:
        s = s.substr(0, pos);
        break;
    }
  }
  return s;
}
}  // namespace

TEST(Robustness, MutatedXmlJsonIniCommandLines) {
  std::mt19937 rng(20261126);
  const std::string xml_doc =
      "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code><Message>a &amp; b &#x41;"
      "<![CDATA[x]]></Message><RequestId>R</RequestId></Error>";
  const std::string json_doc = R"({"__type":"ns#ThrottlingException:http://x","message":"m"})";
  const std::string ini_doc = "[default]\naws_access_key_id = A\n  sub = 1\n[profile x]\nk=v ;c\n";
  const std::string cmd = "\"/opt/a b\" --x 'y z' \\\"q";
  for (int i = 0; i < 3000; ++i) {
    std::string x = mutate(xml_doc, rng);
    auto r = xml::parse(x);
    if (!r.root) {
      EXPECT_FALSE(r.error.empty());
    }
    ErrorResponse er;
    er.http_status = 400 + static_cast<int>(rng() % 200);
    er.body = x;
    AwsError e = parse_s3_error(er);
    EXPECT_LE(e.message.size(), 600u);
    std::string j = mutate(json_doc, rng);
    er.body = j;
    er.amzn_error_type = (i % 3 == 0) ? std::string_view(j).substr(0, 20) : std::string_view();
    parse_json_error(er);
    try {
      parse_ini(mutate(ini_doc, rng), "f");
    } catch (const CredentialsError&) {
    }
    try {
      split_command_line(mutate(cmd, rng));
    } catch (const CredentialsError&) {
    }
    try {
      parse_process_output(mutate(R"({"Version":1,"AccessKeyId":"A","SecretAccessKey":"S"})", rng),
                           "p");
    } catch (const CredentialsError&) {
    }
    parse_iso8601(mutate("2026-11-26T10:00:00.5+01:00", rng));
    parse_http_date(mutate("Thu, 26 Nov 2026 10:00:00 GMT", rng));
  }
}

TEST(Robustness, MutatedSignedRequestsNeverVerify) {
  std::mt19937 rng(7);
  Credentials c;
  c.access_key_id = "AKIDROBUST";
  c.secret_access_key = "s";
  SignableRequest r;
  r.method = "PUT";
  r.path = "/b/k";
  r.query = "partNumber=1&uploadId=u";
  r.headers = {{"Host", "h"}};
  r.payload_hash = "UNSIGNED-PAYLOAD";
  SigningOptions o;
  o.region = "us-east-1";
  o.service = "s3";
  o.time = parse_amz_date("20261126T100000Z").value();
  o.s3_rules = true;
  Signed s = sign(r, c, o);
  VerifyOptions vo;
  vo.region = o.region;
  vo.service = o.service;
  vo.now = o.time;
  vo.s3_rules = true;
  auto lookup = [&](std::string_view id) -> std::optional<Credentials> {
    if (id == c.access_key_id) return c;
    return std::nullopt;
  };
  int accepted = 0;
  for (int i = 0; i < 2000; ++i) {
    SignableRequest got = r;
    for (auto& h : s.headers_to_add) got.headers.push_back(h);
    Header& victim = got.headers[rng() % got.headers.size()];
    victim.value = mutate(victim.value, rng);
    if (rng() % 4 == 0) got.query = mutate(got.query, rng);
    VerifyResult v = verify(got, lookup, vo);
    // Only edits the canonical form does not see (whitespace runs, an unsigned header) may pass.
    if (v.ok()) ++accepted;
  }
  EXPECT_LT(accepted, 200);
}
