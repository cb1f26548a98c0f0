// Every request the AWS layer sends verifies under botocore: a loopback capture server records the
// requests of a full S3 + HealthLake conversation (method, path, query, headers, body hash), then
// /usr/bin/python3 with botocore's SigV4Auth / S3SigV4Auth recomputes each signature.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "aws/crc32c.hpp"
#include "aws/healthlake.hpp"
#include "aws/s3.hpp"
#include "fake_s3.hpp"

namespace {

using namespace fe::aws;
using fe::test::FakeS3;
using fe::test::LoopbackServer;
using fe::test::Recorded;
using fe::test::Reply;

const char* kSecret = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
const char* kToken = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQD+session/token==";

template <class Pred>
void run_until(boost::asio::io_context& io, Pred done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  io.restart();
  while (!done()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "test hung";
    io.run_one_for(std::chrono::milliseconds(50));
  }
}

Reply healthlake_reply(const Recorded& r) {
  Reply rep;
  rep.headers = {{"Content-Type", "application/x-amz-json-1.0"}, {"x-amzn-RequestId", "hl-1"}};
  auto target = r.header("x-amz-target");
  if (target == "HealthLake.StartFHIRImportJob")
    rep.body = R"({"JobId":"j1","JobStatus":"SUBMITTED","DatastoreId":"ds1"})";
  else if (target == "HealthLake.DescribeFHIRImportJob")
    rep.body =
        R"({"ImportJobProperties":{"JobId":"j1","JobStatus":"IN_PROGRESS","SubmitTime":1.7e9,"DatastoreId":"ds1","InputDataConfig":{"S3Uri":"s3://b/p/"},"JobOutputDataConfig":{"S3Configuration":{"S3Uri":"s3://o/","KmsKeyId":"k"}},"DataAccessRoleArn":"arn:aws:iam::123456789012:role/R"}})";
  else if (target == "HealthLake.ListFHIRImportJobs")
    rep.body = R"({"ImportJobPropertiesList":[]})";
  else
    rep.body = R"({"DatastoreProperties":{"DatastoreId":"ds1","DatastoreStatus":"ACTIVE"}})";
  return rep;
}

bool write_records(const std::vector<Recorded>& reqs, const std::string& path, bool tamper) {
  std::ofstream out(path);
  bool first = true;
  for (const auto& r : reqs) {
    std::string line = "{\"method\":" + json_quote(r.method) +
                       ",\"target\":" + json_quote(r.target) + ",\"headers\":[";
    bool comma = false;
    for (auto [k, v] : r.headers) {
      if (tamper && first && k == "x-amz-date")
        v[v.size() - 2] = v[v.size() - 2] == '0' ? '1' : '0';
      line += std::string(comma ? "," : "") + "[" + json_quote(k) + "," + json_quote(v) + "]";
      comma = true;
    }
    first = false;
    line += "],\"body\":" + (r.body.size() == r.body_size && r.body.size() < 65536
                                 ? json_quote(r.body)
                                 : std::string("null"));
    line += ",\"body_sha256\":" + json_quote(r.body_sha256) + ",\"secret\":" + json_quote(kSecret) +
            ",\"token\":" + json_quote(r.header("x-amz-security-token")) + "}\n";
    out << line;
  }
  return out.good();
}

TEST(Botocore, EveryRequestWeSendVerifies) {
  if (!std::filesystem::exists("/usr/bin/python3") ||
      std::system("/usr/bin/python3 -c 'import botocore' 2>/dev/null") != 0)
    GTEST_SKIP()
        << "botocore (Debian python3-botocore) not installed: signature cross-check skipped";

  FakeS3 s3;
  LoopbackServer server(
      [&](const Recorded& r) {
        return r.header("x-amz-target").empty() ? s3.handle(r) : healthlake_reply(r);
      },
      1 << 20);
  boost::asio::io_context io;
  HttpEngine engine(io);
  ClientConfig cfg;
  cfg.region = "eu-central-1";
  cfg.s3_endpoint = server.url();
  cfg.healthlake_endpoint = server.url();
  Credentials creds;
  creds.access_key_id = "ASIAEXAMPLESESSION";
  creds.secret_access_key = kSecret;
  creds.session_token = kToken;
  AwsCaller caller(engine, cfg, static_credentials(creds));
  S3Client client(caller);
  HealthLakeClient hl(caller);

  int pending = 0;
  auto expect_ok = [&](const auto& r) {
    EXPECT_TRUE(r.ok()) << r.describe();
    --pending;
  };
  auto wait = [&] { run_until(io, [&] { return pending == 0; }); };

  // Keys that stress canonicalisation: spaces, unicode, '+', '~', '=', '&', '%', '(' ...
  const std::vector<std::string> keys = {
      "exports/2026-11-26 epic/import/Patient.ndjson", "exports/ünïcödé/Obs+ervation~1.ndjson",
      "exports/q=a&b/100%/(x)*'!.ndjson", "exports/ünïcödé/multi part+.ndjson"};
  const std::string data(300 * 1024, 'p');
  for (std::size_t i = 0; i < 3; ++i) {
    const auto& k = keys[i];
    ++pending;
    PutObjectRequest req;
    req.bucket = "fhir-landing";
    req.key = k;
    req.body = BodySource::from_view(data);
    req.crc32c = crc32c(data);
    req.sse.kms_key_id = "arn:aws:kms:eu-central-1:123456789012:key/abc";
    req.if_none_match = true;
    client.put_object(std::move(req), expect_ok);
  }
  wait();

  std::string upload_id;
  ++pending;
  client.create_multipart_upload({"fhir-landing", keys[3], "application/fhir+ndjson", {"kms"}},
                                 [&](S3Result<CreateMultipartResult> r) {
                                   expect_ok(r);
                                   if (r.ok()) upload_id = r.value->upload_id;
                                 });
  wait();
  std::vector<CompletedPart> parts(2);
  for (int i = 0; i < 2; ++i) {
    ++pending;
    client.upload_part(
        {"fhir-landing", keys[3], upload_id, i + 1, BodySource::from_view(data), crc32c(data), ""},
        [&, i](S3Result<UploadPartResult> r) {
          expect_ok(r);
          if (r.ok()) parts[i] = {i + 1, r.value->etag, r.value->checksum_crc32c};
        });
  }
  wait();
  ++pending;
  client.list_all_parts("fhir-landing", keys[3], upload_id, expect_ok);
  wait();
  ++pending;
  client.complete_multipart_upload({"fhir-landing", keys[3], upload_id, parts, true}, expect_ok);
  wait();
  ++pending;
  client.head_object("fhir-landing", keys[2], expect_ok);
  ++pending;
  client.get_object({"fhir-landing", keys[0], std::make_pair<std::uint64_t, std::uint64_t>(0, 9),
                     [](std::string_view) { return true; }},
                    expect_ok);
  ++pending;
  client.list_objects_v2({"fhir-landing", "exports/ünïcödé/", "/", "token+/=", 50}, expect_ok);
  wait();
  ++pending;
  client.create_multipart_upload({"fhir-landing", "exports/abort me", "", {}},
                                 [&](S3Result<CreateMultipartResult> r) {
                                   expect_ok(r);
                                   upload_id = r.ok() ? r.value->upload_id : "";
                                 });
  wait();
  ++pending;
  client.abort_multipart_upload("fhir-landing", "exports/abort me", upload_id, expect_ok);

  StartImportRequest start;
  start.job_name = "2026-11-26-epic \"nightly\"";
  start.input_s3_uri = "s3://fhir-landing/exports/2026-11-26 epic/import/";
  start.output_s3_uri = "s3://fhir-results/imports/";
  start.output_kms_key_id = "arn:aws:kms:eu-central-1:123456789012:key/out";
  start.datastore_id = "0123456789abcdef0123456789abcdef";
  start.data_access_role_arn = "arn:aws:iam::123456789012:role/HealthLakeImport";
  start.client_token = "export-3f2a9c";
  start.validation_level = "structure-only";
  ++pending;
  hl.start_import_job(start, expect_ok);
  ++pending;
  hl.describe_import_job("0123456789abcdef0123456789abcdef", "j1", expect_ok);
  ListImportJobsRequest list;
  list.datastore_id = "0123456789abcdef0123456789abcdef";
  list.job_name = "2026-11-26-epic";
  list.submitted_after = 1764115200;
  list.max_results = 50;
  ++pending;
  hl.list_import_jobs(list, expect_ok);
  ++pending;
  hl.describe_datastore("0123456789abcdef0123456789abcdef", expect_ok);
  wait();

  auto reqs = server.requests();
  ASSERT_GE(reqs.size(), 16u);
  const std::string dir = std::string(FE_BINARY_DIR) + "/tests/integration/aws";
  const std::string good = dir + "/botocore_requests.jsonl";
  const std::string bad = dir + "/botocore_requests_tampered.jsonl";
  ASSERT_TRUE(write_records(reqs, good, false));
  ASSERT_TRUE(write_records(reqs, bad, true));
  const std::string script =
      std::string(FE_SOURCE_DIR) + "/tests/integration/aws/botocore_verify.py";
  int rc = std::system(("/usr/bin/python3 " + script + " " + good).c_str());
  EXPECT_EQ(rc, 0) << "botocore rejected a signature (see output above)";
  // The check can fail: a request with one changed signed header must be rejected.
  int rc_bad = std::system(("/usr/bin/python3 " + script + " " + bad + " > /dev/null").c_str());
  EXPECT_NE(rc_bad, 0);
}

}  // namespace
