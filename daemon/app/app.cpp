#include "app/app.hpp"

#include "aws/clients.hpp"
#include "metrics/metrics.hpp"
#include "pipeline/aws_settings.hpp"

namespace fe::app {

App::App(Options options, config::Config config)
    : service_(std::make_unique<service::Service>(options.service, std::move(config))) {
  const config::Config& cfg = service_->config();
  clients_ = std::make_unique<aws::Clients>(service_->io(), pipeline::daemon_clients_settings(cfg));

  pipeline::Options po = std::move(options.pipeline);
  po.on_change = [s = service_.get()] { s->refresh_status(); };
  po.import_poll_min = cfg.import_jobs.poll_min;
  po.import_poll_max = cfg.import_jobs.poll_max;
  po.events = &events_;
  po.clients = clients_.get();
  pipeline_ = std::make_shared<pipeline::Pipeline>(service_->io(), cfg, std::move(po));
  pipeline_->subscribe(events_);

  // Added first: a metrics port that is taken stops the start before the pipeline takes the
  // journal lock. Its counters are read on the control thread at each heartbeat.
  metrics::Options mo;
  mo.pipeline_stats = [p = pipeline_] { return p->stats(); };
  service_->add(metrics::make_metrics(service_->io(), mo));
  service_->add(pipeline_);
}

App::~App() {
  // The engine must go while the io_context it was made with still exists (a start that failed
  // leaves the clients open: the pipeline closes them only in stop()). Then the service and its
  // components (a pipeline not stopped stops now, closing the closed clients again), and the
  // clients object last, since the pipeline holds it until then.
  if (clients_) clients_->close();
  pipeline_.reset();
  service_.reset();
}

int App::run() {
  return service_->run();
}

}  // namespace fe::app
