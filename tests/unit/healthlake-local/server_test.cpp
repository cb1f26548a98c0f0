// healthlake-local as a process (started by tests/support's HealthLakeLocal), driven over real
// loopback HTTP with requests signed by the project's SigV4 signer: routing, auth errors,
// virtual-host style, and injected faults (reproducible by seed).
#include <gtest/gtest.h>

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/read_until.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <thread>

#include "aws/sigv4.hpp"
#include "common/hashing.hpp"
#include "healthlake_local.hpp"
#include "server.hpp"
#include "util.hpp"

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using fe::test::HealthLakeLocal;
using fe::test::HealthLakeLocalOptions;

namespace {

struct Reply {
  int status = 0;  // 0: the connection was closed without a (complete) response
  std::map<std::string, std::string> headers;
  std::string body{};
  std::string header(const std::string& k) const {
    auto it = headers.find(k);
    return it == headers.end() ? "" : it->second;
  }
};

struct Call {
  std::string method = "GET";
  std::string path = "/";
  std::string query{};
  std::string body{};
  std::vector<std::pair<std::string, std::string>> headers{};
  std::string service = "s3";
  std::string host{};    // default 127.0.0.1:PORT
  std::string secret{};  // default: the emulator's
  std::string token{};
  bool sign = true;
  bool http_chunked = false;  // send the body with Transfer-Encoding: chunked
  std::chrono::system_clock::time_point time = std::chrono::system_clock::now();
  std::string payload_hash{};  // default: SHA-256 of body
  // When set, builds the body from the header signature (aws-chunked signed payloads).
  std::function<std::string(const std::string& seed_signature)> body_from_signature{};
};

Reply send(const HealthLakeLocal& hll, Call c) {
  std::string host = c.host.empty() ? "127.0.0.1:" + std::to_string(hll.port()) : c.host;
  std::vector<fe::aws::Header> hs = {{"Host", host}};
  for (const auto& [k, v] : c.headers) hs.push_back({k, v});
  if (c.sign) {
    fe::aws::SignableRequest sr{
        c.method, c.path, c.query, hs,
        c.payload_hash.empty() ? fe::aws::sha256_hex(c.body) : c.payload_hash};
    fe::aws::Credentials cr;
    cr.access_key_id = hll.access_key();
    cr.secret_access_key = c.secret.empty() ? hll.secret_key() : c.secret;
    cr.session_token = c.token;
    fe::aws::SigningOptions so;
    so.region = hll.region();
    so.service = c.service;
    so.time = c.time;
    so.s3_rules = c.service == "s3";
    fe::aws::Signed s = fe::aws::sign(sr, cr, so);
    for (const auto& h : s.headers_to_add) hs.push_back(h);
    if (c.body_from_signature) c.body = c.body_from_signature(s.signature);
  }
  asio::io_context io;
  asio::ip::tcp::socket sock(io);
  sock.connect({asio::ip::make_address("127.0.0.1"), hll.port()});
  http::request<http::string_body> req{http::string_to_verb(c.method),
                                       c.path + (c.query.empty() ? "" : "?" + c.query), 11};
  for (const auto& h : hs) req.set(h.name, h.value);
  req.body() = c.body;
  if (c.http_chunked)
    req.chunked(true);
  else if (!c.body.empty() || c.method == "PUT" || c.method == "POST")
    req.prepare_payload();
  http::write(sock, req);
  Reply r;
  beast::flat_buffer buf;
  http::response_parser<http::string_body> p;
  p.body_limit(64 << 20);
  if (c.method == "HEAD") p.skip(true);
  beast::error_code ec;
  http::read(sock, buf, p, ec);
  if (ec) return r;
  r.status = p.get().result_int();
  for (const auto& f : p.get()) r.headers[std::string(f.name_string())] = std::string(f.value());
  r.body = p.get().body();
  return r;
}

std::string xml_code(const std::string& body) {
  auto a = body.find("<Code>");
  auto b = body.find("</Code>");
  return a == std::string::npos ? "" : body.substr(a + 6, b - a - 6);
}

Call put(const std::string& path, const std::string& body) {
  Call c;
  c.method = "PUT";
  c.path = path;
  c.body = body;
  return c;
}

TEST(Routing, S3OperationsFromMethodAndQuery) {
  using fe::hll::s3_operation;
  EXPECT_EQ(s3_operation("GET", false, false, "", false), "ListBuckets");
  EXPECT_EQ(s3_operation("PUT", true, false, "", false), "CreateBucket");
  EXPECT_EQ(s3_operation("GET", true, false, "list-type=2&prefix=a", false), "ListObjectsV2");
  EXPECT_EQ(s3_operation("GET", true, false, "uploads", false), "ListMultipartUploads");
  EXPECT_EQ(s3_operation("GET", true, false, "", false), "") << "ListObjects v1 not implemented";
  EXPECT_EQ(s3_operation("PUT", true, true, "", false), "PutObject");
  EXPECT_EQ(s3_operation("PUT", true, true, "partNumber=2&uploadId=x", false), "UploadPart");
  EXPECT_EQ(s3_operation("PUT", true, true, "", true), "CopyObject");  // the batch copies
  EXPECT_EQ(s3_operation("PUT", true, true, "partNumber=2&uploadId=x", true), "")
      << "UploadPartCopy not implemented";
  EXPECT_EQ(s3_operation("POST", true, true, "uploads", false), "CreateMultipartUpload");
  EXPECT_EQ(s3_operation("POST", true, true, "uploadId=x", false), "CompleteMultipartUpload");
  EXPECT_EQ(s3_operation("GET", true, true, "uploadId=x", false), "ListParts");
  EXPECT_EQ(s3_operation("DELETE", true, true, "uploadId=x", false), "AbortMultipartUpload");
  EXPECT_EQ(s3_operation("GET", true, true, "acl", false), "");
  EXPECT_EQ(s3_operation("GET", true, true, "x-id=GetObject", false), "GetObject");
}

TEST(Routing, VirtualHostPatterns) {
  using fe::hll::virtual_host_bucket;
  EXPECT_EQ(virtual_host_bucket("127.0.0.1:9000"), "");
  EXPECT_EQ(virtual_host_bucket("localhost:9000"), "");
  EXPECT_EQ(virtual_host_bucket("s3.localhost:9000"), "");
  EXPECT_EQ(virtual_host_bucket("s3.us-east-1.localhost"), "");
  EXPECT_EQ(virtual_host_bucket("landing.localhost:9000"), "landing");
  EXPECT_EQ(virtual_host_bucket("my.bucket.s3.localhost:9000"), "my.bucket");
  EXPECT_EQ(virtual_host_bucket("landing.s3.us-east-1.localhost"), "landing");
}

TEST(Server, SignedRequestsAuthErrorsAndVirtualHosts) {
  HealthLakeLocalOptions o;
  o.buckets = {"landing"};
  HealthLakeLocal hll(o);
  EXPECT_EQ(send(hll, put("/landing/a.txt", "hello")).status, 200);
  Reply g = send(hll, Call{.path = "/landing/a.txt"});
  EXPECT_EQ(g.status, 200);
  EXPECT_EQ(g.body, "hello");
  EXPECT_EQ(g.header("ETag"), "\"" + fe::hll::hex(fe::hll::md5("hello")) + "\"");

  Call vh = put("/b.txt", "virtual");
  vh.host = "landing.localhost:" + std::to_string(hll.port());
  EXPECT_EQ(send(hll, vh).status, 200);
  EXPECT_EQ(send(hll, Call{.path = "/landing/b.txt"}).body, "virtual");
  EXPECT_EQ(hll.object("landing", "b.txt").value_or(""), "virtual") << "helper reads the store";
  EXPECT_FALSE(hll.object("landing", "nope").has_value());

  Reply unsigned_get = send(hll, Call{.path = "/landing/a.txt", .sign = false});
  EXPECT_EQ(unsigned_get.status, 403);
  EXPECT_EQ(xml_code(unsigned_get.body), "AccessDenied");
  Reply wrong = send(hll, Call{.path = "/landing/a.txt", .secret = "not-the-secret"});
  EXPECT_EQ(wrong.status, 403);
  EXPECT_EQ(xml_code(wrong.body), "SignatureDoesNotMatch");
  EXPECT_EQ(wrong.body.find(hll.secret_key()), std::string::npos) << "never echo the secret";
  Reply old = send(hll, Call{.path = "/landing/a.txt",
                             .time = std::chrono::system_clock::now() - std::chrono::minutes(16)});
  EXPECT_EQ(old.status, 403);
  EXPECT_EQ(xml_code(old.body), "RequestTimeTooSkewed");
  Reply in_window =
      send(hll, Call{.path = "/landing/a.txt",
                     .time = std::chrono::system_clock::now() - std::chrono::minutes(14)});
  EXPECT_EQ(in_window.status, 200);

  Call chunked = put("/landing/te.txt", "streamed without a length");
  chunked.http_chunked = true;
  Reply te = send(hll, chunked);
  EXPECT_EQ(te.status, 411) << "S3 needs the length of a plain (not aws-chunked) body";
  EXPECT_EQ(xml_code(te.body), "MissingContentLength");
  EXPECT_FALSE(hll.object("landing", "te.txt").has_value());

  Call bad_crc = put("/landing/c.txt", "data");
  bad_crc.headers = {
      {"x-amz-checksum-crc32c", fe::hll::base64(fe::hll::be32(fe::hll::crc32c("other")))}};
  Reply bc = send(hll, bad_crc);
  EXPECT_EQ(bc.status, 400);
  EXPECT_EQ(xml_code(bc.body), "BadDigest");
  Call good_crc = put("/landing/c.txt", "data");
  std::string crc = fe::hll::base64(fe::hll::be32(fe::hll::crc32c("data")));
  good_crc.headers = {{"x-amz-checksum-crc32c", crc}};
  Reply gc = send(hll, good_crc);
  EXPECT_EQ(gc.status, 200);
  EXPECT_EQ(gc.header("x-amz-checksum-crc32c"), crc) << "checksum echoed";

  Reply hl_wrong = send(hll, Call{.method = "POST",
                                  .path = "/",
                                  .body = "{\"DatastoreId\":\"" + hll.datastore() + "\"}",
                                  .headers = {{"X-Amz-Target", "HealthLake.DescribeFHIRDatastore"},
                                              {"Content-Type", "application/x-amz-json-1.0"}},
                                  .service = "healthlake",
                                  .secret = "nope"});
  EXPECT_EQ(hl_wrong.status, 403);
  EXPECT_NE(hl_wrong.body.find("InvalidSignatureException"), std::string::npos);
  Reply hl_ok = send(hll, Call{.method = "POST",
                               .path = "/",
                               .body = "{\"DatastoreId\":\"" + hll.datastore() + "\"}",
                               .headers = {{"X-Amz-Target", "HealthLake.DescribeFHIRDatastore"},
                                           {"Content-Type", "application/x-amz-json-1.0"}},
                               .service = "healthlake"});
  EXPECT_EQ(hl_ok.status, 200);
  EXPECT_NE(hl_ok.body.find("\"ACTIVE\""), std::string::npos);
  EXPECT_EQ(hll.stop(), 0) << "SIGTERM stops it cleanly";
}

TEST(Server, SessionTokenIsRequiredWhenConfigured) {
  HealthLakeLocalOptions o;
  o.buckets = {"landing"};
  o.session_token = "session-token-value";
  HealthLakeLocal hll(o);
  Call without = Call{.path = "/landing", .query = "list-type=2"};
  EXPECT_EQ(xml_code(send(hll, without).body), "InvalidToken");
  Call with = without;
  with.token = hll.session_token();
  EXPECT_EQ(send(hll, with).status, 200);
}

// STREAMING-AWS4-HMAC-SHA256-PAYLOAD: each chunk signed, chained from the header signature
// (AWS "Signature Calculations for the Authorization Header: Transferring Payload in Multiple
// Chunks").
std::string chunked_body(const HealthLakeLocal& hll, const std::vector<std::string>& chunks,
                         const std::string& seed, std::chrono::system_clock::time_point t,
                         int tamper_chunk = -1) {
  std::string date = fe::aws::amz_date(t);
  std::string scope = date.substr(0, 8) + "/" + hll.region() + "/s3/aws4_request";
  auto key = fe::aws::derive_signing_key(hll.secret_key(), date.substr(0, 8), hll.region(), "s3");
  std::string prev = seed, out;
  std::vector<std::string> all = chunks;
  all.push_back("");
  for (size_t i = 0; i < all.size(); ++i) {
    std::string sts = "AWS4-HMAC-SHA256-PAYLOAD\n" + date + "\n" + scope + "\n" + prev + "\n" +
                      fe::aws::sha256_hex("") + "\n" + fe::aws::sha256_hex(all[i]);
    auto mac =
        fe::aws::hmac_sha256(std::string_view(reinterpret_cast<const char*>(key.data()), 32), sts);
    prev = fe::aws::hex(mac.data(), mac.size());
    std::string data = all[i];
    if (static_cast<int>(i) == tamper_chunk) data[0] ^= 1;
    char size[32];
    std::snprintf(size, sizeof size, "%zx", data.size());
    out += std::string(size) + ";chunk-signature=" + prev + "\r\n" + data + "\r\n";
  }
  return out;
}

TEST(Server, SignedChunkedUploadsAndPresignedUrls) {
  HealthLakeLocalOptions o;
  o.buckets = {"landing"};
  HealthLakeLocal hll(o);
  const std::vector<std::string> chunks = {std::string(65536, 'a'), std::string(1000, 'b')};
  auto t = std::chrono::system_clock::now();
  auto chunked = [&](int tamper) {
    Call c = put("/landing/chunked.bin", "");
    c.time = t;
    c.payload_hash = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
    c.headers = {{"Content-Encoding", "aws-chunked"},
                 {"x-amz-decoded-content-length", std::to_string(65536 + 1000)}};
    c.body_from_signature = [&, tamper](const std::string& seed) {
      return chunked_body(hll, chunks, seed, t, tamper);
    };
    return send(hll, c);
  };
  Reply ok = chunked(-1);
  EXPECT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.header("ETag"), "\"" + fe::hll::hex(fe::hll::md5(chunks[0] + chunks[1])) + "\"");
  EXPECT_EQ(send(hll, Call{.path = "/landing/chunked.bin"}).body, chunks[0] + chunks[1]);
  Reply tampered = chunked(1);
  EXPECT_EQ(tampered.status, 403);
  EXPECT_EQ(xml_code(tampered.body), "SignatureDoesNotMatch");

