// after_upload, spool retention and eviction (contract in housekeeping.hpp).
#include "import/housekeeping.hpp"

#include <algorithm>

#include "service/log.hpp"
#include "watch/identity.hpp"

namespace fe::import {
namespace fs = std::filesystem;
using journal::ExportState;

namespace {
// A file still `uploading` past `uploaded`: its archive copy, rejects or report.json are still
// being uploaded from the spool (issue 13 item 5, pipeline/upload_stage.hpp): keep the spool.
bool trailing_uploads(journal::Journal& jr, std::int64_t export_id) {
  try {
    for (const auto& f : jr.files(export_id))
      if (f.state == journal::FileState::uploading) return true;
    return false;
  } catch (const std::exception&) {
    return true;  // cannot tell: keep it
  }
}
}  // namespace

Housekeeping::Housekeeping(Deps deps) : d_(std::move(deps)) {}

Housekeeping::~Housekeeping() {
  stop();
}

void Housekeeping::stop() {
  stopped_ = true;
  if (retention_timer_) retention_timer_->cancel();
}

void Housekeeping::subscribe(ExportEvents& events) {
  std::weak_ptr<Housekeeping> w = weak_from_this();
  events.on(ExportEvent::imported, [w](std::int64_t id) {
    if (auto self = w.lock()) {
      self->after_upload(id);
      self->retention();  // keep_for may be 0: the spool goes at once
    }
  });
}

void Housekeeping::start() {
  if (!retention_timer_) retention_timer_ = std::make_unique<boost::asio::steady_timer>(d_.io);
  retention();
}

void Housekeeping::after_upload(std::int64_t export_id) {
  if (stopped_) return;
  std::string name, pipeline;
  auto& jr = d_.journal;
  try {
    auto row = jr.get_export(export_id);
    name = row.name;
    pipeline = row.pipeline;
    const config::Pipeline* pipe = nullptr;
    for (const auto& p : d_.config.pipelines)
      if (p.name == row.pipeline) pipe = &p;
    if (!pipe) return;
    const auto& policy = pipe->after_upload;
    if (policy.kind == config::AfterUploadKind::keep) return;
    fs::path src(row.source_path);
    std::error_code ec;
    const bool dir = fs::is_directory(fs::symlink_status(src, ec));
    std::vector<watch::TakenFile> taken;
    for (const auto& f : jr.files(export_id)) {
      taken.push_back({f.name, dir ? src / f.name : src, f.source.file_identity()});
    }
    if (auto changes = watch::changed_after_taken(taken); !changes.empty()) {
      std::string why = "source left in place: " + changes.front().name + " " +
                        changes.front().what + " since the export was taken";
      log::warning("after_upload skipped: " + why, {{"EXPORT_ID", name}, {"PIPELINE", pipeline}});
      jr.add_event(export_id, std::nullopt, "after_upload", why);
      return;
    }
    std::string done;
    if (policy.kind == config::AfterUploadKind::remove) {
      for (const auto& f : taken) fs::remove(f.path);
      if (dir) {
        // The export's own metadata goes with it; anything else keeps the directory.
        const auto& rules = pipe->complete_when;
        for (const std::string& meta :
             {rules.marker, std::string("manifest.json"), std::string("log.ndjson")})
          if (!meta.empty()) fs::remove(src / meta, ec);
        if (fs::is_empty(src, ec)) fs::remove(src, ec);
      }
      done = "deleted " + std::to_string(taken.size()) + " source file(s)";
    } else {
      fs::create_directories(policy.move_to);
      fs::path dest = policy.move_to / src.filename();
      if (fs::exists(fs::symlink_status(dest, ec))) dest = policy.move_to / row.name;
      if (fs::exists(fs::symlink_status(dest, ec)))
        dest = policy.move_to / (row.name + "." + std::to_string(journal::now_ms()));
      fs::rename(src, dest);  // same file system only: EXDEV is reported, nothing is copied
      done = "moved to " + dest.string();
    }
    log::info("after_upload: " + done, {{"EXPORT_ID", name}, {"PIPELINE", pipeline}});
    jr.add_event(export_id, std::nullopt, "after_upload", done);
  } catch (const std::exception& e) {
    log::error(std::string("after_upload failed, source left in place: ") + e.what(),
               {{"EXPORT_ID", name}, {"PIPELINE", pipeline}});
    try {
      jr.add_event(export_id, std::nullopt, "after_upload", std::string("failed: ") + e.what());
    } catch (const std::exception&) {
    }
  }
}

void Housekeeping::retention() {
  if (stopped_) return;
  try {
    auto& jr = d_.journal;
    auto removed = spool::remove_expired(
        d_.config.spool.dir, d_.config.spool.keep_for,
        [&jr](const std::string& name) {
          auto e = jr.find_export(name);
          return e &&
                 (e->state == ExportState::imported || e->state == ExportState::failed ||
                  e->state == ExportState::superseded ||
                  e->state == ExportState::nothing_to_import) &&
                 !trailing_uploads(jr, e->id);
        },
        d_.quota);
    for (const auto& n : removed)
      log::info("spool retention: removed the spool of a finished export", {{"EXPORT_ID", n}});
  } catch (const std::exception& e) {
    log::warning(std::string("spool retention: ") + e.what());
  }
  arm_retention();
}

void Housekeeping::arm_retention() {
  if (!retention_timer_) return;  // not start()ed: a run on `imported` only
  retention_timer_->expires_after(d_.retention_interval);
  std::weak_ptr<Housekeeping> w = weak_from_this();
  retention_timer_->async_wait([w](const boost::system::error_code& ec) {
    if (auto self = w.lock(); self && !ec) self->retention();
  });
}

void Housekeeping::evict() {
  if (stopped_ || !d_.quota) return;
  auto& quota = *d_.quota;
  std::vector<journal::ExportRow> all;
  try {
    all = d_.journal.exports(true);
  } catch (const std::exception& e) {
    log::warning(std::string("spool full, cannot read the journal to evict: ") + e.what());
  }
  std::reverse(all.begin(), all.end());  // oldest first
  for (const auto& e : all) {
    if (!quota.full()) break;
    switch (e.state) {
      case ExportState::uploaded:
      case ExportState::import_starting:
      case ExportState::importing:
      case ExportState::imported:
      case ExportState::import_failed:
      case ExportState::nothing_to_import:
      case ExportState::failed:
      case ExportState::superseded: {
        auto dir = spool::export_dir(d_.config.spool.dir, e.name);
        std::error_code ec;
        if (!fs::exists(dir, ec)) break;
        if (trailing_uploads(d_.journal, e.id)) break;
        auto freed = spool::remove_export(d_.config.spool.dir, e.name, &quota);
        if (d_.on_evicted) d_.on_evicted(freed);
        log::info(
            "spool full: evicted the spool of an uploaded export",
            {{"EXPORT_ID", e.name}, {"PIPELINE", e.pipeline}, {"BYTES", std::to_string(freed)}});
        break;
      }
      default:
        break;
    }
  }
  if (quota.full()) {
    if (!quota_full_logged_) {
      quota_full_logged_ = true;
      log::notice("spool quota reached: new exports wait until uploads finish",
                  {{"SPOOL_USED", std::to_string(quota.used())},
                   {"SPOOL_MAX", std::to_string(quota.max_bytes())}});
    }
    if (evict_timer_armed_) return;
    evict_timer_armed_ = true;
    // Uploads that finish later make more room evictable: look again then.
    auto t = std::make_shared<boost::asio::steady_timer>(d_.io, std::chrono::seconds(1));
    std::weak_ptr<Housekeeping> w = weak_from_this();
    t->async_wait([w, t](const boost::system::error_code& ec) {
      if (auto self = w.lock(); self && !ec) {
        self->evict_timer_armed_ = false;
        self->evict();
      }
    });
  } else if (quota_full_logged_) {
    quota_full_logged_ = false;
    log::notice("spool has room again; ingest continues",
                {{"SPOOL_USED", std::to_string(quota.used())}});
  }
}

}  // namespace fe::import
