// Issue 17: a pipeline whose watch root is missing at start. `run` starts anyway, logs one
// warning naming the root, /healthz answers 503 naming it and fhir_edge_watch_roots_unwatched is
// 1; once the directory is created the daemon watches it (0, 200) and an export dropped there is
// imported.
#include <gtest/gtest.h>
#include <unistd.h>

#include "../hostile/daemon_run.hpp"
#include "ports.hpp"

namespace {

using namespace fe::test;

std::string get(uint16_t port, const std::string& path) {
  return capture(
      "curl -s --max-time 5 -w '\\n%{http_code}' http://127.0.0.1:" + std::to_string(port) + path);
}

// The value of an unlabelled sample in a scrape ("" when absent).
std::string sample(const std::string& scrape, const std::string& name) {
  std::istringstream in(scrape);
  for (std::string l; std::getline(in, l);)
    if (l.starts_with(name + " ")) return l.substr(name.size() + 1);
  return "";
}

TEST(WatchRoot, MissingAtStartIsReportedWaitedForAndThenWatched) {
  const uint16_t port = free_port();
  DaemonRun::Options o;
  o.extra_yaml = "metrics: { listen: 127.0.0.1:" + std::to_string(port) + " }\n";
  DaemonRun d(o);
  const fs::path root = d.watch();
  fs::remove_all(root);
  d.start();

  ASSERT_TRUE(DaemonRun::wait_until([&] { return d.log_has("nothing is taken from it"); },
                                    std::chrono::seconds(60)))
      << d.log();
  auto warned = d.log_lines({"watch root " + root.string() + " does not exist"});
  EXPECT_EQ(warned.size(), 1u) << d.log();

  std::string health;
  ASSERT_TRUE(DaemonRun::wait_until(
      [&] {
        health = get(port, "/healthz");
        return health.ends_with("\n503");
      },
      std::chrono::seconds(60)))
      << health;
  EXPECT_NE(health.find("watch root not watched: pipeline p: " + root.string() + " does not exist"),
            std::string::npos)
      << health;
  EXPECT_EQ(sample(get(port, "/metrics"), "fhir_edge_watch_roots_unwatched"), "1");
  EXPECT_TRUE(d.running()) << "a missing root must not stop the daemon";

  fs::create_directories(root);
  ASSERT_TRUE(DaemonRun::wait_until([&] { return get(port, "/healthz") == "ok\n\n200"; },
                                    std::chrono::seconds(60)))
      << get(port, "/healthz");
  EXPECT_EQ(sample(get(port, "/metrics"), "fhir_edge_watch_roots_unwatched"), "0");
  EXPECT_TRUE(d.log_has("watch root appeared; watching it")) << d.log();

  drop_export(root, "late", {{"Patient.ndjson", patients("late", 3)}});
  EXPECT_EQ(d.wait_final("late"), "imported") << d.log();
  EXPECT_EQ(d.hll().imported_resources().size(), 3u);
  // Still exactly one warning: the retries are silent.
  EXPECT_EQ(d.log_lines({"watch root " + root.string() + " does not exist"}).size(), 1u);
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
