// S3 client against a loopback fake S3 and scripted faults: addressing, headers, checksums,
// multipart flow, pagination, typed errors, the standard retry schedule, credential refresh.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio.hpp>
#include <random>

#include "aws/crc32c.hpp"
#include "aws/s3.hpp"
#include "fake_s3.hpp"

namespace {

using namespace fe::aws;
using fe::test::FakeS3;
using fe::test::LoopbackServer;
using fe::test::Recorded;
using fe::test::Reply;

template <class Pred>
void run_until(boost::asio::io_context& io, Pred done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  io.restart();
  while (!done()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "test hung";
    io.run_one_for(std::chrono::milliseconds(50));
  }
}

Credentials test_creds(std::string key = "AKIDEXAMPLE") {
  Credentials c;
  c.access_key_id = std::move(key);
  c.secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  c.source = "test";
  return c;
}

std::string random_bytes(std::size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

PutObjectRequest put_req(std::string bucket, std::string key, std::string_view data) {
  PutObjectRequest req;
  req.bucket = std::move(bucket);
  req.key = std::move(key);
  req.body = BodySource::from_view(data);
  req.crc32c = crc32c(data);
  return req;
}

struct Harness {
  explicit Harness(ClientConfig cfg = {}, CredentialsFn creds = static_credentials(test_creds()))
      : server([this](const Recorded& r) { return s3.handle(r); }, 64 << 20),
        engine(io),
        caller(engine, with_endpoint(cfg), std::move(creds),
               std::make_shared<RetryStrategy>(RetryConfig{}, 42)),
        client(caller) {}
  ClientConfig with_endpoint(ClientConfig cfg) {
    if (!cfg.s3_endpoint) cfg.s3_endpoint = server.url();
    return cfg;
  }
  template <class T>
  S3Result<T> wait(std::function<void(S3Client::Done<T>)> start) {
    std::optional<S3Result<T>> out;
    start([&](S3Result<T> r) { out = std::move(r); });
    run_until(io, [&] { return out.has_value(); });
    return std::move(*out);
  }
  FakeS3 s3;
  LoopbackServer server;
  boost::asio::io_context io;
  HttpEngine engine;
  AwsCaller caller;
  S3Client client;
};

TEST(S3Addressing, VirtualHostedPathStyleAndEndpoint) {
  boost::asio::io_context io;
  HttpEngine engine(io);
  ClientConfig cfg;
  cfg.region = "eu-west-1";
  AwsCaller caller(engine, cfg, static_credentials(test_creds()));
  S3Client s3(caller);
  auto t = s3.target("hospital-landing", "exports/a b/ü+~.ndjson");
  ASSERT_TRUE(t);
  EXPECT_EQ(t->base_url, "https://hospital-landing.s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(t->host, "hospital-landing.s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(t->path, "/exports/a%20b/%C3%BC%2B~.ndjson");
  // Dotted bucket names go path style (wildcard TLS certificates do not cover them).
  t = s3.target("my.bucket", "k");
  EXPECT_EQ(t->host, "s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(t->path, "/my.bucket/k");

  cfg.s3_path_style = true;
  AwsCaller forced(engine, cfg, static_credentials(test_creds()));
  t = S3Client(forced).target("hospital-landing", "k");
  EXPECT_EQ(t->base_url, "https://s3.eu-west-1.amazonaws.com");
  EXPECT_EQ(t->path, "/hospital-landing/k");

  cfg.s3_endpoint = "http://127.0.0.1:4566";
  AwsCaller local(engine, cfg, static_credentials(test_creds()));
  t = S3Client(local).target("b-1", "x/y");
  EXPECT_EQ(t->base_url, "http://127.0.0.1:4566");
  EXPECT_EQ(t->host, "127.0.0.1:4566");
  EXPECT_EQ(t->path, "/b-1/x/y");
}

TEST(S3Addressing, EndpointParsing) {
  auto e = parse_endpoint("http://127.0.0.1:4566");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->authority(), "127.0.0.1:4566");
  EXPECT_EQ(e->base(), "http://127.0.0.1:4566");
  e = parse_endpoint("HTTPS://s3.eu-west-1.amazonaws.com:443/");
  ASSERT_TRUE(e);
  EXPECT_EQ(e->authority(), "s3.eu-west-1.amazonaws.com");  // curl sends no default port
  EXPECT_EQ(e->scheme, "https");
  EXPECT_FALSE(parse_endpoint("ftp://host"));
  EXPECT_FALSE(parse_endpoint("http://user:pw@host"));  // no credentials in endpoints
  EXPECT_FALSE(parse_endpoint("http://host/path"));
  EXPECT_FALSE(parse_endpoint("http://host:abc"));
  EXPECT_FALSE(parse_endpoint("127.0.0.1:4566"));
}

TEST(S3Keys, ValidationRejectsUnsafeKeys) {
  EXPECT_EQ(validate_key("exports/2026-11-26/import/Patient.ndjson"), "");
  EXPECT_EQ(validate_key("a b/ü+~!'()*.ndjson"), "");
  EXPECT_NE(validate_key(""), "");
  EXPECT_NE(validate_key("a/../b"), "");
  EXPECT_NE(validate_key(".."), "");
  EXPECT_NE(validate_key("a/./b"), "");
  EXPECT_NE(validate_key("/abs"), "");
  EXPECT_NE(validate_key("a//b"), "");
  EXPECT_NE(validate_key(std::string("a\nb")), "");
  EXPECT_NE(validate_key(std::string("a\x7f")), "");
  EXPECT_NE(validate_key("\xc3"), "");      // truncated UTF-8
  EXPECT_NE(validate_key("\xc0\xaf"), "");  // overlong
  EXPECT_NE(validate_key(std::string(1025, 'k')), "");
  EXPECT_EQ(validate_bucket("hospital-fhir-landing"), "");
  EXPECT_NE(validate_bucket("Upper"), "");
  EXPECT_NE(validate_bucket("192.168.1.1"), "");
  EXPECT_NE(validate_bucket("a..b"), "");
}

TEST(S3Keys, RejectedBeforeAnythingIsSent) {
  Harness h;
  auto r = h.wait<PutObjectResult>([&](auto done) {
    PutObjectRequest req;
    req.bucket = "bucket";
    req.key = "exports/../etc/passwd";
    req.body = BodySource::from_view("x");
    req.crc32c = crc32c("x");
    h.client.put_object(std::move(req), done);
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->category, ErrorCategory::validation);
  EXPECT_NE(r.describe().find(".."), std::string::npos);
  EXPECT_TRUE(h.server.requests().empty());
}

TEST(S3Client, PutObjectSendsChecksumSseAndPayloadHash) {
  ClientConfig cfg;
  Harness h(cfg);
  const std::string data = random_bytes(300000, 3);
  auto r = h.wait<PutObjectResult>([&](auto done) {
    PutObjectRequest req;
    req.bucket = "bucket";
    req.key = "exports/e1/archive/Patient.ndjson.zst";
    req.body = BodySource::from_view(data);
    req.crc32c = crc32c(data);
    req.sse.kms_key_id = "arn:aws:kms:us-east-1:123456789012:key/abc";
    req.if_none_match = true;
    h.client.put_object(std::move(req), done);
  });
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.value->checksum_crc32c, crc32c_base64(crc32c(data)));
  auto reqs = h.server.requests();
  ASSERT_EQ(reqs.size(), 1u);
  auto& q = reqs[0];
  EXPECT_EQ(q.method, "PUT");
  EXPECT_EQ(q.target, "/bucket/exports/e1/archive/Patient.ndjson.zst");
  EXPECT_EQ(q.header("x-amz-checksum-crc32c"), crc32c_base64(crc32c(data)));
  EXPECT_EQ(q.header("x-amz-sdk-checksum-algorithm"), "CRC32C");
  EXPECT_EQ(q.header("x-amz-server-side-encryption"), "aws:kms");
  EXPECT_EQ(q.header("x-amz-server-side-encryption-aws-kms-key-id"),
            "arn:aws:kms:us-east-1:123456789012:key/abc");
  EXPECT_EQ(q.header("if-none-match"), "*");
  // Plain http: the payload is hashed and signed even though it is streamed.
  EXPECT_EQ(q.header("x-amz-content-sha256"), q.body_sha256);
  EXPECT_NE(q.header("authorization").find("x-amz-checksum-crc32c"), std::string::npos);
  EXPECT_EQ(h.s3.object("/bucket/exports/e1/archive/Patient.ndjson.zst"), data);

  // Same key again with If-None-Match: typed conflict, not retried.
  auto again = h.wait<PutObjectResult>([&](auto done) {
    PutObjectRequest req;
    req.bucket = "bucket";
    req.key = "exports/e1/archive/Patient.ndjson.zst";
    req.body = BodySource::from_view(data);
    req.crc32c = crc32c(data);
    req.if_none_match = true;
    h.client.put_object(std::move(req), done);
  });
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error->http_status, 412);
  EXPECT_EQ(again.error->category, ErrorCategory::conflict);
  EXPECT_EQ(again.attempts, 1);
}

TEST(S3Client, MultipartUploadListPartsCompleteHeadGet) {
  Harness h;
  h.s3.list_parts_page = 2;  // force ListParts pagination
  const std::size_t part = 1 << 20;
  const std::string data = random_bytes(5 * part + 1234, 4);
  const std::string key = "exports/e2/import/Observation.ndjson";

  auto created = h.wait<CreateMultipartResult>([&](auto done) {
    h.client.create_multipart_upload({"bucket", key, "application/fhir+ndjson", {"kms-key-1"}},
                                     done);
  });
  ASSERT_TRUE(created.ok()) << created.describe();
  const std::string upload_id = created.value->upload_id;
  auto create_req = h.server.requests().back();
  EXPECT_EQ(create_req.target, "/bucket/" + key + "?uploads");
  EXPECT_EQ(create_req.header("x-amz-checksum-algorithm"), "CRC32C");
  EXPECT_EQ(create_req.header("x-amz-server-side-encryption-aws-kms-key-id"), "kms-key-1");

  std::vector<std::uint32_t> crcs;
  std::vector<CompletedPart> parts;
  std::size_t nparts = (data.size() + part - 1) / part;
  int done_parts = 0;
  for (std::size_t i = 0; i < nparts; ++i) {
    std::string_view slice = std::string_view(data).substr(i * part, part);
    crcs.push_back(crc32c(slice));
    UploadPartRequest up;
    up.bucket = "bucket";
    up.key = key;
    up.upload_id = upload_id;
    up.part_number = static_cast<int>(i + 1);
    up.body = BodySource::from_view(slice);
    up.crc32c = crcs.back();
    parts.push_back({up.part_number, "", ""});
    h.client.upload_part(std::move(up), [&, i](S3Result<UploadPartResult> r) {
      ASSERT_TRUE(r.ok()) << r.describe();
      parts[i].etag = r.value->etag;
      parts[i].checksum_crc32c = r.value->checksum_crc32c;
      ++done_parts;
    });
  }
  run_until(h.io, [&] { return done_parts == static_cast<int>(nparts); });

  auto listed = h.wait<std::vector<PartInfo>>(
      [&](auto done) { h.client.list_all_parts("bucket", key, upload_id, done); });
  ASSERT_TRUE(listed.ok()) << listed.describe();
  ASSERT_EQ(listed.value->size(), nparts);
  for (std::size_t i = 0; i < nparts; ++i) {
    EXPECT_EQ((*listed.value)[i].part_number, static_cast<int>(i + 1));
    EXPECT_EQ((*listed.value)[i].etag, parts[i].etag);
    EXPECT_EQ((*listed.value)[i].checksum_crc32c, crc32c_base64(crcs[i]));
  }

  auto completed = h.wait<CompleteMultipartResult>([&](auto done) {
    h.client.complete_multipart_upload({"bucket", key, upload_id, parts, true}, done);
  });
  ASSERT_TRUE(completed.ok()) << completed.describe();
  auto complete_req = h.server.requests().back();
  EXPECT_EQ(complete_req.header("if-none-match"), "*");
  EXPECT_NE(complete_req.body.find("<PartNumber>6</PartNumber>"), std::string::npos);
  EXPECT_NE(complete_req.body.find("<ChecksumCRC32C>" + crc32c_base64(crcs[0])), std::string::npos);
  EXPECT_EQ(completed.value->checksum_crc32c, composite_crc32c(crcs));

  // Settle path: the stored object's checksum equals what we can compute from our parts.
  auto head =
      h.wait<HeadObjectResult>([&](auto done) { h.client.head_object("bucket", key, done); });
  ASSERT_TRUE(head.ok()) << head.describe();
  EXPECT_EQ(head.value->size, data.size());
  EXPECT_EQ(head.value->checksum_crc32c, composite_crc32c(crcs));

  // Completing again: the upload is gone -> NoSuchUpload, typed not_found, no retry.
  auto again = h.wait<CompleteMultipartResult>([&](auto done) {
    h.client.complete_multipart_upload({"bucket", key, upload_id, parts, true}, done);
  });
  ASSERT_FALSE(again.ok());
  EXPECT_EQ(again.error->code, "NoSuchUpload");
  EXPECT_EQ(again.error->category, ErrorCategory::not_found);
  EXPECT_EQ(again.attempts, 1);

  std::string got;
  auto get = h.wait<GetObjectResult>([&](auto done) {
    h.client.get_object({"bucket", key, std::nullopt,
                         [&](std::string_view c) {
                           got.append(c);
                           return true;
                         }},
                        done);
  });
  ASSERT_TRUE(get.ok()) << get.describe();
  EXPECT_EQ(got.size(), data.size());
  EXPECT_TRUE(got == data);

  std::string ranged;
  auto range = h.wait<GetObjectResult>([&](auto done) {
    h.client.get_object({"bucket", key, std::make_pair<std::uint64_t, std::uint64_t>(100, 199),
                         [&](std::string_view c) {
                           ranged.append(c);
                           return true;
                         }},
                        done);
  });
  ASSERT_TRUE(range.ok()) << range.describe();
  EXPECT_EQ(ranged, data.substr(100, 100));
  EXPECT_EQ(range.value->content_range, "bytes 100-199/" + std::to_string(data.size()));

  auto missing = h.wait<HeadObjectResult>(
      [&](auto done) { h.client.head_object("bucket", "exports/none", done); });
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error->http_status, 404);
  EXPECT_EQ(missing.error->category, ErrorCategory::not_found);
}

TEST(S3Client, ListObjectsV2WithPrefixAndDelimiter) {
  Harness h;
  for (std::string k :
       {"exp/a/import/1.ndjson", "exp/a/import/2.ndjson", "exp/b/x.ndjson", "other"}) {
    auto r = h.wait<PutObjectResult>([&](auto done) {
      PutObjectRequest req = put_req("bucket", k, k);
      h.client.put_object(std::move(req), done);
    });
    ASSERT_TRUE(r.ok()) << r.describe();
  }
  auto r = h.wait<ListObjectsResult>([&](auto done) {
    h.client.list_objects_v2({"bucket", "exp/", "/", "", 1000}, done);
  });
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_TRUE(r.value->objects.empty());
  EXPECT_EQ(r.value->common_prefixes, (std::vector<std::string>{"exp/a/", "exp/b/"}));
  r = h.wait<ListObjectsResult>([&](auto done) {
    h.client.list_objects_v2({"bucket", "exp/a/", "", "", 1000}, done);
  });
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r.value->objects.size(), 2u);
  EXPECT_EQ(r.value->objects[1].key, "exp/a/import/2.ndjson");
  EXPECT_EQ(r.value->objects[1].size, std::string("exp/a/import/2.ndjson").size());
  EXPECT_EQ(h.server.requests().back().target,
            "/bucket?list-type=2&max-keys=1000&prefix=exp%2Fa%2F");
}

