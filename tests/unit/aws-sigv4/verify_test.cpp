// The server-side verifier (used by healthlake-local): sign with our signer, then verify; every
// kind of tampering or misconfiguration must give its typed failure.
#include <gtest/gtest.h>

#include "aws/sigv4.hpp"

using namespace fe::aws;
using namespace std::chrono;

namespace {

const system_clock::time_point kT = parse_amz_date("20261126T100000Z").value();

Credentials user() {
  Credentials c;
  c.access_key_id = "AKIDVERIFY";
  c.secret_access_key = "verify/secret+KEY";
  return c;
}

struct Fixture {
  std::vector<Credentials> known = {user()};
  SecretLookup lookup() {
    return [this](std::string_view id) -> std::optional<Credentials> {
      for (auto& c : known)
        if (c.access_key_id == id) return c;
      return std::nullopt;
    };
  }
};

// A HealthLake-style JSON 1.0 call as the daemon sends it.
SignableRequest json_call(const std::string& body) {
  SignableRequest r;
  r.method = "POST";
  r.path = "/";
  r.headers = {{"Host", "127.0.0.1:4566"},
               {"Content-Type", "application/x-amz-json-1.0"},
               {"X-Amz-Target", "HealthLake.StartFHIRImportJob"}};
  r.payload_hash = sha256_hex(body);
  return r;
}

SigningOptions hl_opts() {
  SigningOptions o;
  o.region = "us-east-1";
  o.service = "healthlake";
  o.time = kT;
  return o;
}

VerifyOptions hl_verify(system_clock::time_point now = kT) {
  VerifyOptions v;
  v.region = "us-east-1";
  v.service = "healthlake";
  v.now = now;
  return v;
}

SignableRequest received(const SignableRequest& r, const Signed& s) {
  SignableRequest out = r;
  for (auto& h : s.headers_to_add) out.headers.push_back(h);
  return out;
}

Header* hdr(SignableRequest& r, std::string_view name) {
  for (auto& h : r.headers)
    if (h.name.size() == name.size() &&
        std::equal(h.name.begin(), h.name.end(), name.begin(),
                   [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
      return &h;
  return nullptr;
}

}  // namespace

TEST(Verify, RoundTripJsonCall) {
  Fixture f;
  const std::string body = R"({"JobName":"x"})";
  SignableRequest r = json_call(body);
  Signed s = sign(r, user(), hl_opts());
  VerifyResult v = verify(received(r, s), f.lookup(), hl_verify());
  EXPECT_TRUE(v.ok()) << v.message;
  EXPECT_EQ(v.access_key_id, "AKIDVERIFY");
  EXPECT_EQ(v.canonical_request, s.canonical_request);
  EXPECT_EQ(v.string_to_sign, s.string_to_sign);
  EXPECT_EQ(verify_error_code(VerifyStatus::signature_mismatch, true), "InvalidSignatureException");
  EXPECT_EQ(verify_error_code(VerifyStatus::signature_mismatch, false), "SignatureDoesNotMatch");
}

TEST(Verify, TamperedBodyHeaderPathOrQueryMismatch) {
  Fixture f;
  SignableRequest r = json_call("{}");
  r.query = "a=1";
  Signed s = sign(r, user(), hl_opts());

  SignableRequest body = received(r, s);
  body.payload_hash = sha256_hex("{\"evil\":1}");
  EXPECT_EQ(verify(body, f.lookup(), hl_verify()).status, VerifyStatus::signature_mismatch);

  SignableRequest header = received(r, s);
  hdr(header, "x-amz-target")->value = "HealthLake.DeleteFHIRDatastore";
  VerifyResult v = verify(header, f.lookup(), hl_verify());
  EXPECT_EQ(v.status, VerifyStatus::signature_mismatch);
  // The error body material: what the server computed, never the secret.
  EXPECT_NE(v.canonical_request.find("x-amz-target:HealthLake.DeleteFHIRDatastore"),
            std::string::npos);
  EXPECT_EQ(v.message.find(user().secret_access_key), std::string::npos);
  EXPECT_EQ(v.canonical_request.find(user().secret_access_key), std::string::npos);

  SignableRequest path = received(r, s);
  path.path = "/other";
  EXPECT_EQ(verify(path, f.lookup(), hl_verify()).status, VerifyStatus::signature_mismatch);

  SignableRequest query = received(r, s);
  query.query = "a=2";
  EXPECT_EQ(verify(query, f.lookup(), hl_verify()).status, VerifyStatus::signature_mismatch);

  // Headers the client did not sign may change (proxies add some).
  SignableRequest extra = received(r, s);
  extra.headers.push_back({"User-Agent", "changed-by-proxy"});
  EXPECT_TRUE(verify(extra, f.lookup(), hl_verify()).ok());
}

TEST(Verify, WrongSecretIsSignatureMismatch) {
  Fixture f;
  Credentials wrong = user();
  wrong.secret_access_key = "not-the-secret";
  SignableRequest r = json_call("{}");
  Signed s = sign(r, wrong, hl_opts());
  VerifyResult v = verify(received(r, s), f.lookup(), hl_verify());
  EXPECT_EQ(v.status, VerifyStatus::signature_mismatch);
  EXPECT_FALSE(v.string_to_sign.empty());
}

TEST(Verify, ExtraSignedHeadersLikeTheSdks) {
  // botocore/JS SDK sign content-type, x-amz-target, x-amz-user-agent, amz-sdk-*...: any set.
  Fixture f;
  SignableRequest r = json_call("{}");
  r.headers.push_back({"amz-sdk-invocation-id", "11111111-2222"});
  r.headers.push_back({"amz-sdk-request", "attempt=1; max=3"});
  r.headers.push_back({"x-amz-user-agent", "aws-sdk-js/3.1048.0"});
  Signed s = sign(r, user(), hl_opts());
  VerifyResult v = verify(received(r, s), f.lookup(), hl_verify());
  EXPECT_TRUE(v.ok()) << v.message;
  EXPECT_EQ(v.signed_headers.size(), 7u);
}

TEST(Verify, SkewWindow) {
  Fixture f;
  SignableRequest r = json_call("{}");
  Signed s = sign(r, user(), hl_opts());
  EXPECT_TRUE(verify(received(r, s), f.lookup(), hl_verify(kT + minutes(14))).ok());
  EXPECT_TRUE(verify(received(r, s), f.lookup(), hl_verify(kT - minutes(14))).ok());
  VerifyResult late = verify(received(r, s), f.lookup(), hl_verify(kT + minutes(16)));
  EXPECT_EQ(late.status, VerifyStatus::request_time_too_skewed);
  EXPECT_EQ(late.request_time, "20261126T100000Z");
  EXPECT_EQ(verify_error_code(late.status), "RequestTimeTooSkewed");
  EXPECT_EQ(verify(received(r, s), f.lookup(), hl_verify(kT - minutes(16))).status,
            VerifyStatus::request_time_too_skewed);
  VerifyOptions tight = hl_verify(kT + minutes(6));
  tight.max_skew = minutes(5);
  EXPECT_EQ(verify(received(r, s), f.lookup(), tight).status,
            VerifyStatus::request_time_too_skewed);
}

TEST(Verify, ScopeRegionServiceAndDate) {
  Fixture f;
  SignableRequest r = json_call("{}");
  SigningOptions o = hl_opts();
  o.region = "eu-west-1";
  Signed s = sign(r, user(), o);
  VerifyResult v = verify(received(r, s), f.lookup(), hl_verify());
  EXPECT_EQ(v.status, VerifyStatus::scope_mismatch);
  EXPECT_NE(v.message.find("eu-west-1"), std::string::npos);
  o = hl_opts();
  o.service = "s3";
  s = sign(r, user(), o);
  EXPECT_EQ(verify(received(r, s), f.lookup(), hl_verify()).status, VerifyStatus::scope_mismatch);
  // Empty expectations accept any region/service (a multi-service emulator).
  VerifyOptions any = hl_verify();
  any.region.clear();
  any.service.clear();
  EXPECT_TRUE(verify(received(r, s), f.lookup(), any).ok());
  // Scope date must be the x-amz-date's day.
  s = sign(r, user(), hl_opts());
  SignableRequest moved = received(r, s);
  hdr(moved, "x-amz-date")->value = "20261127T000100Z";
  EXPECT_EQ(verify(moved, f.lookup(), hl_verify(kT + hours(14))).status,
            VerifyStatus::scope_mismatch);
}

TEST(Verify, UnknownKeyMissingAndMalformed) {
  Fixture f;
  SignableRequest r = json_call("{}");
  Credentials stranger = user();
  stranger.access_key_id = "AKIDSTRANGER";
  Signed s = sign(r, stranger, hl_opts());
  VerifyResult v = verify(received(r, s), f.lookup(), hl_verify());
  EXPECT_EQ(v.status, VerifyStatus::unknown_access_key);
  EXPECT_EQ(verify_error_code(v.status, true), "UnrecognizedClientException");

  EXPECT_EQ(verify(r, f.lookup(), hl_verify()).status, VerifyStatus::missing);

  SignableRequest bad = received(r, sign(r, user(), hl_opts()));
  hdr(bad, "authorization")->value = "AWS4-HMAC-SHA256 Credential=AKIDVERIFY/20261126/us-east-1";
  EXPECT_EQ(verify(bad, f.lookup(), hl_verify()).status, VerifyStatus::malformed);
  hdr(bad, "authorization")->value = "Basic dXNlcjpwYXNz";
  EXPECT_EQ(verify(bad, f.lookup(), hl_verify()).status, VerifyStatus::malformed);

  SignableRequest nodate = received(r, sign(r, user(), hl_opts()));
  std::erase_if(nodate.headers, [](const Header& h) { return h.name == "x-amz-date"; });
  EXPECT_EQ(verify(nodate, f.lookup(), hl_verify()).status, VerifyStatus::malformed);

  // A header listed in SignedHeaders but absent from the request.
  SignableRequest gone = received(r, sign(r, user(), hl_opts()));
  std::erase_if(gone.headers, [](const Header& h) { return h.name == "X-Amz-Target"; });
  VerifyResult g = verify(gone, f.lookup(), hl_verify());
  EXPECT_EQ(g.status, VerifyStatus::malformed);
  EXPECT_NE(g.message.find("x-amz-target"), std::string::npos);
}

TEST(Verify, SessionTokensAndExpiredKeys) {
  Fixture f;
  Credentials temp = user();
  temp.access_key_id = "ASIATEMP";
  temp.session_token = "the-token";
  temp.expiration = kT + hours(1);
  f.known.push_back(temp);
  SignableRequest r = json_call("{}");
  Signed s = sign(r, temp, hl_opts());
  EXPECT_TRUE(verify(received(r, s), f.lookup(), hl_verify()).ok());

  Credentials no_token = temp;
  no_token.session_token.clear();
  s = sign(r, no_token, hl_opts());
  VerifyResult v = verify(received(r, s), f.lookup(), hl_verify());
  EXPECT_EQ(v.status, VerifyStatus::invalid_token);
  EXPECT_EQ(v.message.find("the-token"), std::string::npos);

  Credentials wrong_token = temp;
  wrong_token.session_token = "forged";
  s = sign(r, wrong_token, hl_opts());
  EXPECT_EQ(verify(received(r, s), f.lookup(), hl_verify()).status, VerifyStatus::invalid_token);

  // The key has expired server-side.
  s = sign(r, temp, hl_opts());
  VerifyOptions later = hl_verify(kT + hours(1) + seconds(1));
  later.max_skew = hours(2);
  VerifyResult e = verify(received(r, s), f.lookup(), later);
  EXPECT_EQ(e.status, VerifyStatus::expired);
  EXPECT_EQ(verify_error_code(e.status, true), "ExpiredTokenException");
}

TEST(Verify, S3ContentSha256AndUnsignedPayload) {
  Fixture f;
  SigningOptions o = hl_opts();
  o.service = "s3";
  o.s3_rules = true;
  VerifyOptions vo = hl_verify();
  vo.service = "s3";
  vo.s3_rules = true;

  SignableRequest r;
  r.method = "PUT";
  r.path = "/bucket/" + uri_encode("exports/a b+c.ndjson", false);
  r.query = "partNumber=1&uploadId=xyz";
  r.headers = {{"Host", "127.0.0.1:9000"}, {"x-amz-checksum-crc32c", "4waSgw=="}};
  r.payload_hash = "UNSIGNED-PAYLOAD";
  Signed s = sign(r, user(), o);
  SignableRequest got = received(r, s);
  got.payload_hash = sha256_hex("any body");  // unsigned: the body is not part of the signature
  EXPECT_TRUE(verify(got, f.lookup(), vo).ok());

  r.payload_hash = sha256_hex("part one");
  s = sign(r, user(), o);
  got = received(r, s);
  got.payload_hash = sha256_hex("part one");
  EXPECT_TRUE(verify(got, f.lookup(), vo).ok());
  got.payload_hash = sha256_hex("part 0ne");
  VerifyResult v = verify(got, f.lookup(), vo);
  EXPECT_EQ(v.status, VerifyStatus::content_sha256_mismatch);
  EXPECT_EQ(verify_error_code(v.status), "XAmzContentSHA256Mismatch");
}

TEST(Verify, PresignedS3Url) {
  Fixture f;
  SigningOptions o = hl_opts();
  o.service = "s3";
  o.s3_rules = true;
  SignableRequest r;
  r.method = "GET";
  r.path = "/bucket/key";
  r.headers = {{"Host", "127.0.0.1:9000"}};
  Presigned p = presign(r, user(), o, seconds(300));
  SignableRequest got = r;
  got.query = p.query;
  VerifyOptions vo = hl_verify(kT + seconds(10));
  vo.service = "s3";
  vo.s3_rules = true;
  EXPECT_TRUE(verify(got, f.lookup(), vo).ok());
  vo.now = kT + seconds(301);
  EXPECT_EQ(verify(got, f.lookup(), vo).status, VerifyStatus::expired);
  vo.now = kT + seconds(10);
  got.query = p.query + "&extra=1";  // an unsigned parameter added to a signed URL
  EXPECT_EQ(verify(got, f.lookup(), vo).status, VerifyStatus::signature_mismatch);
}
