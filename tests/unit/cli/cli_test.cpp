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
  for (const char* c : {"run", "check-config", "validate", "status"})
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

}  // namespace