TEST(S3Client, ListAllObjectsFollowsContinuationTokens) {
  Harness h;
  for (int i = 0; i < 7; ++i) {
    std::string k = "out/SUCCESS/part-" + std::to_string(i) + ".ndjson";
    auto r = h.wait<PutObjectResult>(
        [&](auto done) { h.client.put_object(put_req("bucket", k, k), done); });
    ASSERT_TRUE(r.ok()) << r.describe();
  }
  auto all = h.wait<ListObjectsResult>([&](auto done) {
    h.client.list_all_objects({"bucket", "out/", "", "", 3}, done);
  });
  ASSERT_TRUE(all.ok()) << all.describe();
  ASSERT_EQ(all.value->objects.size(), 7u);
  EXPECT_EQ(all.value->objects[6].key, "out/SUCCESS/part-6.ndjson");
  auto lists = 0;
  for (auto& r : h.server.requests()) lists += r.target.find("list-type=2") != std::string::npos;
  EXPECT_EQ(lists, 3);
  auto capped = h.wait<ListObjectsResult>([&](auto done) {
    h.client.list_all_objects({"bucket", "out/", "", "", 3}, done, 2);
  });
  ASSERT_FALSE(capped.ok());
  EXPECT_EQ(capped.error->code, "TooManyPages");
}

