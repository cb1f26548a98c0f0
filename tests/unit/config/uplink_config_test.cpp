// Configuration additions of issue 8: the upload bandwidth schedule, the watch section, and the
// ssh-style permission checks on the configuration file itself.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config_text.hpp"
#include "temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using fe::config::load_config_text;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using namespace std::chrono_literals;

using fe::test::errors;
using fe::test::kHead;
using fe::test::ok;

TEST(ConfigBandwidth, DefaultsAreUnlimitedWithoutSchedule) {
  auto c = ok(kHead);
  EXPECT_FALSE(c.upload.bandwidth_limit);
  EXPECT_TRUE(c.upload.bandwidth_schedule.empty());
}

TEST(ConfigBandwidth, ScheduleWindowsWrapMidnightAndMayBeUnlimited) {
  auto c = ok(std::string(kHead) +
              "upload:\n"
              "  bandwidth_limit: 2MB\n"
              "  bandwidth_schedule:\n"
              "    - { from: \"22:00\", to: \"06:00\", limit: unlimited }\n"
              "    - { from: \"12:00\", to: \"13:30\", limit: 500KB/s }\n"
              "    - { from: \"18:00\", to: \"22:00\", limit: 1MiB/s }\n"
              "    - { from: \"7:05\", to: \"08:00\", limit: null }\n");
  EXPECT_EQ(c.upload.bandwidth_limit, 2'000'000u);
  const auto& s = c.upload.bandwidth_schedule;
  ASSERT_EQ(s.size(), 4u);
  EXPECT_EQ(s[0].from_minute, 22 * 60);
  EXPECT_EQ(s[0].to_minute, 6 * 60);
  EXPECT_FALSE(s[0].limit);
  EXPECT_EQ(s[1].from_minute, 12 * 60);
  EXPECT_EQ(s[1].to_minute, 13 * 60 + 30);
  EXPECT_EQ(s[1].limit, 500'000u);
  EXPECT_EQ(s[2].to_minute, 22 * 60);
  EXPECT_EQ(s[2].limit, 1u << 20);
  EXPECT_EQ(s[3].from_minute, 7 * 60 + 5);
  EXPECT_FALSE(s[3].limit);
  // "24:00" ends a window at midnight.
  auto late =
      ok(std::string(kHead) +
         "upload: { bandwidth_schedule: [ {from: \"20:00\", to: \"24:00\", limit: 4MiB} ] }\n");
  ASSERT_EQ(late.upload.bandwidth_schedule.size(), 1u);
  EXPECT_EQ(late.upload.bandwidth_schedule[0].to_minute, 24 * 60);
  // "00:00" to "24:00" is the whole day, and then nothing else fits.
  auto all = ok(std::string(kHead) +
                "upload: { bandwidth_schedule: [ {from: \"00:00\", to: \"24:00\", limit: "
                "unlimited} ] }\n");
  ASSERT_EQ(all.upload.bandwidth_schedule.size(), 1u);
  EXPECT_EQ(all.upload.bandwidth_schedule[0].from_minute, 0);
  EXPECT_EQ(all.upload.bandwidth_schedule[0].to_minute, 1440);
  EXPECT_THAT(errors(std::string(kHead) +
                     "upload: { bandwidth_schedule: [ {from: \"00:00\", to: \"24:00\", limit: "
                     "unlimited}, {from: \"23:59\", to: \"00:00\", limit: 1MiB} ] }\n"),
              ElementsAre(HasSubstr("23:59-00:00 overlaps upload.bandwidth_schedule[0]")));
  // bandwidth_limit itself may say unlimited too.
  EXPECT_FALSE(
      ok(std::string(kHead) + "upload: { bandwidth_limit: unlimited }\n").upload.bandwidth_limit);
}

TEST(ConfigBandwidth, BadWindowsAreEachReportedWithTheirPosition) {
  EXPECT_THAT(
      errors(std::string(kHead) +
             "upload:\n"                                                   // 10
             "  bandwidth_schedule:\n"                                     // 11
             "    - { from: \"25:00\", to: \"06:00\", limit: 1MiB/s }\n"   // 12
             "    - { from: 7pm, to: \"24:00\", limit: 1MiB/s }\n"         // 13
             "    - { from: \"24:00\", to: \"01:00\", limit: 1MiB/s }\n"   // 14
             "    - { from: \"09:00\", to: \"10:00\" }\n"                  // 15
             "    - { from: \"09:00\", to: \"09:00\", limit: 1MiB/s }\n"   // 16
             "    - { from: \"09:00\", to: \"10:00\", limit: slow }\n"     // 17
             "    - { from: \"09:00\", to: \"10:00\", limit: 10B/s }\n"    // 18
             "    - { from: \"09:00\", to: \"10:00\", limt: 1MiB/s }\n"),  // 19
      ElementsAre(
          "t.yaml:12:15: upload.bandwidth_schedule[0].from: expected a 24-hour local time HH:MM "
          "such as \"22:00\", got '25:00'",
          "t.yaml:13:15: upload.bandwidth_schedule[1].from: expected a 24-hour local time HH:MM "
          "such as \"22:00\", got '7pm'",
          "t.yaml:14:15: upload.bandwidth_schedule[2].from: expected a 24-hour local time HH:MM "
          "such as \"22:00\", got '24:00'",
          "t.yaml:15:7: upload.bandwidth_schedule[3].limit: missing required key 'limit' (a rate "
          "such as 20MiB/s, or unlimited)",
          "t.yaml:16:28: upload.bandwidth_schedule[4].to: the window is empty (from equals to); "
          "use from: \"00:00\", to: \"24:00\" for the whole day",
          "t.yaml:17:44: upload.bandwidth_schedule[5].limit: expected a rate such as 20MiB/s or "
          "500KB/s, or unlimited, got 'slow'",
          "t.yaml:18:44: upload.bandwidth_schedule[6].limit: must be at least 1KiB/s, got '10B/s'",
          "t.yaml:19:7: upload.bandwidth_schedule[7].limit: missing required key 'limit' (a rate "
          "such as 20MiB/s, or unlimited)",
          "t.yaml:19:37: upload.bandwidth_schedule[7].limt: unknown key 'limt'; did you mean "
          "'limit'?"));
  EXPECT_THAT(errors(std::string(kHead) + "upload: { bandwidth_schedule: 22:00-06:00 }\n"),
              ElementsAre(HasSubstr("upload.bandwidth_schedule: expected a list of {from, to, "
                                    "limit} windows, got a scalar")));
}

TEST(ConfigBandwidth, OverlappingWindowsAreRefusedIncludingAcrossMidnight) {
  EXPECT_THAT(errors(std::string(kHead) +
                     "upload:\n"                                                     // 10
                     "  bandwidth_schedule:\n"                                       // 11
                     "    - { from: \"22:00\", to: \"06:00\", limit: unlimited }\n"  // 12
                     "    - { from: \"05:00\", to: \"07:00\", limit: 1MiB/s }\n"     // 13
                     "    - { from: \"06:00\", to: \"07:00\", limit: 2MiB/s }\n"),   // 14
              ElementsAre("t.yaml:13:7: upload.bandwidth_schedule[1]: 05:00-07:00 overlaps "
                          "upload.bandwidth_schedule[0]: windows must not overlap"));
  // Adjacent windows ("to" is exclusive) are fine.
  auto c = ok(std::string(kHead) +
              "upload: { bandwidth_schedule: [ {from: \"22:00\", to: \"06:00\", limit: unlimited},"
              " {from: \"06:00\", to: \"22:00\", limit: 1MiB/s} ] }\n");
  EXPECT_EQ(c.upload.bandwidth_schedule.size(), 2u);
}

TEST(ConfigProxy, NullMeansEnvironmentEmptyMeansNone) {
  auto d = ok(kHead);
  EXPECT_FALSE(d.aws.proxy);
  EXPECT_FALSE(d.aws.no_proxy);
  auto c = ok(std::string(kHead) +
              "aws: { proxy: \"http://proxy.hospital.local:3128\", no_proxy: "
              "\"localhost,.internal,10.0.0.0/8,[::1]\" }\n");
  EXPECT_EQ(c.aws.proxy, "http://proxy.hospital.local:3128");
  EXPECT_EQ(c.aws.no_proxy, "localhost,.internal,10.0.0.0/8,[::1]");
  auto direct = ok(std::string(kHead) + "aws: { proxy: \"\", no_proxy: \"\" }\n");
  EXPECT_EQ(direct.aws.proxy, std::optional<std::string>(""));
  EXPECT_EQ(direct.aws.no_proxy, std::optional<std::string>(""));
  EXPECT_FALSE(ok(std::string(kHead) + "aws: { proxy: null, no_proxy: ~ }\n").aws.proxy);
  EXPECT_THAT(
      errors(std::string(kHead) + "aws: { proxy: proxy:3128, no_proxy: \"a;b\" }\n"),
      ElementsAre("t.yaml:10:15: aws.proxy: expected a proxy URL such as "
                  "http://proxy.hospital:3128, or \"\" for direct connections, got 'proxy:3128'",
                  "t.yaml:10:37: aws.no_proxy: expected comma-separated host names, "
                  "domains (.example.org), IP addresses or CIDR ranges, or *, got 'a;b'"));
}

TEST(ConfigWatch, DefaultsAndValues) {
  auto d = ok(kHead);
  EXPECT_EQ(d.watch.rescan_interval, 60s);
  EXPECT_EQ(d.watch.scan_quiet, 5000ms);
  auto c = ok(std::string(kHead) + "watch: { rescan_interval: 5m, scan_quiet: 1500ms }\n");
  EXPECT_EQ(c.watch.rescan_interval, 300s);
  EXPECT_EQ(c.watch.scan_quiet, 1500ms);
  EXPECT_EQ(ok(std::string(kHead) + "watch: { rescan_interval: 0 }\n").watch.rescan_interval, 0s);
  EXPECT_THAT(
      errors(std::string(kHead) +
             "watch: { rescan_interval: 2d, scan_quiet: soon, rescan: 1m }\n"),  // 10
      ElementsAre(
          "t.yaml:10:27: watch.rescan_interval: must be at most 86400 seconds, got '2d'",
          "t.yaml:10:43: watch.scan_quiet: expected a duration such as 30s, 5m, 7d or 1h30m, got "
          "'soon'",
          "t.yaml:10:49: watch.rescan: unknown key 'rescan'"));
  EXPECT_THAT(errors(std::string(kHead) + "watch: { scan_quiet: 2h }\n"),
              ElementsAre("t.yaml:10:22: watch.scan_quiet: must be at most 3600 seconds, got "
                          "'2h'"));
}

TEST(ConfigReference, ShippedFileStatesTheDefaultsOfTheNewKeys) {
  auto r = fe::config::load_config(std::string(FE_SOURCE_DIR) + "/config/fhir-edge.yaml");
  ASSERT_TRUE(r.ok()) << fe::config::format(r.errors);
  const fe::config::Config defaults;
  EXPECT_EQ(r.config->watch.rescan_interval, defaults.watch.rescan_interval);
  EXPECT_EQ(r.config->watch.scan_quiet, defaults.watch.scan_quiet);
  EXPECT_EQ(r.config->upload.bandwidth_limit, defaults.upload.bandwidth_limit);
  EXPECT_TRUE(r.config->upload.bandwidth_schedule.empty());
}

// A config file in a fresh temp dir with the given mode.
class ConfigPermissions : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fe::test::make_temp_dir("fe-config-perm");
    file_ = dir_ / "fhir-edge.yaml";
    std::ofstream(file_) << kHead;
  }
  void TearDown() override { fs::remove_all(dir_); }
  fe::config::LoadResult load(mode_t mode) {
    EXPECT_EQ(::chmod(file_.c_str(), mode), 0);
    return fe::config::load_config(file_);
  }
  static std::vector<std::string> texts(const std::vector<fe::config::Error>& v) {
    std::vector<std::string> out;
    for (const auto& e : v) out.push_back(fe::config::format(e));
    return out;
  }
  fs::path dir_, file_;
};

