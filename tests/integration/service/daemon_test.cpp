// `fhir-edge run` as systemd sees it: sd_notify READY/STATUS/WATCHDOG/RELOADING/STOPPING on a
// socket the test owns, SIGHUP with valid and invalid configs, SIGTERM -> exit 0, start-up
// failures with the right exit codes.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <sys/stat.h>

#include "harness.hpp"

namespace {

using namespace fe::test;
using ::testing::HasSubstr;
using ::testing::MatchesRegex;
using ::testing::Not;
using ::testing::StartsWith;

struct Fixture {
  TempDir dir;
  fs::path config = dir.path() / "fhir-edge.yaml";
  fs::path log = dir.path() / "stderr.log";
  NotifySocket notify{dir.path() / "notify.sock"};

  std::unique_ptr<Daemon> start(std::map<std::string, std::string> env = {},
                                std::vector<std::string> extra_args = {}) {
    env["NOTIFY_SOCKET"] = notify.path().string();
    std::vector<std::string> args = {"run", "--config", config.string()};
    args.insert(args.end(), extra_args.begin(), extra_args.end());
    return std::make_unique<Daemon>(args, env, log);
  }
};

TEST(DaemonNotify, ReadyStatusWatchdogStoppingAndExitZero) {
  Fixture f;
  write_file(f.config, config_text(f.dir.path()));
  // 400ms watchdog: the daemon must ping every 200ms from its loop.
  auto d = f.start({{"WATCHDOG_USEC", "400000"}});

  auto ready = f.notify.wait_for("READY=1");
  ASSERT_TRUE(ready) << read_file(f.log);
  // The service's summary, then the pipeline component's own status line.
  EXPECT_THAT(field(*ready, "STATUS"), StartsWith("Running: 1 pipeline; 0 exports uploading"));
  // Ready means the state directories exist.
  EXPECT_TRUE(fs::is_directory(f.dir.path() / "state/spool"));
  EXPECT_TRUE(fs::is_directory(f.dir.path() / "state/db"));
  EXPECT_EQ(fs::status(f.dir.path() / "state/spool").permissions() & fs::perms::others_all,
            fs::perms::none);

  // Several pings, each from the running loop.
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(f.notify.wait_for("WATCHDOG=1")) << "ping " << i;

  d->signal(SIGTERM);
  auto stopping = f.notify.wait_for("STOPPING=1");
  ASSERT_TRUE(stopping);
  EXPECT_THAT(field(*stopping, "STATUS"), StartsWith("Stopping"));
  EXPECT_EQ(d->wait(), 0) << read_file(f.log);
  EXPECT_THAT(read_file(f.log), HasSubstr("notice: fhir-edge stopped"));
}

TEST(DaemonNotify, NoWatchdogPingsWithoutWatchdogUsec) {
  Fixture f;
  write_file(f.config, config_text(f.dir.path()));
  auto d = f.start();
  ASSERT_TRUE(f.notify.wait_for("READY=1")) << read_file(f.log);
  d->signal(SIGINT);
  ASSERT_TRUE(f.notify.wait_for("STOPPING=1"));
  EXPECT_EQ(d->wait(), 0);
  for (const auto& m : f.notify.all) EXPECT_THAT(m, Not(HasSubstr("WATCHDOG=1")));
}

TEST(DaemonReload, ValidNewConfigIsAdopted) {
  Fixture f;
  write_file(f.config, config_text(f.dir.path(), 1));
  auto d = f.start();
  ASSERT_TRUE(f.notify.wait_for("READY=1")) << read_file(f.log);

  // A key that applies live: the log level. Debug lines appear only after the reload.
  write_file(f.config, config_text(f.dir.path(), 1, "log: { level: debug }\n"));
  d->signal(SIGHUP);
  auto reloading = f.notify.wait_for("RELOADING=1");
  ASSERT_TRUE(reloading);
  // systemd 253+ matches the reload by this timestamp.
  EXPECT_THAT(field(*reloading, "MONOTONIC_USEC"), MatchesRegex("[0-9]+"));
  auto ready = f.notify.wait_for("READY=1");
  ASSERT_TRUE(ready);
  EXPECT_THAT(field(*ready, "STATUS"), StartsWith("Running: 1 pipeline; "));
  EXPECT_THAT(field(*ready, "STATUS"), Not(HasSubstr("reload rejected")));
  EXPECT_THAT(read_file(f.log), HasSubstr("notice: configuration reloaded"));

  d->signal(SIGTERM);
  EXPECT_EQ(d->wait(), 0);
}

TEST(DaemonReload, PipelineChangesNeedARestartAndOldConfigIsKept) {
  Fixture f;
  write_file(f.config, config_text(f.dir.path(), 1));
  auto d = f.start();
  ASSERT_TRUE(f.notify.wait_for("READY=1")) << read_file(f.log);

  write_file(f.config, config_text(f.dir.path(), 2));
  d->signal(SIGHUP);
  ASSERT_TRUE(f.notify.wait_for("RELOADING=1"));
  auto ready = f.notify.wait_for("READY=1");
  ASSERT_TRUE(ready);
  EXPECT_THAT(field(*ready, "STATUS"), StartsWith("Running: 1 pipeline; "));
  EXPECT_THAT(field(*ready, "STATUS"), HasSubstr("restart fhir-edge to apply"));
  EXPECT_THAT(read_file(f.log), HasSubstr("reload rejected, keeping the previous configuration"));

  d->signal(SIGTERM);
  EXPECT_EQ(d->wait(), 0);
}

TEST(DaemonReload, InvalidNewConfigIsRefusedAndOldKept) {
  Fixture f;
  write_file(f.config, config_text(f.dir.path(), 1));
  auto d = f.start();
  ASSERT_TRUE(f.notify.wait_for("READY=1")) << read_file(f.log);

  // The file has an error: the running config must stay in force.
  write_file(f.config, config_text(f.dir.path(), 1, "log: { level: loud }\n"));
  d->signal(SIGHUP);
  ASSERT_TRUE(f.notify.wait_for("RELOADING=1"));
  auto ready = f.notify.wait_for("READY=1");
  ASSERT_TRUE(ready);
  EXPECT_THAT(field(*ready, "STATUS"),
              MatchesRegex("Running: 1 pipeline; .*; reload rejected \\(1 error in .*\\), "
                           "previous configuration in use"));
  std::string log = read_file(f.log);
  // The reason names file, line and column.
  EXPECT_THAT(
      log, HasSubstr("error: reload: " + f.config.string() + ":13:15: log.level: must be one of"));
  EXPECT_THAT(log, HasSubstr("reload rejected, keeping the previous configuration"));

  // Still alive and serving: a later valid file is taken, and the rejection note goes away.
  write_file(f.config, config_text(f.dir.path(), 1, "log: { level: debug }\n"));
  d->signal(SIGHUP);
  ASSERT_TRUE(f.notify.wait_for("RELOADING=1"));
  ready = f.notify.wait_for("READY=1");
  ASSERT_TRUE(ready);
  EXPECT_THAT(field(*ready, "STATUS"), StartsWith("Running: 1 pipeline; "));
  EXPECT_THAT(field(*ready, "STATUS"), Not(HasSubstr("reload rejected")));

  d->signal(SIGTERM);
  EXPECT_EQ(d->wait(), 0);
}

TEST(DaemonReload, MovingTheSpoolNeedsARestart) {
  Fixture f;
  write_file(f.config, config_text(f.dir.path()));
  auto d = f.start();
  ASSERT_TRUE(f.notify.wait_for("READY=1")) << read_file(f.log);
  std::string moved = config_text(f.dir.path());
  moved.replace(moved.find("state/spool"), 11, "state/spool2");
  write_file(f.config, moved);
  d->signal(SIGHUP);
  auto ready = f.notify.wait_for("READY=1");
  ASSERT_TRUE(ready);
  EXPECT_THAT(field(*ready, "STATUS"), HasSubstr("spool.dir changed: restart the service"));
  EXPECT_FALSE(fs::exists(f.dir.path() / "state/spool2"));
  d->signal(SIGTERM);
  EXPECT_EQ(d->wait(), 0);
}

TEST(DaemonStart, ConfigErrorsExitTwoWithoutReady) {
  Fixture f;
  write_file(f.config, config_text(f.dir.path(), 1, "upload: { concurrency: 0 }\n"));
  auto d = f.start();
  EXPECT_EQ(d->wait(), 2);
  EXPECT_THAT(read_file(f.log), HasSubstr(f.config.string() +
                                          ":13:24: upload.concurrency: must be between 1 and 64"));
  EXPECT_FALSE(f.notify.next(std::chrono::milliseconds(0)));
}

TEST(DaemonStart, UnwritableStateDirectoryExitsOne) {
  Fixture f;
  write_file(f.dir.path() / "state", "a file where the state directory should be");
  write_file(f.config, config_text(f.dir.path()));
  auto d = f.start();
  EXPECT_EQ(d->wait(), 1);
  EXPECT_THAT(read_file(f.log), HasSubstr("cannot start: cannot create spool.dir"));
  EXPECT_FALSE(f.notify.next(std::chrono::milliseconds(0)));
}

TEST(DaemonStart, LogLevelOptionOverridesTheFile) {
  Fixture f;
  write_file(f.config, config_text(f.dir.path(), 1, "log: { level: info }\n"));
  auto d = f.start({}, {"--log-level", "warning"});
  ASSERT_TRUE(f.notify.wait_for("READY=1")) << read_file(f.log);
  d->signal(SIGTERM);
  EXPECT_EQ(d->wait(), 0);
  // notice-level start/stop lines are below "warning".
  EXPECT_THAT(read_file(f.log), Not(HasSubstr("fhir-edge started")));

  Daemon bad({"run", "--log-level", "chatty"}, {}, f.log);
  EXPECT_EQ(bad.wait(), 2);
  // CLI11 names the option, the value and the choices.
  EXPECT_THAT(read_file(f.log),
              HasSubstr("--log-level: chatty not in {error,warning,notice,info,debug}"));
}

// As the unit runs it: a user without privileges, no capabilities, no_new_privs. The daemon
// must still create its state directories and serve sd_notify.
TEST(DaemonPrivileges, RunsAsUnprivilegedUserWithoutCapabilities) {
  if (geteuid() != 0) GTEST_SKIP() << "needs root to switch to an unprivileged user";
  if (access("/usr/bin/setpriv", X_OK) != 0) GTEST_SKIP() << "setpriv (util-linux) is missing";
  Fixture f;
  const uid_t nobody = 65534;
  fs::permissions(f.dir.path(), fs::perms::owner_all | fs::perms::group_exec |
                                    fs::perms::others_exec | fs::perms::group_read |
                                    fs::perms::others_read);
  fs::permissions(f.notify.path(), fs::perms::all);  // like systemd's notify socket
  fs::path home = f.dir.path() / "home";
  fs::create_directory(home);
  ASSERT_EQ(chown(home.c_str(), nobody, nobody), 0);
  write_file(f.config, config_text(home));
  std::vector<std::string> as_nobody = {"/usr/bin/setpriv",   "--reuid=65534",  "--regid=65534",
                                        "--clear-groups",     "--no-new-privs", "--inh-caps=-all",
                                        "--bounding-set=-all"};
  {
    Daemon d({"run", "--config", f.config.string()}, {{"NOTIFY_SOCKET", f.notify.path().string()}},
             f.log, as_nobody);
    ASSERT_TRUE(f.notify.wait_for("READY=1")) << read_file(f.log);
    struct stat st {};
    ASSERT_EQ(stat((home / "state/spool").c_str(), &st), 0);
    EXPECT_EQ(st.st_uid, nobody);
    EXPECT_EQ(st.st_mode & 07777, 0750u);
    d.signal(SIGTERM);
    ASSERT_TRUE(f.notify.wait_for("STOPPING=1"));
    EXPECT_EQ(d.wait(), 0) << read_file(f.log);
  }
  // The same user cannot create a spool under a root-owned directory: exit 1, clear reason.
  std::string denied = config_text(home);
  denied.replace(denied.find((home / "state/spool").string()),
                 (home / "state/spool").string().size(),
                 (f.dir.path() / "root-only/spool").string());
  fs::create_directory(f.dir.path() / "root-only");
  write_file(f.config, denied);
  Daemon d({"run", "--config", f.config.string()}, {}, f.log, as_nobody);
  EXPECT_EQ(d.wait(), 1);
  EXPECT_THAT(read_file(f.log),
              HasSubstr("cannot create spool.dir '" + (f.dir.path() / "root-only/spool").string() +
                        "': Permission denied"));
}

}  // namespace
