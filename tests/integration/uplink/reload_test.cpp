// `fhir-edge run` with the uplink settings, as an operator changes them: a SIGHUP applies a new
// upload.bandwidth_limit / bandwidth_schedule to the running HTTP engine (the engine logs the cap
// it switches to), every other section's keys need a restart (refused, naming the key), and the
// configuration file's permissions are checked like ssh's (world-readable: a warning at start and
// at reload; group/world-writable: the daemon refuses to start). Uses the service tests' harness
// (tests/integration/service).
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <ctime>

#include "../service/harness.hpp"

namespace {

using namespace fe::test;
using ::testing::HasSubstr;
using ::testing::Not;

struct Fixture {
  TempDir dir;
  fs::path config = dir.path() / "fhir-edge.yaml";
  fs::path log = dir.path() / "stderr.log";
  NotifySocket notify{dir.path() / "notify.sock"};

  // Endpoints on a closed loopback port: nothing leaves the machine.
  std::string text(const std::string& upload, const std::string& more = "") const {
    return config_text(dir.path(), 1,
                       "aws: { region: us-east-1, endpoints: { s3: \"http://127.0.0.1:9\", "
                       "healthlake: \"http://127.0.0.1:9\" }, s3_path_style: true }\n"
                       "upload: " +
                           upload + "\n" + more);
  }
  void write(const std::string& yaml, mode_t mode = 0640) {
    write_file(config, yaml);
    ::chmod(config.c_str(), mode);
  }
  std::unique_ptr<Daemon> start() {
    return std::make_unique<Daemon>(
        std::vector<std::string>{"run", "--config", config.string()},
        std::map<std::string, std::string>{{"NOTIFY_SOCKET", notify.path().string()},
                                           {"AWS_ACCESS_KEY_ID", "AKIDUPLINKRELOADTEST"},
                                           {"AWS_SECRET_ACCESS_KEY", "uplink-reload-test-secret"}},
        log);
  }
  // SIGHUP and wait for the daemon to be ready again; returns its STATUS.
  std::string reload(Daemon& d) {
    d.signal(SIGHUP);
    EXPECT_TRUE(notify.wait_for("RELOADING=1")) << read_file(log);
    auto ready = notify.wait_for("READY=1");
    EXPECT_TRUE(ready) << read_file(log);
    return ready ? field(*ready, "STATUS") : "";
  }
};

int count(const std::string& text, const std::string& needle) {
  int n = 0;
  for (auto p = text.find(needle); p != std::string::npos; p = text.find(needle, p + 1)) ++n;
  return n;
}

TEST(UplinkReload, SighupAppliesBandwidthLimitAndScheduleToTheRunningEngine) {
  Fixture f;
  f.write(f.text("{ bandwidth_limit: 1MiB/s }"));
  auto d = f.start();
  ASSERT_TRUE(f.notify.wait_for("READY=1")) << read_file(f.log);

  f.write(f.text("{ bandwidth_limit: 3MiB/s }"));
  EXPECT_THAT(f.reload(*d), Not(HasSubstr("reload rejected")));
  std::string log = read_file(f.log);
  EXPECT_THAT(log, HasSubstr("notice: configuration reloaded"));
  EXPECT_EQ(count(log, "upload bandwidth limit changed BANDWIDTH_LIMIT=\"3145728 B/s\""), 1) << log;

  // A window covering the whole day (so whatever the local time is): unlimited.
  f.write(
      f.text("{ bandwidth_limit: 3MiB/s, bandwidth_schedule: [ { from: \"00:00\", to: "
             "\"24:00\", limit: unlimited } ] }"));
  EXPECT_THAT(f.reload(*d), Not(HasSubstr("reload rejected")));
  log = read_file(f.log);
  EXPECT_EQ(count(log, "upload bandwidth limit changed BANDWIDTH_LIMIT=unlimited"), 1) << log;

  // The watcher's settings are fixed at start: refused, naming the key; the old config stays.
  f.write(f.text("{ bandwidth_limit: 3MiB/s }", "watch: { rescan_interval: 10s }\n"));
  EXPECT_THAT(f.reload(*d), HasSubstr("watch.rescan_interval changed: restart fhir-edge to apply"));

  // So are the importer's and after_upload's (they were once "reloaded" with no effect).
  f.write(f.text("{ bandwidth_limit: 3MiB/s }", "import: { poll_min: 2s, poll_max: 3s }\n"));
  EXPECT_THAT(f.reload(*d), HasSubstr("import.poll_min changed: restart fhir-edge to apply"));
  std::string moved = f.text("{ bandwidth_limit: 3MiB/s }");
  const std::string kms = "      output_kms_key_id: alias/healthlake\n";
  moved.replace(moved.find(kms), kms.size(), kms + "    after_upload: delete\n");
  f.write(moved);
  EXPECT_THAT(f.reload(*d), HasSubstr("pipelines[p0].after_upload changed"));
  std::string role = f.text("{ bandwidth_limit: 3MiB/s }");
  const std::string arn = "role/Import\n";
  role.replace(role.find(arn), arn.size(), "role/Other\n");
  f.write(role);
  EXPECT_THAT(f.reload(*d), HasSubstr("pipelines[p0].healthlake.data_access_role_arn changed"));

  d->signal(SIGTERM);
  EXPECT_EQ(d->wait(), 0) << read_file(f.log);
}

// Issue 14 item 3: the daemon compares the stages' Settings structs. One key per section that
// needs a restart is refused by a real SIGHUP, naming it in STATUS= and the log, and the running
// configuration stays; a live key (spool.keep_for) is then accepted and clears the note.
TEST(UplinkReload, SighupRefusesARestartKeyOfEachSectionNamingIt) {
  Fixture f;
  const std::string base = f.text("{ concurrency: 4 }");
  f.write(base);
  auto d = f.start();
  ASSERT_TRUE(f.notify.wait_for("READY=1")) << read_file(f.log);

  auto with = [&](const std::string& from, const std::string& to) {
    std::string y = base;
    const auto at = y.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) y.replace(at, from.size(), to);
    return y;
  };
  const std::string spool = "spool: { dir: " + (f.dir.path() / "state/spool").string();
  const struct {
    std::string yaml, key;
  } cases[] = {
      {with("    s3: { bucket: landing-bucket }", "    s3: { bucket: landing-bucket, prefix: x }"),
       "pipelines[p0].s3.prefix"},
      {with("    s3: { bucket: landing-bucket }",
            "    s3: { bucket: landing-bucket }\n    validation_level: minimal"),
       "pipelines[p0].validation_level"},
      {with("{ concurrency: 4 }", "{ concurrency: 8 }"), "upload.concurrency"},
      {with("{ concurrency: 4 }", "{ concurrency: 4, part_size: 16MiB }"), "upload.part_size"},
      {with(spool, spool + ", zstd_level: 9"), "spool.zstd_level"},
      {with(spool, spool + ", max_bytes: 1GiB"), "spool.max_bytes"},
      {base + "import: { min_imported_share: 90% }\n", "import.min_imported_share"},
      {base + "import: { poll_max: 2m }\n", "import.poll_max"},
      {with("region: us-east-1", "region: eu-west-1"), "aws.region"},
      {with("s3_path_style: true", "s3_path_style: false"), "aws.s3_path_style"},
  };
  for (const auto& c : cases) {
    f.write(c.yaml);
    const std::string status = f.reload(*d);
    const std::string why = c.key + " changed: restart fhir-edge to apply";
    EXPECT_THAT(status,
                HasSubstr("reload rejected (pipeline refused the new configuration: " + why))
        << c.yaml;
    EXPECT_THAT(read_file(f.log), HasSubstr(why));
  }
  // The sections refused before the pipeline looks: the journal (by the service) and the metrics
  // endpoint (by its component); the watch section too.
  const std::string journal = "journal: { path: " + (f.dir.path() / "state/db/journal.db").string();
  const struct {
    std::string yaml, why;
  } others[] = {
      {with(journal, "journal: { path: " + (f.dir.path() / "state/db/j2.db").string()),
       "journal.path changed: restart the service"},
      {with("metrics: { listen: off }", "metrics: { listen: 127.0.0.1:9 }"),
       "metrics refused the new configuration: metrics.listen changed"},
      {base + "watch: { scan_quiet: 500ms }\n",
       "pipeline refused the new configuration: watch.scan_quiet changed"},
  };
  for (const auto& o : others) {
    f.write(o.yaml);
    EXPECT_THAT(f.reload(*d), HasSubstr("reload rejected (" + o.why)) << o.yaml;
  }
  // The running configuration was kept throughout: a live change to it is accepted.
  f.write(with(spool, spool + ", keep_for: 1d"));
  EXPECT_THAT(f.reload(*d), Not(HasSubstr("reload rejected")));
  EXPECT_EQ(count(read_file(f.log), "notice: configuration reloaded"), 1) << read_file(f.log);

