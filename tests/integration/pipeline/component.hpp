#pragma once
// Helpers shared by the in-process pipeline tests (pipeline_test.cpp, pipeline_rules_test.cpp):
// the tools they need, the component's test options, and driving its io_context.
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <chrono>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "config/config.hpp"
#include "harness.hpp"
#include "journal/journal.hpp"
#include "log_capture.hpp"
#include "pipeline/pipeline.hpp"

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

inline fe::pipeline::Options test_options() {
  fe::pipeline::Options o;
  o.min_part_size = kPart;
  o.auto_part_size = kPart;
  o.retry_base = std::chrono::milliseconds(300);
  o.retry_max = std::chrono::milliseconds(2000);
  o.scan_quiet = std::chrono::milliseconds(300);
  o.import_jobs = false;  // these tests end at `uploaded`; the import stage has its own tests
  return o;
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

inline void stop_component(boost::asio::io_context& io, fe::pipeline::Pipeline& p) {
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
