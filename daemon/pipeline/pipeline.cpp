// The pipeline component: see pipeline.hpp for the contract. Impl builds the component (the
// journal, the spool quota, the worker pools, the validators and watchers of every pipeline),
// resumes exports from the journal and keeps the spool; the work itself is done by two peers that
// share its Core (core.hpp): Ingest (ingest.hpp: watch → take → spool) and UploadStage
// (upload_stage.hpp: objects → S3, retry, park). Everything runs on the control thread except what
// is explicitly posted to `pool` (validate + spool, digests) or `reader` (hashing archive parts,
// checksumming report and rejects: upload::SpoolBodies); their results are posted back to `io`.
#include "pipeline/pipeline.hpp"

#include <sched.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <map>
#include <set>
#include <stdexcept>
#include <thread>

#include "aws/clients.hpp"
#include "aws/credentials.hpp"
#include "aws/http.hpp"
#include "aws/http_call.hpp"
#include "aws/s3.hpp"
#include "config/reload.hpp"
#include "fhir/validator.hpp"
#include "journal/journal.hpp"
#include "pipeline/aws_settings.hpp"
#include "pipeline/core.hpp"
#include "pipeline/ingest.hpp"
#include "pipeline/upload_stage.hpp"
#include "service/log.hpp"
#include "spool/spool.hpp"
#include "upload/cleanup.hpp"
#include "watch/from_config.hpp"
#include "watch/watcher.hpp"

namespace fe::pipeline {
namespace fs = std::filesystem;
namespace asio = boost::asio;
using journal::ExportState;
using journal::FileState;
using journal::PartKind;
using journal::PartState;

namespace {
// CPUs this process may run on (its affinity mask: taskset, a cgroup cpuset), for PoolHelp.
int usable_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (::sched_getaffinity(0, sizeof set, &set) == 0) return std::max(1, CPU_COUNT(&set));
  return std::max(1u, std::thread::hardware_concurrency());
}
}  // namespace

// ------------------------------------------------------------------ small helpers

std::uint64_t choose_part_size(std::optional<std::uint64_t> configured, std::uint64_t source_bytes,
                               const Options& options) {
  std::uint64_t size = configured ? *configured : options.auto_part_size;
  size = std::max(size, options.min_part_size);
  // S3 allows 10,000 parts; keep one spare so a file that grows by a line still fits.
  const std::uint64_t need = (source_bytes + 9998) / 9999;
  if (size < need) {
    const std::uint64_t mib = 1ull << 20;
    size = (need + mib - 1) / mib * mib;  // whole MiB: readable in logs and the index
  }
  return size;
}

// ------------------------------------------------------------------ Core

Core::Core(asio::io_context& io_, const config::Config& c, Options o)
    : io(io_), cfg(c), opt(std::move(o)), events(opt.events) {
  if (!opt.events || !opt.clients)
    throw std::invalid_argument("pipeline: Options::events and Options::clients are required");
}

Core::~Core() = default;

std::shared_ptr<Run> Core::make_run(const journal::ExportRow& row) {
  auto r = std::make_shared<Run>();
  r->id = row.id;
  r->name = row.name;
  r->pipeline = row.pipeline;
  r->digest_pending = journal::is_pending_digest(row.digest);
  runs[row.id] = r;
  return r;
}

// ------------------------------------------------------------------ Impl

struct Pipeline::Impl : Core, std::enable_shared_from_this<Impl> {
  // The AWS layer (aws::Clients), handed in by the composition root.
  aws::Clients* clients = nullptr;
  aws::HttpEngine* http = nullptr;  // reload() hands it the bandwidth cap
  bool started = false;

  Impl(asio::io_context& io_, const config::Config& c, Options o) : Core(io_, c, std::move(o)) {}

