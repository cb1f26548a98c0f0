#pragma once
// The metrics stage: Prometheus text exposition at http://<metrics.listen>/metrics and a readiness
// probe at /healthz, served by a Boost.Beast HTTP server on its own thread and io_context, so it
// answers (and can tell) while the control loop is stuck. A service::Component added by
// `fhir-edge run`; docs/metrics.md lists every metric.
//
// Where the numbers come from:
//   gauges    the journal, opened read-only (no lock, like `fhir-edge status`) on each scrape:
//             exports by pipeline and state, files, resources valid/rejected, bytes, import jobs
//             by status, last successful import. So they are right after a restart.
//             The spool directory's size is measured on disk; the quota is the config's.
//             Exports waiting for their completion rule (table waiting_exports), by pipeline.
//   counters  this process: the pipeline's Stats (a snapshot taken on the control thread at each
//             heartbeat, through Options::pipeline_stats), each with a pipeline label except the
//             process-wide ones (spool eviction, journal write errors), and the shared Registry
//             (metrics/counters.hpp) that the AWS layer increments (requests, errors and retries
//             by AWS error code, re-sent bodies, credential refreshes and expiry).
// /healthz    200 "ok" when the control loop's heartbeat is recent and the journal can be read;
//             else 503 with the reason on one line ("event loop stuck: ...", "journal
//             unavailable: ...").
// metrics.listen off: no listener at all. A listen address that cannot be bound (port in use)
// makes start() throw, so `fhir-edge run` refuses to start with a message naming host:port.
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "journal/status.hpp"
#include "metrics/counters.hpp"
#include "pipeline/pipeline.hpp"
#include "service/service.hpp"

namespace fe::metrics {

struct Options {
  // The control loop proves it is alive by a timer firing this often...
  std::chrono::milliseconds heartbeat_interval = std::chrono::seconds(1);
  // ...and /healthz reports it stuck when the last beat is older than this.
  std::chrono::milliseconds stuck_after = std::chrono::seconds(10);
  // Called on the control thread at each heartbeat (the pipeline's counters are not thread-safe).
  std::function<pipeline::Stats()> pipeline_stats;
  // Connections served at once; more are closed at accept (memory stays bounded).
  std::size_t max_connections = 16;
  // Per-connection read/write deadline.
  std::chrono::milliseconds io_timeout = std::chrono::seconds(10);
};

// Everything one scrape shows, gathered before formatting (exposed for tests).
// The standard process collector's numbers (Prometheus client libraries' process_* metrics),
// read from /proc/self: a dashboard or alert written for any exporter works here too.
struct ProcessStats {
  double cpu_seconds = 0;  // user + system
  double resident_memory_bytes = 0;
  double virtual_memory_bytes = 0;
  double start_time_seconds = 0;  // Unix time
  double open_fds = 0;
  double max_fds = 0;  // RLIMIT_NOFILE soft limit
};
// nullopt when /proc/self/stat cannot be read or parsed.
std::optional<ProcessStats> read_process_stats();

struct Snapshot {
  std::string version;
  double start_time_seconds = 0;
  bool ready = false;
  double heartbeat_age_seconds = 0;
  bool journal_up = false;
  std::vector<journal::StatusRow> rows;      // when journal_up
  std::vector<journal::WaitingRow> waiting;  // when journal_up: exports waiting for completion
  std::vector<std::string> pipelines;        // configured, so every pipeline shows even at 0
  std::optional<std::uint64_t> spool_bytes;  // nullopt: spool.dir unreadable
  std::uint64_t spool_quota_bytes = 0;
  std::optional<pipeline::Stats> stats;  // nullopt until the first heartbeat
  std::vector<Series> registry;          // Registry::global().snapshot()
  // Wall-clock time of the scrape (Unix seconds): the age of the oldest pending export.
  double now_seconds = 0;
  // The process_* collector metrics every Prometheus client library exports; nullopt where
  // /proc cannot be read.
  std::optional<ProcessStats> process;
};

// The exposition text of a snapshot.
std::string render(const Snapshot& s);

// Bytes of regular files under `dir` (recursively, symlinks not followed); nullopt when `dir`
// cannot be read.
std::optional<std::uint64_t> directory_bytes(const std::filesystem::path& dir);

class MetricsComponent : public service::Component {
 public:
  MetricsComponent(boost::asio::io_context& control, Options options = {});
  ~MetricsComponent() override;

  std::string name() const override { return "metrics"; }
  // Binds metrics.host:metrics.port (throws std::runtime_error naming host:port when it cannot),
  // starts the server thread and the heartbeat. Does nothing when metrics are off.
  void start(const config::Config& config) override;
  // A different metrics.listen is refused (restart needed); other keys are adopted.
  bool reload(const config::Config& old_config, const config::Config& new_config,
              std::string& why) override;
  void stop(std::function<void()> done) override;
  std::string status_line() const override { return {}; }

  // The bound port (the real one when the config asked for 0, as tests do); 0 when not listening.
  std::uint16_t port() const;
  // "" when ready, else the reason /healthz gives. Callable from any thread.
  std::string health() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

std::shared_ptr<MetricsComponent> make_metrics(boost::asio::io_context& control,
                                               Options options = {});

}  // namespace fe::metrics
