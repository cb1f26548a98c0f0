// The Reconciler (import/reconciler.hpp) against a small in-memory OutputReader: manifest.json,
// FAILURE/ and SUCCESS/ lines into ImportOutcome counts and reasons, the line and reason limits,
// and the retry of an unreadable manifest. Objects are delivered in small chunks and listings in
// pages of two, so lines split across chunks and truncated listings are exercised too.
#include "import/reconciler.hpp"

#include <gtest/gtest.h>

#include <map>
#include <optional>

using namespace fe;
using namespace fe::import;

namespace {

constexpr const char* kDir = "out/DS-FHIR_IMPORT-J1/";

class FakeReader : public OutputReader {
 public:
  std::map<std::string, std::string> objects;
  std::map<std::string, aws::ErrorCategory> failing;  // key → error returned by GetObject
  std::size_t chunk = 7;
  int gets = 0, lists = 0;

  void get_object(aws::GetObjectRequest req,
                  std::function<void(aws::S3Result<aws::GetObjectResult>)> done) override {
    ++gets;
    aws::S3Result<aws::GetObjectResult> r;
    r.context = "GET " + req.key;
    if (auto f = failing.find(req.key); f != failing.end()) {
      aws::AwsError e;
      e.category = f->second;
      e.code = "Fake";
      r.error = e;
      return done(std::move(r));
    }
    auto it = objects.find(req.key);
    if (it == objects.end()) {
      aws::AwsError e;
      e.http_status = 404;
      e.code = "NoSuchKey";
      e.category = aws::ErrorCategory::not_found;
      r.error = e;
      return done(std::move(r));
    }
    std::string_view body = it->second;
    for (std::size_t at = 0; at < body.size(); at += chunk)
      if (!req.sink(body.substr(at, chunk))) break;
    r.value = aws::GetObjectResult{body.size(), "", ""};
    done(std::move(r));
  }

  void list_objects_v2(aws::ListObjectsRequest req,
                       std::function<void(aws::S3Result<aws::ListObjectsResult>)> done) override {
    ++lists;
    aws::ListObjectsResult page;
    auto it = req.continuation_token.empty() ? objects.lower_bound(req.prefix)
                                             : objects.upper_bound(req.continuation_token);
    for (; it != objects.end() && it->first.starts_with(req.prefix); ++it) {
      if (page.objects.size() == 2) {
        page.is_truncated = true;
        page.next_continuation_token = page.objects.back().key;
        break;
      }
      page.objects.push_back({it->first, it->second.size(), "", ""});
    }
    aws::S3Result<aws::ListObjectsResult> r;
    r.value = std::move(page);
    done(std::move(r));
  }
};

std::string failure_line(const std::string& diag, int line) {
  return R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"processing",)"
         R"("diagnostics":")" +
         diag +
         R"(","expression":["Patient.gender"],"extension":[{"url":)"
         R"("http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line",)"
         R"("valueInteger":)" +
         std::to_string(line) + "}]}]}";
}

ReconcileInput input(bool read_success = true) {
  ReconcileInput in;
  in.bucket = "results";
  in.dir = kDir;
  in.read_success = read_success;
  in.sources["Patient.ndjson"] = {11, "Patient.ndjson.gz", 5};
  in.sources["Observation.ndjson"] = {12, "Observation.ndjson", 3};
  // Import line N is source line N + 10 (ten rejected lines before it).
  in.source_line = [](std::int64_t file_id, std::int64_t line) {
    return file_id == 11 ? line + 10 : line;
  };
  return in;
}

std::optional<ImportOutcome> run(FakeReader& reader, ReconcileInput in, ReconcileLimits lim = {},
                                 std::function<bool()> live = {}) {
  std::optional<ImportOutcome> out;
  Reconciler::start(reader, std::move(in), lim, std::move(live),
                    [&](ImportOutcome o) { out = std::move(o); });
  return out;
}

const std::string kManifest =
    R"({"numberOfScannedFiles":2,"numberOfFilesImported":2,"numberOfResourcesScanned":8,)"
    R"("numberOfResourcesImportedSuccessfully":6,"numberOfResourcesWithCustomerError":2,)"
    R"("numberOfResourcesWithServerError":0,"sizeOfScannedFilesInMB":1.5})";

}  // namespace

TEST(Reconciler, ManifestFailureAndSuccessIntoCountsAndReasons) {
  FakeReader r;
  std::string d = kDir;
  r.objects[d + "manifest.json"] = kManifest;
  r.objects[d + "FAILURE/Patient.ndjson"] =
      failure_line("Patient.ndjson:2: gender is not a code", 2) + "\n" +
      failure_line("bad birthDate", 4) + "\n";
  r.objects[d + "SUCCESS/Patient.ndjson"] = "{\"a\":1}\n{\"a\":2}\n{\"a\":3}\n";
  r.objects[d + "SUCCESS/Observation.ndjson"] = "{}\n\n{}\n{}";  // blank line; no final newline
  auto o = run(r, input());
  ASSERT_TRUE(o);
  EXPECT_TRUE(o->retry_later.empty());
  EXPECT_EQ(o->output_error, "");
  EXPECT_TRUE(o->manifest.present);
  EXPECT_EQ(o->manifest.resources_scanned, 8);
  EXPECT_EQ(o->manifest.resources_imported, 6);
  EXPECT_EQ(o->manifest.customer_errors, 2);
  EXPECT_DOUBLE_EQ(o->manifest.scanned_mb, 1.5);
  EXPECT_EQ(o->failure_lines, 2);
  EXPECT_EQ(o->success_lines, 6);
  EXPECT_EQ(o->files["Patient.ndjson"].failed, 2);
  EXPECT_EQ(o->files["Patient.ndjson"].imported, 3);
  EXPECT_EQ(o->files["Observation.ndjson"].imported, 3);
  ASSERT_EQ(o->reasons.size(), 2u);
  // Named by the source file and its line, the object position stripped.
  EXPECT_EQ(
      o->reasons[0],
      "Patient.ndjson.gz:12: gender is not a code (at Patient.gender) (import object line 2)");
  EXPECT_EQ(o->reasons[1],
            "Patient.ndjson.gz:14: bad birthDate (at Patient.gender) (import object line 4)");
}