  // Presigned GET (query form).
  auto presigned = [&](std::chrono::system_clock::time_point when) {
    fe::aws::Credentials cr;
    cr.access_key_id = hll.access_key();
    cr.secret_access_key = hll.secret_key();
    fe::aws::SigningOptions so;
    so.region = hll.region();
    so.service = "s3";
    so.time = when;
    so.s3_rules = true;
    fe::aws::SignableRequest sr{"GET",
                                "/landing/chunked.bin",
                                "",
                                {{"Host", "127.0.0.1:" + std::to_string(hll.port())}},
                                ""};
    fe::aws::Presigned p = fe::aws::presign(sr, cr, so, std::chrono::seconds(60));
    return send(hll, Call{.path = "/landing/chunked.bin", .query = p.query, .sign = false});
  };
  EXPECT_EQ(presigned(std::chrono::system_clock::now()).status, 200);
  Reply expired = presigned(std::chrono::system_clock::now() - std::chrono::minutes(5));
  EXPECT_EQ(expired.status, 403);
  EXPECT_EQ(xml_code(expired.body), "AccessDenied");
  EXPECT_NE(expired.body.find("Request has expired"), std::string::npos);
}

// STREAMING-UNSIGNED-PAYLOAD-TRAILER as botocore and the JS SDK frame it: "<hex>\r\n<bytes>\r\n"
// chunks, "0\r\n", the trailer line, "\r\n". healthlake-local must hold it to what S3 holds it to.
TEST(Server, UnsignedTrailerFramingAndChecksumAreVerified) {
  HealthLakeLocalOptions o;
  o.buckets = {"landing"};
  HealthLakeLocal hll(o);
  const std::string a(70000, 'a'), b = "tail\n";
  const std::string data = a + b;
  const std::string crc = fe::crc32c_base64(fe::crc32c(data));
  auto chunk = [](const std::string& bytes) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx", bytes.size());
    return std::string(size) + "\r\n" + bytes + "\r\n";
  };
  const std::string frames = chunk(a) + chunk(b);
  auto upload = [&](const std::string& key, std::string body,
                    std::vector<std::pair<std::string, std::string>> extra = {},
                    std::string declared = "x-amz-checksum-crc32c") {
    Call c = put("/landing/" + key, std::move(body));
    c.payload_hash = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
    c.headers = {{"Content-Encoding", "aws-chunked"},
                 {"x-amz-decoded-content-length", std::to_string(data.size())},
                 {"x-amz-sdk-checksum-algorithm", "CRC32C"}};
    if (!declared.empty()) c.headers.push_back({"x-amz-trailer", declared});
    for (auto& h : extra) c.headers.push_back(h);
    return send(hll, c);
  };
  const std::string good = frames + "0\r\nx-amz-checksum-crc32c:" + crc + "\r\n\r\n";
  Reply ok = upload("ok.ndjson", good);
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.header("x-amz-checksum-crc32c"), crc);
  EXPECT_EQ(send(hll, Call{.path = "/landing/ok.ndjson"}).body, data);

  struct Case {
    std::string name, body, code;
    std::vector<std::pair<std::string, std::string>> extra{};
    std::string declared = "x-amz-checksum-crc32c";
  };
  const std::string wrong = fe::crc32c_base64(fe::crc32c(data) ^ 1u);
  const std::vector<Case> refused = {
      {"wrong checksum", frames + "0\r\nx-amz-checksum-crc32c:" + wrong + "\r\n\r\n", "BadDigest"},
      {"checksum not base64 of 4 bytes", frames + "0\r\nx-amz-checksum-crc32c:abc\r\n\r\n",
       "InvalidRequest"},
      {"declared trailer missing", frames + "0\r\n\r\n", "MalformedTrailerError"},
      {"declared trailer missing, body ends at the last chunk", frames + "0\r\n",
       "MalformedTrailerError"},
      {"another trailer than declared", frames + "0\r\nx-amz-checksum-crc32:" + crc + "\r\n\r\n",
       "MalformedTrailerError"},
      {"trailer not declared", good, "MalformedTrailerError", {}, ""},
      {"trailer line without ':'", frames + "0\r\nx-amz-checksum-crc32c " + crc + "\r\n\r\n",
       "MalformedTrailerError"},
      {"trailer cut off", frames + "0\r\nx-amz-checksum-crc32c:" + crc, "MalformedTrailerError"},
      {"trailer twice",
       frames + "0\r\nx-amz-checksum-crc32c:" + crc + "\r\nx-amz-checksum-crc32c:" + crc +
           "\r\n\r\n",
       "MalformedTrailerError"},
      {"checksum in a header and the trailer",
       good,
       "InvalidRequest",
       {{"x-amz-checksum-crc32c", crc}}},
      {"chunk size not hex", "zz\r\n" + a + "\r\n" + chunk(b) + "0\r\n", "IncompleteBody"},
      {"negative chunk size", "-1\r\n" + a + "\r\n", "IncompleteBody"},
      {"chunk without CRLF", "11170\r\n" + a + chunk(b) + "0\r\n", "IncompleteBody"},
      {"no final chunk", frames, "IncompleteBody"},
      {"bytes after the end", good + "junk", "IncompleteBody"},
      {"decoded length differs", chunk(a) + "0\r\nx-amz-checksum-crc32c:" + crc + "\r\n\r\n",
       "IncompleteBody"},
  };
  for (const auto& c : refused) {
    Reply r = upload("refused.ndjson", c.body, c.extra, c.declared);
    EXPECT_EQ(r.status, 400) << c.name << ": " << r.body;
    EXPECT_EQ(xml_code(r.body), c.code) << c.name << ": " << r.body;
    EXPECT_EQ(send(hll, Call{.method = "HEAD", .path = "/landing/refused.ndjson"}).status, 404)
        << c.name << ": nothing may be stored";
  }
}