TEST(S3Client, GetObjectResumesWithRangeAfterABrokenTransfer) {
  Harness h;
  const std::string data = random_bytes(200000, 11);
  auto put = h.wait<PutObjectResult>([&](auto done) {
    h.client.put_object(put_req("bucket", "results/manifest.json", data), done);
  });
  ASSERT_TRUE(put.ok()) << put.describe();
  std::atomic<int> gets{0};
  h.s3.fault = [&](const Recorded& r) -> std::optional<Reply> {
    if (r.method != "GET" || ++gets > 2) return std::nullopt;
    // The first two GETs break after some of the body: once at 1000, once 5000 bytes further.
    Reply rep;
    rep.headers = {{"ETag", "\"e\""}};
    std::size_t from = 0;
    auto range = r.header("range");
    if (!range.empty()) from = std::stoul(range.substr(6));
    rep.body = data.substr(from);
    rep.truncate_body_at = gets == 1 ? 1000 : 5000;
    return rep;
  };
  std::string got;
  auto r = h.wait<GetObjectResult>([&](auto done) {
    h.client.get_object({"bucket", "results/manifest.json", std::nullopt,
                         [&](std::string_view c) {
                           got.append(c);
                           return true;
                         }},
                        done);
  });
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.value->bytes, data.size());
  EXPECT_TRUE(got == data);  // every byte exactly once
  auto reqs = h.server.requests();
  ASSERT_GE(reqs.size(), 4u);
  EXPECT_EQ(reqs[reqs.size() - 2].header("range"), "bytes=1000-");
  EXPECT_EQ(reqs[reqs.size() - 1].header("range"), "bytes=6000-");
  EXPECT_EQ(reqs.back().header("if-match"), "\"e\"");
}