  // ---------------------------------------------------------------- start / stop
  void start() {
    fs::create_directories(cfg.spool.dir);
    jr.emplace(journal::Journal::open(cfg.journal.path));
    quota = std::make_unique<spool::Quota>(cfg.spool.max_bytes);
    quota->set_used(spool::disk_usage(cfg.spool.dir));
    std::weak_ptr<Impl> weak = shared_from_this();
    quota->on_full([weak, this] {
      // Called on a pool thread: hop to the control thread, where the root's hook evicts
      // uploaded spools (import::Housekeeping).
      if (auto self = weak.lock())
        asio::post(io, [self] {
          if (!self->stopping && self->opt.on_spool_full) self->opt.on_spool_full();
        });
    });
    pool = std::make_unique<asio::thread_pool>(std::max(1, opt.worker_threads));
    help = std::make_unique<PoolHelp>(
        [p = pool.get()](std::function<void()> task) { asio::post(*p, std::move(task)); },
        std::max(1, opt.worker_threads), usable_cores());
    reader = std::make_unique<asio::thread_pool>(1);

    clients_and_parts();
    make_cleanup();
    build_pipes();
    started = true;
    recover();
    // After recovery: resumed uploads have their ids in the journal already, and new ones are
    // tracked in `creating` until their answer is journaled.
    cleanup->sweep_orphans();
    // What a superseded version uploaded and a crash (or a failed delete) left behind.
    cleanup->delete_superseded_objects();
    start_watchers();
    log::info("pipeline started", {{"PIPELINES", std::to_string(pipes.size())},
                                   {"SPOOL_USED", std::to_string(quota->used())}});
  }

  // The AWS clients' credentials, then the two parts that share this Core.
  void clients_and_parts() {
    clients = opt.clients;
    try {
      clients->start_credentials();
    } catch (const aws::CredentialsError& e) {
      // Not fatal: exports are still taken, validated and spooled (offline buffering), and every
      // upload attempt asks the chain again, so fixing the credentials needs no restart.
      log::warning(std::string("no AWS credentials yet; exports will be spooled and uploaded once "
                               "credentials are available: ") +
                   e.what());
    }
    http = &clients->http();
    s3 = &clients->s3();
    ingest = std::make_unique<Ingest>(*this);
    upload = std::make_unique<UploadStage>(*this);
  }

  void make_cleanup() {
    std::weak_ptr<Impl> weak_live = shared_from_this();
    auto live = [weak_live] {
      auto self = weak_live.lock();
      return self && !self->stopping;
    };
    cleanup = std::make_shared<upload::Cleanup>(
        upload::Cleanup::Deps{io, *jr, [this] { return s3; }, live,
                              [this] {
                                std::vector<std::pair<std::string, std::string>> where;
                                for (const auto& [name, pipe] : pipes)
                                  where.emplace_back(pipe.cfg.s3.bucket, pipe.cfg.s3.prefix);
                                return where;
                              },
                              [this](const std::string& pipeline) -> std::optional<std::string> {
                                const Pipe* pipe = pipe_of(pipeline);
                                if (!pipe) return std::nullopt;
                                return pipe->cfg.s3.bucket;
                              },
                              [this] {
                                ++stats.orphan_uploads_aborted;
                                changed();
                              },
                              [this] {
                                ++stats.superseded_objects_deleted;
                                changed();
                              },
                              [this] { ++stats.journal_errors; }});
  }

  // One validator per pipeline, at its validation level with its FHIR packages.
  void build_pipes() {
    for (const auto& p : cfg.pipelines) {
      fhir::Options fo;
      fo.level = fhir::parse_level(config::to_string(p.validation_level))
                     .value_or(fhir::Level::structure_only);
      fo.packages = p.fhir_packages;
      fo.max_line_bytes = static_cast<std::size_t>(p.max_line_bytes);
      fhir::LoadReport lr;
      auto v = fhir::Validator::create(fo, lr);
      if (!v) {
        std::string why;
        for (const auto& e : lr.errors) why += (why.empty() ? "" : "; ") + e;
        throw std::runtime_error("pipeline " + p.name + ": cannot load FHIR packages: " + why);
      }
      for (const auto& w : lr.warnings) log::warning(w, {{"PIPELINE", p.name}});
      pipes[p.name] = Pipe{p, std::move(v), nullptr};
    }
  }

  void start_watchers() {
    std::weak_ptr<Impl> weak = shared_from_this();
    forget_waiting_of_other_pipelines();
    for (auto& [name, pipe] : pipes) {
      watch::WatchOptions wo = watch::watch_options(cfg, pipe.cfg);
      wo.pipeline = name;
      if (opt.scan_quiet) wo.scan_quiet = *opt.scan_quiet;  // tests lower it
      // The root is not created here: a typo would be watched forever as an empty directory, and
      // one created with the service's UMask shuts out the exporting system. A missing root is
      // logged and waited for by the watcher (issue 17); the package creates the default one.
      std::string pname = name;
      pipe.watcher =
          std::make_unique<watch::Watcher>(io, wo, [weak, pname](const watch::ReadyExport& r) {
            if (auto self = weak.lock()) self->ingest->on_ready(pname, r);
          });
      // Exports seen but not complete yet go to the journal for `status` and /metrics.
      pipe.watcher->on_waiting([weak, pname](const std::vector<watch::Waiting>& w) {
        if (auto self = weak.lock()) self->record_waiting(pname, w);
      });
      pipe.watcher->start();
    }
  }

