// Canonicalisation edge cases the test suite does not cover, and the S3 examples from the AWS
// SigV4 documentation (sig-v4-header-based-auth, sigv4-query-string-auth).
#include <gtest/gtest.h>

#include "aws/sigv4.hpp"

using namespace fe::aws;

namespace {
Credentials doc_creds() {
  Credentials c;
  c.access_key_id = "AKIAIOSFODNN7EXAMPLE";
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  return c;
}
SigningOptions s3_opts() {
  SigningOptions o;
  o.region = "us-east-1";
  o.service = "s3";
  o.time = parse_amz_date("20130524T000000Z").value();
  o.s3_rules = true;
  return o;
}
std::string line(const std::string& s, int n) {
  std::size_t pos = 0;
  for (int i = 0; i < n; ++i) pos = s.find('\n', pos) + 1;
  return s.substr(pos, s.find('\n', pos) - pos);
}
}  // namespace

TEST(UriEncode, UnreservedSlashAndBytes) {
  EXPECT_EQ(uri_encode("AZaz09-_.~", true), "AZaz09-_.~");
  EXPECT_EQ(uri_encode("a b+c*d/e", false), "a%20b%2Bc%2Ad/e");
  EXPECT_EQ(uri_encode("a/b", true), "a%2Fb");
  EXPECT_EQ(uri_encode("\xC3\xA9", true), "%C3%A9");  // é, upper-case hex
  EXPECT_EQ(uri_encode("=&?%", true), "%3D%26%3F%25");
}

TEST(CanonicalUri, S3KeepsPathNormalisingServicesDoNot) {
  // S3 object keys with spaces, unicode, '+', '~', '//' and dot segments: signed as sent.
  std::string key = "exports/2026 11/a+b~c//d/./e/../\xC3\xA9.ndjson";
  std::string wire = "/bucket/" + uri_encode(key, false);
  EXPECT_EQ(wire, "/bucket/exports/2026%2011/a%2Bb~c//d/./e/../%C3%A9.ndjson");
  EXPECT_EQ(canonical_uri(wire, true), wire);
  // Other services: dot segments and empty segments removed, each segment encoded again.
  EXPECT_EQ(canonical_uri("/a//b/./c/../d", false), "/a/b/d");
  EXPECT_EQ(canonical_uri("/a%20b", false), "/a%2520b");
  EXPECT_EQ(canonical_uri("", false), "/");
  EXPECT_EQ(canonical_uri("/x/", false), "/x/");
  EXPECT_EQ(canonical_uri("", true), "/");
}

TEST(CanonicalQuery, SortingEncodingAndValuelessKeys) {
  EXPECT_EQ(canonical_query("uploads"), "uploads=");
  EXPECT_EQ(canonical_query("uploadId=abc&partNumber=10"), "partNumber=10&uploadId=abc");
  EXPECT_EQ(canonical_query("b=1&a-b=2&a=3&a_b=4"), "a=3&a-b=2&a_b=4&b=1");
  EXPECT_EQ(canonical_query("a=2&a=1"), "a=1&a=2");
  // A literal '+' is a plus (callers send spaces as %20), '~' stays, '/' is encoded.
  EXPECT_EQ(canonical_query("prefix=a+b/c~d%20e"), "prefix=a%2Bb%2Fc~d%20e");
  EXPECT_EQ(canonical_query("k=%c3%a9"), "k=%C3%A9");
  EXPECT_EQ(canonical_query("x=1&&y="), "x=1&y=");
  EXPECT_EQ(canonical_query(""), "");
  EXPECT_EQ(canonical_query("list-type=2&continuation-token=1%2Fab%3D%3D&prefix=exports%2F"),
            "continuation-token=1%2Fab%3D%3D&list-type=2&prefix=exports%2F");
}

TEST(CanonicalHeaders, SamePrefixNamesSortByNameNotLine) {
  // "x-amz-meta-a:..." vs "x-amz-meta-a-b:...": sorting whole lines would put a-b first
  // (':' > '-'); SigV4 sorts by name.
  std::vector<Header> h = {{"X-Amz-Meta-A-B", "2"}, {"x-amz-meta-a", "1"}, {"Host", "h"}};
  auto ch = canonical_headers(h);
  EXPECT_EQ(ch.canonical, "host:h\nx-amz-meta-a:1\nx-amz-meta-a-b:2\n");
  EXPECT_EQ(ch.signed_headers, "host;x-amz-meta-a;x-amz-meta-a-b");
}

TEST(CanonicalHeaders, TrimCollapseFoldAndRepeat) {
  std::vector<Header> h = {{"Host", " h "},
                           {"My-Header", "  a   b\n\t  c  "},
                           {"my-header", "second"},
                           {"Quoted", "\"x   y\""}};
  auto ch = canonical_headers(h);
  EXPECT_EQ(ch.canonical, "host:h\nmy-header:a b c,second\nquoted:\"x y\"\n");
  auto only = canonical_headers(h, {"host", "quoted"});
  EXPECT_EQ(only.signed_headers, "host;quoted");
}