Reply healthlake(const HealthLakeLocal& hll, const std::string& op, const std::string& body) {
  return send(hll, Call{.method = "POST",
                        .path = "/",
                        .body = body,
                        .headers = {{"X-Amz-Target", "HealthLake." + op},
                                    {"Content-Type", "application/x-amz-json-1.0"}},
                        .service = "healthlake"});
}

TEST(Server, ImportsAreCountedPerResource) {
  HealthLakeLocalOptions o;
  o.buckets = {"landing", "results"};
  HealthLakeLocal hll(o);
  ASSERT_EQ(send(hll, put("/landing/in/p.ndjson",
                          "{\"resourceType\":\"Patient\",\"id\":\"p1\"}\n"
                          "{\"resourceType\":\"Patient\",\"id\":\"p2\"}\n"))
                .status,
            200);
  for (std::string token : {"tok-a", "tok-b"}) {
    Reply start = healthlake(
        hll, "StartFHIRImportJob",
        "{\"DatastoreId\":\"" + hll.datastore() + "\",\"ClientToken\":\"" + token +
            "\",\"DataAccessRoleArn\":\"arn:aws:iam::123456789012:role/R\","
            "\"InputDataConfig\":{\"S3Uri\":\"s3://landing/in/\"},"
            "\"JobOutputDataConfig\":{\"S3Configuration\":{\"S3Uri\":\"s3://results/o/\","
            "\"KmsKeyId\":\"alias/k\"}},\"ValidationLevel\":\"minimal\"}");
    ASSERT_EQ(start.status, 200) << start.body;
    std::string id = start.body.substr(start.body.find("JobId\":\"") + 8, 32);
    std::string status;
    for (int i = 0; i < 500 && status.find("\"COMPLETED\"") == std::string::npos; ++i) {
      status = healthlake(hll, "DescribeFHIRImportJob",
                          "{\"DatastoreId\":\"" + hll.datastore() + "\",\"JobId\":\"" + id + "\"}")
                   .body;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ASSERT_NE(status.find("\"JobStatus\":\"COMPLETED\""), std::string::npos) << status;
  }
  auto counts = hll.imported_resources();
  EXPECT_EQ(counts["Patient/p1"], 2u);
  EXPECT_EQ(counts["Patient/p2"], 2u);
  EXPECT_EQ(counts.size(), 2u);
}

std::vector<int> put_statuses(const std::string& faults, int n) {
  HealthLakeLocalOptions o;
  o.buckets = {"landing"};
  o.faults = faults;
  HealthLakeLocal hll(o);
  std::vector<int> out;
  for (int i = 0; i < n; ++i)
    out.push_back(send(hll, put("/landing/k" + std::to_string(i), "x")).status);
  return out;
}

TEST(Server, FaultsAreReproducibleBySeed) {
  std::vector<int> a = put_statuses("PutObject:500=0.5,seed=7", 16);
  std::vector<int> b = put_statuses("PutObject:500=0.5,seed=7", 16);
  EXPECT_EQ(a, b);
  EXPECT_NE(std::count(a.begin(), a.end(), 500), 0);
  EXPECT_NE(std::count(a.begin(), a.end(), 200), 0);
}

TEST(Server, InjectedFaultsLookLikeAws) {
  HealthLakeLocalOptions o;
  o.buckets = {"landing"};
  o.faults =
      "PutObject:SlowDown=@2,DescribeFHIRDatastore:ThrottlingException=@1,"
      "PutObject:drop-after=@3";
  HealthLakeLocal hll(o);
  EXPECT_EQ(send(hll, put("/landing/k", "v1")).status, 200);
  Reply slow = send(hll, put("/landing/k", "v2"));
  EXPECT_EQ(slow.status, 503);
  EXPECT_EQ(xml_code(slow.body), "SlowDown");
  EXPECT_EQ(send(hll, Call{.path = "/landing/k"}).body, "v1") << "a faulted PUT changes nothing";

  Reply cut = send(hll, put("/landing/k", "v3"));
  EXPECT_EQ(cut.status, 0) << "drop-after cuts the response";
  EXPECT_EQ(send(hll, Call{.path = "/landing/k"}).status, 200);
  // ...but the request was applied (the case a client must settle by checking the object).
  Reply v3 = send(hll, Call{.path = "/landing/k"});
  EXPECT_EQ(v3.body, "v3");

  HealthLakeLocalOptions o2;
  o2.buckets = {"landing"};
  o2.faults = "GetObject:drop=@1,HeadObject:skew=@1:20m";
  HealthLakeLocal h2(o2);
  send(h2, put("/landing/k", "v"));
  EXPECT_EQ(send(h2, Call{.path = "/landing/k"}).status, 0) << "dropped";
  EXPECT_EQ(send(h2, Call{.path = "/landing/k"}).status, 200);
  Reply skew = send(h2, Call{.method = "HEAD", .path = "/landing/k"});
  EXPECT_EQ(skew.status, 403) << "the server's clock ran 20 minutes ahead";
  auto date = fe::aws::parse_http_date(skew.header("Date"));
  ASSERT_TRUE(date.has_value());
  EXPECT_GT(*date - std::chrono::system_clock::now(), std::chrono::minutes(15));

  Reply throttled = send(hll, Call{.method = "POST",
                                   .path = "/",
                                   .body = "{\"DatastoreId\":\"" + hll.datastore() + "\"}",
                                   .headers = {{"X-Amz-Target", "HealthLake.DescribeFHIRDatastore"},
                                               {"Content-Type", "application/x-amz-json-1.0"}},
                                   .service = "healthlake"});
  EXPECT_EQ(throttled.status, 400);
  EXPECT_NE(throttled.body.find("ThrottlingException"), std::string::npos);

  // The request log records operations, statuses and the faults that fired.
  std::string log;
  for (const auto& l : hll.request_log_lines()) log += l + "\n";
  EXPECT_NE(log.find("\"operation\":\"PutObject\",\"bucket\":\"landing\",\"key\":\"k\",\"status\":"
                     "503,\"error\":\"SlowDown\""),
            std::string::npos)
      << log;
  EXPECT_NE(log.find("\"faults\":\"drop-after\""), std::string::npos) << log;
}

}  // namespace

