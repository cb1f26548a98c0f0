// The shipped unit files: `systemd-analyze verify` is silent, the hardening exposure is low
// (printed), and the sysusers/tmpfiles snippets do what they say in a scratch root.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <regex>

#include "harness.hpp"

namespace {

using namespace fe::test;

struct Run {
  int code;
  std::string out, err;
};

Run run(const std::string& cmd, const fs::path& dir) {
  fs::path out = dir / "out.txt", err = dir / "err.txt";
  int status = std::system((cmd + " >" + out.string() + " 2>" + err.string()).c_str());
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, read_file(out), read_file(err)};
}

bool have(const char* tool) {
  return std::system((std::string("command -v ") + tool + " >/dev/null 2>&1").c_str()) == 0;
}

// The unit with ExecStart pointing at this build's binary (verify needs it to exist).
fs::path unit_for_build(const fs::path& dir) {
  std::string unit = read_file(std::string(FE_SOURCE_DIR) + "/systemd/fhir-edge.service");
  EXPECT_FALSE(unit.empty());
  std::string from = "/usr/local/bin/fhir-edge";
  for (size_t p; (p = unit.find(from)) != std::string::npos;) unit.replace(p, from.size(), FE_EXE);
  fs::path out = dir / "fhir-edge.service";
  write_file(out, unit);
  return out;
}

TEST(SystemdUnit, VerifyHasNoWarnings) {
  if (!have("systemd-analyze")) GTEST_SKIP() << "systemd-analyze is not installed";
  TempDir dir;
  auto unit = unit_for_build(dir.path());
  auto r = run("systemd-analyze verify " + unit.string(), dir.path());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.err, "");  // unknown keys and bad values only warn, so stderr must be empty
}

TEST(SystemdUnit, ServiceIsNotifyTypeWithWatchdogAndReload) {
  std::string unit = read_file(std::string(FE_SOURCE_DIR) + "/systemd/fhir-edge.service");
  for (const char* line :
       {"Type=notify\n", "NotifyAccess=main\n", "ExecReload=/bin/kill -HUP $MAINPID\n",
        "Restart=on-failure\n", "StateDirectory=fhir-edge\n", "ConfigurationDirectory=fhir-edge\n",
        "User=fhir-edge\n"})
    EXPECT_THAT(unit, ::testing::HasSubstr(line));
  EXPECT_THAT(unit, ::testing::ContainsRegex("\nWatchdogSec=[0-9]+s\n"));
  EXPECT_THAT(unit, ::testing::ContainsRegex("\nExecStartPre=[^\n]* check-config --config "));
}

TEST(SystemdUnit, SecurityExposureAtMostOnePointFive) {
  if (!have("systemd-analyze")) GTEST_SKIP() << "systemd-analyze is not installed";
  TempDir dir;
  auto unit = unit_for_build(dir.path());
  auto r = run("systemd-analyze security --offline=true --no-pager " + unit.string(), dir.path());
  std::smatch m;
  std::regex overall("Overall exposure level for fhir-edge\\.service: ([0-9]+\\.[0-9])");
  ASSERT_TRUE(std::regex_search(r.out, m, overall)) << r.out << r.err;
  double exposure = std::stod(m[1].str());
  std::printf("systemd-analyze security --offline=true: exposure %.1f\n", exposure);
  RecordProperty("exposure", m[1].str());
  EXPECT_LE(exposure, 1.5) << r.out;
}

TEST(SystemdUnit, SysusersAndTmpfilesCreateUserAndWatchRoot) {
  if (!have("systemd-sysusers") || !have("systemd-tmpfiles"))
    GTEST_SKIP() << "systemd-sysusers/systemd-tmpfiles are not installed";
  TempDir dir;
  fs::path root = dir.path() / "root";
  fs::create_directories(root / "etc");
  std::string src = FE_SOURCE_DIR;
  auto u =
      run("systemd-sysusers --root=" + root.string() + " " + src + "/systemd/fhir-edge.sysusers",
          dir.path());
  ASSERT_EQ(u.code, 0) << u.err;
  std::string passwd = read_file(root / "etc/passwd");
  EXPECT_THAT(passwd,
              ::testing::ContainsRegex(
                  "(^|\n)fhir-edge:x:[0-9]+:[0-9]+:[^:]*:/var/lib/fhir-edge:/usr/sbin/nologin\n"));
  auto t = run("systemd-tmpfiles --root=" + root.string() + " --create " + src +
                   "/systemd/fhir-edge.tmpfiles",
               dir.path());
  ASSERT_EQ(t.code, 0) << t.err;
  auto st = fs::status(root / "var/spool/fhir-edge");
  ASSERT_TRUE(fs::is_directory(st));
  EXPECT_EQ(st.permissions() & fs::perms::mask,
            fs::perms::owner_all | fs::perms::group_all | fs::perms::set_gid);
  // The root the shipped config watches exists, with the same mode (issue 17: it was missing).
  std::string cfg = read_file(src + "/config/fhir-edge.yaml");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(cfg, m, std::regex("\n    watch: (/[^\n ]+)\n")));
  auto epic = fs::status(root / fs::path(m[1].str()).relative_path());
  ASSERT_TRUE(fs::is_directory(epic)) << m[1] << " is not created by fhir-edge.tmpfiles";
  EXPECT_EQ(epic.permissions() & fs::perms::mask,
            fs::perms::owner_all | fs::perms::group_all | fs::perms::set_gid);
}

}  // namespace
