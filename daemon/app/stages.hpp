#pragma once
// daemon/app: the stages of the daemon, built and wired in one place (issue 14). App (app.hpp)
// runs them under the service with the metrics beside them; the in-process integration tests
// and pipeline-driver build the same Stages on an io_context of their own, so they exercise the
// composition the daemon runs.
//
// What it builds (nothing is started by building), and the order of start():
//   events        the ExportEvents hub (common/export_events.hpp)
//   clients       aws::Clients with pipeline::daemon_clients_settings: the HTTP engine,
//                 credentials, SigV4 + retry, the S3 and HealthLake clients
//   pipeline      pipeline::Pipeline (watch → take → spool → upload), given the hub and the
//                 clients. Started first: it opens the journal (the daemon's one writer) and
//                 the spool quota, resumes its exports from the journal and starts the watchers.
//   importer      import::Importer (import/importer.hpp) on the pipeline's journal and the
//                 clients' S3 client and a HealthLakeClient of its own; check_datastores, then
//                 resume() of every export the journal has in uploaded, import_starting or
//                 importing (an `uploaded` emitted while the pipeline recovered is among them).
//                 Not built when StageOptions::import_jobs is false (tests of the upload alone).
//   housekeeping  import::Housekeeping (import/housekeeping.hpp): after_upload, spool retention
//                 (first run at start) and eviction, on the pipeline's journal and quota and
//                 this object's copy of the live config.
//
// Wiring on the hub (each stage only emits; the handlers are subscribed here):
//   uploaded  upload → import          (the Importer subscribes itself, given the hub)
//   imported  import → housekeeping    (Housekeeping::subscribe)
//   resumed   import → ingest          (Pipeline::subscribe)
// and one hook outside the hub: the pipeline's full spool quota (Options::on_spool_full) →
// Housekeeping::evict, whose evicted bytes are counted in stats().evicted_bytes.
//
// stop() stops the import stage first (it uses the journal and clients; a fleet's lease holder
// releases its lease before the clients close: Importer::stop(done)), then the pipeline
// (transfers aborted, pools joined, clients closed, journal closed). reload() is the pipeline's
// (config/reload.hpp refuses a change to any key that is not live); housekeeping reads the live
// keys (spool.keep_for) from the config this object keeps. The component is named "pipeline"
// in the service's messages, as before the import stage was split out; its status line is the
// pipeline's, then "; imports: " and the importer's.
// Threading: everything on the io_context given to the constructor (the control thread).
#include <boost/asio/io_context.hpp>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include "common/export_events.hpp"
#include "config/config.hpp"
#include "pipeline/pipeline.hpp"
#include "service/service.hpp"

namespace fe::aws {
class Clients;
class HealthLakeClient;
}  // namespace fe::aws
namespace fe::import {
class Importer;
class Housekeeping;
}  // namespace fe::import

namespace fe::app {

// Knobs that are not in the config (defaults are the production values; tests lower them).
// The pipeline's own are inherited; events, clients and on_spool_full are set by Stages.
struct StageOptions : pipeline::Options {
  // Import stage (issue 7, import/importer.hpp): uploaded exports are imported into HealthLake.
  // false stops at `uploaded` (tests of the upload stage alone); housekeeping still runs.
  bool import_jobs = true;
  // DescribeFHIRImportJob interval (jittered between the two); unset: the config's
  // import.poll_min / poll_max.
  std::optional<std::chrono::milliseconds> import_poll_min;
  std::optional<std::chrono::milliseconds> import_poll_max;
};

class Stages : public service::Component {
 public:
  Stages(boost::asio::io_context& io, const config::Config& config, StageOptions options = {});
  ~Stages() override;
  Stages(const Stages&) = delete;
  Stages& operator=(const Stages&) = delete;

  std::string name() const override { return "pipeline"; }
  void start(const config::Config& config) override;
  bool reload(const config::Config& old_config, const config::Config& new_config,
              std::string& why) override;
  void stop(std::function<void()> done) override;
  std::string status_line() const override;

  // The pipeline's counters, with the bytes housekeeping evicted.
  pipeline::Stats stats() const;

  ExportEvents& events() { return events_; }
  aws::Clients& clients() { return *clients_; }
  pipeline::Pipeline& pipeline() { return *pipeline_; }
  import::Importer* importer() { return importer_.get();
}  // null unless started with imports

private : boost::asio::io_context& io_;
config::Config cfg_;  // the live config (reload), read by housekeeping
StageOptions opt_;
ExportEvents events_;
std::unique_ptr<aws::Clients> clients_;  // before pipeline_: the pipeline holds it until gone
std::unique_ptr<pipeline::Pipeline> pipeline_;
std::unique_ptr<aws::HealthLakeClient> hl_;
std::unique_ptr<import::Importer> importer_;
std::shared_ptr<import::Housekeeping> housekeeping_;
std::uint64_t evicted_bytes_ = 0;
bool stopping_ = false;
};  // namespace fe::app

}  // namespace fe::app
