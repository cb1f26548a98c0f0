// The CLI's top-level contract: --version, --help, unknown commands and their exit codes.
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <string>

#include "version.hpp"

namespace {

struct Result {
  int code;
  std::string out;
};

Result run(const std::string& args) {
  std::string cmd = std::string(FE_EXE) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

TEST(Cli, VersionPrintsProjectVersion) {
  auto r = run("--version");
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, std::string("fhir-edge ") + fe::kVersion + "\n");
}

TEST(Cli, HelpListsCommandsAndExitsZero) {
  auto r = run("--help");
  EXPECT_EQ(r.code, 0);
  for (const char* c : {"run", "check-config", "validate", "status", "retry", "journal compact"})
    EXPECT_NE(r.out.find(c), std::string::npos) << c;
}

TEST(Cli, UnknownCommandIsAUsageError) {
  auto r = run("frobnicate");
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.out.find("unknown command 'frobnicate'"), std::string::npos);
}

TEST(Cli, NoArgumentsIsAUsageError) {
  EXPECT_EQ(run("").code, 2);
}

// retry / journal compact: usage errors are 2, a missing journal is 1 (the checked thing failed);
// their behaviour on real journals is tests/unit/journal and tests/integration/import.
TEST(Cli, RetryAndJournalUsage) {
  auto help = run("retry --help");
  EXPECT_EQ(help.code, 0);
  EXPECT_NE(help.out.find("--reimport"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("SAME ClientToken"), std::string::npos) << help.out;
  auto none = run("retry --journal /nonexistent/journal.db");
  EXPECT_EQ(none.code, 2);
  EXPECT_NE(none.out.find("which export?"), std::string::npos) << none.out;
  EXPECT_EQ(run("retry a b").code, 2);
  EXPECT_EQ(run("retry a --journal x --config y").code, 2);
  auto missing = run("retry a --journal /nonexistent/journal.db");
  EXPECT_EQ(missing.code, 1);
  EXPECT_NE(missing.out.find("does not exist"), std::string::npos) << missing.out;
  EXPECT_EQ(run("journal --help").code, 0);
  EXPECT_EQ(run("journal").code, 2);
  EXPECT_EQ(run("journal vacuum").code, 2);
  auto no_age = run("journal compact --journal /nonexistent/journal.db");
  EXPECT_EQ(no_age.code, 2);
  EXPECT_NE(no_age.out.find("--older-than AGE is required"), std::string::npos) << no_age.out;
  auto bad_age = run("journal compact --older-than soon --journal /nonexistent/journal.db");
  EXPECT_EQ(bad_age.code, 2);
  EXPECT_NE(bad_age.out.find("soon"), std::string::npos) << bad_age.out;
  EXPECT_EQ(run("journal compact --older-than 90d --journal /nonexistent/journal.db").code, 1);
}

}  // namespace
