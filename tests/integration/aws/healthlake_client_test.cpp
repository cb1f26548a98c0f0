// HealthLake client against a scripted loopback endpoint: the exact JSON 1.0 wire format,
// JSON escaping, response parsing (progress report, pagination), typed errors, throttling retries.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <boost/asio.hpp>

#include "aws/healthlake.hpp"
#include "loopback_server.hpp"

namespace {

using namespace fe::aws;
using fe::test::LoopbackServer;
using fe::test::Recorded;
using fe::test::Reply;

template <class Pred>
void run_until(boost::asio::io_context& io, Pred done) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  io.restart();
  while (!done()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "test hung";
    io.run_one_for(std::chrono::milliseconds(50));
  }
}

struct Harness {
  explicit Harness(LoopbackServer::Handler handler)
      : server(std::move(handler)), engine(io), caller(engine, config(), creds()), hl(caller) {}
  ClientConfig config() {
    ClientConfig c;
    c.region = "us-west-2";
    c.healthlake_endpoint = server.url();
    return c;
  }
  static CredentialsFn creds() {
    Credentials c;
    c.access_key_id = "AKIDEXAMPLE";
    c.secret_access_key = "secret";
    return static_credentials(c);
  }
  template <class R, class F>
  R wait(F start) {
    std::optional<R> out;
    start([&](R r) { out = std::move(r); });
    run_until(io, [&] { return out.has_value(); });
    return std::move(*out);
  }
  LoopbackServer server;
  boost::asio::io_context io;
  HttpEngine engine;
  AwsCaller caller;
  HealthLakeClient hl;
};

Reply json(std::string body, int status = 200) {
  Reply r;
  r.status = status;
  r.headers = {{"Content-Type", "application/x-amz-json-1.0"}, {"x-amzn-RequestId", "rid-1"}};
  r.body = std::move(body);
  return r;
}

TEST(HealthLakeJson, QuoteEscapesEverythingJsonRequires) {
  EXPECT_EQ(json_quote("plain"), "\"plain\"");
  EXPECT_EQ(json_quote("a\"b\\c"), "\"a\\\"b\\\\c\"");
  EXPECT_EQ(json_quote("l1\nl2\r\t\b\f"), "\"l1\\nl2\\r\\t\\b\\f\"");
  EXPECT_EQ(json_quote(std::string("\x01\x1f", 2)), "\"\\u0001\\u001f\"");
  EXPECT_EQ(json_quote("ünï</script>"), "\"ünï</script>\"");
  // Round trip through a real JSON parser.
  std::string nasty = "job \"x\"\\\n\t\x02 ü";
  simdjson::dom::parser p;
  std::string_view back;
  ASSERT_EQ(p.parse("{\"v\":" + json_quote(nasty) + "}")["v"].get_string().get(back),
            simdjson::SUCCESS);
  EXPECT_EQ(back, nasty);
}

TEST(HealthLakeJson, StartImportBodyHasTheDocumentedShape) {
  StartImportRequest req;
  req.job_name = "epic \"nightly\"";
  req.input_s3_uri = "s3://landing/exports/e1/import/";
  req.output_s3_uri = "s3://results/imports/";
  req.output_kms_key_id = "arn:aws:kms:us-east-1:123456789012:key/k";
  req.datastore_id = "0123456789abcdef0123456789abcdef";
  req.data_access_role_arn = "arn:aws:iam::123456789012:role/R";
  req.client_token = "e1-token";
  req.validation_level = "minimal";
  EXPECT_EQ(
      HealthLakeClient::start_import_body(req),
      R"({"ClientToken":"e1-token","DataAccessRoleArn":"arn:aws:iam::123456789012:role/R",)"
      R"("DatastoreId":"0123456789abcdef0123456789abcdef",)"
      R"("InputDataConfig":{"S3Uri":"s3://landing/exports/e1/import/"},)"
      R"("JobName":"epic \"nightly\"",)"
      R"("JobOutputDataConfig":{"S3Configuration":{"KmsKeyId":"arn:aws:kms:us-east-1:123456789012:key/k","S3Uri":"s3://results/imports/"}},)"
      R"("ValidationLevel":"minimal"})");
  ListImportJobsRequest list;
  list.datastore_id = "ds";
  list.job_status = "COMPLETED";
  list.submitted_after = 1764115200.5;
  list.max_results = 10;
  list.next_token = "tok";
  EXPECT_EQ(HealthLakeClient::list_import_jobs_body(list),
            R"({"DatastoreId":"ds","JobStatus":"COMPLETED","MaxResults":10,"NextToken":"tok",)"
            R"("SubmittedAfter":1764115200.500})");
  EXPECT_TRUE(valid_client_token("abc-DEF-123"));
  EXPECT_FALSE(valid_client_token(""));
  EXPECT_FALSE(valid_client_token("has_underscore"));
  EXPECT_FALSE(valid_client_token(std::string(65, 'a')));
  EXPECT_TRUE(is_terminal_job_status("COMPLETED_WITH_ERRORS"));
  EXPECT_TRUE(is_terminal_job_status("CANCEL_FAILED"));
  EXPECT_FALSE(is_terminal_job_status("QUEUED"));
  EXPECT_FALSE(is_terminal_job_status("CANCEL_SUBMITTED"));
}

