#pragma once
// Helpers shared by the in-process pipeline tests (pipeline_test.cpp, pipeline_rules_test.cpp):
// the tools they need, the stages' test options (app::Stages, the composition the daemon
// runs), and driving their io_context.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "app/stages.hpp"
#include "config/config.hpp"
#include "harness.hpp"
#include "journal/journal.hpp"
#include "log_capture.hpp"

namespace fe::test {

inline constexpr uint64_t kPart = 64 * 1024;  // small parts keep multipart cases small in CI

inline bool have_tools(std::string& why) {
  namespace fs = std::filesystem;
  if (!fs::exists(HealthLakeLocal::binary())) {
    why = "healthlake-local was not built (tools/healthlake-local)";
    return false;
  }
  if (!fs::exists(FE_EXPORT_GEN)) {
    why = "tools/fhir-export-gen/fhir-export-gen is missing";
    return false;
  }
  return true;
}

#define REQUIRE_TOOLS()                                      \
  do {                                                       \
    std::string why_;                                        \
    if (!::fe::test::have_tools(why_)) GTEST_SKIP() << why_; \
  } while (0)

// The fixture of the in-process stage tests: the harness's environment (credentials for
// healthlake-local, no proxy) before each test.
class StagesTest : public ::testing::Test {
 protected:
  void SetUp() override { set_test_env(); }
};

// The stages as the daemon composes them (app/stages.hpp), with these knobs lowered.
inline fe::app::StageOptions test_options() {
  fe::app::StageOptions o;
  o.min_part_size = kPart;
  o.auto_part_size = kPart;
  o.retry_base = std::chrono::milliseconds(300);
  o.retry_max = std::chrono::milliseconds(2000);
  o.scan_quiet = std::chrono::milliseconds(300);
  o.import_jobs = false;  // these tests end at `uploaded`; the import stage has its own tests
  return o;
}

// test_options() with the import stage on, polling HealthLake every 500 ms.
inline fe::app::StageOptions import_options() {
  fe::app::StageOptions o = test_options();
  o.import_jobs = true;
  o.import_poll_min = o.import_poll_max = std::chrono::milliseconds(500);
  return o;
}

// config_yaml's document with HealthLake at `endpoint` too (healthlake-local serves both).
inline std::string with_healthlake(std::string yaml, const std::string& endpoint) {
  const std::string s3 = "endpoints: { s3: " + endpoint + " }";
  const auto at = yaml.find(s3);
  if (at == std::string::npos) throw std::runtime_error("harness config changed: no " + s3);
  yaml.replace(at, s3.size(), "endpoints: { s3: " + endpoint + ", healthlake: " + endpoint + " }");
  return yaml;
}

inline fe::config::Config load(const std::filesystem::path& root, const std::string& yaml) {
  auto path = root / "fhir-edge.yaml";
  write_file(path, yaml);
  auto r = fe::config::load_config(path);
  if (!r.ok()) throw std::runtime_error(fe::config::format(r.errors));
  return *r.config;
}

// Runs the loop until `done` or the deadline; returns done().
template <class F>
bool run_until(boost::asio::io_context& io, F done, std::chrono::milliseconds limit) {
  auto end = std::chrono::steady_clock::now() + limit;
  while (!done() && std::chrono::steady_clock::now() < end) {
    if (io.stopped()) io.restart();  // ran out of work earlier (e.g. between two components)
    if (io.run_one_for(std::chrono::milliseconds(100)) == 0)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return done();
}

// Runs the loop until `n` exports are uploaded and their trailing objects (archive copies,
// rejects, report.json, which go on after `uploaded`) are done too; on a timeout the failure shows
// the status line.
inline ::testing::AssertionResult uploaded(boost::asio::io_context& io, const fe::app::Stages& p,
                                           std::uint64_t n, std::chrono::milliseconds limit) {
  if (run_until(
          io,
          [&] {
            const auto st = p.stats();
            return st.exports_uploaded == n && st.exports_trailing == 0;
          },
          limit))
    return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << p.stats().exports_uploaded << " of " << n
                                       << " exports uploaded; status: " << p.status_line();
}

// Runs the loop until the watcher has logged that `export_name` is not complete yet, for a reason
// that contains `why`, in a line logged after `from` (LogCapture::mark()): the event that shows
// it looked at the export and held it. False after a minute (a hung test).
inline bool wait_pending(boost::asio::io_context& io, const LogCapture& log,
                         const std::string& export_name, const std::string& why,
                         std::size_t from = 0) {
  const std::string what = "export not complete yet: " + why, id = "EXPORT_ID=" + export_name;
  return run_until(
      io,
      [&] {
        return log.has({what, id}, from);
      },
      std::chrono::seconds(60));
}

inline void run_for(boost::asio::io_context& io, std::chrono::milliseconds d) {
  run_until(
      io, [] { return false; }, d);
}

inline void stop_component(boost::asio::io_context& io, fe::app::Stages& p) {
  bool stopped = false;
  p.stop([&] { stopped = true; });
  run_until(
      io, [&] { return stopped; }, std::chrono::seconds(30));
}

inline std::vector<fe::journal::ExportRow> journal_exports(const std::filesystem::path& root) {
  if (!std::filesystem::exists(root / "journal.db")) return {};
  auto j = fe::journal::Journal::open(root / "journal.db", {.read_only = true});
  return j.exports(true);
}

}  // namespace fe::test