  // The watcher's waiting exports of one pipeline, journaled (table waiting_exports). A failed
  // write is counted and logged; the next report writes the whole set again.
  void record_waiting(const std::string& pipeline, const std::vector<watch::Waiting>& waiting) {
    if (stopping || !jr) return;
    std::vector<journal::WaitingRow> rows;
    for (const auto& w : waiting)
      rows.push_back(
          {pipeline, w.name, w.path.string(), w.rule, w.missing,
           std::chrono::duration_cast<std::chrono::milliseconds>(w.since.time_since_epoch())
               .count(),
           0});
    try {
      jr->record_waiting(pipeline, rows);
    } catch (const std::exception& e) {
      ++stats.journal_errors;
      log::error(std::string("journal: cannot record waiting exports: ") + e.what(),
                 {{"PIPELINE", pipeline}});
    }
  }

  // Waiting rows of a pipeline dropped from the config would show in status forever.
  void forget_waiting_of_other_pipelines() {
    std::vector<std::string> names;
    for (const auto& [name, pipe] : pipes) names.push_back(name);
    try {
      jr->forget_waiting_except(names);
    } catch (const std::exception& e) {
      ++stats.journal_errors;
      log::error(std::string("journal: cannot clear waiting exports: ") + e.what());
    }
  }

  // What this component takes from the event hub (Pipeline::subscribe).
  void subscribe(ExportEvents& hub) {
    std::weak_ptr<Impl> weak = shared_from_this();
    hub.on(ExportEvent::resumed, [weak](std::int64_t id) {
      if (auto self = weak.lock()) self->resume_export(id);
    });
    // `uploaded` is the import stage's, `imported` housekeeping's (app/stages.hpp wires them).
  }

  void stop() {
    if (stopping) return;
    stopping = true;
    cancel = true;
    for (auto& [n, p] : pipes)
      if (p.watcher) p.watcher->stop();
    for (auto& [id, r] : runs)
      if (r->timer) r->timer->cancel();
    for (auto& [id, r] : trailing)
      if (r->timer) r->timer->cancel();
    if (quota) quota->shutdown();
    if (upload) upload->clear();
    // The import stage, which uses the journal and the clients below, was stopped before this
    // by the root (app::Stages::stop). Closing the clients destroys the engine, which aborts
    // transfers without callbacks; parts in flight stay "uploading" in the journal and are
    // reconciled with ListParts at the next start. It also stops the credential refresh.
    s3 = nullptr;
    http = nullptr;
    if (clients) clients->close();
    if (pool) pool->join();
    if (reader) reader->join();
    for (auto& [n, p] : pipes) p.watcher.reset();
    // A streamed import object and its Run hold each other (its callbacks name the Run) until
    // Ingest::on_spooled ends the stream, which no longer runs: drop them here.
    for (auto& [id, r] : runs) r->streams.clear();
    runs.clear();
    trailing.clear();
    jr.reset();
  }

  // ---------------------------------------------------------------- recovery
  void recover() {
    for (const auto& row : jr->exports(false)) resume_row(row);
    // Exports past `uploaded` whose archive copy, rejects or report.json were not all uploaded
    // (a file still `uploading`): those go on beside the import (UploadStage::resume_trailing).
    upload->resume_trailing();
  }

  // One export unparked by `fhir-edge retry` (ExportEvent::resumed, from the importer's request
  // mailbox): resumed like at start-up unless it is already being worked on.
  void resume_export(std::int64_t id) {
    if (stopping || !jr || runs.count(id)) return;
    try {
      if (auto row = jr->find_export(id)) resume_row(*row);
    } catch (const std::exception& e) {
      // The journal cannot be read or written: a run already made waits and is retried.
      ++stats.journal_errors;
      if (auto it = runs.find(id); it != runs.end())
        upload->schedule_retry(it->second, std::string("journal: ") + e.what());
      else
        log::error(std::string("journal: cannot resume export: ") + e.what(),
                   {{"EXPORT_ID", std::to_string(id)}});
    }
  }