TEST(HealthLakeClient, WireFormatAndDescribeParsing) {
  Harness h([](const Recorded& r) {
    EXPECT_EQ(r.method, "POST");
    EXPECT_EQ(r.target, "/");
    EXPECT_EQ(r.header("content-type"), "application/x-amz-json-1.0");
    EXPECT_EQ(r.header("x-amz-target"), "HealthLake.DescribeFHIRImportJob");
    EXPECT_NE(r.header("authorization").find("/us-west-2/healthlake/aws4_request"),
              std::string::npos);
    EXPECT_EQ(r.body, R"({"DatastoreId":"ds1","JobId":"j1"})");
    return json(
        R"({"ImportJobProperties":{"JobId":"j1","JobName":"e1","JobStatus":"COMPLETED_WITH_ERRORS",
      "SubmitTime":1764115200.25,"EndTime":1764115300,"DatastoreId":"ds1",
      "InputDataConfig":{"S3Uri":"s3://in/"},
      "JobOutputDataConfig":{"S3Configuration":{"S3Uri":"s3://out/","KmsKeyId":"kms-1"}},
      "JobProgressReport":{"TotalNumberOfScannedFiles":3,"TotalSizeOfScannedFilesInMB":1.5,
        "TotalNumberOfImportedFiles":2,"TotalNumberOfResourcesScanned":100,
        "TotalNumberOfResourcesImported":97,"TotalNumberOfResourcesWithCustomerError":3,
        "TotalNumberOfFilesReadWithCustomerError":1,"Throughput":12.5},
      "DataAccessRoleArn":"arn:aws:iam::123456789012:role/R","Message":"3 resources failed",
      "ValidationLevel":"strict"}})");
  });
  auto r = h.wait<HlResult<ImportJobProperties>>(
      [&](auto done) { h.hl.describe_import_job("ds1", "j1", done); });
  ASSERT_TRUE(r.ok()) << r.describe();
  auto& p = *r.value;
  EXPECT_EQ(p.job_status, "COMPLETED_WITH_ERRORS");
  EXPECT_DOUBLE_EQ(p.submit_time, 1764115200.25);
  EXPECT_DOUBLE_EQ(p.end_time, 1764115300);
  EXPECT_EQ(p.output_s3_uri, "s3://out/");
  EXPECT_EQ(p.output_kms_key_id, "kms-1");
  EXPECT_EQ(p.validation_level, "strict");
  EXPECT_EQ(p.message, "3 resources failed");
  ASSERT_TRUE(p.progress);
  EXPECT_EQ(p.progress->total_number_of_resources_imported, 97);
  EXPECT_EQ(p.progress->total_number_of_resources_with_customer_error, 3);
  EXPECT_EQ(p.progress->total_number_of_files_read_with_customer_error, 1);
  EXPECT_DOUBLE_EQ(p.progress->total_size_of_scanned_files_in_mb, 1.5);
}