  d->signal(SIGTERM);
  EXPECT_EQ(d->wait(), 0) << read_file(f.log);
}

TEST(UplinkReload, WorldReadableConfigIsAWarningAtStartAndReload) {
  Fixture f;
  f.write(f.text("{ concurrency: 2 }"), 0644);
  auto d = f.start();
  ASSERT_TRUE(f.notify.wait_for("READY=1")) << read_file(f.log);
  const std::string warning = "readable by all users (mode 0644)";
  EXPECT_EQ(count(read_file(f.log), warning), 1) << read_file(f.log);
  f.reload(*d);
  EXPECT_EQ(count(read_file(f.log), warning), 2) << read_file(f.log);
  d->signal(SIGTERM);
  EXPECT_EQ(d->wait(), 0);
}

TEST(UplinkReload, GroupWritableConfigIsRefusedAtStartAndAtReload) {
  Fixture f;
  f.write(f.text("{ concurrency: 2 }"), 0664);
  {
    auto d = f.start();
    EXPECT_EQ(d->wait(), 2) << read_file(f.log);  // configuration error
    EXPECT_THAT(read_file(f.log),
                HasSubstr(f.config.string() + ": refusing a configuration file writable by its "
                                              "group (mode 0664)"));
  }
  // Running with a good file; someone makes it group-writable and reloads: refused, kept.
  f.write(f.text("{ concurrency: 2 }"), 0600);
  auto d = f.start();
  ASSERT_TRUE(f.notify.wait_for("READY=1")) << read_file(f.log);
  f.write(f.text("{ concurrency: 3 }"), 0620);
  EXPECT_THAT(f.reload(*d), HasSubstr("reload rejected"));
  EXPECT_THAT(read_file(f.log), HasSubstr("writable by its group (mode 0620)"));
  d->signal(SIGTERM);
  EXPECT_EQ(d->wait(), 0);
}

}  // namespace
