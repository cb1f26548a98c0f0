// `fhir-edge validate` as a user runs it: exit codes 0/1/2, text and OperationOutcome output.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include "temp_dir.hpp"

namespace {

namespace fs = std::filesystem;

struct CliRun {
  int code = -1;
  std::string out;  // stdout (stderr goes to err)
  std::string err;
};

CliRun run(const std::string& args) {
  static int n = 0;
  fs::path errf = fs::temp_directory_path() /
                  ("fe-cli-err-" + std::to_string(::getpid()) + "-" + std::to_string(n++));
  std::string cmd = std::string(FE_EXE) + " validate " + args + " 2>" + errf.string();
  CliRun r;
  FILE* p = ::popen(cmd.c_str(), "r");
  std::array<char, 4096> buf{};
  size_t got;
  while ((got = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.out.append(buf.data(), got);
  int status = ::pclose(p);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  std::ifstream in(errf);
  r.err.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  fs::remove(errf);
  return r;
}

using Dir = fe::test::TempDir;

const char* kGood = R"({"resourceType":"Patient","id":"a","gender":"male"})";
const char* kBad = R"({"resourceType":"Patient","id":"b","gender":"boy"})";

TEST(CliValidate, AllValidExitsZero) {
  Dir d;
  std::string f = d.write("ok.ndjson", std::string(kGood) + "\n" + kGood + "\n");
  CliRun r = run(f);
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_NE(r.err.find("2 resources: 2 valid, 0 invalid"), std::string::npos) << r.err;
}

TEST(CliValidate, InvalidExitsOneWithFileLinePath) {
  Dir d;
  std::string f = d.write("mixed.ndjson", std::string(kGood) + "\r\n" + kBad + "\n");
  CliRun r = run(f);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find(f + ":2: error Patient.gender: code 'boy'"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("1 invalid"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("code-invalid=1"), std::string::npos) << r.err;
}

TEST(CliValidate, JsonFormatIsOperationOutcomeNdjson) {
  Dir d;
  std::string f = d.write("x.ndjson", std::string(kBad) + "\n" + kGood + "\n" + kBad + "\n");
  CliRun r = run("--format json " + f);
  EXPECT_EQ(r.code, 1);
  simdjson::dom::parser parser;
  size_t lines = 0;
  size_t start = 0;
  while (start < r.out.size()) {
    size_t nl = r.out.find('\n', start);
    std::string line = r.out.substr(start, nl - start);
    start = nl + 1;
    simdjson::dom::element doc;
    ASSERT_EQ(parser.parse(line).get(doc), simdjson::SUCCESS) << line;
    EXPECT_EQ(std::string_view(doc["resourceType"]), "OperationOutcome");
    lines++;
  }
  EXPECT_EQ(lines, 2u);
}

TEST(CliValidate, MaxErrorsLimitsOutputNotCounting) {
  Dir d;
  std::string content;
  for (int i = 0; i < 5; i++) content += std::string(kBad) + "\n";
  std::string f = d.write("bad.ndjson", content);
  CliRun r = run("--max-errors 2 " + f);
  EXPECT_EQ(r.code, 1);
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), 2);
  EXPECT_NE(r.err.find("5 invalid"), std::string::npos) << r.err;
}

TEST(CliValidate, LevelsAndDirectories) {
  Dir d;
  d.write("a.ndjson", R"({"resourceType":"Patient","foo":1})"
                      "\n");
  d.write("skip.txt", "not fhir");
  EXPECT_EQ(run("--level minimal " + d.path().string()).code, 0);
  CliRun r = run("--level structure-only " + d.path().string());
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("unknown element 'foo'"), std::string::npos) << r.out;
}

TEST(CliValidate, StandardInput) {
  Dir d;
  std::string f = d.write("in.ndjson", std::string(kGood) + "\n" + kBad + "\n");
  CliRun r = run("- < " + f);
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("/dev/stdin:2: error Patient.gender"), std::string::npos) << r.out;
}