namespace {
// Sends a signed PUT's headers with "Expect: 100-continue" and waits for the 100, so the server
// has begun the write; the caller then acts, and finish() sends the body and reads the reply.
struct HeldPut {
  asio::io_context io;
  asio::ip::tcp::socket sock{io};
  std::string body;
  HeldPut(const HealthLakeLocal& hll, const std::string& path, std::string data,
          std::vector<std::pair<std::string, std::string>> extra)
      : body(std::move(data)) {
    std::string host = "127.0.0.1:" + std::to_string(hll.port());
    std::vector<fe::aws::Header> hs = {{"Host", host}, {"Expect", "100-continue"}};
    for (const auto& [k, v] : extra) hs.push_back({k, v});
    fe::aws::SignableRequest sr{"PUT", path, "", hs, fe::aws::sha256_hex(body)};
    fe::aws::Credentials cr;
    cr.access_key_id = hll.access_key();
    cr.secret_access_key = hll.secret_key();
    fe::aws::SigningOptions so;
    so.region = hll.region();
    so.service = "s3";
    so.s3_rules = true;
    so.time = std::chrono::system_clock::now();
    fe::aws::Signed s = fe::aws::sign(sr, cr, so);
    for (const auto& h : s.headers_to_add) hs.push_back(h);
    std::string head = "PUT " + path + " HTTP/1.1\r\n";
    for (const auto& h : hs) head += h.name + ": " + h.value + "\r\n";
    head += "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n";
    sock.connect({asio::ip::make_address("127.0.0.1"), hll.port()});
    asio::write(sock, asio::buffer(head));
    std::string cont;
    asio::read_until(sock, asio::dynamic_buffer(cont), "\r\n\r\n");
    EXPECT_TRUE(cont.starts_with("HTTP/1.1 100")) << cont;
  }
  Reply finish() {
    asio::write(sock, asio::buffer(body));
    beast::flat_buffer buf;
    http::response<http::string_body> res;
    beast::error_code ec;
    http::read(sock, buf, res, ec);
    Reply r;
    if (ec) return r;
    r.status = res.result_int();
    r.body = res.body();
    return r;
  }
};
}  // namespace