  // Continues one non-terminal export from the state the journal records.
  void resume_row(const journal::ExportRow& row) {
    if (!pipe_of(row.pipeline)) return;  // pipeline no longer configured: left as it is
    switch (row.state) {
      case ExportState::discovered:
      case ExportState::complete:
      case ExportState::spooling: {
        spool::remove_partials(spool::export_dir(cfg.spool.dir, row.name), quota.get());
        for (const auto& f : jr->files(row.id))
          if (f.state == FileState::spooling)
            jr->set_file_state(f.id, FileState::pending, "redo after restart");
        if (row.state == ExportState::discovered)
          jr->set_export_state(row.id, ExportState::complete);
        log::info("resuming spool after restart",
                  {{"EXPORT_ID", row.name}, {"PIPELINE", row.pipeline}});
        ingest->start_spool(make_run(row));
        break;
      }
      case ExportState::spooled:
      case ExportState::uploading:
        log::info("resuming upload after restart",
                  {{"EXPORT_ID", row.name}, {"PIPELINE", row.pipeline}});
        upload->start_upload(make_run(row));
        break;
      default:
        break;  // parked waits for an operator; uploaded and later belong to the import stage
    }
  }

  std::string status_line() const {
    if (!jr) return "not started";
    int spooling = 0, uploading = 0, queued = 0, parked = 0, waiting = 0;
    for (const auto& e : jr->exports(false)) {
      if (!pipe_of(e.pipeline)) continue;
      switch (e.state) {
        case ExportState::discovered:
        case ExportState::complete:
        case ExportState::spooled:
          ++queued;
          break;
        case ExportState::spooling:
          ++spooling;
          break;
        case ExportState::uploading:
          ++uploading;
          break;
        case ExportState::parked:
          ++parked;
          break;
        default:
          break;
      }
    }
    for (const auto& [id, r] : runs)
      if (r->phase == Phase::waiting) ++waiting;
    std::string s = std::to_string(uploading) + " exports uploading, " + std::to_string(spooling) +
                    " spooling, " + std::to_string(queued) + " queued, " + std::to_string(parked) +
                    " parked";
    if (waiting) s += ", " + std::to_string(waiting) + " waiting to retry";
    if (!trailing.empty())
      s += ", " + std::to_string(trailing.size()) + " uploading archive copies";
    if (quota && quota->full()) s += ", spool full";
    return s;
  }
};

// ------------------------------------------------------------------ Pipeline

Pipeline::Pipeline(asio::io_context& io, const config::Config& config, Options options)
    : impl_(std::make_shared<Impl>(io, config, std::move(options))) {
  impl_->weak_self = impl_;
}

void Pipeline::subscribe(ExportEvents& hub) {
  impl_->subscribe(hub);
}

journal::Journal* Pipeline::journal() {
  return impl_->jr ? &*impl_->jr : nullptr;
}

spool::Quota* Pipeline::quota() {
  return impl_->quota.get();
}

Pipeline::~Pipeline() {
  if (impl_ && impl_->started && !impl_->stopping) impl_->stop();
}

void Pipeline::start(const config::Config& config) {
  impl_->cfg = config;
  impl_->start();
}

bool Pipeline::reload(const config::Config& old_config, const config::Config& new_config,
                      std::string& why) {
  // Every key but the live ones (config/reload.hpp: named by the stages' Settings) is fixed at
  // start; a change is refused, naming the first changed key.
  if (why = config::reload_refusal(old_config, new_config); !why.empty()) return false;
  impl_->cfg = new_config;
  // upload.bandwidth_limit / bandwidth_schedule apply at once, also to parts in flight (the
  // Service calls reload(new, old) to roll back when another component refuses, which restores
  // the old cap the same way).
  if (impl_->http)
    impl_->http->set_bandwidth(new_config.upload.bandwidth_limit.value_or(0),
                               bandwidth_windows(new_config.upload));
  return true;
}

void Pipeline::stop(std::function<void()> done) {
  impl_->stop();
  boost::asio::post(impl_->io, std::move(done));
}

std::string Pipeline::status_line() const {
  return impl_->status_line();
}
const Stats& Pipeline::stats() const {
  auto& st = impl_->stats;
  st.exports_trailing = impl_->trailing.size();
  st.unwatched_roots.clear();
  for (const auto& [name, pipe] : impl_->pipes)
    if (pipe.watcher)
      if (auto why = pipe.watcher->unwatched_reason(); !why.empty())
        st.unwatched_roots.push_back("pipeline " + name + ": " + pipe.cfg.watch.string() + " " +
                                     why);
  return st;
}

}  // namespace fe::pipeline