TEST(S3Retry, ThrottlingAnd503FollowTheStandardSchedule) {
  Harness h;
  std::atomic<int> calls{0};
  h.s3.fault = [&](const Recorded& r) -> std::optional<Reply> {
    if (r.method != "PUT") return std::nullopt;
    int n = ++calls;
    Reply rep;
    if (n == 1) {
      rep.status = 503;
      rep.body =
          "<Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>";
      return rep;
    }
    if (n == 2) {
      rep.status = 503;  // bodiless 503 (a load balancer)
      return rep;
    }
    return std::nullopt;
  };
  std::vector<RetryEvent> events;
  h.caller.on_retry([&](const RetryEvent& e) { events.push_back(e); });
  const int quota_before = h.caller.retry().quota().available();
  auto r = h.wait<PutObjectResult>(
      [&](auto done) { h.client.put_object(put_req("bucket", "k", "abc"), done); });
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(r.attempts, 3);
  ASSERT_EQ(events.size(), 2u);
  EXPECT_EQ(events[0].error.code, "SlowDown");
  EXPECT_TRUE(events[0].error.throttling());
  EXPECT_EQ(events[1].error.http_status, 503);
  // Full jitter: rand[0,1) x min(2^(n-1) s, 20 s).
  EXPECT_LE(events[0].delay.count(), 1000);
  EXPECT_LE(events[1].delay.count(), 2000);
  auto reqs = h.server.requests();
  ASSERT_EQ(reqs.size(), 3u);
  // A timer never fires early: arrivals are at least the chosen delays apart.
  EXPECT_GE(reqs[1].at - reqs[0].at, events[0].delay);
  EXPECT_GE(reqs[2].at - reqs[1].at, events[1].delay);
  // Each attempt is freshly signed (x-amz-date may repeat within a second, the body rewinds).
  EXPECT_EQ(reqs[2].body, "abc");
  // Quota: two retries took 5 each, the success refunded the last one.
  EXPECT_EQ(h.caller.retry().quota().available(), quota_before - 5);

  // Throttled on every attempt: after max_attempts the typed error comes back.
  calls = -100;
  h.s3.fault = [&](const Recorded&) -> std::optional<Reply> {
    Reply rep;
    rep.status = 503;
    rep.body = "<Error><Code>SlowDown</Code><Message>slow</Message></Error>";
    return rep;
  };
  events.clear();
  auto fail = h.wait<PutObjectResult>(
      [&](auto done) { h.client.put_object(put_req("bucket", "k2", "abc"), done); });
  ASSERT_FALSE(fail.ok());
  EXPECT_EQ(fail.attempts, 3);
  EXPECT_EQ(fail.error->category, ErrorCategory::throttling);
  EXPECT_EQ(events.size(), 2u);
}

