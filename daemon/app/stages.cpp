// The daemon's stages built and wired in one place: see stages.hpp for the contract.
#include "app/stages.hpp"

#include <boost/asio/post.hpp>
#include <utility>
#include <vector>

#include "aws/clients.hpp"
#include "aws/healthlake.hpp"
#include "import/housekeeping.hpp"
#include "import/importer.hpp"
#include "pipeline/aws_settings.hpp"

namespace fe::app {

Stages::Stages(boost::asio::io_context& io, const config::Config& config, StageOptions options)
    : io_(io), cfg_(config), opt_(std::move(options)) {
  clients_ = std::make_unique<aws::Clients>(io_, pipeline::daemon_clients_settings(cfg_));
  pipeline::Options po = opt_;  // the pipeline's part of the options
  po.events = &events_;
  po.clients = clients_.get();
  po.on_spool_full = [this] {
    if (housekeeping_ && !stopping_) housekeeping_->evict();
  };
  // An export's archive copy / rejects finished after its import (issue 13 item 5): the spool
  // that retention kept for them may go now.
  po.on_trailing_done = [this] {
    if (housekeeping_ && !stopping_) housekeeping_->retention();
  };
  pipeline_ = std::make_unique<pipeline::Pipeline>(io_, cfg_, std::move(po));
  pipeline_->subscribe(events_);  // resumed → ingest
}

Stages::~Stages() {
  // The import stage first (it uses the pipeline's journal and the clients). The engine must go
  // while the io_context it was made with still exists (a start that failed leaves the clients
  // open: the pipeline closes them only in stop()); then the pipeline (one not stopped stops
  // now, closing the closed clients again), and the clients object last (member order).
  if (housekeeping_) housekeeping_->stop();
  importer_.reset();
  hl_.reset();
  if (clients_) clients_->close();
  pipeline_.reset();
}

void Stages::start(const config::Config& config) {
  cfg_ = config;
  pipeline_->start(config);
  journal::Journal& jr = *pipeline_->journal();
  if (opt_.import_jobs) {
    hl_ = std::make_unique<aws::HealthLakeClient>(clients_->caller());
    import::ImporterOptions io_opt = import::importer_options(cfg_);
    io_opt.poll_min = opt_.import_poll_min.value_or(cfg_.import_jobs.poll_min);
    io_opt.poll_max = opt_.import_poll_max.value_or(cfg_.import_jobs.poll_max);
    io_opt.on_change = opt_.on_change;
    io_opt.max_files_per_job = opt_.max_files_per_import_job;  // the upload's part-NNNN/ layout
    // The importer subscribes uploaded and emits imported and resumed (its request mailbox).
    io_opt.events = &events_;
    importer_ =
        std::make_unique<import::Importer>(io_, jr, *hl_, clients_->s3(), std::move(io_opt));
  }
  housekeeping_ = std::make_shared<import::Housekeeping>(import::Housekeeping::Deps{
      io_, jr, cfg_, pipeline_->quota(), [this](std::uint64_t bytes) { evicted_bytes_ += bytes; }});
  housekeeping_->subscribe(events_);  // imported → after_upload, then retention
  if (importer_) {
    // Problems (data store not ACTIVE, unknown, no access) are logged by the importer; exports
    // that hit them are parked with the same message when their Start is refused.
    importer_->check_datastores([](const std::vector<std::string>&) {});
    importer_->resume();
  }
  housekeeping_->start();
}

bool Stages::reload(const config::Config& old_config, const config::Config& new_config,
                    std::string& why) {
  if (!pipeline_->reload(old_config, new_config, why)) return false;
  cfg_ = new_config;
  return true;
}

void Stages::stop(std::function<void()> done) {
  stopping_ = true;
  // The import stage first: it uses the journal and the clients the pipeline closes. Jobs in
  // flight keep running in HealthLake; the journal holds their token and id, and resume()
  // follows them at the next start. A fleet's lease holder first gives its lease up (through
  // the S3 client, so before the pipeline closes it): Importer::stop(done).
  if (housekeeping_) housekeeping_->stop();
  auto rest = [this, done = std::move(done)]() mutable {
    importer_.reset();
    hl_.reset();
    pipeline_->stop(std::move(done));
  };
  if (!importer_) return rest();
  // Posted: done() may come from inside an S3 callback, and the pipeline's stop closes the
  // client that runs it.
  importer_->stop(
      [this, rest = std::move(rest)]() mutable { boost::asio::post(io_, std::move(rest)); });
}

std::string Stages::status_line() const {
  std::string s = pipeline_->status_line();
  if (importer_) s += "; imports: " + importer_->status_line();
  return s;
}

pipeline::Stats Stages::stats() const {
  pipeline::Stats s = pipeline_->stats();
  s.evicted_bytes += evicted_bytes_;
  return s;
}

}  // namespace fe::app
