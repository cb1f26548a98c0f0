#pragma once
// daemon/app: the composition root (issue 14). The one place the daemon is put together:
// `fhir-edge run` parses its options and loads the config, then builds an App and runs it.
//
// What it builds from the config, in this order (nothing is started by building):
//   service    service::Service: the control io_context, signals, sd_notify (READY, STATUS,
//              WATCHDOG, RELOADING, STOPPING), SIGHUP reload, the components' lifecycle
//   stages     app::Stages (stages.hpp): the ExportEvents hub, aws::Clients, and the stages
//              as peers wired through the hub: pipeline::Pipeline (watch → take → spool →
//              upload), import::Importer and import::Housekeeping. stages.hpp says who is
//              subscribed to what and in which order they start and stop.
//   metrics    /metrics and /healthz (daemon/metrics/), reading the stages' counters
// and adds them to the service: metrics first (a metrics port that is taken stops the start
// before the pipeline takes the journal lock), then the stages. Status changes refresh
// STATUS= at once.
//
// run() starts every component, serves until SIGTERM / SIGINT / Service::request_stop(), stops
// them (transfers aborted, pools joined, credential refresh stopped, journal closed) and returns
// the exit code (0 graceful, 1 start-up failure or missed stop deadline). After run() nothing the
// App built is running; the destructor releases what a failed start left.
// Threading: build, run and every handler on the calling thread (the control thread).
#include <memory>

#include "app/stages.hpp"
#include "common/export_events.hpp"
#include "config/config.hpp"
#include "service/service.hpp"

namespace fe::app {

struct Options {
  service::Options service;
  // Knobs that are not in the config (tests lower them); on_change is set by the App.
  StageOptions stages;
};

class App {
 public:
  App(Options options, config::Config config);
  ~App();
  App(const App&) = delete;
  App& operator=(const App&) = delete;

  int run();

  service::Service& service() { return *service_; }
  Stages& stages() { return *stages_; }
  ExportEvents& events() { return stages_->events(); }
  aws::Clients& clients() { return stages_->clients(); }
  pipeline::Pipeline& pipeline() { return stages_->pipeline(); }

 private:
  std::unique_ptr<service::Service> service_;  // first: its io_context outlives the rest
  std::shared_ptr<Stages> stages_;
};

}  // namespace fe::app