TEST(S3Retry, NonRetryableErrorsComeBackAtOnce) {
  Harness h;
  h.s3.fault = [&](const Recorded&) -> std::optional<Reply> {
    Reply rep;
    rep.status = 403;
    rep.headers = {{"x-amz-request-id", "DENIED1"}};
    rep.body = "<Error><Code>AccessDenied</Code><Message>Access Denied</Message></Error>";
    return rep;
  };
  auto r = h.wait<CreateMultipartResult>([&](auto done) {
    h.client.create_multipart_upload({"bucket", "k", "", {}}, done);
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.attempts, 1);
  EXPECT_EQ(r.error->code, "AccessDenied");
  EXPECT_EQ(r.error->category, ErrorCategory::auth);
  EXPECT_EQ(r.error->request_id, "DENIED1");
  EXPECT_NE(r.describe().find("S3 CreateMultipartUpload bucket/k"), std::string::npos);
  EXPECT_EQ(r.describe().find("wJalrXUtnFEMI"), std::string::npos);  // never the secret
}

TEST(S3Retry, DroppedConnectionAndErrorInside200AreRetried) {
  Harness h;
  std::atomic<int> puts{0}, completes{0};
  h.s3.fault = [&](const Recorded& r) -> std::optional<Reply> {
    if (r.method == "PUT" && ++puts == 1) {
      Reply rep;
      rep.drop = true;
      return rep;
    }
    if (r.method == "POST" && r.target.find("uploadId") != std::string::npos && ++completes == 1) {
      Reply rep;  // 200 with an error document: S3 does this for long Completes
      rep.body =
          "<Error><Code>InternalError</Code><Message>We encountered an internal "
          "error.</Message></Error>";
      return rep;
    }
    return std::nullopt;
  };
  auto created = h.wait<CreateMultipartResult>([&](auto done) {
    h.client.create_multipart_upload({"bucket", "k", "", {}}, done);
  });
  ASSERT_TRUE(created.ok());
  auto part = h.wait<UploadPartResult>([&](auto done) {
    h.client.upload_part({"bucket", "k", created.value->upload_id, 1,
                          BodySource::from_view("part-1"), crc32c("part-1"), ""},
                         done);
  });
  ASSERT_TRUE(part.ok()) << part.describe();
  // The drop hit a reused connection. curl would re-send on a fresh one by itself; the engine
  // refuses that, so it is the retry policy's second attempt, counted (and backed off).
  EXPECT_EQ(puts.load(), 2);
  EXPECT_EQ(part.attempts, 2);
  auto done = h.wait<CompleteMultipartResult>([&](auto d) {
    h.client.complete_multipart_upload({"bucket",
                                        "k",
                                        created.value->upload_id,
                                        {{1, part.value->etag, part.value->checksum_crc32c}},
                                        true},
                                       d);
  });
  ASSERT_TRUE(done.ok()) << done.describe();
  EXPECT_EQ(done.attempts, 2);
  EXPECT_EQ(h.s3.object("/bucket/k"), "part-1");
}

TEST(S3Credentials, ExpiredTokenIsRefreshedAndTheRequestSucceeds) {
  std::atomic<int> refreshes{0};
  std::atomic<int> generation{0};
  CredentialsFn creds = [&](std::chrono::seconds, bool force) -> std::optional<Credentials> {
    if (force) {
      ++refreshes;
      ++generation;
    }
    auto c = test_creds(generation == 0 ? "ASIAOLDKEY" : "ASIANEWKEY");
    c.session_token = generation == 0 ? "old-token" : "new-token";
    c.expiration = std::chrono::system_clock::now() + std::chrono::hours(1);
    return c;
  };
  Harness h({}, creds);
  h.s3.fault = [&](const Recorded& r) -> std::optional<Reply> {
    if (r.header("x-amz-security-token") == "new-token") return std::nullopt;
    Reply rep;
    rep.status = 400;
    rep.body =
        "<Error><Code>ExpiredToken</Code><Message>The provided token has "
        "expired.</Message></Error>";
    return rep;
  };
  auto r = h.wait<PutObjectResult>(
      [&](auto done) { h.client.put_object(put_req("bucket", "k", "abc"), done); });
  ASSERT_TRUE(r.ok()) << r.describe();
  EXPECT_EQ(refreshes.load(), 1);
  auto reqs = h.server.requests();
  ASSERT_EQ(reqs.size(), 2u);
  EXPECT_NE(reqs[0].header("authorization").find("ASIAOLDKEY"), std::string::npos);
  EXPECT_NE(reqs[1].header("authorization").find("ASIANEWKEY"), std::string::npos);
  // The token is signed.
  EXPECT_NE(reqs[1].header("authorization").find("x-amz-security-token"), std::string::npos);
}

TEST(S3Credentials, NoCredentialsIsATypedAuthError) {
  Harness h({},
            [](std::chrono::seconds, bool) -> std::optional<Credentials> { return std::nullopt; });
  auto r = h.wait<HeadObjectResult>([&](auto done) { h.client.head_object("bucket", "k", done); });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->category, ErrorCategory::auth);
  EXPECT_TRUE(h.server.requests().empty());
}

