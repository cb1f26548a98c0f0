// Issue 17, item 10: `fhir-edge validate` on a terminal. Run under a pseudo-terminal (script(1)):
// a progress line with bytes, resources per second and ETA, erased before every issue line (an
// issue line never starts after bar text), coloured unless NO_COLOR is set; piped, no progress
// and no escape sequences at all. In a directory, log.ndjson and manifest.json are skipped with a
// note; identical warnings are printed once with their count.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/wait.h>

#include <cstdio>
#include <sstream>
#include <string>

#include "temp_dir.hpp"

namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::string capture(const std::string& cmd, int& code) {
  FILE* p = ::popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  int status = ::pclose(p);
  code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return out;
}

const std::string kGood = R"({"resourceType":"Patient","id":"a","gender":"male"})";
const std::string kBad = R"({"resourceType":"Patient","id":"b","gender":"boy"})";
const std::string kWarned =
    R"({"resourceType":"Patient","meta":{"profile":["http://example.org/p"]},"gender":"male"})";

class ValidateTerminal : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_.write("export/Patient.ndjson", kGood + "\n" + kBad + "\n" + kGood + "\n" + kBad + "\n");
    dir_.write("export/Observation.ndjson", kGood + "\n");
    // What a bulk-data client writes next to the resources: not resources.
    dir_.write("export/log.ndjson", R"({"fileUrl":"x","message":"done"})"
                                    "\n");
    dir_.write("export/manifest.json", R"({"transactionTime":"2026-01-01T00:00:00Z"})");
  }
  // Under a pseudo-terminal: stdout and stderr are the terminal (script merges them).
  std::string on_terminal(const std::string& args, const std::string& env, int& code) {
    std::string inner = env + " TERM=xterm " + FE_EXE + " validate " + args;
    return capture("script -qec '" + inner + "' /dev/null </dev/null", code);
  }
  fe::test::TempDir dir_{"fe-vt"};
};

TEST_F(ValidateTerminal, ProgressOnATerminalIsErasedBeforeEachIssue) {
  int code = -1;
  std::string out = on_terminal((dir_ / "export").string(), "env -u NO_COLOR", code);
  EXPECT_EQ(code, 1) << out;
  // The progress line: bar, bytes of the total, rate, ETA, the file.
  EXPECT_THAT(out, HasSubstr("resources/s  ETA ")) << out;
  EXPECT_THAT(out, ::testing::ContainsRegex(" [0-9.]+ (B|KB) / [0-9.]+ (B|KB) ")) << out;
  EXPECT_THAT(out, HasSubstr("(1/2) ")) << out;
  EXPECT_THAT(out, HasSubstr("\033[32m")) << out;  // the bar is coloured
  // Every issue line starts clean: after the erase (\r ESC[K) comes the file name, no bar text.
  std::istringstream lines(out);
  int issues = 0;
  for (std::string line; std::getline(lines, line);) {
    auto at = line.find(": error Patient.gender");
    if (at == std::string::npos) continue;
    ++issues;
    // What the terminal shows of the line: what follows the last carriage return (the pty
    // turns "\n" into "\r\n"), with the erase-line sequence; the bar before it was erased.
    if (line.ends_with('\r')) line.pop_back();
    size_t cr = line.rfind('\r');
    std::string shown = cr == std::string::npos ? line : line.substr(cr + 1);
    if (cr != std::string::npos) {
      EXPECT_THAT(shown, ::testing::StartsWith("\033[K")) << line;  // erased, not overprinted
      shown.erase(0, 3);
    }
    EXPECT_THAT(shown, ::testing::StartsWith((dir_ / "export/Patient.ndjson").string())) << line;
  }
  EXPECT_EQ(issues, 2) << out;
  // The summary is not glued to the bar either.
  EXPECT_THAT(out, ::testing::ContainsRegex("(^|\n|\033\\[K)2 file\\(s\\), ")) << out;
  // log.ndjson and manifest.json: skipped, with a note, not validated.
  EXPECT_THAT(out, HasSubstr("note: skipped " + (dir_ / "export/log.ndjson").string() +
                             " (the bulk-data client's log, not FHIR resources)"));
  EXPECT_THAT(out, HasSubstr("note: skipped " + (dir_ / "export/manifest.json").string()));
  EXPECT_THAT(out, Not(HasSubstr("log.ndjson:1")));
  EXPECT_THAT(out, Not(HasSubstr("manifest.json:1")));
}

TEST_F(ValidateTerminal, NoColorKeepsTheProgressWithoutColour) {
  int code = -1;
  std::string out = on_terminal((dir_ / "export").string(), "NO_COLOR=1", code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, HasSubstr("resources/s  ETA ")) << out;
  EXPECT_THAT(out, Not(HasSubstr("\033[32m"))) << out;
  EXPECT_THAT(out, Not(HasSubstr("\033[0m"))) << out;
}

TEST_F(ValidateTerminal, PipedOutputHasNoProgressAndNoEscapes) {
  int code = -1;
  std::string out = capture(std::string("env -u NO_COLOR TERM=xterm ") + FE_EXE + " validate " +
                                (dir_ / "export").string() + " 2>&1 </dev/null",
                            code);
  EXPECT_EQ(code, 1) << out;
  EXPECT_THAT(out, Not(HasSubstr("\r"))) << out;
  EXPECT_THAT(out, Not(HasSubstr("\033"))) << out;
  EXPECT_THAT(out, Not(HasSubstr("ETA"))) << out;
  EXPECT_THAT(out, HasSubstr("note: skipped " + (dir_ / "export/log.ndjson").string()));
  EXPECT_THAT(out, HasSubstr("5 resources: 3 valid, 2 invalid")) << out;
  // A file named on the command line is validated whatever its name.
  std::string direct = capture(
      std::string(FE_EXE) + " validate " + (dir_ / "export/log.ndjson").string() + " 2>&1", code);
  EXPECT_THAT(direct, Not(HasSubstr("note: skipped"))) << direct;
  EXPECT_THAT(direct, HasSubstr("1 resources")) << direct;
}

TEST_F(ValidateTerminal, IdenticalWarningsAreCountedOnATerminal) {
  std::string f = dir_.write("w.ndjson", kWarned + "\n" + kWarned + "\n" + kWarned + "\n");
  int code = -1;
  std::string out = on_terminal("--level strict " + f, "NO_COLOR=1", code);
  EXPECT_EQ(code, 0) << out;
  size_t n = 0;
  for (size_t p = 0;
       (p = out.find("profile http://example.org/p is not loaded", p)) != std::string::npos; p++)
    n++;
  EXPECT_EQ(n, 1u) << out;
  EXPECT_THAT(out, HasSubstr("(x 3)")) << out;
}

}  // namespace