TEST(HealthLakeClient, ListFollowsNextToken) {
  Harness h([](const Recorded& r) {
    if (r.body.find("\"NextToken\":\"page2\"") != std::string::npos)
      return json(
          R"({"ImportJobPropertiesList":[{"JobId":"j3","JobStatus":"QUEUED","DatastoreId":"ds"}]})");
    return json(
        R"({"ImportJobPropertiesList":[{"JobId":"j1","JobStatus":"COMPLETED"},{"JobId":"j2","JobStatus":"FAILED"}],"NextToken":"page2"})");
  });
  ListImportJobsRequest req;
  req.datastore_id = "ds";
  auto p1 = h.wait<HlResult<ListImportJobsResult>>([&](auto d) { h.hl.list_import_jobs(req, d); });
  ASSERT_TRUE(p1.ok()) << p1.describe();
  ASSERT_EQ(p1.value->jobs.size(), 2u);
  EXPECT_EQ(p1.value->jobs[1].job_status, "FAILED");
  EXPECT_EQ(p1.value->next_token, "page2");
  req.next_token = p1.value->next_token;
  auto p2 = h.wait<HlResult<ListImportJobsResult>>([&](auto d) { h.hl.list_import_jobs(req, d); });
  ASSERT_TRUE(p2.ok());
  ASSERT_EQ(p2.value->jobs.size(), 1u);
  EXPECT_EQ(p2.value->jobs[0].job_id, "j3");
  EXPECT_TRUE(p2.value->next_token.empty());
}

TEST(HealthLakeClient, TypedErrorsAndThrottlingRetries) {
  std::atomic<int> n{0};
  Harness h([&](const Recorded& r) {
    auto target = r.header("x-amz-target");
    if (target == "HealthLake.StartFHIRImportJob") {
      if (++n == 1)
        return json(
            R"({"__type":"com.amazonaws.healthlake#ThrottlingException","message":"Rate exceeded"})",
            400);
      return json(R"({"JobId":"j9","JobStatus":"SUBMITTED","DatastoreId":"ds"})");
    }
    if (target == "HealthLake.DescribeFHIRDatastore")
      return json(
          R"({"__type":"com.amazonaws.healthlake#ResourceNotFoundException:http://internal.amazon.com/coral/com.amazonaws.healthlake/","message":"Datastore ds not found"})",
          400);
    Reply rep = json(R"({"message":"User is not authorized"})", 400);
    rep.headers.push_back(
        {"x-amzn-ErrorType", "AccessDeniedException:http://internal.amazon.com/"});
    return rep;
  });
  StartImportRequest start;
  start.input_s3_uri = "s3://in/";
  start.output_s3_uri = "s3://out/";
  start.datastore_id = "ds";
  start.data_access_role_arn = "arn:aws:iam::123456789012:role/R";
  start.client_token = "tok-1";
  auto s = h.wait<HlResult<StartImportResult>>([&](auto d) { h.hl.start_import_job(start, d); });
  ASSERT_TRUE(s.ok()) << s.describe();
  EXPECT_EQ(s.attempts, 2);
  EXPECT_EQ(s.value->job_id, "j9");

  auto nf =
      h.wait<HlResult<DatastoreProperties>>([&](auto d) { h.hl.describe_datastore("ds", d); });
  ASSERT_FALSE(nf.ok());
  EXPECT_EQ(nf.error->code, "ResourceNotFoundException");
  EXPECT_EQ(nf.error->category, ErrorCategory::not_found);
  EXPECT_EQ(nf.error->request_id, "rid-1");
  EXPECT_EQ(nf.attempts, 1);

  ListImportJobsRequest list;
  list.datastore_id = "ds";
  auto denied =
      h.wait<HlResult<ListImportJobsResult>>([&](auto d) { h.hl.list_import_jobs(list, d); });
  ASSERT_FALSE(denied.ok());
  EXPECT_EQ(denied.error->code, "AccessDeniedException");
  EXPECT_EQ(denied.error->category, ErrorCategory::auth);
  EXPECT_NE(denied.describe().find("HealthLake ListFHIRImportJobs"), std::string::npos);

  // Invalid input never leaves the process.
  start.client_token = "bad token!";
  auto bad = h.wait<HlResult<StartImportResult>>([&](auto d) { h.hl.start_import_job(start, d); });
  ASSERT_FALSE(bad.ok());
  EXPECT_EQ(bad.error->category, ErrorCategory::validation);
  EXPECT_EQ(n.load(), 2);
}

TEST(HealthLakeClient, GarbageSuccessBodyIsRetriedThenReported) {
  Harness h([](const Recorded&) { return json("<html>proxy error page</html>"); });
  auto r = h.wait<HlResult<DatastoreProperties>>([&](auto d) { h.hl.describe_datastore("ds", d); });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.attempts, 3);
  EXPECT_NE(r.describe().find("not a JSON object"), std::string::npos);
}

}  // namespace