TEST(S3Credentials, LifetimeNeededGrowsWithTheBody) {
  std::vector<std::chrono::seconds> asked;
  Harness h({}, [&](std::chrono::seconds min, bool) -> std::optional<Credentials> {
    asked.push_back(min);
    return test_creds();
  });
  const std::string big(8 << 20, 'x');
  auto r = h.wait<PutObjectResult>(
      [&](auto done) { h.client.put_object(put_req("bucket", "big", big), done); });
  ASSERT_TRUE(r.ok()) << r.describe();
  auto small =
      h.wait<HeadObjectResult>([&](auto done) { h.client.head_object("bucket", "big", done); });
  ASSERT_EQ(asked.size(), 2u);
  EXPECT_GT(asked[0], asked[1]);
}

TEST(S3ClockSkew, SkewedClockIsCorrectedFromServerDate) {
  Harness h;
  // The server's clock is 1 hour ahead of ours: it rejects until the request time matches.
  const auto server_now = std::chrono::system_clock::now() + std::chrono::hours(1);
  std::time_t t = std::chrono::system_clock::to_time_t(server_now);
  char date[64];
  std::strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", std::gmtime(&t));
  std::string server_date = date;
  h.s3.fault = [&](const Recorded& r) -> std::optional<Reply> {
    auto when = parse_amz_date(r.header("x-amz-date"));
    if (when && std::chrono::abs(*when - server_now) < std::chrono::minutes(5)) return std::nullopt;
    Reply rep;
    rep.status = 403;
    rep.headers = {{"Date", server_date}};
    rep.body =
        "<Error><Code>RequestTimeTooSkewed</Code><Message>The difference between the request time "
        "and the current time is too large.</Message></Error>";
    return rep;
  };
  auto r = h.wait<HeadObjectResult>([&](auto done) { h.client.head_object("bucket", "k", done); });
  // The object does not exist: a 404 (not a skew error) proves the second attempt was accepted.
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->http_status, 404) << r.describe();
  EXPECT_EQ(r.attempts, 2);
  EXPECT_GT(h.caller.skew().offset(), std::chrono::minutes(55));
}

}  // namespace
