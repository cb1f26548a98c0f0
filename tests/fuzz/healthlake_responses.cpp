// Fuzz target: the HealthLake client's response handling (aws/healthlake.hpp): status, headers
// and JSON body of a response to each operation, served by the test kit's loopback server
// (canned_reply.hpp) to the real HealthLakeClient (libcurl, AwsCaller, JSON error typing from
// __type / x-amzn-ErrorType, simdjson parsing of DescribeFHIRDatastore, StartFHIRImportJob,
// DescribeFHIRImportJob and ListFHIRImportJobs).
// Input: byte 0 = operation, byte 1 = status, "Name: value" header lines, empty line, body.
// Checked beyond "does not crash": the callback runs exactly once, with a value or an error.
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "aws/healthlake.hpp"
#include "aws/http.hpp"
#include "aws/http_call.hpp"
#include "canned_reply.hpp"
#include "client_world.hpp"
#include "service/log.hpp"

namespace {

using World = fe::fuzz::ClientWorld<fe::aws::HealthLakeClient>;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "healthlake_responses fuzz: %s\n", what);
  std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static World* w = [] {
    fe::log::set_level(fe::log::Level::error);  // clock-skew warnings from fuzzed Date headers
    return new World(&fe::aws::ClientConfig::healthlake_endpoint);  // lives for the process (server
                                                                    // threads use it)
  }();
  std::string_view in(reinterpret_cast<const char*>(data), size);
  const unsigned op = size ? data[0] % 4 : 0;
  static const std::vector<unsigned> kStatuses = {200, 200, 200, 400, 403, 404, 409, 429, 500, 503};
  w->set_reply(fe::fuzz::split_input(in, kStatuses, false));

  int calls = 0;
  auto done = [&calls](const auto& r) {
    ++calls;
    if (r.ok() == r.error.has_value()) fail("result is both ok and an error, or neither");
    (void)r.describe();
  };
  const std::string ds = "0123456789abcdef0123456789abcdef";
  switch (op) {
    case 0:
      w->client.describe_datastore(ds, done);
      break;
    case 1: {
      fe::aws::StartImportRequest req;
      req.job_name = "fuzz";
      req.input_s3_uri = "s3://fuzz-bucket/exports/e1/";
      req.output_s3_uri = "s3://fuzz-bucket/reports/";
      req.output_kms_key_id = "arn:aws:kms:us-east-1:111122223333:key/k";
      req.datastore_id = ds;
      req.data_access_role_arn = "arn:aws:iam::111122223333:role/r";
      req.client_token = "e1-0001";
      req.validation_level = "structure-only";
      w->client.start_import_job(std::move(req), done);
      break;
    }
    case 2:
      w->client.describe_import_job(ds, "job-1", done);
      break;
    default: {
      fe::aws::ListImportJobsRequest req;
      req.datastore_id = ds;
      req.max_results = 50;
      w->client.list_import_jobs(std::move(req), done);
      break;
    }
  }
  w->io.restart();
  while (calls == 0)
    if (w->io.run_one() == 0) fail("the io_context ran out of work before the callback ran");
  w->io.poll();
  if (calls != 1) fail("callback ran more than once");
  return 0;
}