// strict evaluates the FHIRPath invariants: a Period ending before it starts (per-1) is an error
// with the key, the path and the line; the summary counts evaluated / failed / not evaluated.
TEST(CliValidate, StrictEvaluatesInvariants) {
  Dir d;
  std::string f =
      d.write("period.ndjson",
              std::string(kGood) + "\n" +
                  R"({"resourceType":"Encounter","status":"finished","class":{"code":"x"},)"
                  R"("period":{"start":"2020-02-01","end":"2020-01-01"}})" +
                  "\n");
  CliRun r = run("--level strict " + f);
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.out.find(f + ":2: error Encounter.period: per-1: "), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("FHIRPath invariants: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find(" evaluated, 1 failed, 0 not evaluated"), std::string::npos) << r.err;
  CliRun so = run("--level structure-only " + f);
  EXPECT_EQ(so.code, 0) << so.err;
  EXPECT_NE(so.err.find("not evaluated at structure-only"), std::string::npos) << so.err;
}

// Codes of code systems that need a terminology server are counted per system in the summary
// (never one warning per resource, never "valid" in silence).
TEST(CliValidate, StrictCountsCodesNotCheckedBySystem) {
  Dir d;
  const std::string obs =
      R"({"resourceType":"Observation","status":"final","code":{"coding":[{"system":"http://loinc.org","code":"8310-5"}]}})";
  std::string f = d.write("obs.ndjson", obs + "\n" + obs + "\n");
  CliRun r = run("--level strict " + f);
  EXPECT_EQ(r.code, 0) << r.out << r.err;
  EXPECT_TRUE(r.out.empty()) << r.out;
  EXPECT_NE(r.err.find("codes not checked (need a terminology server): http://loinc.org=2"),
            std::string::npos)
      << r.err;
}

// Identical warnings (same code and message: a profile that is not loaded, on every resource
// declaring it) are printed once in the text output, after the resources, at their first
// location with their count; errors
// stay one line each, and the JSON output keeps every issue of the resources it reports.
TEST(CliValidate, IdenticalWarningsArePrintedOnceWithACount) {
  Dir d;
  const std::string warned =
      R"({"resourceType":"Patient","meta":{"profile":["http://example.org/p"]},"gender":"male"})";
  const std::string bad =
      R"({"resourceType":"Patient","meta":{"profile":["http://example.org/p"]},"gender":"boy"})";
  std::string f = d.write("w.ndjson", warned + "\n" + warned + "\n" + bad + "\n" + warned + "\n");
  CliRun r = run("--level strict " + f);
  EXPECT_EQ(r.code, 1) << r.err;
  const std::string w =
      f + ":1: warning Patient.meta.profile: profile http://example.org/p is not loaded";
  const size_t at = r.out.find(w);
  ASSERT_NE(at, std::string::npos) << r.out;
  EXPECT_NE(r.out.find("validated against R4 only (x 4)\n", at), std::string::npos) << r.out;
  size_t n = 0;
  for (size_t p = 0; (p = r.out.find("http://example.org/p", p)) != std::string::npos; p++) n++;
  EXPECT_EQ(n, 1u) << r.out;
  EXPECT_NE(r.out.find(f + ":3: error Patient.gender: code 'boy'"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("not-supported=4"), std::string::npos) << r.err;
  CliRun j = run("--level strict --format json " + f);
  EXPECT_NE(j.out.find("http://example.org/p"), std::string::npos) << j.out;  // the invalid one's
  CliRun one = run("--level strict " + d.write("one.ndjson", warned + "\n"));
  EXPECT_EQ(one.out.find("(x "), std::string::npos) << one.out;  // a single one has no count
}

TEST(CliValidate, UsageErrorsExitTwo) {
  EXPECT_EQ(run("").code, 2);
  EXPECT_EQ(run("--level lenient x.ndjson").code, 2);
  EXPECT_EQ(run("--format xml x.ndjson").code, 2);
  EXPECT_EQ(run("--max-errors -1 x.ndjson").code, 2);
  EXPECT_EQ(run("/nonexistent/fe/x.ndjson").code, 2);
  CliRun r = run("--level strict --package /nonexistent/pkg.tgz /dev/null");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("/nonexistent/pkg.tgz"), std::string::npos) << r.err;
  CliRun h = run("--help");
  EXPECT_EQ(h.code, 0);
  EXPECT_NE(h.out.find("structure-only"), std::string::npos);
}

// A folder of gzip / zstd exports is validated (before: "0 file(s)", exit 0, nothing read).
TEST(CliValidate, CompressedNdjsonIsValidated) {
  Dir d;
  d.write("Patient.ndjson", std::string(kGood) + "\n" + kBad + "\n");
  d.write("Other.ndjson", std::string(kGood) + "\n");
  ASSERT_EQ(std::system(("gzip " + (d.path() / "Patient.ndjson").string()).c_str()), 0);
  ASSERT_EQ(std::system(("zstd -q --rm " + (d.path() / "Other.ndjson").string()).c_str()), 0);
  ASSERT_TRUE(fs::exists(d.path() / "Patient.ndjson.gz"));
  ASSERT_TRUE(fs::exists(d.path() / "Other.ndjson.zst"));
  CliRun r = run(d.path().string());
  EXPECT_EQ(r.code, 1) << r.err;
  EXPECT_NE(r.err.find("2 file(s)"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("3 resources: 2 valid, 1 invalid"), std::string::npos) << r.err;
  EXPECT_NE(r.out.find("Patient.ndjson.gz:2: error Patient.gender"), std::string::npos) << r.out;
}

// Nothing to validate is not "all valid": exit 2 with the reason.
TEST(CliValidate, NothingToValidateExitsTwo) {
  Dir d;
  d.write("notes.txt", "not fhir");
  CliRun r = run(d.path().string());
  EXPECT_EQ(r.code, 2) << r.err;
  EXPECT_NE(r.err.find("nothing to validate"), std::string::npos) << r.err;
}

}  // namespace
