#pragma once
// Helpers shared by the importer's integration tests (import_test.cpp, fleet_import_test.cpp):
// healthlake-local with the landing and results buckets and the S3 / HealthLake clients to it on
// the test's io_context (ImportAws, the base of each test's environment), the importer options
// both use, an export journaled as the upload stage leaves it (`uploaded`), and what the
// emulator's request log says about StartFHIRImportJob.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "aws/crc32c.hpp"
#include "aws/healthlake.hpp"
#include "aws/s3.hpp"
#include "healthlake_local.hpp"
#include "import/importer.hpp"
#include "journal/journal.hpp"

namespace fe::test {

inline constexpr const char* kLanding = "fhir-landing";
inline constexpr const char* kResults = "fhir-results";
inline constexpr const char* kRole = "arn:aws:iam::123456789012:role/HealthLakeImport";

struct ImportAws {
  explicit ImportAws(HealthLakeLocalOptions hopt) {
    hopt.buckets = {kLanding, kResults};
    hll = std::make_unique<HealthLakeLocal>(hopt);
    aws::ClientConfig cfg;
    cfg.region = hll->region();
    cfg.s3_endpoint = hll->endpoint();
    cfg.healthlake_endpoint = hll->endpoint();
    aws::Credentials c;
    c.access_key_id = hll->access_key();
    c.secret_access_key = hll->secret_key();
    engine = std::make_unique<aws::HttpEngine>(io);
    caller = std::make_unique<aws::AwsCaller>(*engine, cfg, aws::static_credentials(c));
    s3 = std::make_unique<aws::S3Client>(*caller);
    hl = std::make_unique<aws::HealthLakeClient>(*caller);
  }
  // The environment deriving from this resets its importers (they use the clients) first.
  ~ImportAws() {
    hl.reset();
    s3.reset();
    caller.reset();
    engine.reset();
  }
  ImportAws(const ImportAws&) = delete;
  ImportAws& operator=(const ImportAws&) = delete;

  // Runs the io_context until `done()` (a failed assertion after `seconds`: "test hung").
  template <class Pred>
  void run_until(Pred done, int seconds = 120) {
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
    io.restart();
    while (!done()) {
      ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "test hung";
      io.run_one_for(std::chrono::milliseconds(20));
    }
  }

  // PutObject into the landing bucket, run to its answer.
  void put(const std::string& key, const std::string& body) {
    std::optional<aws::S3Result<aws::PutObjectResult>> r;
    aws::PutObjectRequest req;
    req.bucket = kLanding;
    req.key = key;
    req.body = aws::BodySource::from_view(body);
    req.crc32c = aws::crc32c(body);
    s3->put_object(std::move(req), [&](auto res) { r = std::move(res); });
    run_until([&] { return r.has_value(); });
    EXPECT_TRUE(r->ok()) << r->describe();
  }

  // The importer options of pipeline "ehr" (objects under `prefix` in the landing bucket, jobs
  // writing to the results bucket) with delays short enough for tests.
  import::ImporterOptions importer_options(const std::string& prefix,
                                           const std::filesystem::path& spool_dir,
                                           const std::string& role = kRole) const {
      import::ImporterOptions o;
  import::ImportTarget t;
  t.pipeline = "ehr";
  t.bucket = kLanding;
  t.prefix = prefix;
  t.datastore_id = hll->datastore();
  t.data_access_role_arn = role;
  t.output_s3_uri = std::string("s3://") + kResults + "/imports";
  t.output_kms_key_id = "arn:aws:kms:us-east-1:123456789012:key/test-key";
  t.validation_level = "structure-only";
  o.targets = {t};
  o.spool_dir = spool_dir;
  o.poll_min = std::chrono::milliseconds(30);
  o.poll_max = std::chrono::milliseconds(80);
  o.retry_delay = std::chrono::milliseconds(200);
  o.conflict_delay = std::chrono::milliseconds(200);
  return o;
}

// Client tokens of the StartFHIRImportJob requests in the emulator's log, in order.
std::vector<std::string>
start_tokens() const {
  std::vector<std::string> out;
  for (const auto& l : hll->request_log_lines()) {
    if (l.find("\"StartFHIRImportJob\"") == std::string::npos) continue;
    auto p = l.find("\"client_token\":\"");
    if (p == std::string::npos) continue;
    p += 16;
    out.push_back(l.substr(p, l.find('"', p) - p));
  }
  return out;
}

// StartFHIRImportJob requests in the emulator's log that it answered 200, and their job ids.
std::set<std::string> started_job_ids() const {
  std::set<std::string> out;
  for (const auto& l : hll->request_log_lines()) {
    if (l.find("\"StartFHIRImportJob\"") == std::string::npos) continue;
    if (l.find("\"status\":200") == std::string::npos) continue;
    auto p = l.find("\"job_id\":\"");
    if (p == std::string::npos) continue;
    p += 10;
    out.insert(l.substr(p, l.find('"', p) - p));
  }
  return out;
}

boost::asio::io_context io;  // first: the clients use it until they are gone
std::unique_ptr<HealthLakeLocal> hll;
std::unique_ptr<aws::HttpEngine> engine;
std::unique_ptr<aws::AwsCaller> caller;
std::unique_ptr<aws::S3Client> s3;
std::unique_ptr<aws::HealthLakeClient> hl;
};  // namespace fe::test

// An export `name` with `files` (file name → body) taken into `journal` and moved through to
// `uploaded`, as the upload stage leaves it; the caller puts its objects and journals their
// keys. Returns its row.
inline journal::ExportRow journal_uploaded_export(journal::Journal& journal,
                                                  const std::string& name,
                                                  const std::map<std::string, std::string>& files) {
  std::vector<std::pair<std::string, journal::SourceIdentity>> ids;
  for (const auto& [f, body] : files)
    ids.push_back({f, journal::SourceIdentity{body.size(), 1, 1, 1}});
  auto taken = journal.take_export("ehr", "/in/" + name, "sha256:" + name, name, ids);
  for (auto st : {journal::ExportState::complete, journal::ExportState::spooling,
                  journal::ExportState::spooled, journal::ExportState::uploading,
                  journal::ExportState::uploaded})
    journal.set_export_state(taken.row.id, st);
  return taken.row;
}

}  // namespace fe::test