// S3 conditional writes over HTTP: If-None-Match / If-Match headers, and 409
// ConditionalRequestConflict when the key is deleted while a conditional PUT is in progress.
TEST(Server, ConditionalPutsAndConflictWithADeleteInProgress) {
  HealthLakeLocalOptions o;
  o.buckets = {"landing"};
  HealthLakeLocal hll(o);
  Call create = put("/landing/lease.json", "one");
  create.headers = {{"If-None-Match", "*"}};
  Reply c1 = send(hll, create);
  ASSERT_EQ(c1.status, 200);
  Reply c2 = send(hll, create);
  EXPECT_EQ(c2.status, 412);
  EXPECT_EQ(xml_code(c2.body), "PreconditionFailed");
  Call swap = put("/landing/lease.json", "two");
  swap.headers = {{"If-Match", c1.header("ETag")}};
  EXPECT_EQ(send(hll, swap).status, 200);
  Reply stale = send(hll, swap);
  EXPECT_EQ(stale.status, 412);
  EXPECT_EQ(xml_code(stale.body), "PreconditionFailed");
  Call absent = put("/landing/none.json", "x");
  absent.headers = {{"If-Match", c1.header("ETag")}};
  Reply a = send(hll, absent);
  EXPECT_EQ(a.status, 404);
  EXPECT_EQ(xml_code(a.body), "NoSuchKey");
  EXPECT_EQ(hll.object("landing", "lease.json").value_or(""), "two");

  // The PUT's headers are in; the key is deleted; then its body arrives: 409, nothing written.
  HeldPut held(hll, "/landing/lease.json", "three", {{"If-None-Match", "*"}});
  Call del{.method = "DELETE", .path = "/landing/lease.json"};
  EXPECT_EQ(send(hll, del).status, 204);
  Reply conflict = held.finish();
  EXPECT_EQ(conflict.status, 409);
  EXPECT_EQ(xml_code(conflict.body), "ConditionalRequestConflict");
  EXPECT_FALSE(hll.object("landing", "lease.json").has_value());
  // An unconditional PUT in the same position is not refused.
  HeldPut plain(hll, "/landing/other.json", "plain", {});
  EXPECT_EQ(send(hll, Call{.method = "DELETE", .path = "/landing/other.json"}).status, 204);
  EXPECT_EQ(plain.finish().status, 200);
  EXPECT_EQ(send(hll, create).status, 200) << "a retry after the conflict creates the key";
}