TEST(S3DocExamples, GetObjectWithRange) {
  SignableRequest r;
  r.method = "GET";
  r.path = "/test.txt";
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"}, {"Range", "bytes=0-9"}};
  r.payload_hash = sha256_hex("");
  Signed s = sign(r, doc_creds(), s3_opts());
  EXPECT_EQ(s.signed_headers, "host;range;x-amz-content-sha256;x-amz-date");
  EXPECT_EQ(s.signature, "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  EXPECT_EQ(s.authorization,
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
            "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
            "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
}

TEST(S3DocExamples, PutObjectWithSpecialKeyAndDateHeader) {
  SignableRequest r;
  r.method = "PUT";
  r.path = "/" + uri_encode("test$file.text", false);
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"},
               {"Date", "Fri, 24 May 2013 00:00:00 GMT"},
               {"x-amz-storage-class", "REDUCED_REDUNDANCY"}};
  r.payload_hash = sha256_hex("Welcome to Amazon S3.");
  Signed s = sign(r, doc_creds(), s3_opts());
  EXPECT_EQ(line(s.canonical_request, 1), "/test%24file.text");
  EXPECT_EQ(s.signature, "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd");
}

TEST(S3DocExamples, ValuelessSubresourceAndListQuery) {
  SignableRequest r;
  r.method = "GET";
  r.path = "/";
  r.query = "lifecycle";
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"}};
  r.payload_hash = sha256_hex("");
  Signed s = sign(r, doc_creds(), s3_opts());
  EXPECT_EQ(line(s.canonical_request, 2), "lifecycle=");
  EXPECT_EQ(s.signature, "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543");

  r.query = "max-keys=2&prefix=J";
  s = sign(r, doc_creds(), s3_opts());
  EXPECT_EQ(s.signature, "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7");
}

TEST(S3DocExamples, PresignedGet) {
  SignableRequest r;
  r.method = "GET";
  r.path = "/test.txt";
  r.headers = {{"Host", "examplebucket.s3.amazonaws.com"}};
  Presigned p = presign(r, doc_creds(), s3_opts(), std::chrono::seconds(86400));
  EXPECT_EQ(line(p.canonical_request, 6), "UNSIGNED-PAYLOAD");
  EXPECT_EQ(p.signature, "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404");
  EXPECT_NE(p.query.find("X-Amz-Signature=" + p.signature), std::string::npos);
}

TEST(Sign, S3AddsContentSha256TokenAndReplacesCallerCopies) {
  Credentials c = doc_creds();
  c.session_token = "SESSION/TOKEN+=";
  SignableRequest r;
  r.method = "PUT";
  r.path = "/b/k";
  r.query = "partNumber=3&uploadId=u%2B1";
  r.headers = {{"Host", "127.0.0.1:9000"}, {"X-Amz-Date", "stale"}, {"Authorization", "old"}};
  r.payload_hash = "UNSIGNED-PAYLOAD";
  Signed s = sign(r, c, s3_opts());
  EXPECT_EQ(s.signed_headers, "host;x-amz-content-sha256;x-amz-date;x-amz-security-token");
  EXPECT_NE(s.canonical_request.find("x-amz-date:20130524T000000Z\n"), std::string::npos);
  EXPECT_EQ(s.canonical_request.find("stale"), std::string::npos);
  EXPECT_EQ(line(s.canonical_request, 2), "partNumber=3&uploadId=u%2B1");
  ASSERT_EQ(s.headers_to_add.size(), 4u);
  EXPECT_EQ(s.headers_to_add[0].name, "x-amz-date");
  EXPECT_EQ(s.headers_to_add[1].value, "UNSIGNED-PAYLOAD");
  EXPECT_EQ(s.headers_to_add[2].value, "SESSION/TOKEN+=");
  EXPECT_EQ(s.headers_to_add[3].name, "Authorization");
  // The secret appears nowhere in what we return.
  for (const std::string* t : {&s.canonical_request, &s.string_to_sign, &s.authorization})
    EXPECT_EQ(t->find(c.secret_access_key), std::string::npos);
}

TEST(Sign, RejectsMissingHostOrCredentials) {
  SignableRequest r;
  r.method = "GET";
  r.path = "/";
  EXPECT_THROW(sign(r, doc_creds(), s3_opts()), std::invalid_argument);
  r.headers = {{"Host", "h"}};
  EXPECT_THROW(sign(r, Credentials{}, s3_opts()), std::invalid_argument);
  EXPECT_THROW(presign(r, doc_creds(), s3_opts(), std::chrono::seconds(0)), std::invalid_argument);
  SigningOptions no_region = s3_opts();
  no_region.region.clear();
  EXPECT_THROW(sign(r, doc_creds(), no_region), std::invalid_argument);
}

TEST(Dates, AmzAndHttpDates) {
  auto t = parse_amz_date("20150830T123600Z");
  ASSERT_TRUE(t);
  EXPECT_EQ(amz_date(*t), "20150830T123600Z");
  EXPECT_FALSE(parse_amz_date("2015-08-30T12:36:00Z"));
  EXPECT_FALSE(parse_amz_date("20151330T123600Z"));
  auto h = parse_http_date("Sun, 30 Aug 2015 12:36:00 GMT");
  ASSERT_TRUE(h);
  EXPECT_EQ(*h, *t);
  EXPECT_FALSE(parse_http_date("Sun, 30 Foo 2015 12:36:00 GMT"));
  EXPECT_FALSE(parse_http_date("garbage"));
  // Beyond what system_clock holds (found by the robustness test under UBSan): refused.
  EXPECT_FALSE(parse_amz_date("99991231T235959Z"));
  EXPECT_FALSE(parse_http_date("Fri, 31 Dec 9999 23:59:59 GMT"));
}

TEST(Sha256Stream, MatchesOneShot) {
  Sha256Stream s;
  s.update("Welcome ");
  s.update("to Amazon S3.");
  EXPECT_EQ(s.final_hex(), sha256_hex("Welcome to Amazon S3."));
  EXPECT_EQ(s.final_hex(), sha256_hex(""));  // reset after final
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}
