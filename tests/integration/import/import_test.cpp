// The import lifecycle against healthlake-local (real S3 objects, real import jobs that validate
// every line, real SQLite journal, real spool directory): start → follow → reconcile, a job with
// invalid lines, a "crash" while the Start is in flight, and a request HealthLake rejects.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <boost/asio.hpp>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "aws/crc32c.hpp"
#include "aws/healthlake.hpp"
#include "aws/s3.hpp"
#include "common/export_events.hpp"
#include "fhir/validator.hpp"
#include "healthlake_local.hpp"
#include "import/importer.hpp"
#include "import_env.hpp"
#include "journal/digest.hpp"
#include "journal/journal.hpp"
#include "journal/status.hpp"
#include "pipeline/spooler.hpp"
#include "temp_dir.hpp"
#include "watch/identity.hpp"

namespace {

using namespace fe;
using fe::test::HealthLakeLocal;
using fe::test::HealthLakeLocalOptions;
using journal::ExportState;

using fe::test::kLanding;
using fe::test::kResults;
using fe::test::kRole;

struct Env : fe::test::ImportAws {
  // The event hub the importer emits `imported` on (before the importer: it outlives it).
  ExportEvents events;
  explicit Env(HealthLakeLocalOptions hopt = {}) : ImportAws(std::move(hopt)) {
    dir = fe::test::make_temp_dir("fe-import");
    std::filesystem::create_directories(dir / "spool");
    journal = std::make_unique<journal::Journal>(journal::Journal::open(dir / "journal.db"));
  }
  ~Env() {
    importer.reset();
    journal.reset();
    std::error_code ec;
    std::filesystem::remove_all(dir, ec);
  }

