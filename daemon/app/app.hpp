#pragma once
// daemon/app: the composition root (issue 14). The one place the daemon is put together:
// `fhir-edge run` parses its options and loads the config, then builds an App and runs it.
//
// What it builds from the config, in this order (nothing is started by building):
//   service    service::Service: the control io_context, signals, sd_notify (READY, STATUS,
//              WATCHDOG, RELOADING, STOPPING), SIGHUP reload, the components' lifecycle
//   events     the ExportEvents hub (common/export_events.hpp) every stage hands an export on by
//   clients    aws::Clients (aws/clients.hpp) with pipeline::daemon_clients_settings: the HTTP
//              engine, credentials, SigV4 + retry, the S3 and HealthLake clients
//   pipeline   pipeline::Pipeline (watch → take → spool → upload, and for now the importer and
//              the spool housekeeping), given the hub and the clients; subscribed to the hub
//   metrics    /metrics and /healthz (daemon/metrics/), reading the pipeline's counters
// and adds them to the service: metrics first (a metrics port that is taken stops the start
// before the pipeline takes the journal lock), then the pipeline. Status changes refresh
// STATUS= at once.
//
// Wiring on the hub (each stage only emits; the handlers are subscribed here):
//   uploaded  upload → import        (Pipeline::subscribe: the importer the pipeline still
//                                     builds; the import stage subscribes itself once it is a
//                                     peer, issue 14 item 4)
//   resumed   import → ingest        (Pipeline::subscribe)
//   imported  import → housekeeping  (still a direct call inside the pipeline; moves with
//                                     daemon/import/housekeeping)
//
// run() starts every component, serves until SIGTERM / SIGINT / Service::request_stop(), stops
// them (transfers aborted, pools joined, credential refresh stopped, journal closed) and returns
// the exit code (0 graceful, 1 start-up failure or missed stop deadline). After run() nothing the
// App built is running; the destructor releases what a failed start left.
// Threading: build, run and every handler on the calling thread (the control thread).
#include <memory>

#include "common/export_events.hpp"
#include "config/config.hpp"
#include "pipeline/pipeline.hpp"
#include "service/service.hpp"

namespace fe::aws {
class Clients;
}

namespace fe::app {

struct Options {
  service::Options service;
  // Knobs that are not in the config (tests lower them). on_change, import_poll_min/max, events
  // and clients are set by the App.
  pipeline::Options pipeline;
};

class App {
 public:
  App(Options options, config::Config config);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  int run();

  service::Service& service() { return *service_; }
  ExportEvents& events() { return events_; }
  aws::Clients& clients() { return *clients_; }
  pipeline::Pipeline& pipeline() { return *pipeline_; }

 private:
  std::unique_ptr<service::Service> service_;  // first: its io_context outlives the rest
  ExportEvents events_;
  std::unique_ptr<aws::Clients> clients_;
  std::shared_ptr<pipeline::Pipeline> pipeline_;
};

}  // namespace fe::app