namespace {
// The signed head of a request (request line, headers, Content-Length unless the caller frames
// the body itself), for tests that put the bytes on the wire themselves.
std::string signed_head(const HealthLakeLocal& hll, const Call& c, std::optional<size_t> length) {
  std::string host = "127.0.0.1:" + std::to_string(hll.port());
  std::vector<fe::aws::Header> hs = {{"Host", host}};
  for (const auto& [k, v] : c.headers) hs.push_back({k, v});
  fe::aws::SignableRequest sr{
      c.method, c.path, c.query, hs,
      c.payload_hash.empty() ? fe::aws::sha256_hex(c.body) : c.payload_hash};
  fe::aws::Credentials cr;
  cr.access_key_id = hll.access_key();
  cr.secret_access_key = hll.secret_key();
  fe::aws::SigningOptions so;
  so.region = hll.region();
  so.service = "s3";
  so.s3_rules = true;
  so.time = std::chrono::system_clock::now();
  fe::aws::Signed s = fe::aws::sign(sr, cr, so);
  for (const auto& h : s.headers_to_add) hs.push_back(h);
  std::string head =
      c.method + " " + c.path + (c.query.empty() ? "" : "?" + c.query) + " HTTP/1.1\r\n";
  for (const auto& h : hs) head += h.name + ": " + h.value + "\r\n";
  if (length) head += "Content-Length: " + std::to_string(*length) + "\r\n";
  return head + "\r\n";
}

// Writes `bytes` in pieces of `piece` bytes (TCP_NODELAY: each its own segment), then (after
// closing its sending side if `hang_up`) reads `responses` replies.
std::vector<Reply> wire(const HealthLakeLocal& hll, const std::string& bytes, size_t piece,
                        int responses = 1, bool hang_up = false) {
  asio::io_context io;
  asio::ip::tcp::socket sock(io);
  sock.connect({asio::ip::make_address("127.0.0.1"), hll.port()});
  sock.set_option(asio::ip::tcp::no_delay(true));
  for (size_t at = 0; at < bytes.size(); at += piece)
    asio::write(sock, asio::buffer(bytes.data() + at, std::min(piece, bytes.size() - at)));
  if (hang_up) sock.shutdown(asio::ip::tcp::socket::shutdown_send);
  std::vector<Reply> out;
  beast::flat_buffer buf;
  for (int i = 0; i < responses; ++i) {
    http::response<http::string_body> res;
    beast::error_code ec;
    http::read(sock, buf, res, ec);
    Reply r;
    if (!ec) {
      r.status = res.result_int();
      for (const auto& f : res) r.headers[std::string(f.name_string())] = std::string(f.value());
      r.body = res.body();
    }
    out.push_back(r);
  }
  return out;
}

std::string http_chunks(const std::string& body, size_t piece) {
  std::string out;
  for (size_t at = 0; at < body.size(); at += piece) {
    std::string part = body.substr(at, piece);
    char size[32];
    std::snprintf(size, sizeof size, "%zx", part.size());
    out += std::string(size) + "\r\n" + part + "\r\n";
  }
  return out + "0\r\n\r\n";
}

std::string etag_of(const std::string& bytes) {
  return "\"" + fe::hll::hex(fe::hll::md5(bytes)) + "\"";
}
}  // namespace

