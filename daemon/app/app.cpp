#include "app/app.hpp"

#include "metrics/metrics.hpp"

namespace fe::app {

App::App(Options options, config::Config config)
    : service_(std::make_unique<service::Service>(options.service, std::move(config))) {
  StageOptions so = std::move(options.stages);
  so.on_change = [s = service_.get()] { s->refresh_status(); };
  stages_ = std::make_shared<Stages>(service_->io(), service_->config(), std::move(so));

  // Added first: a metrics port that is taken stops the start before the pipeline takes the
  // journal lock. Its counters are read on the control thread at each heartbeat.
  metrics::Options mo;
  mo.pipeline_stats = [s = stages_] { return s->stats(); };
  service_->add(metrics::make_metrics(service_->io(), mo));
  service_->add(stages_);
}

App::~App() {
  // The stages (and the engine of their clients) must go while the service's io_context still
  // exists; the service holds them too, so they go with it at the latest.
  stages_.reset();
  service_.reset();
}

int App::run() {
  return service_->run();
}

}  // namespace fe::app
