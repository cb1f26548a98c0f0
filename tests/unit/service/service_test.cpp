// The Component contract of service::Service, in process: start order, reload acceptance and
// rollback, stop waiting for every done(), the stop deadline, start-up failures.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <filesystem>
#include <fstream>

#include "service/service.hpp"
#include "temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using ::testing::ElementsAre;

struct Env {
  fs::path dir;
  fs::path config;
  Env() {
    dir = fe::test::make_temp_dir("fe-svcu");
    config = dir / "c.yaml";
    write(1);
  }
  ~Env() { fs::remove_all(dir); }
  void write(int pipelines, const std::string& extra = "") {
    std::ofstream out(config, std::ios::trunc);
    out << "pipelines:\n";
    for (int i = 0; i < pipelines; ++i)
      out << "  - name: p" << i << "\n    watch: " << (dir / ("in" + std::to_string(i))).string()
          << "\n    s3: { bucket: landing-bucket }\n    healthlake:\n"
          << "      datastore_id: 0123456789abcdef0123456789abcdef\n"
          << "      data_access_role_arn: arn:aws:iam::123456789012:role/Import\n"
          << "      output_s3_uri: s3://results-bucket/x/\n"
          << "      output_kms_key_id: alias/k\n";
    out << "spool: { dir: " << (dir / "spool").string() << " }\n"
        << "journal: { path: " << (dir / "db/j.db").string() << " }\n"
        << "metrics: { listen: off }\n"
        << extra;
  }
  fe::config::Config load() {
    auto r = fe::config::load_config(config);
    EXPECT_TRUE(r.ok()) << fe::config::format(r.errors);
    return *r.config;
  }
  fe::service::Options options() {
    fe::service::Options o;
    o.config_path = config;
    return o;
  }
};

// A component that records what the service asks of it.
class Recorder : public fe::service::Component {
 public:
  Recorder(std::string name, std::vector<std::string>& log) : name_(std::move(name)), log_(log) {}
  std::string name() const override { return name_; }
  void start(const fe::config::Config& c) override {
    if (fail_start) throw std::runtime_error("no watch permission");
    log_.push_back(name_ + ".start(" + std::to_string(c.pipelines.size()) + ")");
    if (on_start) on_start();
  }
  bool reload(const fe::config::Config& o, const fe::config::Config& n, std::string& why) override {
    log_.push_back(name_ + ".reload(" + std::to_string(o.pipelines.size()) + "->" +
                   std::to_string(n.pipelines.size()) + ")");
    if (refuse_reload && n.pipelines.size() > o.pipelines.size()) {
      why = "too many pipelines";
      return false;
    }
    return true;
  }
  void stop(std::function<void()> done) override {
    log_.push_back(name_ + ".stop");
    if (never_done) return;
    stop_done_ = std::move(done);
    if (on_stop) on_stop();
  }
  std::string status_line() const override { return name_ + " idle"; }

  void finish_stop() {
    log_.push_back(name_ + ".done");
    stop_done_();
  }

  bool fail_start = false, refuse_reload = false, never_done = false;
  std::function<void()> on_start, on_stop;

 private:
  std::string name_;
  std::vector<std::string>& log_;
  std::function<void()> stop_done_;
};

TEST(Service, StopWaitsForEveryComponentsDone) {
  Env env;
  std::vector<std::string> log;
  fe::service::Service svc(env.options(), env.load());
  auto a = std::make_shared<Recorder>("a", log);
  auto b = std::make_shared<Recorder>("b", log);
  svc.add(a);
  svc.add(b);
  a->on_start = [&] {
    EXPECT_EQ(svc.status(), "Running: 1 pipeline; a idle; b idle");
    svc.request_stop();
  };
  // b checkpoints asynchronously: done() comes from a later loop turn.
  boost::asio::steady_timer later(svc.io());
  b->on_stop = [&] {
    later.expires_after(std::chrono::milliseconds(20));
    later.async_wait([&](auto) { b->finish_stop(); });
  };
  a->on_stop = [&] { a->finish_stop(); };
  EXPECT_EQ(svc.run(), 0);
  EXPECT_THAT(log, ElementsAre("a.start(1)", "b.start(1)", "a.stop", "a.done", "b.stop", "b.done"));
}

