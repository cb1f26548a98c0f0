// The CLI request mailbox (contract in mailbox.hpp).
#include "import/mailbox.hpp"

#include "service/log.hpp"

namespace fe::import {

using journal::ExportState;

RequestMailbox::RequestMailbox(Deps deps) : d_(std::move(deps)) {}

RequestMailbox::~RequestMailbox() {
  stop();
}

void RequestMailbox::stop() {
  stopped_ = true;
  if (timer_) timer_->cancel();
}

void RequestMailbox::arm() {
  if (stopped_ || d_.interval.count() <= 0) return;
  if (!timer_) timer_ = std::make_unique<boost::asio::steady_timer>(d_.io);
  timer_->expires_after(d_.interval);
  std::weak_ptr<RequestMailbox> w = weak_from_this();
  timer_->async_wait([w](const boost::system::error_code& ec) {
    auto self = w.lock();
    if (ec || !self || self->stopped_) return;
    self->check();
    self->arm();
  });
}

std::size_t RequestMailbox::check() {
  if (stopped_) return 0;
  std::vector<journal::RequestRow> pending;
  try {
    pending = d_.journal.pending_requests();
  } catch (const std::exception& ex) {
    log::warning(std::string("requests: ") + ex.what());
    return 0;
  }
  for (const auto& r : pending) {
    try {
      auto [ok, result] = d_.journal.apply_request(r);
      d_.journal.finish_request(r.id, ok, result);
      if (ok && r.kind == "retry") {
        if (auto e = d_.journal.find_export(r.target)) after_retry(*e);
      }
    } catch (const std::exception& ex) {
      log::error(std::string("request failed: ") + ex.what(), {{"REQUEST", std::to_string(r.id)}});
      try {
        d_.journal.finish_request(r.id, false, ex.what());
      } catch (const std::exception&) {
      }
    }
  }
  if (!pending.empty() && d_.on_change) d_.on_change();
  return pending.size();
}

// An export was re-driven by `fhir-edge retry`: continue it where the journal now says.
void RequestMailbox::after_retry(const journal::ExportRow& e) {
  switch (e.state) {
    case ExportState::uploaded:
    case ExportState::import_starting:
    case ExportState::importing:
      if (d_.continue_import) d_.continue_import(e.id);
      break;
    default:
      // Parked before the upload finished: ingest resumes those stages.
      if (d_.events && d_.events->subscribers(ExportEvent::resumed) > 0)
        d_.events->emit(ExportEvent::resumed, e.id);
      else
        log::warning("export resumed as " + std::string(journal::to_string(e.state)) +
                         "; the pipeline continues it at the next start",
                     {{"EXPORT_ID", e.name}, {"PIPELINE", e.pipeline}});
  }
}

}  // namespace fe::import