TEST_F(ConfigPermissions, PrivateOrGroupReadableFileLoadsWithoutWarnings) {
  for (mode_t m : {0600, 0640, 0400, 0440}) {
    auto r = load(m);
    EXPECT_TRUE(r.ok()) << fe::config::format(r.errors);
    EXPECT_TRUE(r.warnings.empty()) << fe::config::format(r.warnings);
  }
}

TEST_F(ConfigPermissions, WorldReadableFileLoadsWithAWarning) {
  auto r = load(0644);
  EXPECT_TRUE(r.ok()) << fe::config::format(r.errors);
  EXPECT_THAT(texts(r.warnings),
              ElementsAre(file_.string() +
                          ": readable by all users (mode 0644); it names ARNs, KMS keys and ${VAR} "
                          "references: consider chmod o-r " +
                          file_.string() + " (the service reads it as root or through its group)"));
}

TEST_F(ConfigPermissions, GroupOrWorldWritableFileIsRefused) {
  auto r = load(0660);
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(texts(r.errors),
              ElementsAre(file_.string() +
                          ": refusing a configuration file writable by its group (mode 0660): "
                          "whoever can change it decides where health data is sent; run: chmod "
                          "go-w " +
                          file_.string()));
  r = load(0666);
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(texts(r.errors), ElementsAre(HasSubstr("writable by all users (mode 0666)")));
  EXPECT_THAT(texts(r.warnings), ElementsAre(HasSubstr("readable by all users (mode 0666)")));
  // The permission error comes with the file's own errors, all at once.
  std::ofstream(file_) << kHead << "spool: { zstd_level: 99 }\n";
  r = load(0664);
  EXPECT_THAT(texts(r.errors), ElementsAre(HasSubstr("writable by its group (mode 0664)"),
                                           HasSubstr("spool.zstd_level: must be between")));
}

TEST_F(ConfigPermissions, FileOwnedBySomeoneElseIsRefused) {
  if (::geteuid() != 0) GTEST_SKIP() << "needs root to give the file to another user";
  ASSERT_EQ(::chown(file_.c_str(), 4242, 4242), 0);
  auto r = load(0640);
  EXPECT_FALSE(r.ok());
  EXPECT_THAT(texts(r.errors),
              ElementsAre(file_.string() + ": refusing a configuration file owned by uid 4242, "
                                           "neither root nor the user fhir-edge runs as (uid 0)"));
}

}  // namespace