  import::ImporterOptions options(std::string role = kRole) {
    return importer_options("exports", dir / "spool", role);
} void make_importer(import::ImporterOptions o) {
  importer = std::make_unique<import::Importer>(io, *journal, *hl, *s3, std::move(o));
}

// An export in state `uploaded`, its files in S3 under exports/<name>/import/. With
// `max_files_per_job` the objects go to part-NNNN/ folders as the upload stage lays out a big
// export (import::import_part_dir), and the keys are journaled as the upload does.
int64_t uploaded_export(const std::string& name, const std::map<std::string, std::string>& files,
                        int64_t max_files_per_job = 0) {
  auto row = fe::test::journal_uploaded_export(*journal, name, files);
  auto rows = journal->files(row.id);
  int64_t index = 0;
  for (const auto& [f, body] : files) {
    std::string key = "exports/" + row.name + "/import/";
    if (max_files_per_job > 0) {
      key += import::import_part_dir(index, static_cast<int64_t>(files.size()), max_files_per_job);
      journal->set_file_upload(rows.at(static_cast<size_t>(index)).id, journal::PartKind::import,
                               key + f + ".ndjson", "");
    }
    ++index;
    put(key + f + ".ndjson", body);
  }
  return row.id;
}

ExportState state(int64_t id) {
  return journal->get_export(id).state;
}
void run_to(int64_t id, std::set<ExportState> targets) {
  run_until([&] { return targets.count(state(id)) > 0; });
}
size_t count_ops(const std::string& op) {
  size_t n = 0;
  for (const auto& l : hll->request_log_lines())
    if (l.find("\"operation\":\"" + op + "\"") != std::string::npos) ++n;
  return n;
}
size_t count_faulted() {
  size_t n = 0;
  for (const auto& l : hll->request_log_lines())
    if (l.find("\"faults\":\"") != std::string::npos &&
        l.find("\"faults\":\"\"") == std::string::npos)
      ++n;
  return n;
}
// Imported resources per "Type/id" from the emulator's store (one count per import).
std::map<std::string, uint64_t> imported_resources() {
  return hll->imported_resources();
}

std::filesystem::path dir;
std::unique_ptr<journal::Journal> journal;
std::unique_ptr<import::Importer> importer;
};  // namespace

std::string patients(int from, int n) {
  std::string s;
  for (int i = from; i < from + n; ++i)
    s += "{\"resourceType\":\"Patient\",\"id\":\"p" + std::to_string(i) +
         "\",\"gender\":\"female\"}\n";
  return s;
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(Import, KeyHelpers) {
  EXPECT_EQ(import::import_input_uri("b", "exports", "e1"), "s3://b/exports/e1/import/");
  EXPECT_EQ(import::import_input_uri("b", "", "e1"), "s3://b/e1/import/");
  EXPECT_EQ(import::job_output_uri("s3://r/imports/", "DS", "J"),
            "s3://r/imports/DS-FHIR_IMPORT-J/");
  EXPECT_EQ(import::job_output_uri("s3://r", "DS", "J"), "s3://r/DS-FHIR_IMPORT-J/");
  EXPECT_EQ(import::job_name_for("a b#c.v2"), "a_b_c.v2");
  EXPECT_EQ(import::job_name_for(""), "export");
  EXPECT_EQ(import::job_name_for(std::string(100, 'x')).size(), 64u);
}

TEST(Import, StartFollowReconcileToImported) {
  Env env;
  int64_t id = env.uploaded_export("batch1",
                                   {{"Patient", patients(0, 30)}, {"Patient2", patients(100, 12)}});
  env.make_importer(env.options());
  std::vector<std::string> problems{"not called"};
  env.importer->check_datastores([&](auto p) { problems = std::move(p); });
  env.run_until([&] { return problems.empty() || problems.front() != "not called"; });
  EXPECT_TRUE(problems.empty()) << problems.front();

  env.importer->kick(id);
  EXPECT_EQ(env.state(id), ExportState::import_starting);  // journaled before the call
  auto row = env.journal->import_job(id);
  ASSERT_TRUE(row);
  EXPECT_EQ(row->client_token, journal::client_token("ehr", "/in/batch1", "sha256:batch1", 1));
  EXPECT_EQ(row->job_name, "batch1");
  EXPECT_TRUE(row->job_id.empty());

  env.run_to(id, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  ASSERT_EQ(env.state(id), ExportState::imported) << env.journal->get_export(id).parked_reason;
  row = env.journal->import_job(id);
  EXPECT_EQ(row->status, "COMPLETED");
  EXPECT_NE(row->progress_json.find("\"TotalNumberOfResourcesImported\":42"), std::string::npos)
      << row->progress_json;
  EXPECT_NE(row->outcome.find("\"resources_imported\":42"), std::string::npos) << row->outcome;
  EXPECT_NE(row->outcome.find("\"resources_failed\":0"), std::string::npos);
  EXPECT_NE(row->outcome.find("\"Patient.ndjson\":{\"imported\":30,\"failed\":0}"),
            std::string::npos)
      << row->outcome;
  EXPECT_NE(row->outcome.find("\"Patient2.ndjson\":{\"imported\":12,\"failed\":0}"),
            std::string::npos);
  auto report = slurp(env.dir / "spool" / "batch1" / "import-report.json");
  EXPECT_NE(report.find(row->job_id), std::string::npos);
  EXPECT_NE(report.find("\"status\":\"COMPLETED\""), std::string::npos);

  auto res = env.imported_resources();
  EXPECT_EQ(res.size(), 42u);
  for (const auto& [k, n] : res) EXPECT_EQ(n, 1) << k;
  EXPECT_EQ(env.started_job_ids().size(), 1u);
  EXPECT_EQ(env.importer->stats().imported, 1u);
  EXPECT_GE(env.importer->stats().polls, 1u);

  // A second kick of a finished export does nothing.
  env.importer->kick(id);
  EXPECT_EQ(env.count_ops("StartFHIRImportJob"), 1u);
}

TEST(Import, InvalidLinesCompleteWithErrorsAndReasons) {
  Env env;
  std::string bad = patients(0, 5) + "this is not json\n" +
                    "{\"resourceType\":\"NoSuchType\",\"id\":\"x1\"}\n" + patients(5, 3);
  int64_t id = env.uploaded_export("mixed", {{"Patient", bad}});
  env.make_importer(env.options());
  env.importer->kick(id);
  env.run_to(id, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  ASSERT_EQ(env.state(id), ExportState::imported);  // COMPLETED_WITH_ERRORS is accepted by default
  auto row = env.journal->import_job(id);
  EXPECT_EQ(row->status, "COMPLETED_WITH_ERRORS");
  EXPECT_NE(row->outcome.find("\"resources_imported\":8"), std::string::npos) << row->outcome;
  EXPECT_NE(row->outcome.find("\"resources_failed\":2"), std::string::npos);
  EXPECT_NE(row->outcome.find("\"Patient.ndjson\":{\"imported\":8,\"failed\":2}"),
            std::string::npos)
      << row->outcome;
  // The first reasons name the file and the line.
  EXPECT_NE(row->outcome.find("Patient.ndjson:6"), std::string::npos) << row->outcome;
  EXPECT_NE(row->outcome.find("Patient.ndjson:7"), std::string::npos) << row->outcome;
  EXPECT_EQ(env.imported_resources().size(), 8u);

  // With only COMPLETED accepted the same outcome is import_failed.
  Env env2;
  auto o = env2.options();
  o.targets[0].accept_statuses = {"COMPLETED"};
  o.max_line_bytes = 64;  // every OperationOutcome is longer: counted, not parsed
  o.read_success_outputs = false;
  int64_t id2 = env2.uploaded_export("mixed", {{"Patient", bad}});
  env2.make_importer(o);
  env2.importer->kick(id2);
  env2.run_to(id2, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  EXPECT_EQ(env2.state(id2), ExportState::import_failed);
  auto out2 = env2.journal->import_job(id2)->outcome;
  EXPECT_NE(out2.find("\"Patient.ndjson\":{\"imported\":0,\"failed\":2}"), std::string::npos)
      << out2;
  EXPECT_NE(out2.find("\"resources_imported\":8"), std::string::npos) << out2;  // manifest
  EXPECT_NE(out2.find("longer than the line limit"), std::string::npos) << out2;
  // import_failed waits for `fhir-edge retry`; neither a kick nor a resume starts a second job.
  env2.importer->kick(id2);
  env2.importer->resume();
  EXPECT_EQ(env2.state(id2), ExportState::import_failed);
  EXPECT_EQ(env2.count_ops("StartFHIRImportJob"), 1u);
}

// Crash while the Start is in flight: the importer is destroyed after journaling the token and
// sending the request, before the answer; a new importer on the same journal must end with the
// same single job.
TEST(Import, CrashDuringStartMakesExactlyOneJob) {
  for (int wait_ms : {0, 40}) {
    SCOPED_TRACE("wait before crash " + std::to_string(wait_ms) + " ms");
    Env env;
    int64_t id = env.uploaded_export("crashy", {{"Patient", patients(0, 20)}});
    env.make_importer(env.options());
    env.importer->kick(id);
    ASSERT_EQ(env.state(id), ExportState::import_starting);
    // Let the request go out (or not), then "crash": drop the importer without its answer.
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    while (std::chrono::steady_clock::now() < until)
      env.io.run_one_for(std::chrono::milliseconds(5));
    env.importer.reset();
    ASSERT_EQ(env.state(id), ExportState::import_starting);
    ASSERT_TRUE(env.journal->import_job(id)->job_id.empty());

    env.make_importer(env.options());
    env.importer->resume();
    env.run_to(id, {ExportState::imported, ExportState::import_failed, ExportState::parked});
    ASSERT_EQ(env.state(id), ExportState::imported) << env.journal->get_export(id).parked_reason;
    EXPECT_GE(env.count_ops("ListFHIRImportJobs"), 1u);  // consulted before any new Start
    EXPECT_EQ(env.started_job_ids().size(), 1u);
    auto res = env.imported_resources();
    EXPECT_EQ(res.size(), 20u);
    for (const auto& [k, n] : res) EXPECT_EQ(n, 1) << k << " imported twice";
    EXPECT_EQ(env.journal->import_job(id)->job_id, *env.started_job_ids().begin());
  }
}

TEST(Import, CrashAfterJobStartedAdoptsIt) {
  // The Start was answered by HealthLake but the answer never reached the journal: the restart
  // finds the job with ListFHIRImportJobs and adopts it instead of starting anything.
  Env env;
  int64_t id = env.uploaded_export("adopt", {{"Patient", patients(0, 7)}});
  env.make_importer(env.options());
  env.importer->kick(id);
  env.run_until([&] { return env.started_job_ids().size() == 1; });
  env.importer.reset();  // the answer is lost with the importer
  ASSERT_EQ(env.state(id), ExportState::import_starting);

  env.make_importer(env.options());
  env.importer->resume();
  env.run_to(id, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  ASSERT_EQ(env.state(id), ExportState::imported);
  EXPECT_EQ(env.importer->stats().jobs_adopted, 1u);
  EXPECT_EQ(env.importer->stats().starts_sent, 0u);
  EXPECT_EQ(env.count_ops("StartFHIRImportJob"), 1u);
  EXPECT_EQ(env.imported_resources().size(), 7u);
}

TEST(Import, RejectedRequestParksTheExport) {
  Env env;
  int64_t id = env.uploaded_export("badrole", {{"Patient", patients(0, 3)}});
  env.make_importer(env.options("not-an-arn-for-a-role-at-all"));
  env.importer->kick(id);
  env.run_to(id, {ExportState::parked, ExportState::importing, ExportState::imported});
  auto e = env.journal->get_export(id);
  ASSERT_EQ(e.state, ExportState::parked);
  EXPECT_EQ(e.parked_from, ExportState::import_starting);
  EXPECT_NE(e.parked_reason.find("ValidationException"), std::string::npos) << e.parked_reason;
  EXPECT_NE(e.parked_reason.find("dataAccessRoleArn"), std::string::npos) << e.parked_reason;
  EXPECT_TRUE(env.started_job_ids().empty());
  EXPECT_EQ(env.importer->stats().parked, 1u);
}

TEST(Import, OneOutstandingJobPerDatastore) {
  Env env;
  int64_t a = env.uploaded_export("qa", {{"Patient", patients(0, 4)}});
  int64_t b = env.uploaded_export("qb", {{"Patient", patients(10, 4)}});
  env.make_importer(env.options());
  env.importer->resume();
  EXPECT_EQ(env.state(a), ExportState::import_starting);
  EXPECT_EQ(env.state(b), ExportState::uploaded);  // queued behind a
  EXPECT_NE(env.importer->status_line().find("1 queued"), std::string::npos)
      << env.importer->status_line();
  env.run_to(b, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  EXPECT_EQ(env.state(a), ExportState::imported);
  EXPECT_EQ(env.state(b), ExportState::imported);
  EXPECT_EQ(env.started_job_ids().size(), 2u);
}

// The first StartFHIRImportJob is applied by HealthLake but its answer is cut: the AWS layer (or
// the importer's later retry) sends the same ClientToken again and gets the same job back.
TEST(Import, LostStartAnswerIsRetriedWithTheSameToken) {
  HealthLakeLocalOptions h;
  h.faults = "StartFHIRImportJob:drop-after=@1,seed=1";
  Env env(h);
  int64_t id = env.uploaded_export("lost", {{"Patient", patients(0, 9)}});
  env.make_importer(env.options());
  env.importer->kick(id);
  env.run_to(id, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  ASSERT_EQ(env.state(id), ExportState::imported) << env.journal->get_export(id).parked_reason;
  EXPECT_GE(env.count_ops("StartFHIRImportJob"), 2u);  // the lost one and its retry
  EXPECT_EQ(env.started_job_ids().size(), 1u);
  auto res = env.imported_resources();
  EXPECT_EQ(res.size(), 9u);
  for (const auto& [k, n] : res) EXPECT_EQ(n, 1u) << k << " imported twice";
}

// Faults on every request (errors, throttling, answers lost after the request was applied):
// every export still ends imported by exactly one job, each resource once.
TEST(Import, FaultsEverywhereStillExactlyOnce) {
  HealthLakeLocalOptions h;
  h.faults =
      "PutObject:500=0.1,StartFHIRImportJob:drop-after=0.25,StartFHIRImportJob:"
      "InternalServerException=0.15,DescribeFHIRImportJob:ThrottlingException=0.2,"
      "DescribeFHIRImportJob:drop=0.1,ListFHIRImportJobs:500=0.2,GetObject:500=0.15,"
      "ListObjectsV2:SlowDown=0.15,seed=42";
  Env env(h);
  std::vector<int64_t> ids;
  for (int i = 0; i < 3; ++i)
    ids.push_back(
        env.uploaded_export("f" + std::to_string(i), {{"Patient", patients(i * 100, 10 + i)}}));
  auto o = env.options();
  o.targets[0].max_outstanding_starts = 2;
  env.make_importer(o);
  env.importer->resume();
  // Restart the importer once in the middle, as a crash would.
  env.run_until([&] { return env.state(ids[0]) != ExportState::uploaded; });
  env.importer.reset();
  env.make_importer(o);
  env.importer->resume();
  for (auto id : ids) {
    env.run_to(id, {ExportState::imported, ExportState::import_failed, ExportState::parked});
    EXPECT_EQ(env.state(id), ExportState::imported) << env.journal->get_export(id).parked_reason;
  }
  EXPECT_EQ(env.started_job_ids().size(), 3u);
  EXPECT_GE(env.count_faulted(), 3u);  // the faults really fired
  auto res = env.imported_resources();
  EXPECT_EQ(res.size(), 10u + 11u + 12u);
  for (const auto& [k, n] : res) EXPECT_EQ(n, 1u) << k << " imported twice";
  // The reports and journal counts match what the emulator imported.
  for (int i = 0; i < 3; ++i) {
    auto out = env.journal->import_job(ids[i])->outcome;
    EXPECT_NE(out.find("\"resources_imported\":" + std::to_string(10 + i)), std::string::npos)
        << out;
  }
}

TEST(Import, UnknownDatastoreIsReportedAndParks) {
  Env env;
  auto o = env.options();
  o.targets[0].datastore_id = "ffffffffffffffffffffffffffffffff";
  env.make_importer(o);
  std::optional<std::vector<std::string>> problems;
  env.importer->check_datastores([&](auto p) { problems = std::move(p); });
  env.run_until([&] { return problems.has_value(); });
  ASSERT_EQ(problems->size(), 1u);
  EXPECT_NE(problems->front().find("ffffffffffffffffffffffffffffffff"), std::string::npos);
  EXPECT_NE(problems->front().find("ResourceNotFoundException"), std::string::npos)
      << problems->front();
  int64_t id = env.uploaded_export("nods", {{"Patient", patients(0, 2)}});
  env.importer->kick(id);
  env.run_to(id, {ExportState::parked, ExportState::importing});
  EXPECT_NE(env.journal->get_export(id).parked_reason.find("ResourceNotFound"), std::string::npos);
}

// An export over the per-job file limit (lowered to 3 here; HealthLake's is 10,000) is imported
// as one job per part-NNNN/ folder, each with its own token and name, and a crash after the
// first Start still ends with exactly one job per part.
TEST(Import, SplitExportIsImportedAsOneJobPerPart) {
  Env env;
  std::map<std::string, std::string> files;
  for (int i = 0; i < 7; ++i) files["P" + std::to_string(i)] = patients(i * 10, 2 + i);
  int64_t id = env.uploaded_export("big", files, 3);
  auto o = env.options();
  o.max_files_per_job = 3;
  env.make_importer(o);
  env.importer->kick(id);
  ASSERT_EQ(env.state(id), ExportState::import_starting);
  auto jobs = env.journal->import_jobs(id);
  ASSERT_EQ(jobs.size(), 3u);  // 3 + 3 + 1 files
  std::set<std::string> tokens;
  for (const auto& j : jobs) {
    tokens.insert(j.client_token);
    EXPECT_EQ(j.job_name, "big.part" + std::to_string(j.part));
    EXPECT_EQ(j.input_uri, std::string("s3://") + kLanding + "/exports/big/import/part-000" +
                               std::to_string(j.part) + "/");
  }
  EXPECT_EQ(tokens.size(), 3u);
  EXPECT_EQ(jobs[0].client_token, journal::client_token("ehr", "/in/big", "sha256:big", 1));
  // "Crash" once the first job exists.
  env.run_until([&] { return env.started_job_ids().size() >= 1; });
  env.importer.reset();
  env.make_importer(o);
  env.importer->resume();
  env.run_to(id, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  ASSERT_EQ(env.state(id), ExportState::imported) << env.journal->get_export(id).parked_reason;
  EXPECT_EQ(env.started_job_ids().size(), 3u);
  auto res = env.imported_resources();
  EXPECT_EQ(res.size(), 2u + 3 + 4 + 5 + 6 + 7 + 8);
  for (const auto& [k, n] : res) EXPECT_EQ(n, 1u) << k << " imported twice";
  auto report = slurp(env.dir / "spool" / "big" / "import-report.json");
  EXPECT_NE(report.find("\"parts\":3"), std::string::npos) << report;
  EXPECT_NE(report.find("\"resources_imported\":35"), std::string::npos) << report;
  EXPECT_NE(report.find("part-0003/"), std::string::npos) << report;
}

TEST(Import, TooManyFilesUnderOnePrefixParksWithTheReason) {
  Env env;
  int64_t id = env.uploaded_export(
      "flat", {{"A", patients(0, 1)}, {"B", patients(1, 1)}, {"C", patients(2, 1)}});
  auto o = env.options();
  o.max_files_per_job = 2;
  env.make_importer(o);
  env.importer->kick(id);
  auto e = env.journal->get_export(id);
  ASSERT_EQ(e.state, ExportState::parked);
  EXPECT_EQ(e.parked_from, ExportState::uploaded);
  EXPECT_NE(e.parked_reason.find("3 files, over HealthLake's 2"), std::string::npos)
      << e.parked_reason;
  EXPECT_EQ(env.count_ops("StartFHIRImportJob"), 0u);
}

TEST(Import, KeyHelpersForParts) {
  EXPECT_EQ(import::import_part_dir(0, 10000, 10000), "");
  EXPECT_EQ(import::import_part_dir(0, 10001, 10000), "part-0001/");
  EXPECT_EQ(import::import_part_dir(10000, 10001, 10000), "part-0002/");
  EXPECT_EQ(import::import_job_name("e", 1, 1, 1), "e");
  EXPECT_EQ(import::import_job_name("e", 2, 3, 4), "e.part3.retry2");
  auto long_name = import::import_job_name(std::string(80, 'x'), 1, 2, 2);
  EXPECT_EQ(long_name.size(), 64u);
  EXPECT_TRUE(long_name.ends_with(".part2"));
}

// HealthLake answers ConflictException while the data store is in a transition state: the
// importer waits and sends the same token again; one job results.
TEST(Import, ConflictIsWaitedOutWithTheSameToken) {
  HealthLakeLocalOptions h;
  h.faults = "StartFHIRImportJob:ConflictException=@1,StartFHIRImportJob:ConflictException=@2";
  Env env(h);
  int64_t id = env.uploaded_export("conf", {{"Patient", patients(0, 5)}});
  env.make_importer(env.options());
  env.importer->kick(id);
  env.run_to(id, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  ASSERT_EQ(env.state(id), ExportState::imported) << env.journal->get_export(id).parked_reason;
  EXPECT_EQ(env.importer->stats().conflicts, 2u);
  auto tokens = env.start_tokens();
  ASSERT_EQ(tokens.size(), 3u);
  EXPECT_EQ(tokens[0], tokens[1]);
  EXPECT_EQ(tokens[1], tokens[2]);
  EXPECT_EQ(env.started_job_ids().size(), 1u);
  EXPECT_EQ(env.imported_resources().size(), 5u);
}

// The export's token was already used with other parameters (here by a client that is not
// fhir-edge): HealthLake keeps answering ConflictException, so after max_conflicts the export
// is parked with the reason instead of being retried for ever.
TEST(Import, TokenReusedWithOtherParametersIsParkedAfterMaxConflicts) {
  Env env;
  int64_t id = env.uploaded_export("reused", {{"Patient", patients(0, 2)}});
  aws::StartImportRequest other;
  other.job_name = "someone-else";
  other.input_s3_uri = std::string("s3://") + kLanding + "/elsewhere/";
  other.output_s3_uri = std::string("s3://") + kResults + "/imports";
  other.output_kms_key_id = "arn:aws:kms:us-east-1:123456789012:key/test-key";
  other.datastore_id = env.hll->datastore();
  other.data_access_role_arn = kRole;
  other.client_token = journal::client_token("ehr", "/in/reused", "sha256:reused", 1);
  other.validation_level = "structure-only";
  std::optional<aws::HlResult<aws::StartImportResult>> first;
  env.hl->start_import_job(other, [&](auto r) { first = std::move(r); });
  env.run_until([&] { return first.has_value(); });
  ASSERT_TRUE(first->ok()) << first->describe();

  auto o = env.options();
  o.max_conflicts = 3;
  env.make_importer(o);
  env.importer->kick(id);
  env.run_to(id, {ExportState::parked, ExportState::importing, ExportState::imported});
  auto e = env.journal->get_export(id);
  ASSERT_EQ(e.state, ExportState::parked);
  EXPECT_NE(e.parked_reason.find("ConflictException"), std::string::npos) << e.parked_reason;
  EXPECT_NE(e.parked_reason.find("3 times in a row"), std::string::npos) << e.parked_reason;
  EXPECT_EQ(env.importer->stats().conflicts, 3u);
  EXPECT_EQ(env.count_ops("StartFHIRImportJob"), 1u + 3u);
  EXPECT_TRUE(env.imported_resources().empty());  // the other job's input holds nothing
}

// `fhir-edge retry` of an import_failed export while the daemon runs: the request goes through a
// second SQLite connection, the running importer picks it up, and a NEW job with a new token
// imports the (since fixed) data. Nothing else is started again.
TEST(Import, RetryRequestWhileRunningStartsANewAttempt) {
  Env env;
  std::string bad = patients(0, 4) + "{\"resourceType\":\"Patient\",\"id\":\"bad\",\"gender\":7}\n";
  int64_t id = env.uploaded_export("redo", {{"Patient", bad}});
  auto o = env.options();
  o.targets[0].accept_statuses = {"COMPLETED"};
  o.request_interval = std::chrono::milliseconds(50);
  env.make_importer(o);
  env.importer->resume();
  env.run_to(id, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  ASSERT_EQ(env.state(id), ExportState::import_failed);
  auto first = *env.journal->import_job(id);

  // The cause is fixed (the bad line corrected in S3), then the operator retries.
  env.put("exports/redo/import/Patient.ndjson", patients(0, 5));
  // The failed job imported 4 resources: a plain retry refuses (it would import them twice) and
  // says so (issue 15 defect 2); --reimport takes the new attempt knowingly.
  auto refused = journal::Journal::submit_request(env.dir / "journal.db", "retry", "redo", "");
  env.run_until([&] {
    auto r = env.journal->request(refused);
    return r && r->state != "pending";
  });
  EXPECT_EQ(env.journal->request(refused)->state, "refused");
  EXPECT_NE(env.journal->request(refused)->result.find("4 by job"), std::string::npos)
      << env.journal->request(refused)->result;
  EXPECT_EQ(env.state(id), ExportState::import_failed);
  auto rid = journal::Journal::submit_request(env.dir / "journal.db", "retry", "redo", "reimport");
  env.run_until([&] {
    auto r = env.journal->request(rid);
    return r && r->state != "pending";
  });
  auto req = *env.journal->request(rid);
  EXPECT_EQ(req.state, "done") << req.result;
  EXPECT_NE(req.result.find("NEW import job"), std::string::npos) << req.result;
  env.run_to(id, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  ASSERT_EQ(env.state(id), ExportState::imported) << env.journal->get_export(id).parked_reason;
  auto second = *env.journal->import_job(id);
  EXPECT_EQ(second.attempt, 2);
  EXPECT_EQ(second.job_name, "redo.retry2");
  EXPECT_NE(second.client_token, first.client_token);
  EXPECT_NE(second.job_id, first.job_id);
  EXPECT_EQ(env.started_job_ids().size(), 2u);
  EXPECT_EQ(env.imported_resources().at("Patient/p0"), 2u);  // valid in both attempts
  EXPECT_EQ(env.imported_resources().at("Patient/p4"), 1u);  // the fixed line
}

// A job whose input is over success_outputs_max_bytes: SUCCESS/ (one line per imported resource)
// is not downloaded; a file's imported count is its valid resources (journal) minus its FAILURE
// lines, and the totals still come from the manifest.
TEST(Import, LargeJobCountsPerFileWithoutReadingSuccessOutputs) {
  Env env;
  std::string bad = patients(0, 5) + "this is not json\n" +
                    "{\"resourceType\":\"NoSuchType\",\"id\":\"x1\"}\n" + patients(5, 3);
  // max_files_per_job 1000: keys are journaled as the upload does, no part folders.
  int64_t id = env.uploaded_export("large", {{"Patient", bad}, {"Other", patients(50, 4)}}, 1000);
  for (const auto& f : env.journal->files(id)) {
    env.journal->set_file_state(f.id, journal::FileState::spooling);
    int64_t valid = f.name == "Patient" ? 10 : 4;  // what the upload stage counted as valid
    env.journal->record_spooled(f.id, {valid, 0, 1000, 100, ""});
  }
  auto o = env.options();
  o.success_outputs_max_bytes = 1500;  // the job's input is 2000 bytes
  env.make_importer(o);
  env.importer->kick(id);
  env.run_to(id, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  ASSERT_EQ(env.state(id), ExportState::imported) << env.journal->get_export(id).parked_reason;
  auto out = env.journal->import_job(id)->outcome;
  EXPECT_NE(out.find("\"success_outputs_read\":false"), std::string::npos) << out;
  EXPECT_NE(out.find("\"success_lines_read\":0"), std::string::npos) << out;
  EXPECT_NE(out.find("\"Patient.ndjson\":{\"imported\":8,\"failed\":2}"), std::string::npos) << out;
  EXPECT_NE(out.find("\"Other.ndjson\":{\"imported\":4,\"failed\":0}"), std::string::npos) << out;
  EXPECT_NE(out.find("\"resources_imported\":12"), std::string::npos) << out;  // manifest
  for (const auto& l : env.hll->request_log_lines())
    EXPECT_EQ(l.find("/SUCCESS/"), std::string::npos) << "SUCCESS output read: " << l;
  EXPECT_EQ(env.imported_resources().size(), 12u);
}

}  // namespace

namespace {

// Issue 15, defect 7: HealthLake numbers a FAILURE/ line in the import object, which holds only
// the valid lines. The source file is spooled by the real spooler at `minimal` (its anchors go to
// the journal as the pipeline records them); HealthLake imports at structure-only and rejects a
// line the spool let through. The reason must name that line's SOURCE line (5), not its import
// object line (2), in import-report.json and in the journal's outcome.
TEST(Import, FailureLinesAreReportedAsSourceLines) {
  Env env;
  const std::string good = "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"gender\":\"female\"}";
  const std::string late_bad =  // minimal accepts it; structure-only rejects the code
      "{\"resourceType\":\"Patient\",\"id\":\"p5\",\"gender\":\"femalex\"}";
  const std::string good8 = "{\"resourceType\":\"Patient\",\"id\":\"p8\",\"gender\":\"male\"}";
  // 1 valid, 2 invalid JSON, 3 blank, 4 unknown type, 5 valid for `minimal`, 6 invalid, 7 valid.
  const std::string source = good + "\nnot json\n\n{\"resourceType\":\"NoSuchType\"}\n" + late_bad +
                             "\n{\n" + good8 + "\n";
  const std::string import_object = good + "\n" + late_bad + "\n" + good8 + "\n";

  std::filesystem::create_directories(env.dir / "src");
  const auto src = env.dir / "src" / "Mixed.ndjson";
  { std::ofstream(src, std::ios::binary) << source; }
  auto ident = watch::identity_of(src);
  ASSERT_TRUE(ident);
  auto taken = env.journal->take_export(
      "ehr", (env.dir / "src").string(), "sha256:mixed", "mixed",
      {{"Mixed.ndjson", {ident->size, ident->mtime_ns, ident->inode, ident->dev}}});
  const int64_t id = taken.row.id;
  for (auto st : {ExportState::complete, ExportState::spooling})
    env.journal->set_export_state(id, st);
  auto file = env.journal->files(id).at(0);
  env.journal->set_file_state(file.id, journal::FileState::spooling);

  fhir::Options fo;
  fo.level = fhir::Level::minimal;
  fhir::LoadReport lr;
  pipeline::SpoolJob job;
  job.spool_dir = env.dir / "spool";
  job.export_name = "mixed";
  job.file_name = "Mixed.ndjson";
  job.source = {"Mixed.ndjson", src, *ident};
  job.validator = fhir::Validator::create(fo, lr);
  ASSERT_TRUE(job.validator);
  job.fsync = false;
  auto res = pipeline::spool_file(job);
  ASSERT_TRUE(res.ok) << res.error;
  EXPECT_EQ(res.valid, 3);
  EXPECT_EQ(res.rejected, 3);
  EXPECT_EQ(res.bytes_uncompressed, import_object.size());
  ASSERT_FALSE(res.line_map.empty());
  EXPECT_EQ(res.line_anchors, 2);  // import 2 = source 5, import 3 = source 7
  {
    pipeline::LineMapReader map(res.line_map);
    env.journal->record_spooled(
        file.id, {res.valid, res.rejected, 0, 0, ""},
        [&](journal::LineAnchor& a) { return map.next(a.import_line, a.source_line); });
  }
  EXPECT_EQ(env.journal->source_line(file.id, 2), 5);
  EXPECT_EQ(env.journal->source_line(file.id, 3), 7);

  // The upload as the pipeline lays it out, with the key journaled.
  const std::string key = "exports/mixed/import/Mixed.ndjson";
  env.put(key, import_object);
  env.journal->set_file_upload(file.id, journal::PartKind::import, key, "");
  for (auto st : {ExportState::spooled, ExportState::uploading, ExportState::uploaded})
    env.journal->set_export_state(id, st);

  env.make_importer(env.options());  // ValidationLevel structure-only
  env.importer->kick(id);
  env.run_to(id, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  ASSERT_EQ(env.state(id), ExportState::imported);
  auto outcome = env.journal->import_job(id)->outcome;
  EXPECT_NE(outcome.find("\"resources_failed\":1"), std::string::npos) << outcome;
  EXPECT_NE(outcome.find("Mixed.ndjson:5: Patient/p5"), std::string::npos) << outcome;
  EXPECT_NE(outcome.find("(import object line 2)"), std::string::npos) << outcome;
  EXPECT_EQ(outcome.find("Mixed.ndjson:2:"), std::string::npos) << outcome;
  auto report = slurp(env.dir / "spool" / "mixed" / "import-report.json");
  EXPECT_NE(report.find("Mixed.ndjson:5: Patient/p5"), std::string::npos) << report;
  // `fhir-edge status --export mixed` (text and JSON) shows the same source line.
  auto row = env.journal->get_export(id);
  auto text = journal::format_export_detail(*env.journal, row, false);
  EXPECT_NE(text.find("  Mixed.ndjson:5: Patient/p5"), std::string::npos) << text;
  auto json = journal::format_export_detail(*env.journal, row, true);
  EXPECT_NE(json.find("Mixed.ndjson:5: Patient/p5"), std::string::npos) << json;
  EXPECT_EQ(env.imported_resources().size(), 2u);
}

}  // namespace

// ---- issue 15 defect 4: crash recovery reads every page of ListFHIRImportJobs ----
// The emulator returns one job per page (AWS may return fewer than MaxResults), and two later
// jobs share the export's JobName (another gateway, an operator's test...), so the job this
// export's token made is on the third page. Recovery must find it there and adopt it instead of
// re-sending Start.
TEST(Import, CrashRecoveryFollowsEveryListPage) {
  HealthLakeLocalOptions h;
  h.extra_args = {"--list-page-size", "1"};
  Env env(h);
  int64_t id = env.uploaded_export("paged", {{"Patient", patients(0, 6)}});
  env.make_importer(env.options());
  env.importer->kick(id);
  env.run_until([&] { return env.started_job_ids().size() == 1; });
  env.importer.reset();  // the answer is lost with the importer
  ASSERT_EQ(env.state(id), ExportState::import_starting);

  for (int i = 0; i < 2; ++i) {
    aws::StartImportRequest r;
    r.job_name = "paged";
    r.input_s3_uri = std::string("s3://") + kLanding + "/exports/other" + std::to_string(i) + "/";
    r.output_s3_uri = std::string("s3://") + kResults + "/imports";
    r.output_kms_key_id = "arn:aws:kms:us-east-1:123456789012:key/test-key";
    r.datastore_id = env.hll->datastore();
    r.data_access_role_arn = kRole;
    r.client_token = "other-gateway-" + std::to_string(i);
    std::optional<aws::HlResult<aws::StartImportResult>> res;
    env.hl->start_import_job(r, [&](auto x) { res = std::move(x); });
    env.run_until([&] { return res.has_value(); });
    ASSERT_TRUE(res->ok()) << res->describe();
  }

  env.make_importer(env.options());
  env.importer->resume();
  env.run_to(id, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  ASSERT_EQ(env.state(id), ExportState::imported) << env.journal->get_export(id).parked_reason;
  EXPECT_EQ(env.importer->stats().jobs_adopted, 1u);
  EXPECT_EQ(env.importer->stats().starts_sent, 0u);  // adopted, never re-sent
  EXPECT_GE(env.count_ops("ListFHIRImportJobs"), 3u);
  EXPECT_EQ(env.count_ops("StartFHIRImportJob"), 3u);  // ours + the two others
  EXPECT_EQ(env.imported_resources().size(), 6u);
}

// ---- issue 15 defect 1: an export with no valid resource starts no job ----
TEST(Import, NothingValidStartsNoJob) {
  Env env;
  std::vector<std::pair<std::string, journal::SourceIdentity>> ids = {
      {"Bad", journal::SourceIdentity{10, 1, 1, 1}},
      {"Worse", journal::SourceIdentity{10, 1, 2, 1}}};
  auto taken = env.journal->take_export("ehr", "/in/empty", "sha256:empty", "empty", ids);
  int64_t id = taken.row.id;
  for (auto st :
       {ExportState::complete, ExportState::spooling, ExportState::spooled, ExportState::uploading})
    env.journal->set_export_state(id, st);
  // As the spool and upload stages leave it: one file (reject-resource) spooled with 0 valid
  // lines, so it has no import object; one file rejected whole (reject-file).
  auto files = env.journal->files(id);
  env.journal->set_file_state(files[0].id, journal::FileState::spooling);
  env.journal->record_spooled(files[0].id, journal::SpoolOutcome{0, 3, 0, 0, ""});
  env.journal->set_file_state(files[0].id, journal::FileState::uploading);
  EXPECT_FALSE(import::nothing_to_import(env.journal->files(id)));  // not finished yet
  env.journal->set_file_state(files[0].id, journal::FileState::uploaded);
  env.journal->set_file_state(files[1].id, journal::FileState::rejected);
  env.journal->set_export_state(id, ExportState::uploaded);
  EXPECT_TRUE(import::nothing_to_import(env.journal->files(id)));

  int imported_calls = 0;
  auto o = env.options();
  env.events.on(ExportEvent::imported, [&](int64_t) { ++imported_calls; });
  o.events = &env.events;
  env.make_importer(o);
  env.importer->kick(id);
  ASSERT_EQ(env.state(id), ExportState::nothing_to_import);
  auto e = env.journal->get_export(id);
  EXPECT_NE(e.last_error.find("no valid resource"), std::string::npos) << e.last_error;
  EXPECT_TRUE(e.finished_at.has_value());
  EXPECT_TRUE(journal::is_terminal(e.state));
  auto report = slurp(env.dir / "spool" / "empty" / "import-report.json");
  EXPECT_NE(report.find("\"status\":\"NOTHING_TO_IMPORT\""), std::string::npos) << report;
  EXPECT_EQ(env.importer->stats().nothing_to_import, 1u);
  EXPECT_EQ(imported_calls, 0);  // after_upload is not applied: the source stays

  // Nothing is sent, also not after a restart; the data store's slot goes to the next export.
  int64_t next = env.uploaded_export("next", {{"Patient", patients(0, 2)}});
  env.make_importer(env.options());
  env.importer->resume();
  env.run_to(next, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  EXPECT_EQ(env.state(next), ExportState::imported);
  EXPECT_EQ(env.state(id), ExportState::nothing_to_import);
  EXPECT_EQ(env.count_ops("StartFHIRImportJob"), 1u);  // only `next`'s

  auto r = env.journal->retry_export("empty", true);
  EXPECT_FALSE(r.applied);
  EXPECT_NE(r.message.find("nothing to import"), std::string::npos) << r.message;
}

// ---- issue 18 defect 1: an accepted status that imported nothing (or too little) ----
// healthlake-local --require-sse-kms with objects stored without SSE-KMS (s3.kms_key_id: null
// and no bucket default): every file is read with customer error, COMPLETED_WITH_ERRORS, 0 of N
// imported. That must not count as imported: after_upload would move or delete the source.
TEST(Import, CompletedWithErrorsThatImportedNothingIsNotImported) {
  HealthLakeLocalOptions h;
  h.extra_args = {"--require-sse-kms"};
  Env env(h);
  int64_t id = env.uploaded_export("nokms", {{"Patient", patients(0, 5)}});
  int imported_calls = 0;
  auto o = env.options();
  env.events.on(ExportEvent::imported, [&](int64_t) { ++imported_calls; });
  o.events = &env.events;
  env.make_importer(o);
  env.importer->kick(id);
  env.run_to(id, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  ASSERT_EQ(env.state(id), ExportState::import_failed);
  EXPECT_EQ(env.journal->import_job(id)->status, "COMPLETED_WITH_ERRORS");
  EXPECT_EQ(imported_calls, 0);
  auto e = env.journal->get_export(id);
  EXPECT_NE(e.last_error.find("imported none"), std::string::npos) << e.last_error;
  EXPECT_NE(e.last_error.find("source is kept"), std::string::npos) << e.last_error;
  auto report = slurp(env.dir / "spool" / "nokms" / "import-report.json");
  EXPECT_NE(report.find("\"not_imported_because\""), std::string::npos) << report;
  EXPECT_TRUE(env.imported_resources().empty());
  // Nothing was imported, so a retry (once the key is fixed) is a plain new attempt.
  auto r = env.journal->retry_export("nokms", false);
  EXPECT_TRUE(r.applied) << r.message;
}

TEST(Import, ImportBelowMinImportedShareIsNotImported) {
  std::string mixed = patients(0, 8) +
                      "{\"resourceType\":\"Patient\",\"id\":\"x\",\"gender\":7}\n" +
                      "{\"resourceType\":\"Patient\",\"id\":\"y\",\"gender\":8}\n";
  for (double share : {0.9, 0.5}) {
    SCOPED_TRACE("min_imported_share " + std::to_string(share));
    Env env;
    int64_t id = env.uploaded_export("share", {{"Patient", mixed}});
    auto o = env.options();
    o.targets[0].min_imported_share = share;
    env.make_importer(o);
    env.importer->kick(id);
    env.run_to(id, {ExportState::imported, ExportState::import_failed, ExportState::parked});
    EXPECT_EQ(env.journal->import_job(id)->status, "COMPLETED_WITH_ERRORS");
    if (share > 0.8) {
      ASSERT_EQ(env.state(id), ExportState::import_failed);
      auto e = env.journal->get_export(id);
      EXPECT_NE(e.last_error.find("only 8 of 10"), std::string::npos) << e.last_error;
      // 8 resources are in HealthLake: a plain retry would import them again.
      auto r = env.journal->retry_export("share", false);
      EXPECT_FALSE(r.applied);
      EXPECT_NE(r.message.find("8 by job"), std::string::npos) << r.message;
      EXPECT_NE(r.message.find("--reimport"), std::string::npos) << r.message;
    } else {
      EXPECT_EQ(env.state(id), ExportState::imported);  // 80 % >= 50 %
    }
  }
}

// ---- issue 15 defect 2: CANCEL_FAILED means the job ran on ----
TEST(Import, CancelFailedJobIsReconciledFromItsManifest) {
  HealthLakeLocalOptions h;
  h.extra_args = {"--final-status", "CANCEL_FAILED"};
  Env env(h);
  int64_t id = env.uploaded_export("ranon", {{"Patient", patients(0, 6)}});
  env.make_importer(env.options());
  env.importer->kick(id);
  env.run_to(id, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  // The manifest says all 6 were imported: judged as COMPLETED, so imported.
  ASSERT_EQ(env.state(id), ExportState::imported);
  EXPECT_EQ(env.journal->import_job(id)->status, "CANCEL_FAILED");
  bool said = false;
  for (const auto& ev : env.journal->events(id))
    if (ev.message.find("ran on") != std::string::npos) said = true;
  EXPECT_TRUE(said);
  EXPECT_FALSE(env.journal->retry_export("ranon", false).applied);  // imported: --reimport only
  auto res = env.imported_resources();
  EXPECT_EQ(res.size(), 6u);
  for (const auto& [k, n] : res) EXPECT_EQ(n, 1u) << k;

  // With failed resources and only COMPLETED accepted it is import_failed, and a retry refuses
  // (it would import the 8 good resources a second time) and says which job imported what.
  Env env2(h);
  std::string mixed = patients(0, 8) + "{\"resourceType\":\"Patient\",\"id\":\"x\",\"gender\":7}\n";
  int64_t id2 = env2.uploaded_export("ranon2", {{"Patient", mixed}});
  auto o = env2.options();
  o.targets[0].accept_statuses = {"COMPLETED"};
  env2.make_importer(o);
  env2.importer->kick(id2);
  env2.run_to(id2, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  ASSERT_EQ(env2.state(id2), ExportState::import_failed);
  auto r = env2.journal->retry_export("ranon2", false);
  EXPECT_FALSE(r.applied);
  auto job = env2.journal->import_job(id2)->job_id;
  EXPECT_NE(r.message.find("8 by job " + job + " (CANCEL_FAILED)"), std::string::npos) << r.message;
  EXPECT_EQ(env2.count_ops("StartFHIRImportJob"), 1u);
  for (const auto& [k, n] : env2.imported_resources()) EXPECT_EQ(n, 1u) << k;
}

// ---- issue 18 defect 5: a vanished job has a way out ----
TEST(Import, VanishedJobIsReimportedWithANewToken) {
  Env env;
  int64_t id = env.uploaded_export("gone", {{"Patient", patients(0, 4)}});
  auto e = env.journal->get_export(id);
  // The journal follows a job HealthLake no longer knows (as after a data store was recreated,
  // or an emulator restart: healthlake-local keeps jobs in memory).
  std::string token =
      journal::import_client_token(e.pipeline, e.source_path, e.digest, e.version, 1, 1);
  env.journal->record_import_token(id, token, "gone", 1,
                                   import::import_input_uri(kLanding, "exports", "gone"));
  env.journal->set_export_state(id, ExportState::import_starting);
  env.journal->record_import_job(id, "0123456789abcdef0123456789abcdef", "IN_PROGRESS");
  env.journal->set_export_state(id, ExportState::importing);
  auto o = env.options();
  o.request_interval = std::chrono::milliseconds(0);
  env.make_importer(o);
  env.importer->resume();
  env.run_to(id, {ExportState::parked, ExportState::imported, ExportState::import_failed});
  e = env.journal->get_export(id);
  ASSERT_EQ(e.state, ExportState::parked);
  EXPECT_NE(e.parked_reason.find("vanished"), std::string::npos) << e.parked_reason;
  EXPECT_NE(e.parked_reason.find("retry --reimport"), std::string::npos) << e.parked_reason;

  auto r = env.journal->retry_export("gone", true);
  ASSERT_TRUE(r.applied) << r.message;
  EXPECT_TRUE(r.new_token);
  EXPECT_EQ(r.to, ExportState::uploaded);
  EXPECT_NE(r.message.find("0123456789abcdef0123456789abcdef"), std::string::npos) << r.message;
  env.importer->kick(id);
  env.run_to(id, {ExportState::parked, ExportState::imported, ExportState::import_failed});
  ASSERT_EQ(env.state(id), ExportState::imported) << env.journal->get_export(id).parked_reason;
  auto j = *env.journal->import_job(id);
  EXPECT_EQ(j.attempt, 2);
  EXPECT_NE(j.client_token, token);
  EXPECT_EQ(j.job_name, "gone.retry2");
  EXPECT_EQ(env.started_job_ids().size(), 1u);
  EXPECT_EQ(env.imported_resources().size(), 4u);
}

// ---- issue 12 item 4: the ValidationLevel on the way back ----

namespace {

struct CliResult {
  int code;
  std::string out;
};

// `fhir-edge status ARGS` as an operator runs it (read-only, next to the writer).
CliResult fhir_edge(const std::string& args) {
  std::string cmd = std::string(FE_EXE) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

}  // namespace

TEST(ImportLevel, ComparisonOfStartedAndReportedLevels) {
  using import::validation_level_mismatch;
  EXPECT_EQ(validation_level_mismatch("e", "J1", "strict", "strict"), "");
  EXPECT_EQ(validation_level_mismatch("e", "J1", "structure-only", "STRUCTURE-ONLY"), "");
  // An answer without the field is not a mismatch (it is shown as not reported).
  EXPECT_EQ(validation_level_mismatch("e", "J1", "strict", ""), "");
  auto why = validation_level_mismatch("2026-11-26-epic", "J1", "strict", "minimal");
  ASSERT_FALSE(why.empty());
  EXPECT_NE(why.find("import job J1"), std::string::npos) << why;
  EXPECT_NE(why.find("'minimal'"), std::string::npos) << why;
  EXPECT_NE(why.find("started with 'strict'"), std::string::npos) << why;
  EXPECT_NE(why.find("not counted as imported"), std::string::npos) << why;
  EXPECT_NE(why.find("fhir-edge retry --reimport 2026-11-26-epic"), std::string::npos) << why;
  EXPECT_NE(validation_level_mismatch("e", "J1", "minimal", "strict"), "");
}

// HealthLake answers another ValidationLevel than the job was started with: the export is parked
// with one error naming both levels and the job, `fhir-edge status` shows it (text and JSON), and
// nothing is imported: no `imported` state, no `imported` event (after_upload), no report, and the
// emulator's data store holds nothing when the export is parked. (No API cancels a HealthLake
// import job, so the emulator's job is kept SUBMITTED long enough to look; afterwards the export
// stays parked and is not followed again.)
TEST(ImportLevel, ReportedLevelMismatchParksAndNothingIsImported) {
  HealthLakeLocalOptions h;
  h.extra_args = {"--report-validation-level", "minimal"};
  h.job_timing = "submitted=2s,queued=0.05s,run=0.1s";
  Env env(h);
  int64_t id = env.uploaded_export("lvl", {{"Patient", patients(0, 5)}});
  auto o = env.options();
  int imported_calls = 0;
  env.events.on(ExportEvent::imported, [&](int64_t) { ++imported_calls; });
  o.events = &env.events;
  env.make_importer(o);
  env.importer->kick(id);
  env.run_to(id, {ExportState::parked, ExportState::imported, ExportState::import_failed});
  auto e = env.journal->get_export(id);
  ASSERT_EQ(e.state, ExportState::parked) << e.last_error;
  EXPECT_EQ(e.parked_from, ExportState::importing);
  EXPECT_EQ(env.importer->stats().following, 0u);  // its slot released with the park
  auto job = *env.journal->import_job(id);
  EXPECT_EQ(job.validation_level, "structure-only");
  EXPECT_EQ(job.reported_level, "minimal");
  EXPECT_EQ(e.parked_reason,
            import::validation_level_mismatch("lvl", job.job_id, "structure-only", "minimal"));
  EXPECT_NE(e.parked_reason.find(job.job_id), std::string::npos);
  // One clear error: parked once, not re-reported by later polls.
  size_t parks = 0;
  for (const auto& ev : env.journal->events(id, 1000))
    if (ev.kind == "park") ++parks;
  EXPECT_EQ(parks, 1u);

  // Nothing imported, as the emulator sees it: no resource in its data store, no job output.
  EXPECT_TRUE(env.imported_resources().empty());
  EXPECT_FALSE(env.hll->object(kResults, "imports/" + env.hll->datastore() + "-FHIR_IMPORT-" +
                                             job.job_id + "/manifest.json"));
  EXPECT_EQ(imported_calls, 0);
  EXPECT_FALSE(std::filesystem::exists(env.dir / "spool" / "lvl" / "import-report.json"));
  EXPECT_EQ(env.importer->stats().imported, 0u);

  // `fhir-edge status`: the level and the reason, text and JSON.
  auto db = (env.dir / "journal.db").string();
  auto text = fhir_edge("status --journal " + db);
  ASSERT_EQ(text.code, 0) << text.out;
  EXPECT_NE(text.out.find("LEVEL"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("minimal (started structure-only)"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("parked"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("import job " + job.job_id + " runs at ValidationLevel 'minimal'"),
            std::string::npos)
      << text.out;
  auto js = fhir_edge("status --json --journal " + db);
  ASSERT_EQ(js.code, 0) << js.out;
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  ASSERT_EQ(p.parse(js.out).get(doc), simdjson::SUCCESS) << js.out;
  auto x = doc["exports"].at(0);
  EXPECT_EQ(std::string_view(x["state"]), "parked");
  EXPECT_EQ(std::string_view(x["parked_reason"]), e.parked_reason);
  EXPECT_EQ(std::string_view(x["import_job"]["validation_level"]), "structure-only");
  EXPECT_EQ(std::string_view(x["import_job"]["reported_validation_level"]), "minimal");
  EXPECT_FALSE(bool(x["import_job"]["validation_level_match"]));
  EXPECT_EQ(std::string_view(x["import_jobs"].at(0)["reported_validation_level"]), "minimal");

  // The emulator's job runs to its end meanwhile; the parked export is not followed again.
  auto polls = env.importer->stats().polls;
  for (bool done = false; !done;) {
    std::optional<aws::HlResult<aws::ImportJobProperties>> d;
    env.hl->describe_import_job(env.hll->datastore(), job.job_id,
                                [&](auto r) { d = std::move(r); });
    env.run_until([&] { return d.has_value(); });
    ASSERT_TRUE(d->ok()) << d->describe();
    done = aws::is_terminal_job_status(d->value->job_status);
    env.io.restart();
    env.io.run_for(std::chrono::milliseconds(100));
  }
  // Parked: the importer follows nothing, so no poll can go out until a kick.
  env.run_until([&] { return env.importer->stats().following == 0; });
  EXPECT_EQ(env.importer->stats().following, 0u);
  EXPECT_EQ(env.importer->stats().polls, polls);
  EXPECT_EQ(env.state(id), ExportState::parked);
  EXPECT_EQ(imported_calls, 0);
  EXPECT_FALSE(std::filesystem::exists(env.dir / "spool" / "lvl" / "import-report.json"));
  EXPECT_EQ(env.count_ops("StartFHIRImportJob"), 1u);
}

// The recover path: the Start was answered but the answer was lost with the importer; the next
// start finds the job with ListFHIRImportJobs, whose answer carries the other level. It is
// parked there, before anything follows it, and no second job is started. `retry --reimport`
// is allowed (every job of the attempt is known, no Start is in doubt).
TEST(ImportLevel, AdoptedJobAtAnotherLevelIsParkedOnRecovery) {
  HealthLakeLocalOptions h;
  h.extra_args = {"--report-validation-level", "strict"};
  h.job_timing = "submitted=2s,queued=0.05s,run=0.1s";
  Env env(h);
  int64_t id = env.uploaded_export("lvl-adopt", {{"Patient", patients(0, 4)}});
  env.make_importer(env.options());
  env.importer->kick(id);
  env.run_until([&] { return env.started_job_ids().size() == 1; });
  env.importer.reset();  // "crash": the answer is lost with the importer
  ASSERT_EQ(env.state(id), ExportState::import_starting);

  env.make_importer(env.options());
  env.importer->resume();
  env.run_to(id, {ExportState::parked, ExportState::imported, ExportState::import_failed,
                  ExportState::importing});
  auto e = env.journal->get_export(id);
  ASSERT_EQ(e.state, ExportState::parked) << e.last_error;
  EXPECT_EQ(e.parked_from, ExportState::import_starting);
  auto job = *env.journal->import_job(id);
  EXPECT_EQ(job.job_id, *env.started_job_ids().begin());
  EXPECT_EQ(job.reported_level, "strict");
  EXPECT_EQ(e.parked_reason,
            import::validation_level_mismatch("lvl-adopt", job.job_id, "structure-only", "strict"));
  EXPECT_EQ(env.importer->stats().jobs_adopted, 1u);
  EXPECT_EQ(env.importer->stats().starts_sent, 0u);
  EXPECT_EQ(env.count_ops("StartFHIRImportJob"), 1u);
  EXPECT_EQ(env.count_ops("DescribeFHIRImportJob"), 0u);
  EXPECT_TRUE(env.imported_resources().empty());

  auto r = env.journal->retry_export("lvl-adopt", true);
  ASSERT_TRUE(r.applied) << r.message;
  EXPECT_TRUE(r.new_token);
  EXPECT_EQ(r.to, ExportState::uploaded);
  EXPECT_NE(r.message.find(job.job_id), std::string::npos) << r.message;
}

// The level is journaled for every job and written to import-report.json; an answer without a
// ValidationLevel (--report-validation-level none) is not a mismatch and shows as not reported.
TEST(ImportLevel, LevelIsJournaledAndReported) {
  for (std::string reported : {"", "none"}) {
    SCOPED_TRACE("report " + reported);
    HealthLakeLocalOptions h;
    if (!reported.empty()) h.extra_args = {"--report-validation-level", reported};
    Env env(h);
    int64_t id = env.uploaded_export("lvl-ok", {{"Patient", patients(0, 3)}});
    env.make_importer(env.options());
    env.importer->kick(id);
    env.run_to(id, {ExportState::parked, ExportState::imported, ExportState::import_failed});
    ASSERT_EQ(env.state(id), ExportState::imported) << env.journal->get_export(id).parked_reason;
    auto job = *env.journal->import_job(id);
    EXPECT_EQ(job.validation_level, "structure-only");
    EXPECT_EQ(job.reported_level, reported.empty() ? "structure-only" : "");
    auto report = slurp(env.dir / "spool" / "lvl-ok" / "import-report.json");
    EXPECT_NE(report.find("\"validation_level\":\"structure-only\""), std::string::npos) << report;
    EXPECT_NE(report.find(std::string("\"reported_validation_level\":\"") +
                          (reported.empty() ? "structure-only" : "") + "\""),
              std::string::npos)
        << report;
    auto rows = journal::read_status(*env.journal);
    auto table = journal::format_status_table(rows);
    EXPECT_NE(table.find(reported.empty() ? "structure-only" : "structure-only (not reported)"),
              std::string::npos)
        << table;
    auto json = journal::format_status_json(rows, env.journal->schema_version());
    EXPECT_NE(json.find(reported.empty() ? "\"validation_level_match\":true"
                                         : "\"reported_validation_level\":null"),
              std::string::npos)
        << json;
  }
}

// ---- issue 17 item 3: job progress and a FAILED job's reason in `fhir-edge status` ----

// A job HealthLake FAILED (its output bucket does not exist): the export ends import_failed, and
// HealthLake's Message is its last error in the journal, in `status` (text and --json) and in
// import-report.json.
TEST(ImportStatus, FailedJobMessageIsTheLastError) {
  Env env;
  int64_t id = env.uploaded_export("failing", {{"Patient", patients(0, 3)}});
  auto o = env.options();
  o.targets[0].output_s3_uri = "s3://no-such-results-bucket/imports";
  env.make_importer(o);
  env.importer->kick(id);
  env.run_to(id, {ExportState::parked, ExportState::imported, ExportState::import_failed});
  auto e = env.journal->get_export(id);
  ASSERT_EQ(e.state, ExportState::import_failed) << e.parked_reason;
  auto job = *env.journal->import_job(id);
  EXPECT_EQ(job.status, "FAILED");
  const std::string msg = "Output S3 bucket no-such-results-bucket does not exist";
  EXPECT_NE(job.message.find(msg), std::string::npos) << job.message;
  EXPECT_EQ(e.last_error.rfind("import FAILED: " + job.message, 0), 0u) << e.last_error;
  EXPECT_NE(slurp(env.dir / "spool" / "failing" / "import-report.json").find(msg),
            std::string::npos);

  auto db = (env.dir / "journal.db").string();
  auto text = fhir_edge("status --journal " + db);
  ASSERT_EQ(text.code, 0) << text.out;
  EXPECT_NE(text.out.find("import FAILED: " + msg), std::string::npos) << text.out;
  auto js = fhir_edge("status --json --journal " + db);
  ASSERT_EQ(js.code, 0) << js.out;
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  ASSERT_EQ(p.parse(js.out).get(doc), simdjson::SUCCESS) << js.out;
  auto x = doc["exports"].at(0);
  EXPECT_EQ(std::string_view(x["last_error"]), e.last_error);
  EXPECT_EQ(std::string_view(x["import_job"]["message"]), job.message);
  EXPECT_EQ(std::string_view(x["import_job"]["status"]), "FAILED");
}

// The JobProgressReport HealthLake sent is in `status`: resources scanned, imported and failed,
// and the throughput, as the table's PROGRESS column and as import_progress / progress in --json.
TEST(ImportStatus, JobProgressIsShown) {
  Env env;
  std::string body = patients(0, 8) +
                     "{\"resourceType\":\"Patient\",\"id\":\"bad\",\"gender\":1}\n" +
                     "{\"resourceType\":\"Patient\",\"id\":\"bad2\",\"birthDate\":\"x\"}\n";
  int64_t id = env.uploaded_export("progress", {{"Patient", body}});
  env.make_importer(env.options());
  env.importer->kick(id);
  env.run_to(id, {ExportState::parked, ExportState::imported, ExportState::import_failed});
  ASSERT_EQ(env.state(id), ExportState::imported) << env.journal->get_export(id).last_error;
  auto progress = env.journal->import_job(id)->progress_json;
  simdjson::dom::parser pp;
  double throughput = -1;
  ASSERT_EQ(pp.parse(progress)["Throughput"].get_double().get(throughput), simdjson::SUCCESS)
      << progress;

  auto db = (env.dir / "journal.db").string();
  auto text = fhir_edge("status --journal " + db);
  ASSERT_EQ(text.code, 0) << text.out;
  EXPECT_NE(text.out.find("PROGRESS"), std::string::npos) << text.out;
  EXPECT_NE(text.out.find("10 scanned, 8 imported, 2 failed, "), std::string::npos) << text.out;
  EXPECT_NE(text.out.find(" MB/s"), std::string::npos) << text.out;
  auto js = fhir_edge("status --json --journal " + db);
  ASSERT_EQ(js.code, 0) << js.out;
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  ASSERT_EQ(p.parse(js.out).get(doc), simdjson::SUCCESS) << js.out;
  auto x = doc["exports"].at(0);
  for (auto pr : {x["import_progress"], x["import_job"]["progress"]}) {
    EXPECT_EQ(int64_t(pr["resources_scanned"]), 10);
    EXPECT_EQ(int64_t(pr["resources_imported"]), 8);
    EXPECT_EQ(int64_t(pr["resources_failed"]), 2);
    EXPECT_EQ(int64_t(pr["files_scanned"]), 1);
    // HealthLake's Throughput as it was journaled (the emulator's may round to 0 under load).
    EXPECT_DOUBLE_EQ(double(pr["throughput_mb_per_s"]), throughput);
  }
}

// ---- batches (issue 16 item 2, docs/import.md "Batches") ----

namespace {

// Exports in `uploaded` with their import keys journaled as the upload stage does.
std::vector<int64_t> uploaded_batchable(Env& env, int n, int per_export) {
  std::vector<int64_t> ids;
  for (int i = 0; i < n; ++i)
    ids.push_back(env.uploaded_export(
        "nightly" + std::to_string(i),
        {{"Patient", patients(i * 1000, per_export)}, {"Patient2", patients(i * 1000 + 500, 2)}},
        /*max_files_per_job=*/1000));
  return ids;
}

import::ImporterOptions batching(Env& env, std::chrono::milliseconds wait){auto o = env.options();
o.batch.max_exports = 100;
o.batch.max_wait = wait;
o.events = &env.events;
return o;
}  // namespace

// Every export imported with its own report, each resource of all of them imported once.
void expect_each_imported_once(Env& env, const std::vector<int64_t>& ids, int per_export) {
  for (auto id : ids) {
    auto e = env.journal->get_export(id);
    ASSERT_EQ(e.state, ExportState::imported) << e.name << ": " << e.parked_reason << e.last_error;
    auto report = slurp(env.dir / "spool" / e.name / "import-report.json");
    // Its own counts, not the whole job's manifest.
    EXPECT_NE(report.find("\"resources_imported\":" + std::to_string(per_export + 2)),
              std::string::npos)
        << e.name << ": " << report;
    EXPECT_NE(report.find("\"export\":\"" + e.name + "\""), std::string::npos) << report;
    // Per file (a batch member's files are named <export>/<File> below the batch prefix).
    EXPECT_NE(report.find("Patient.ndjson\":{\"imported\":" + std::to_string(per_export)),
              std::string::npos)
        << report;
  }
  auto res = env.imported_resources();
  EXPECT_EQ(res.size(), ids.size() * static_cast<size_t>(per_export + 2));
  for (const auto& [k, n] : res) EXPECT_EQ(n, 1u) << k << " imported " << n << " times";
}

}  // namespace

// HealthLake's quota (one running import per account, healthlake-local's default --import-slots
// account) and a fixed per-job overhead: six exports that arrive while the first one's job runs
// go into ONE second job, not five more.
TEST(ImportBatch, ExportsWaitingForTheSlotShareOneJob) {
  HealthLakeLocalOptions hopt;
  hopt.job_timing = "submitted=0.05s,queued=0.05s,run=0.8s";
  Env env(hopt);
  auto ids = uploaded_batchable(env, 6, 5);
  std::vector<int64_t> imported_events;
  env.events.on(ExportEvent::imported, [&](int64_t id) { imported_events.push_back(id); });
  env.make_importer(batching(env, std::chrono::milliseconds(0)));
  for (auto id : ids) env.importer->kick(id);
  // The slot was free for the first: it went alone; the others wait for the slot.
  EXPECT_EQ(env.state(ids[0]), ExportState::import_starting);
  for (size_t i = 1; i < ids.size(); ++i) EXPECT_EQ(env.state(ids[i]), ExportState::uploaded);
  env.run_until([&] {
    for (auto id : ids)
      if (!std::set<ExportState>{ExportState::imported, ExportState::import_failed,
                                 ExportState::parked}
               .count(env.state(id)))
        return false;
    return true;
  });
  expect_each_imported_once(env, ids, 5);
  EXPECT_EQ(env.started_job_ids().size(), 2u);  // 6 exports, 2 jobs
  EXPECT_EQ(env.importer->stats().batches, 1u);
  EXPECT_EQ(env.count_ops("CopyObject"), 10u);  // 5 members x 2 files, copied server-side
  // The members share one job, token and name; the first export kept its own.
  auto first = env.journal->import_job(ids[0]);
  auto b = env.journal->batch_of(ids[1]);
  ASSERT_TRUE(b);
  EXPECT_EQ(b->members, std::vector<int64_t>(ids.begin() + 1, ids.end()));
  EXPECT_FALSE(env.journal->batch_of(ids[0]));
  for (size_t i = 1; i < ids.size(); ++i) {
    auto j = env.journal->import_job(ids[i]);
    EXPECT_EQ(j->client_token, b->client_token);
    EXPECT_EQ(j->job_name, b->job_name);
    EXPECT_EQ(j->input_uri, b->input_uri);
    EXPECT_NE(j->job_id, first->job_id);
    EXPECT_EQ(j->job_id, env.journal->import_job(ids[1])->job_id);
  }
  EXPECT_EQ(imported_events.size(), ids.size());  // after_upload runs per export
}

// With batching off (max_exports 1) the same exports make one job each, as before.
TEST(ImportBatch, BatchingOffIsOneJobPerExport) {
  Env env;
  auto ids = uploaded_batchable(env, 3, 4);
  env.make_importer(env.options());
  for (auto id : ids) env.importer->kick(id);
  for (auto id : ids)
    env.run_to(id, {ExportState::imported, ExportState::import_failed, ExportState::parked});
  expect_each_imported_once(env, ids, 4);
  EXPECT_EQ(env.started_job_ids().size(), 3u);
  EXPECT_EQ(env.count_ops("CopyObject"), 0u);
}

// A crash at any point of a batch's start: the batch is journaled before anything is copied or
// sent, so the restarted importer copies again (idempotent), asks ListFHIRImportJobs, and sends
// Start only with the batch's one token: one job for the batch, each export in it once.
TEST(ImportBatch, CrashDuringBatchStartMakesExactlyOneJob) {
  for (int wait_ms : {0, 30, 120}) {
    SCOPED_TRACE("crash " + std::to_string(wait_ms) + " ms after the batch was journaled");
    Env env;
    auto ids = uploaded_batchable(env, 3, 6);
    // The first export waits up to 200 ms for others while the slot is free.
    env.make_importer(batching(env, std::chrono::milliseconds(200)));
    for (auto id : ids) env.importer->kick(id);
    EXPECT_EQ(env.state(ids[0]), ExportState::uploaded);  // waiting for partners
    env.run_until([&] { return env.state(ids[0]) == ExportState::import_starting; });
    auto token = env.journal->batch_of(ids[0])->client_token;
    auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
    while (std::chrono::steady_clock::now() < until)
      env.io.run_one_for(std::chrono::milliseconds(5));
    env.importer.reset();  // "crash"

    env.make_importer(batching(env, std::chrono::milliseconds(200)));
    env.importer->resume();
    env.run_until([&] {
      for (auto id : ids)
        if (!std::set<ExportState>{ExportState::imported, ExportState::import_failed,
                                   ExportState::parked}
                 .count(env.state(id)))
          return false;
      return true;
    });
    expect_each_imported_once(env, ids, 6);
    EXPECT_EQ(env.started_job_ids().size(), 1u);
    for (const auto& t : env.start_tokens()) EXPECT_EQ(t, token);
    for (auto id : ids) EXPECT_EQ(env.journal->batch_of(id)->client_token, token);
  }
}