TEST(Service, StopDeadlineMissedExitsOne) {
  Env env;
  std::vector<std::string> log;
  auto o = env.options();
  o.stop_timeout = std::chrono::milliseconds(50);
  fe::service::Service svc(o, env.load());
  auto a = std::make_shared<Recorder>("a", log);
  a->never_done = true;
  a->on_start = [&] { svc.request_stop(); };
  svc.add(a);
  EXPECT_EQ(svc.run(), 1);
}

TEST(Service, ReloadRefusedByAComponentRollsBackTheOthers) {
  Env env;
  std::vector<std::string> log;
  fe::service::Service svc(env.options(), env.load());
  auto a = std::make_shared<Recorder>("a", log);
  auto b = std::make_shared<Recorder>("b", log);
  b->refuse_reload = true;
  svc.add(a);
  svc.add(b);
  b->on_start = [&] {
    env.write(2);
    svc.request_reload();
    boost::asio::post(svc.io(), [&] {
      EXPECT_EQ(svc.config().pipelines.size(), 1u);
      EXPECT_THAT(svc.status(), ::testing::HasSubstr("b refused the new configuration: too many "
                                                     "pipelines"));
      svc.request_stop();
    });
  };
  a->on_stop = [&] { a->finish_stop(); };
  b->on_stop = [&] { b->finish_stop(); };
  EXPECT_EQ(svc.run(), 0);
  EXPECT_THAT(log, ElementsAre("a.start(1)", "b.start(1)", "a.reload(1->2)", "b.reload(1->2)",
                               "a.reload(2->1)", "a.stop", "a.done", "b.stop", "b.done"));
}

TEST(Service, AcceptedReloadReplacesConfigAndLogLevel) {
  Env env;
  std::vector<std::string> log;
  fe::service::Service svc(env.options(), env.load());
  auto a = std::make_shared<Recorder>("a", log);
  svc.add(a);
  a->on_start = [&] {
    env.write(2, "log: { level: debug }\n");
    svc.request_reload();
    boost::asio::post(svc.io(), [&] {
      EXPECT_EQ(svc.config().pipelines.size(), 2u);
      EXPECT_EQ(fe::log::level(), fe::log::Level::debug);
      EXPECT_EQ(svc.status(), "Running: 2 pipelines; a idle");
      svc.request_stop();
    });
  };
  a->on_stop = [&] { a->finish_stop(); };
  EXPECT_EQ(svc.run(), 0);
  EXPECT_EQ(svc.reload_count(), 1);
  fe::log::set_level(fe::log::Level::info);
}

TEST(Service, ComponentStartFailureExitsOne) {
  Env env;
  std::vector<std::string> log;
  fe::service::Service svc(env.options(), env.load());
  auto a = std::make_shared<Recorder>("a", log);
  a->fail_start = true;
  svc.add(a);
  EXPECT_EQ(svc.run(), 1);
}

TEST(Service, PrepareStateDirsCreatesPrivateDirectories) {
  Env env;
  auto c = env.load();
  EXPECT_EQ(fe::service::Service::prepare_state_dirs(c), "");
  EXPECT_TRUE(fs::is_directory(env.dir / "spool"));
  EXPECT_TRUE(fs::is_directory(env.dir / "db"));
  EXPECT_EQ(fs::status(env.dir / "spool").permissions(),
            fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec);
  c.spool.dir = env.config / "sub";  // below a regular file
  EXPECT_THAT(fe::service::Service::prepare_state_dirs(c),
              ::testing::StartsWith("cannot create spool.dir '" + (env.config / "sub").string()));
}

}  // namespace