// The receive path reads a body straight from the socket into its own buffer (body.hpp): a body
// in many tiny segments, a body larger than the buffer, two requests in one segment, an HTTP
// chunked body and a body cut off mid-way all come out as S3 would have them.
TEST(Server, BodiesAreTheSameWhateverTheirSegmentsAndFraming) {
  HealthLakeLocalOptions o;
  o.buckets = {"landing"};
  HealthLakeLocal hll(o);
  std::string data;
  for (int i = 0; i < 20000; ++i) data += static_cast<char>('a' + (i * 31) % 26);

  // Tiny segments: a SHA-256 signed PUT, and an unsigned-trailer aws-chunked PUT.
  Call plain = put("/landing/tiny.txt", data);
  Reply r1 = wire(hll, signed_head(hll, plain, data.size()) + data, 7).at(0);
  EXPECT_EQ(r1.status, 200) << r1.body;
  EXPECT_EQ(r1.header("ETag"), etag_of(data));
  EXPECT_EQ(hll.object("landing", "tiny.txt").value_or(""), data);

  const std::string crc = fe::crc32c_base64(fe::crc32c(data));
  auto chunk = [](const std::string& bytes) {
    char size[32];
    std::snprintf(size, sizeof size, "%zx", bytes.size());
    return std::string(size) + "\r\n" + bytes + "\r\n";
  };
  const std::string framed = chunk(data.substr(0, 8192)) + chunk(data.substr(8192)) +
                             "0\r\nx-amz-checksum-crc32c:" + crc + "\r\n\r\n";
  Call trailer = put("/landing/tiny-trailer.txt", framed);
  trailer.payload_hash = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
  trailer.headers = {{"Content-Encoding", "aws-chunked"},
                     {"x-amz-decoded-content-length", std::to_string(data.size())},
                     {"x-amz-trailer", "x-amz-checksum-crc32c"}};
  Reply r2 = wire(hll, signed_head(hll, trailer, framed.size()) + framed, 3).at(0);
  EXPECT_EQ(r2.status, 200) << r2.body;
  EXPECT_EQ(r2.header("x-amz-checksum-crc32c"), crc);
  EXPECT_EQ(hll.object("landing", "tiny-trailer.txt").value_or(""), data);

  // The same aws-chunked body inside HTTP chunked transfer coding, in 1000-byte HTTP chunks.
  Call te = trailer;
  te.path = "/landing/te-trailer.txt";
  te.headers.push_back({"Transfer-Encoding", "chunked"});
  Reply r3 = wire(hll, signed_head(hll, te, std::nullopt) + http_chunks(framed, 1000), 4096).at(0);
  EXPECT_EQ(r3.status, 200) << r3.body;
  EXPECT_EQ(hll.object("landing", "te-trailer.txt").value_or(""), data);
  // ...and its checksum still counts.
  Call te_bad = te;
  std::string wrong = framed;
  wrong[100] ^= 1;
  Reply r4 =
      wire(hll, signed_head(hll, te_bad, std::nullopt) + http_chunks(wrong, 1000), 4096).at(0);
  EXPECT_EQ(r4.status, 400);
  EXPECT_EQ(xml_code(r4.body), "BadDigest");

  // Larger than the receive buffer (1 MiB): signed plain, and signed aws-chunked chunks whose
  // framing straddles the buffer's refills.
  std::string big;
  for (size_t i = 0; i < (3u << 20) + 7; ++i) big += static_cast<char>((i * 7919) % 253);
  Reply r5 = send(hll, put("/landing/big.bin", big));
  EXPECT_EQ(r5.status, 200) << r5.body;
  EXPECT_EQ(r5.header("ETag"), etag_of(big));
  EXPECT_EQ(hll.object("landing", "big.bin").value_or("") == big, true);
  std::vector<std::string> chunks;
  for (size_t at = 0; at < big.size(); at += 100003) chunks.push_back(big.substr(at, 100003));
  auto t = std::chrono::system_clock::now();
  Call signed_chunks = put("/landing/big-chunked.bin", "");
  signed_chunks.time = t;
  signed_chunks.payload_hash = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
  signed_chunks.headers = {{"Content-Encoding", "aws-chunked"},
                           {"x-amz-decoded-content-length", std::to_string(big.size())}};
  signed_chunks.body_from_signature = [&](const std::string& seed) {
    return chunked_body(hll, chunks, seed, t);
  };
  Reply r6 = send(hll, signed_chunks);
  EXPECT_EQ(r6.status, 200) << r6.body;
  EXPECT_EQ(r6.header("ETag"), etag_of(big));
  EXPECT_EQ(hll.object("landing", "big-chunked.bin").value_or("") == big, true);

  // Two requests in one segment: the first body ends where its Content-Length says.
  Call first = put("/landing/first.txt", "first body");
  Call second = put("/landing/second.txt", "second");
  std::vector<Reply> both = wire(hll,
                                 signed_head(hll, first, first.body.size()) + first.body +
                                     signed_head(hll, second, second.body.size()) + second.body,
                                 1 << 20, 2);
  EXPECT_EQ(both.at(0).status, 200) << both.at(0).body;
  EXPECT_EQ(both.at(1).status, 200) << both.at(1).body;
  EXPECT_EQ(hll.object("landing", "first.txt").value_or(""), "first body");
  EXPECT_EQ(hll.object("landing", "second.txt").value_or(""), "second");

  // Cut off mid-way: nothing stored, nothing left in tmp/, and the server serves on.
  Call cut = put("/landing/cut.bin", std::string(1 << 20, 'c'));
  Reply r7 =
      wire(hll, signed_head(hll, cut, cut.body.size()) + cut.body.substr(0, 300000), 4096, 1, true)
          .at(0);
  EXPECT_EQ(r7.status, 0) << "no answer to a body that never ended";
  EXPECT_EQ(send(hll, Call{.method = "HEAD", .path = "/landing/cut.bin"}).status, 404);
  // ...and the same inside HTTP chunked transfer coding.
  Call te_cut = te;
  te_cut.path = "/landing/te-cut.txt";
  std::string te_bytes = http_chunks(framed, 1000);
  Reply r8 =
      wire(hll, signed_head(hll, te_cut, std::nullopt) + te_bytes.substr(0, 5000), 4096, 1, true)
          .at(0);
  EXPECT_EQ(r8.status, 0);
  EXPECT_EQ(send(hll, Call{.method = "HEAD", .path = "/landing/te-cut.txt"}).status, 404);
  EXPECT_EQ(send(hll, put("/landing/after.txt", "after")).status, 200);
  size_t left_in_tmp = 0;
  for (const auto& e :
       std::filesystem::directory_iterator(hll.data_dir() / "store" / "s3" / "tmp")) {
    (void)e;
    ++left_in_tmp;
  }
  EXPECT_EQ(left_in_tmp, 0u) << "the cut body's spool file is removed";
}