TEST(Reconciler, LineOverTheLimitIsCountedNotParsed) {
  FakeReader r;
  std::string d = kDir;
  r.objects[d + "manifest.json"] = kManifest;
  std::string huge = failure_line(std::string(500, 'x'), 1);
  r.objects[d + "FAILURE/Patient.ndjson"] = huge + "\n" + failure_line("short", 2) + "\n" + huge;
  ReconcileLimits lim;
  lim.max_line_bytes = 400;
  auto o = run(r, input(false), lim);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->failure_lines, 3);
  ASSERT_EQ(o->reasons.size(), 3u);
  EXPECT_EQ(o->reasons[0],
            "Patient.ndjson: failure record longer than the line limit (not parsed; see the "
            "FAILURE output)");
  EXPECT_NE(o->reasons[1].find("short"), std::string::npos);
  EXPECT_EQ(o->reasons[2], o->reasons[0]);  // the last one, without a final newline, too
  // SUCCESS/ not read: a file's imported count is its valid resources minus its failures.
  EXPECT_FALSE(o->read_success);
  EXPECT_EQ(o->success_lines, 0);
  EXPECT_EQ(o->files["Patient.ndjson"].imported, 2);
  EXPECT_EQ(o->files["Observation.ndjson"].imported, 3);
}

TEST(Reconciler, MaxReasonsKeepsTheFirstAndCountsAll) {
  FakeReader r;
  std::string d = kDir;
  for (int f = 0; f < 3; ++f) {  // three objects: more than one listing page
    std::string body;
    for (int i = 1; i <= 4; ++i) body += failure_line("e" + std::to_string(f * 10 + i), i) + "\n";
    r.objects[d + "FAILURE/F" + std::to_string(f) + ".ndjson"] = body;
  }
  ReconcileLimits lim;
  lim.max_reasons = 5;
  lim.max_reason_chars = 20;
  auto o = run(r, input(false), lim);
  ASSERT_TRUE(o);
  EXPECT_EQ(o->failure_lines, 12);
  ASSERT_EQ(o->reasons.size(), 5u);
  for (const auto& reason : o->reasons) EXPECT_LE(reason.size(), 23u) << reason;  // 20 + "..."
  EXPECT_EQ(o->reasons[0].substr(0, 14), "F0.ndjson: e1 ");
  // No manifest: recorded, not fatal.
  EXPECT_FALSE(o->manifest.present);
  EXPECT_NE(o->output_error.find("manifest.json"), std::string::npos);
  EXPECT_EQ(o->files.size(), 5u);  // F0..F2 + the two sources (valid - failed)
}

TEST(Reconciler, RetryableManifestErrorAsksForALaterRunAndReadsNothingElse) {
  FakeReader r;
  std::string d = kDir;
  r.failing[d + "manifest.json"] = aws::ErrorCategory::throttling;
  r.objects[d + "FAILURE/Patient.ndjson"] = failure_line("x", 1) + "\n";
  auto o = run(r, input());
  ASSERT_TRUE(o);
  EXPECT_FALSE(o->retry_later.empty());
  EXPECT_EQ(r.lists, 0);
  EXPECT_EQ(o->failure_lines, 0);
}

TEST(Reconciler, UnreadableObjectIsRecordedAndTheRestRead) {
  FakeReader r;
  std::string d = kDir;
  r.objects[d + "manifest.json"] = kManifest;
  r.objects[d + "FAILURE/A.ndjson"] = failure_line("a", 1) + "\n";
  r.objects[d + "FAILURE/B.ndjson"] = failure_line("b", 1) + "\n";
  r.failing[d + "FAILURE/A.ndjson"] = aws::ErrorCategory::auth;
  auto o = run(r, input(false));
  ASSERT_TRUE(o);
  EXPECT_NE(o->output_error.find("FAILURE/A.ndjson"), std::string::npos);
  EXPECT_EQ(o->failure_lines, 1);
  EXPECT_EQ(o->files["B.ndjson"].failed, 1);
}

TEST(Reconciler, StopsWithoutAnswerOnceNotLive) {
  FakeReader r;
  std::string d = kDir;
  r.objects[d + "manifest.json"] = kManifest;
  auto o = run(r, input(), {}, [] { return false; });
  EXPECT_FALSE(o);
  EXPECT_EQ(r.lists, 0);
}
