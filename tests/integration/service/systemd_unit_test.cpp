// The shipped unit files: `systemd-analyze verify` is silent, the hardening exposure is low
// (printed), and the sysusers/tmpfiles snippets do what they say in a scratch root.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <array>
#include <cstdio>
#include <regex>
#include <set>
#include <sstream>

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

// The value of `key=` in the unit ("" when absent; the last one wins, as in systemd).
std::string unit_value(const std::string& unit, const std::string& key) {
  std::smatch m;
  std::string v;
  std::regex re("(^|\n)" + key + "=([^\n]*)");
  for (auto it = unit.cbegin(); std::regex_search(it, unit.cend(), m, re); it = m[0].second)
    v = m[2].str();
  return v;
}

double seconds(const std::string& v) {  // "5s", "2min", "120"
  std::smatch m;
  if (!std::regex_match(v, m, std::regex("([0-9]+)(s|min)?"))) return -1;
  return std::stod(m[1].str()) * (m[2] == "min" ? 60 : 1);
}

// Issue 17 item 5: a bad config must not restart the service forever. systemd cannot run as PID 1
// here, so this runs the unit's own ExecStartPre= and ExecStart= command lines (binary and config
// path replaced) on a broken config and applies systemd's rules to the exit codes they give:
// RestartPreventExitStatus= stops restarts after the main process exits 2 (`run`); it does not
// look at ExecStartPre= (systemd compares the main process's status only), so the start limit must
// trip: StartLimitBurst= starts, RestartSec= apart, fit inside StartLimitIntervalSec=.
TEST(SystemdUnit, BadConfigCannotRestartForever) {
  TempDir dir;
  std::string unit = read_file(unit_for_build(dir.path()));
  fs::path bad = dir.path() / "bad.yaml";
  write_file(bad, config_text(dir.path()) + "upload: { concurrency: 999 }\n");
  fs::permissions(bad, fs::perms::owner_read | fs::perms::owner_write);
  auto command = [&](const std::string& key) {
    std::string line = unit_value(unit, key);
    std::string from = "/etc/fhir-edge/fhir-edge.yaml";
    auto p = line.find(from);
    EXPECT_NE(p, std::string::npos) << key << "=" << line;
    if (p != std::string::npos) line.replace(p, from.size(), bad.string());
    return line;
  };
  std::set<int> prevent;
  std::istringstream codes(unit_value(unit, "RestartPreventExitStatus"));
  for (std::string c; codes >> c;) prevent.insert(std::stoi(c));

  auto pre = run(command("ExecStartPre"), dir.path());
  EXPECT_EQ(pre.code, 2) << pre.err;
  EXPECT_THAT(pre.err, ::testing::HasSubstr("concurrency"));
  auto main = run("JOURNAL_STREAM= " + command("ExecStart"), dir.path());
  EXPECT_EQ(main.code, 2) << main.err;
  EXPECT_TRUE(prevent.count(main.code))
      << "run exits " << main.code << " on a bad config; RestartPreventExitStatus="
      << unit_value(unit, "RestartPreventExitStatus") << " does not stop the restarts";

  EXPECT_EQ(unit_value(unit, "Restart"), "on-failure");
  const double restart_sec = seconds(unit_value(unit, "RestartSec"));
  const double interval = seconds(unit_value(unit, "StartLimitIntervalSec"));
  const std::string burst_text = unit_value(unit, "StartLimitBurst");
  ASSERT_FALSE(burst_text.empty()) << "no StartLimitBurst=";
  const int burst = std::stoi(burst_text);
  ASSERT_GT(restart_sec, 0);
  ASSERT_GT(interval, 0) << "no StartLimitIntervalSec=";
  // The ExecStartPre= path: every attempt fails at once, so `burst` starts take about
  // (burst - 1) * RestartSec, which must be inside the interval for the limit to trip.
  EXPECT_LT((burst - 1) * restart_sec, interval);
  EXPECT_LE(burst, 10);
  // Both keys are [Unit] keys (systemd ignores them with a warning in [Service]).
  auto service_at = unit.find("\n[Service]");
  EXPECT_LT(unit.find("\nStartLimitIntervalSec="), service_at);
  EXPECT_LT(unit.find("\nStartLimitBurst="), service_at);
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
