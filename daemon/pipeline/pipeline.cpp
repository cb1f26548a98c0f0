// The pipeline component: see pipeline.hpp for the contract. Everything in Impl runs on the
// control thread except what is explicitly posted to `pool` (validate + spool, digests) or
// `reader` (hashing archive parts, checksumming report and rejects: upload::SpoolBodies); their
// results are posted back to `io`. The object upload itself is daemon/upload/.
#include "pipeline/pipeline.hpp"

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <map>
#include <set>

#include "aws/crc32c.hpp"
#include "aws/credentials.hpp"
#include "aws/healthlake.hpp"
#include "aws/http.hpp"
#include "aws/http_call.hpp"
#include "aws/s3.hpp"
#include "config/reload.hpp"
#include "fhir/validator.hpp"
#include "journal/digest.hpp"
#include "journal/journal.hpp"
#include "pipeline/aws_settings.hpp"
#include "pipeline/importer.hpp"
#include "pipeline/spooler.hpp"
#include "service/log.hpp"
#include "spool/spool.hpp"
#include "upload/adapters.hpp"
#include "upload/cleanup.hpp"
#include "upload/object_upload.hpp"
#include "watch/from_config.hpp"
#include "watch/watcher.hpp"

namespace fe::pipeline {
namespace fs = std::filesystem;
namespace asio = boost::asio;
using journal::ExportState;
using journal::FileState;
using journal::PartKind;
using journal::PartState;

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

namespace {
std::string join_key(std::string_view prefix, std::string_view export_name, std::string_view mid,
                     std::string_view leaf) {
  std::string k;
  if (!prefix.empty()) {
    k += prefix;
    k += '/';
  }
  k += export_name;
  k += '/';
  k += mid;
  if (!leaf.empty()) {
    k += '/';
    k += leaf;
  }
  return k;
}
std::string ndjson_name(std::string_view file_name) {
  // A compressed source (.ndjson.gz, .ndjson.zst) is read decompressed: its import object is the
  // plain NDJSON, named as HealthLake documents its input (.ndjson).
  std::string n = watch::Watcher::plain_name(file_name);
  if (!n.ends_with(".ndjson")) n += ".ndjson";
  return n;
}
}  // namespace

std::string import_key(std::string_view prefix, std::string_view export_name,
                       std::string_view file_name) {
  return join_key(prefix, export_name, "import", ndjson_name(file_name));
}
std::string archive_key(std::string_view prefix, std::string_view export_name,
                        std::string_view file_name) {
  return join_key(prefix, export_name, "archive", ndjson_name(file_name) + ".zst");
}
std::string rejected_key(std::string_view prefix, std::string_view export_name,
                         std::string_view file_name) {
  return join_key(prefix, export_name, "rejected", ndjson_name(file_name) + ".zst");
}
std::string report_key(std::string_view prefix, std::string_view export_name) {
  return join_key(prefix, export_name, "report.json", "");
}

namespace {

// upload.bandwidth_schedule in the HTTP engine's form (unlimited = 0 on both sides).
std::vector<aws::BandwidthWindow> bandwidth_schedule(const config::Upload& u) {
  std::vector<aws::BandwidthWindow> out;
  for (const auto& w : u.bandwidth_schedule)
    out.push_back({w.from_minute, w.to_minute, w.limit.value_or(0)});
  return out;
}

}  // namespace

// ------------------------------------------------------------------ Impl

struct Pipeline::Impl : std::enable_shared_from_this<Impl> {
  enum class Phase { spooling, uploading, waiting };

  // One export being worked on (control thread only).
  struct Run {
    std::int64_t id = 0;
    std::string name;
    std::string pipeline;
    Phase phase = Phase::spooling;
    int ops = 0;  // outstanding async work of the current phase
    bool superseded = false;
    std::string fail;  // fail-export message (the spool stage's verdict, not an upload outcome)
    // What went wrong in this attempt (spool I/O, journal, early uploads, the upload pass): park
    // beats retry_later; done when nothing did.
    upload::Outcome outcome;
    int attempt = 0;
    std::unique_ptr<asio::steady_timer> timer;
    // Upload overlapping the spool: a file's import and archive objects start as soon as that
    // file is spooled and journaled, while the export's later files are still being validated.
    // Such "early" objects exist only while the export is in Phase::spooling: spool_done waits
    // for them (spool_waiting), so every export-level decision (uploaded, retry, park, failed,
    // superseded) is taken with no early object in flight.
    int early_ops = 0;                    // early objects not finished yet
    std::set<std::int64_t> early_files;   // files whose objects were started early (this attempt)
    std::set<std::int64_t> early_failed;  // ... and one of them did not succeed
    bool spool_waiting = false;           // spool_done deferred until early_ops is 0
  };

  struct Pipe {
    config::Pipeline cfg;
    std::shared_ptr<const fhir::Validator> validator;
    std::unique_ptr<watch::Watcher> watcher;
  };

  asio::io_context& io;
  config::Config cfg;
  Options opt;
  std::optional<journal::Journal> jr;
  std::unique_ptr<spool::Quota> quota;
  std::unique_ptr<asio::thread_pool> pool;
  std::unique_ptr<asio::thread_pool> reader;
  std::unique_ptr<aws::CredentialsProvider> creds;
  std::unique_ptr<aws::HttpEngine> http;
  std::unique_ptr<aws::AwsCaller> caller;
  std::unique_ptr<aws::S3Client> s3;
  std::unique_ptr<aws::HealthLakeClient> hl;
  std::unique_ptr<Importer> importer;  // null when Options::import_jobs is false
  std::unique_ptr<asio::steady_timer> retention_timer;
  std::map<std::string, Pipe> pipes;
  std::map<std::int64_t, std::shared_ptr<Run>> runs;
  std::set<std::string> digesting;                  // pipeline \n path
  std::map<std::string, watch::ReadyExport> again;  // reported again while digesting
  // The object upload's ports (daemon/upload/): made in start(), kept until the Impl goes (a
  // machine only runs from callbacks that check `stopping` first).
  std::unique_ptr<upload::PartScheduler> scheduler;  // upload.concurrency over every object
  std::unique_ptr<upload::S3Store> store;
  std::unique_ptr<upload::JournalLedger> ledger;
  std::unique_ptr<upload::SpoolBodies> bodies;
  // Orphaned multipart uploads and superseded versions' objects (daemon/upload/cleanup.hpp).
  std::shared_ptr<upload::Cleanup> cleanup;
  std::atomic<bool> cancel{false};
  bool stopping = false;
  bool started = false;
  bool quota_full_logged = false;
  bool evict_timer_armed = false;
  Stats stats;

  Impl(asio::io_context& io_, const config::Config& c, Options o)
      : io(io_), cfg(c), opt(std::move(o)) {}

  void changed() {
    if (opt.on_change) opt.on_change();
  }

  const Pipe* pipe_of(const std::string& name) const {
    auto it = pipes.find(name);
    return it == pipes.end() ? nullptr : &it->second;
  }

  // ---------------------------------------------------------------- start / stop
  void start() {
    fs::create_directories(cfg.spool.dir);
    jr.emplace(journal::Journal::open(cfg.journal.path));
    quota = std::make_unique<spool::Quota>(cfg.spool.max_bytes);
    quota->set_used(spool::disk_usage(cfg.spool.dir));
    std::weak_ptr<Impl> weak = shared_from_this();
    quota->on_full([weak, this] {
      // Called on a pool thread: hop to the control thread to evict uploaded spools.
      if (auto self = weak.lock()) asio::post(io, [self] { self->evict(); });
    });
    pool = std::make_unique<asio::thread_pool>(std::max(1, opt.worker_threads));
    reader = std::make_unique<asio::thread_pool>(1);

    aws::CredentialsOptions co = credentials_options(cfg);
    aws::ClientConfig cc = client_config(cfg, co);
    if (cfg.upload.bandwidth_limit) cc.http.max_send_bytes_per_second = *cfg.upload.bandwidth_limit;
    cc.http.bandwidth_schedule = bandwidth_schedule(cfg.upload);
    cc.http.max_per_endpoint = static_cast<std::size_t>(cfg.upload.concurrency) + 4;
    creds = std::make_unique<aws::CredentialsProvider>(co);
    try {
      creds->start();
    } catch (const aws::CredentialsError& e) {
      // Not fatal: exports are still taken, validated and spooled (offline buffering), and every
      // upload attempt asks the chain again, so fixing the credentials needs no restart.
      log::warning(std::string("no AWS credentials yet; exports will be spooled and uploaded once "
                               "credentials are available: ") +
                   e.what());
    }
    http = std::make_unique<aws::HttpEngine>(io, cc.http);
    caller = std::make_unique<aws::AwsCaller>(*http, cc, creds->as_function());
    s3 = std::make_unique<aws::S3Client>(*caller);
    std::weak_ptr<Impl> weak_live = shared_from_this();
    auto live = [weak_live] {
      auto self = weak_live.lock();
      return self && !self->stopping;
    };
    scheduler = std::make_unique<upload::PartScheduler>(cfg.upload.concurrency);
    store = std::make_unique<upload::S3Store>([this] { return s3.get(); }, live);
    ledger = std::make_unique<upload::JournalLedger>(*jr);
    bodies = std::make_unique<upload::SpoolBodies>(io, *reader, live);
    cleanup = std::make_shared<upload::Cleanup>(
        upload::Cleanup::Deps{io, *jr, [this] { return s3.get(); }, live,
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
    started = true;
    if (opt.import_jobs) {
      // Before recover(): an upload that recover() resumes may finish and kick the importer.
      hl = std::make_unique<aws::HealthLakeClient>(*caller);
      ImporterOptions io_opt = importer_options(cfg);
      io_opt.poll_min = opt.import_poll_min;
      io_opt.poll_max = opt.import_poll_max;
      io_opt.on_change = opt.on_change;
      io_opt.max_files_per_job = opt.max_files_per_import_job;
      std::weak_ptr<Impl> weak_self = shared_from_this();
      io_opt.on_imported = [weak_self](std::int64_t id) {
        if (auto self = weak_self.lock()) {
          self->apply_after_upload(id);
          self->retention();  // keep_for may be 0: the spool goes at once
        }
      };
      // `fhir-edge retry` of an export parked before `uploaded`: continue it now, not at the
      // next start.
      std::weak_ptr<Impl> weak_resume = shared_from_this();
      io_opt.on_resumed = [weak_resume](std::int64_t id) {
        if (auto self = weak_resume.lock()) self->resume_one(id);
      };
      importer = std::make_unique<Importer>(io, *jr, *hl, *s3, std::move(io_opt));
    }
    recover();
    // After recovery: resumed uploads have their ids in the journal already, and new ones are
    // tracked in `creating` until their answer is journaled.
    cleanup->sweep_orphans();
    // What a superseded version uploaded and a crash (or a failed delete) left behind.
    cleanup->delete_superseded_objects();
    if (importer) {
      // Problems (data store not ACTIVE, unknown, no access) are logged by the importer; exports
      // that hit them are parked with the same message when their Start is refused.
      importer->check_datastores([](const std::vector<std::string>&) {});
      importer->resume();
    }
    retention_timer = std::make_unique<asio::steady_timer>(io);
    retention();
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
            if (auto self = weak.lock()) self->on_ready(pname, r);
          });
      pipe.watcher->start();
    }
    log::info("pipeline started", {{"PIPELINES", std::to_string(pipes.size())},
                                   {"SPOOL_USED", std::to_string(quota->used())}});
  }

  void stop() {
    if (stopping) return;
    stopping = true;
    cancel = true;
    for (auto& [n, p] : pipes)
      if (p.watcher) p.watcher->stop();
    for (auto& [id, r] : runs)
      if (r->timer) r->timer->cancel();
    if (quota) quota->shutdown();
    if (scheduler) scheduler->clear();
    // The importer first: it uses the journal and the clients below. Jobs in flight keep
    // running in HealthLake; the journal holds their token and id, and resume() follows them.
    if (retention_timer) retention_timer->cancel();
    importer.reset();
    hl.reset();
    // Destroying the engine aborts transfers without callbacks; parts in flight stay "uploading"
    // in the journal and are reconciled with ListParts at the next start.
    s3.reset();
    caller.reset();
    http.reset();
    if (pool) pool->join();
    if (reader) reader->join();
    for (auto& [n, p] : pipes) p.watcher.reset();
    if (creds) creds->stop();
    runs.clear();
    jr.reset();
  }

  // ---------------------------------------------------------------- recovery
  void recover() {
    for (const auto& row : jr->exports(false)) resume_row(row);
  }

  // One export unparked by `fhir-edge retry` (importer's on_resumed): resumed like at start-up
  // unless it is already being worked on.
  void resume_one(std::int64_t id) {
    if (stopping || runs.count(id)) return;
    try {
      if (auto row = jr->find_export(id)) resume_row(*row);
    } catch (const std::exception& e) {
      // The journal cannot be read or written: a run already made waits and is retried.
      ++stats.journal_errors;
      if (auto it = runs.find(id); it != runs.end())
        schedule_retry(it->second, std::string("journal: ") + e.what());
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
        log::info("resuming spool after restart", {{"EXPORT_ID", row.name}});
        start_spool(make_run(row));
        break;
      }
      case ExportState::spooled:
      case ExportState::uploading:
        log::info("resuming upload after restart", {{"EXPORT_ID", row.name}});
        start_upload(make_run(row));
        break;
      default:
        break;  // parked waits for an operator; uploaded and later belong to the import stage
    }
  }

  std::shared_ptr<Run> make_run(const journal::ExportRow& row) {
    auto r = std::make_shared<Run>();
    r->id = row.id;
    r->name = row.name;
    r->pipeline = row.pipeline;
    runs[row.id] = r;
    return r;
  }

  // ---------------------------------------------------------------- take
  void on_ready(const std::string& pname, const watch::ReadyExport& r) {
    if (stopping) return;
    std::string key = pname + "\n" + r.path.string();
    if (digesting.count(key)) {
      again[key] = r;  // digest it again once the current pass is done
      return;
    }
    digesting.insert(key);
    auto self = shared_from_this();
    asio::post(*pool, [self, pname, r, key] {
      std::string digest, error;
      try {
        std::vector<std::string> names;
        for (const auto& f : r.files) names.push_back(f.name);
        fs::path dir = r.single_file ? r.path.parent_path() : r.path;
        digest = journal::content_digest(dir, names);
      } catch (const std::exception& e) {
        error = e.what();
      }
      asio::post(self->io, [self, pname, r, key, digest, error] {
        self->digesting.erase(key);
        if (self->stopping) return;
        if (!error.empty()) {
          // Usually a file replaced or removed while it was read; the watcher reports it again.
          log::warning("cannot digest export: " + error, {{"EXPORT_ID", r.name}});
        } else {
          self->take(pname, r, digest);
        }
        if (auto it = self->again.find(key); it != self->again.end()) {
          auto next = it->second;
          self->again.erase(it);
          self->on_ready(pname, next);
        }
      });
    });
  }

  void take(const std::string& pname, const watch::ReadyExport& r, const std::string& digest) {
    std::vector<std::pair<std::string, journal::SourceIdentity>> files;
    for (const auto& f : r.files)
      files.push_back({f.name, journal::SourceIdentity{f.identity.size, f.identity.mtime_ns,
                                                       f.identity.inode, f.identity.dev}});
    journal::Taken t;
    try {
      t = jr->take_export(pname, r.path.string(), digest, r.name, files);
    } catch (const std::exception& e) {
      log::error(std::string("journal: cannot take export: ") + e.what(), {{"EXPORT_ID", r.name}});
      return;
    }
    if (t.existing) {
      ++stats.exports_seen_again;
      if (t.compacted)
        log::info(
            "export already taken (identical content; compacted from the journal after it "
            "ended " +
                std::string(to_string(t.row.state)) + "), not redone",
            {{"EXPORT_ID", t.row.name}, {"STATE", std::string(to_string(t.row.state))}});
      else if (!runs.count(t.row.id))
        log::info("export already taken (identical content), not redone",
                  {{"EXPORT_ID", t.row.name}, {"STATE", std::string(to_string(t.row.state))}});
      return;
    }
    ++stats.exports_taken;
    log::info("export taken", {{"EXPORT_ID", t.row.name},
                               {"PIPELINE", pname},
                               {"RULE", r.rule},
                               {"FILES", std::to_string(r.files.size())}});
    std::string held;
    try {
      held = hold_reason(pname, t.row, r);
    } catch (const std::exception& e) {
      // Cannot tell whether an earlier version is being imported: hold, never import twice.
      held = std::string("held: cannot check earlier versions: ") + e.what();
    }
    if (!held.empty()) {
      try {
        jr->set_export_state(t.row.id, ExportState::complete, "complete: " + r.rule);
        jr->park_export(t.row.id, held);
        log::warning(held, {{"EXPORT_ID", t.row.name}, {"PIPELINE", pname}});
      } catch (const std::exception& e) {
        ++stats.journal_errors;
        log::error(std::string("journal: cannot hold export: ") + e.what(),
                   {{"EXPORT_ID", t.row.name}});
      }
      changed();
      return;
    }
    auto run = make_run(t.row);
    try {
      // What the watcher did not take stays visible in `status --export` (the log said it once).
      for (const auto& sk : r.skipped)
        jr->add_event(t.row.id, std::nullopt, "skipped",
                      sk.reason + "\t" + sk.path.filename().string());
    } catch (const std::exception& e) {
      ++stats.journal_errors;
      log::error(std::string("journal: ") + e.what(), {{"EXPORT_ID", t.row.name}});
    }
    if (!r.nested.empty()) {
      // Files below a subdirectory are not taken (the spool and S3 layout are flat): importing
      // the top level alone would report the export imported without them. Parked, saying which.
      std::string list;
      for (const auto& n : r.nested) list += (list.empty() ? "" : ", ") + n;
      return park(run, "export has files in subdirectories, which are not taken: " + list +
                           "; move them to the top level of the export (or into exports of "
                           "their own); `fhir-edge retry` imports the top-level files only");
    }
    try {
      jr->set_export_state(t.row.id, ExportState::complete, "complete: " + r.rule);
      start_spool(run);
    } catch (const std::exception& e) {
      // Taken (journaled) but not started: the retry timer resumes it from the journal.
      ++stats.journal_errors;
      schedule_retry(run, std::string("journal: ") + e.what());
    }
  }

  // on_changed: hold (issue 18). A new version of a source whose earlier version already got
  // past spooling (spooled, uploading, uploaded, importing, imported; parked from one of those)
  // would import the whole export a second time; it is parked for the operator instead, with
  // what changed. Empty: go on (on_changed: reimport, a first version, or earlier versions that
  // never got that far: superseded, failed, spooling).
  std::string hold_reason(const std::string& pname, const journal::ExportRow& row,
                          const watch::ReadyExport& r) {
    const Pipe* pipe = pipe_of(pname);
    if (!pipe || pipe->cfg.on_changed == config::OnChanged::reimport || row.version < 2) return {};
    auto past_spool = [](ExportState st) {
      switch (st) {
        case ExportState::spooled:
        case ExportState::uploading:
        case ExportState::uploaded:
        case ExportState::import_starting:
        case ExportState::importing:
        case ExportState::imported:
          return true;
        default:
          return false;
      }
    };
    std::optional<journal::ExportRow> earlier;
    for (const auto& e : jr->exports(true)) {
      if (e.id == row.id || e.pipeline != row.pipeline || e.source_path != row.source_path)
        continue;
      const ExportState st =
          e.state == ExportState::parked && e.parked_from ? *e.parked_from : e.state;
      if (!past_spool(st)) continue;
      if (!earlier || e.version > earlier->version) earlier = e;
    }
    if (!earlier) return {};
    // What changed, file by file: the journal's identity of the earlier version against the
    // files just taken (size; else modification time).
    std::map<std::string, journal::SourceIdentity> before;
    for (const auto& f : jr->files(earlier->id)) before[f.name] = f.source;
    std::string what;
    int listed = 0, more = 0;
    auto note = [&](const std::string& s) {
      if (listed < 5) {
        what += (what.empty() ? "" : "; ") + s;
        ++listed;
      } else {
        ++more;
      }
    };
    std::set<std::string> now;
    for (const auto& f : r.files) {
      now.insert(f.name);
      auto it = before.find(f.name);
      if (it == before.end()) {
        note(f.name + " added (" + std::to_string(f.identity.size) + " bytes)");
      } else if (it->second.size != f.identity.size) {
        note(f.name + " size " + std::to_string(it->second.size) + " -> " +
             std::to_string(f.identity.size) + " bytes");
      } else if (it->second.mtime_ns != f.identity.mtime_ns ||
                 it->second.inode != f.identity.inode) {
        note(f.name + " rewritten (same size " + std::to_string(f.identity.size) + " bytes)");
      }
    }
    for (const auto& [name, id] : before)
      if (!now.count(name)) note(name + " removed");
    if (more > 0) what += "; and " + std::to_string(more) + " more";
    if (what.empty()) what = "content digest " + earlier->digest + " -> " + row.digest;
    const ExportState st = earlier->state == ExportState::parked && earlier->parked_from
                               ? *earlier->parked_from
                               : earlier->state;
    return "held: changed after version " + earlier->name + " was taken (" +
           std::string(to_string(st)) + "): " + what +
           "; not imported twice (on_changed: hold); `fhir-edge retry " + row.name +
           "` imports this version";
  }

  // ---------------------------------------------------------------- spool
  void start_spool(std::shared_ptr<Run> run) {
    run->phase = Phase::spooling;
    run->superseded = false;
    run->fail.clear();
    run->outcome = {};
    auto row = jr->get_export(run->id);
    const Pipe* pipe = pipe_of(row.pipeline);
    if (row.state == ExportState::complete) jr->set_export_state(run->id, ExportState::spooling);
    fs::path src(row.source_path);
    std::error_code ec;
    const bool dir = fs::is_directory(fs::symlink_status(src, ec));
    auto self = shared_from_this();
    // Largest file first: the pool then ends the export's spooling as early as it can (the big
    // file does not start last), and the smaller files are spooled, and uploaded early, while the
    // big one is still being validated. A 1 GB export is usually one large Observation file.
    auto files = jr->files(run->id);
    std::stable_sort(files.begin(), files.end(),
                     [](const auto& a, const auto& b) { return a.source.size > b.source.size; });
    for (const auto& f : files) {
      if (f.state != FileState::pending) continue;
      try {
        jr->set_file_state(f.id, FileState::spooling);
      } catch (const std::exception& e) {
        // Files already posted finish first; spool_done then schedules the retry.
        ++stats.journal_errors;
        run->outcome.merge(upload::Outcome::retry_later(std::string("journal: ") + e.what()));
        break;
      }
      SpoolJob job;
      job.spool_dir = cfg.spool.dir;
      job.export_name = row.name;
      job.file_name = f.name;
      job.source.name = f.name;
      job.source.path = dir ? src / f.name : src;
      job.source.identity =
          watch::FileIdentity{f.source.dev, f.source.inode, f.source.size, f.source.mtime_ns};
      job.validator = pipe->validator;
      job.on_invalid = pipe->cfg.on_invalid;
      job.part_size = choose_part_size(cfg.upload.part_size, f.source.size, opt);
      job.zstd_level = cfg.spool.zstd_level;
      job.quota = quota.get();
      job.cancel = &cancel;
      std::int64_t file_id = f.id;
      ++run->ops;
      asio::post(*pool, [self, run, job, file_id] {
        auto res = spool_file(job);
        asio::post(self->io, [self, run, file_id, res = std::move(res)] {
          self->on_spooled(run, file_id, res);
        });
      });
    }
    changed();
    if (run->ops == 0) spool_done(run);
  }

  void on_spooled(std::shared_ptr<Run> run, std::int64_t file_id, const SpoolResult& res) {
    if (stopping) return;
    --run->ops;
    try {
      auto f = jr->get_file(file_id);
      if (res.cancelled) {
        run->outcome.merge(upload::Outcome::retry_later("spooling cancelled"));
      } else if (res.changed) {
        run->superseded = true;
        run->fail = res.error;
      } else if (res.fail_export) {
        if (run->fail.empty()) run->fail = res.error;
        jr->set_file_state(file_id, FileState::failed, res.error);
      } else if (!res.ok) {
        // I/O trouble (disk full, source unreadable): keep the export and try again later. A
        // source replaced mid-read is reported as `changed` above.
        run->outcome.merge(upload::Outcome::retry_later(res.error));
        jr->set_file_state(file_id, FileState::pending, res.error);
        jr->set_file_error(file_id, res.error);
      } else if (res.file_rejected) {
        // The counts go with the state: `status` shows what report.json says.
        jr->record_file_rejected(file_id, res.rejected,
                                 std::to_string(res.rejected) +
                                     " invalid line(s); whole file rejected (on_invalid: "
                                     "reject-file)");
        std::error_code ec;
        if (!res.line_map.empty()) fs::remove(res.line_map, ec);
      } else {
        std::vector<journal::PartPlan> ip, ap;
        for (const auto& p : res.import_parts)
          ip.push_back({p.number, static_cast<std::int64_t>(p.offset),
                        static_cast<std::int64_t>(p.length), aws::crc32c_base64(p.crc32c)});
        for (const auto& p : res.archive_parts)
          ap.push_back({p.number, static_cast<std::int64_t>(p.offset),
                        static_cast<std::int64_t>(p.length), aws::crc32c_base64(p.crc32c)});
        jr->plan_parts(file_id, PartKind::import, ip);
        jr->plan_parts(file_id, PartKind::archive, ap);
        journal::SpoolOutcome out;
        out.resources_valid = res.valid;
        out.resources_rejected = res.rejected;
        out.bytes_uncompressed = static_cast<std::int64_t>(res.bytes_uncompressed);
        out.bytes_spooled = static_cast<std::int64_t>(res.bytes_spooled);
        out.checksum = aws::crc32c_base64(res.crc32c);
        if (res.line_map.empty()) {
          jr->record_spooled(file_id, out);
        } else {
          // Import line -> source line anchors, streamed from the spool into the same journal
          // transaction; the importer reports FAILURE/ lines as source lines with them.
          LineMapReader map(res.line_map);
          jr->record_spooled(file_id, out, [&map](journal::LineAnchor& a) {
            return map.next(a.import_line, a.source_line);
          });
          std::error_code ec;
          fs::remove(res.line_map, ec);
        }
        log::info("file spooled", {{"EXPORT_ID", run->name},
                                   {"FHIR_FILE", f.name},
                                   {"VALID", std::to_string(res.valid)},
                                   {"REJECTED", std::to_string(res.rejected)},
                                   {"PARTS", std::to_string(res.import_parts.size())}});
        // Not for the export's last file: spool_done starts the upload at once anyway.
        if (run->ops > 0) start_early_upload(run, file_id);
      }
    } catch (const std::exception& e) {
      run->outcome.merge(upload::Outcome::retry_later(e.what()));
    }
    if (run->ops == 0) spool_done(run);
  }

  void spool_done(std::shared_ptr<Run> run) {
    if (stopping) return;
    if (run->early_ops > 0) {
      // Early objects are in flight: the export moves on once they finished (object_done).
      run->spool_waiting = true;
      return;
    }
    try {
      auto row = jr->get_export(run->id);
      if (run->superseded) {
        log::warning("source changed after it was taken; a new version will be taken: " + run->fail,
                     {{"EXPORT_ID", run->name}});
        jr->set_export_state(run->id, ExportState::superseded, run->fail);
        spool::remove_export(cfg.spool.dir, run->name, quota.get());
        runs.erase(run->id);
        // Early multipart uploads of this version will never be completed: abort them; and
        // delete the early objects that were completed. The journal says which (also those of an
        // earlier process: this run's early_files start empty after a restart).
        bool uploaded_any = !run->early_files.empty();
        for (const auto& f : jr->files(run->id))
          if (!f.import_key.empty() || !f.archive_key.empty()) uploaded_any = true;
        if (uploaded_any) {
          cleanup->sweep_orphans();
          cleanup->delete_superseded_objects();
        }
        changed();
        return;
      }
      std::vector<std::string> names;
      for (const auto& f : jr->files(run->id)) names.push_back(f.name);
      if (!run->fail.empty()) {
        write_report(cfg.spool.dir, run->name, run->pipeline,
                     config::to_string(pipe_of(run->pipeline)->cfg.validation_level), names);
        log::error("export failed: " + run->fail, {{"EXPORT_ID", run->name}});
        jr->fail_export(run->id, run->fail);
        runs.erase(run->id);
        changed();
        return;
      }
      // An early upload was refused (park), or something is to be tried again.
      if (run->outcome.parked()) return park(run, run->outcome.reason);
      if (run->outcome.retrying()) {
        schedule_retry(run, run->outcome.reason);
        return;
      }
      write_report(cfg.spool.dir, run->name, run->pipeline,
                   config::to_string(pipe_of(run->pipeline)->cfg.validation_level), names);
      jr->set_export_state(run->id, ExportState::spooled);
      start_upload(run);
    } catch (const std::exception& e) {
      schedule_retry(run, e.what());
    }
  }

  // ---------------------------------------------------------------- retry / park
  void schedule_retry(std::shared_ptr<Run> run, const std::string& why) {
    if (stopping) return;
    ++run->attempt;
    ++stats.retries_scheduled;
    auto delay = opt.retry_base;
    for (int i = 1; i < run->attempt && delay < opt.retry_max; ++i) delay *= 2;
    delay = std::min(delay, opt.retry_max);
    try {
      jr->set_export_error(run->id, why);
    } catch (const std::exception&) {
    }
    log::warning("will retry export in " + std::to_string(delay.count()) + " ms: " + why,
                 {{"EXPORT_ID", run->name}, {"ATTEMPT", std::to_string(run->attempt)}});
    run->phase = Phase::waiting;
    run->timer = std::make_unique<asio::steady_timer>(io, delay);
    std::weak_ptr<Impl> weak = shared_from_this();
    run->timer->async_wait([weak, run](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->stopping) return;
      try {
        self->resume(run);
      } catch (const std::exception& e) {
        // The journal cannot be read or written (disk full, I/O error): wait and try again.
        ++self->stats.journal_errors;
        self->schedule_retry(run, std::string("journal: ") + e.what());
      }
    });
    changed();
  }

  void resume(std::shared_ptr<Run> run) {
    // A new attempt: the journal (and ListParts / HeadObject) decides what is still to upload.
    run->early_files.clear();
    run->early_failed.clear();
    auto row = jr->get_export(run->id);
    switch (row.state) {
      case ExportState::complete:
      case ExportState::spooling:
        for (const auto& f : jr->files(run->id))
          if (f.state == FileState::spooling) jr->set_file_state(f.id, FileState::pending);
        start_spool(run);
        break;
      case ExportState::spooled:
      case ExportState::uploading:
        start_upload(run);
        break;
      default:
        runs.erase(run->id);
    }
  }

  void park(std::shared_ptr<Run> run, const std::string& why) {
    log::error("export parked: " + why, {{"EXPORT_ID", run->name}});
    try {
      jr->park_export(run->id, why);
    } catch (const std::exception& e) {
      log::error(std::string("journal: ") + e.what(), {{"EXPORT_ID", run->name}});
    }
    ++stats.parked;
    runs.erase(run->id);
    changed();
  }

  // ---------------------------------------------------------------- upload
  // The export's upload pass. Each object is an upload::ObjectUpload (daemon/upload/: the state
  // machine put / create / list_parts / send_parts / complete / head_settle); this component
  // only decides which objects an export has, starts them, and gathers their outcomes.
  void start_upload(std::shared_ptr<Run> run) {
    run->phase = Phase::uploading;
    run->outcome = {};
    auto row = jr->get_export(run->id);
    const Pipe* pipe = pipe_of(row.pipeline);
    const auto& s3c = pipe->cfg.s3;
    if (row.state == ExportState::spooled) jr->set_export_state(run->id, ExportState::uploading);
    std::vector<std::shared_ptr<upload::ObjectUpload>> objs;
    const auto all_files = jr->files(run->id);
    const auto n_files = static_cast<std::int64_t>(all_files.size());
    std::int64_t file_index = -1;
    for (const auto& f : all_files) {
      ++file_index;
      if (f.state == FileState::spooled) jr->set_file_state(f.id, FileState::uploading);
      // Files uploaded early in this attempt are done; the others (also those whose early
      // upload failed) are uploaded or resumed from the journal here.
      const bool early_done = run->early_files.count(f.id) && !run->early_failed.count(f.id);
      if ((f.state == FileState::spooled || f.state == FileState::uploading) && !early_done)
        add_file_objects(run, s3c, row.name, f, file_index, n_files, false, objs);
      if (s3c.upload_rejects && f.state != FileState::uploaded) {
        auto rp = spool::rejected_path(cfg.spool.dir, row.name, f.name);
        if (fs::exists(rp))
          objs.push_back(
              untracked_object(run, s3c, rejected_key(s3c.prefix, row.name, f.name), rp));
      }
    }
    if (s3c.upload_rejects) {
      auto rp = spool::report_path(cfg.spool.dir, row.name);
      if (fs::exists(rp))
        objs.push_back(untracked_object(run, s3c, report_key(s3c.prefix, row.name), rp));
    }
    run->ops = static_cast<int>(objs.size());
    changed();
    if (objs.empty()) return upload_done(run);
    for (auto& o : objs) launch(run, o, false);
  }

  upload::Ports ports() { return {*store, *ledger, *bodies, *scheduler}; }

  // Counters, the orphan sweep's `creating` set, and whether a queued part is still wanted: an
  // early object only while its export spools and was not superseded, the others while the
  // export's upload pass runs.
  upload::Hooks hooks_for(const std::shared_ptr<Run>& run, bool early) {
    upload::Hooks h;
    h.creating = [this](const std::string& key) { cleanup->creating(key); };
    h.created = [this](const std::string& key, int attempts) { cleanup->created(key, attempts); };
    h.part_sent = [this](std::uint64_t bytes, bool part) {
      if (part) ++stats.parts_sent;
      stats.part_bytes_sent += bytes;
    };
    h.part_skipped = [this] { ++stats.parts_skipped; };
    h.settled = [this] { ++stats.settled; };
    h.journal_error = [this] { ++stats.journal_errors; };
    const Phase want = early ? Phase::spooling : Phase::uploading;
    h.abandoned = [run, want, early] { return run->phase != want || (early && run->superseded); };
    return h;
  }

  // report.json and rejects: one PutObject each, not tracked part by part in the journal.
  std::shared_ptr<upload::ObjectUpload> untracked_object(const std::shared_ptr<Run>& run,
                                                         const config::S3Target& s3c,
                                                         std::string key, fs::path file) {
    upload::ObjectSpec spec;
    spec.bucket = s3c.bucket;
    spec.content_type = key.ends_with(".json") ? "application/json" : "application/zstd";
    spec.key = std::move(key);
    spec.spool_file = std::move(file);
    spec.sse = aws::Sse{s3c.kms_key_id.value_or("")};
    return std::make_shared<upload::ObjectUpload>(ports(), std::move(spec), hooks_for(run, false));
  }

  // The import and archive objects of one spooled file. The one place object keys of a file are
  // built (first upload, early upload, resume): an export over max_files_per_import_job files is
  // laid out in import/part-NNNN/ folders, one import job each, and the importer derives the
  // jobs from the keys journaled here. Each object is loaded from the journal (its upload id and
  // parts); one without parts (a file with no valid line has no import object) is left out.
  void add_file_objects(const std::shared_ptr<Run>& run, const config::S3Target& s3c,
                        const std::string& export_name, const journal::FileRow& f,
                        std::int64_t file_index, std::int64_t n_files, bool early,
                        std::vector<std::shared_ptr<upload::ObjectUpload>>& objs) {
    auto add = [&](PartKind kind, std::string key) {
      upload::ObjectSpec spec;
      spec.file_id = f.id;
      spec.kind = kind;
      spec.bucket = s3c.bucket;
      spec.key = std::move(key);
      spec.spool_file = spool::import_path(cfg.spool.dir, export_name, f.name);
      spec.content_type = kind == PartKind::import ? "application/fhir+ndjson" : "application/zstd";
      spec.sse = aws::Sse{s3c.kms_key_id.value_or("")};
      auto o =
          std::make_shared<upload::ObjectUpload>(ports(), std::move(spec), hooks_for(run, early));
      if (!o->empty()) objs.push_back(std::move(o));
    };
    add(PartKind::import,
        import_key(s3c.prefix, export_name,
                   import_part_dir(file_index, n_files, opt.max_files_per_import_job) + f.name));
    if (s3c.archive) add(PartKind::archive, archive_key(s3c.prefix, export_name, f.name));
  }

  // A file of an export that is still spooling is durable and journaled: start its import and
  // archive objects now (they share the global part limit with every other upload). Not with
  // on_invalid: fail-export, where an invalid line in a later file means nothing is uploaded and
  // the export fails (as before). A crash meanwhile is resumed like any upload: the file is
  // `uploading` in the journal and start_upload picks it up (ListParts / HeadObject) once the
  // export's spooling is redone. Throws on a journal error (on_spooled turns it into a retry).
  void start_early_upload(std::shared_ptr<Run> run, std::int64_t file_id) {
    if (stopping || run->superseded || !run->fail.empty() || !run->outcome.ok()) return;
    const Pipe* pipe = pipe_of(run->pipeline);
    if (!pipe || pipe->cfg.on_invalid == config::OnInvalid::fail_export) return;
    const auto all_files = jr->files(run->id);
    const auto n_files = static_cast<std::int64_t>(all_files.size());
    std::int64_t file_index = -1;
    const journal::FileRow* f = nullptr;
    for (const auto& r : all_files) {
      ++file_index;
      if (r.id == file_id) {
        f = &r;
        break;
      }
    }
    if (!f || f->state != FileState::spooled) return;
    std::vector<std::shared_ptr<upload::ObjectUpload>> objs;
    add_file_objects(run, pipe->cfg.s3, run->name, *f, file_index, n_files, true, objs);
    if (objs.empty()) return;
    jr->set_file_state(f->id, FileState::uploading);
    run->early_files.insert(f->id);
    run->early_ops += static_cast<int>(objs.size());
    for (auto& o : objs) launch(run, o, true);
  }

  void launch(const std::shared_ptr<Run>& run, const std::shared_ptr<upload::ObjectUpload>& o,
              bool early) {
    std::weak_ptr<Impl> weak = shared_from_this();
    o->start([weak, run, early, file_id = o->spec().file_id](const upload::Outcome& out) {
      if (auto self = weak.lock(); self && !self->stopping)
        self->object_done(run, early, file_id, out);
    });
  }

  void object_done(const std::shared_ptr<Run>& run, bool early, std::int64_t file_id,
                   const upload::Outcome& out) {
    run->outcome.merge(out);
    if (early) {
      if (!out.ok()) run->early_failed.insert(file_id);
      if (--run->early_ops > 0) return;
      // The export's spooling ended while they were in flight: move on now.
      if (run->spool_waiting) {
        run->spool_waiting = false;
        spool_done(run);
      }
      return;
    }
    if (--run->ops == 0) upload_done(run);
  }

  void upload_done(std::shared_ptr<Run> run) {
    if (stopping) return;
    try {
      if (run->outcome.parked()) return park(run, run->outcome.reason);
      if (run->outcome.retrying()) return schedule_retry(run, run->outcome.reason);
      for (const auto& f : jr->files(run->id))
        if (f.state == FileState::uploading) jr->set_file_state(f.id, FileState::uploaded);
      jr->set_export_state(run->id, ExportState::uploaded);
      ++stats.exports_uploaded;
      log::info("export uploaded", {{"EXPORT_ID", run->name}});
      runs.erase(run->id);
      changed();
      if (importer) importer->kick(run->id);
    } catch (const std::exception& e) {
      schedule_retry(run, e.what());
    }
  }

  // ---------------------------------------------------------------- after_upload
  // keep | delete | move:DIR, once the import reached a status the pipeline accepts (the
  // importer calls this). Only the files that were taken are touched, and only while each is
  // still the file that was taken (identity): a file replaced since belongs to a newer export and
  // is left alone, as is everything when any file changed. Failures are logged and journaled;
  // the source then simply stays where it is.
  void apply_after_upload(std::int64_t export_id) {
    if (stopping) return;
    std::string name;
    try {
      auto row = jr->get_export(export_id);
      name = row.name;
      const Pipe* pipe = pipe_of(row.pipeline);
      if (!pipe) return;
      const auto& policy = pipe->cfg.after_upload;
      if (policy.kind == config::AfterUploadKind::keep) return;
      fs::path src(row.source_path);
      std::error_code ec;
      const bool dir = fs::is_directory(fs::symlink_status(src, ec));
      std::vector<watch::TakenFile> taken;
      for (const auto& f : jr->files(export_id)) {
        taken.push_back(
            {f.name, dir ? src / f.name : src,
             watch::FileIdentity{f.source.dev, f.source.inode, f.source.size, f.source.mtime_ns}});
      }
      if (auto changes = watch::changed_after_taken(taken); !changes.empty()) {
        std::string why = "source left in place: " + changes.front().name + " " +
                          changes.front().what + " since the export was taken";
        log::warning("after_upload skipped: " + why, {{"EXPORT_ID", name}});
        jr->add_event(export_id, std::nullopt, "after_upload", why);
        return;
      }
      std::string done;
      if (policy.kind == config::AfterUploadKind::remove) {
        for (const auto& f : taken) fs::remove(f.path);
        if (dir) {
          // The export's own metadata goes with it; anything else keeps the directory.
          const auto& rules = pipe->cfg.complete_when;
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
      log::info("after_upload: " + done, {{"EXPORT_ID", name}});
      jr->add_event(export_id, std::nullopt, "after_upload", done);
    } catch (const std::exception& e) {
      log::error(std::string("after_upload failed, source left in place: ") + e.what(),
                 {{"EXPORT_ID", name}});
      try {
        jr->add_event(export_id, std::nullopt, "after_upload", std::string("failed: ") + e.what());
      } catch (const std::exception&) {
      }
    }
  }

  // ---------------------------------------------------------------- spool retention
  // spool.keep_for: the spool of a finished export (imported, nothing_to_import, failed or
  // superseded) stays for replay and inspection, then goes. Exports still in flight, parked or
  // import_failed keep it. Runs at start, after each accepted import, and every 10 minutes.
  void retention() {
    if (stopping || !jr) return;
    try {
      auto removed = spool::remove_expired(
          cfg.spool.dir, cfg.spool.keep_for,
          [this](const std::string& name) {
            auto e = jr->find_export(name);
            return e && (e->state == ExportState::imported || e->state == ExportState::failed ||
                         e->state == ExportState::superseded ||
                         e->state == ExportState::nothing_to_import);
          },
          quota.get());
      for (const auto& n : removed)
        log::info("spool retention: removed the spool of a finished export", {{"EXPORT_ID", n}});
    } catch (const std::exception& e) {
      log::warning(std::string("spool retention: ") + e.what());
    }
    retention_timer->expires_after(std::chrono::minutes(10));
    std::weak_ptr<Impl> weak = shared_from_this();
    retention_timer->async_wait([weak](const boost::system::error_code& ec) {
      if (auto self = weak.lock(); self && !ec) self->retention();
    });
  }

  // ---------------------------------------------------------------- quota
  // The spool is full: free the spool of exports whose upload is finished (oldest first), so
  // waiting writers can go on. Exports not yet uploaded are never evicted.
  void evict() {
    if (stopping) return;
    std::vector<journal::ExportRow> all;
    try {
      all = jr->exports(true);
    } catch (const std::exception& e) {
      log::warning(std::string("spool full, cannot read the journal to evict: ") + e.what());
    }
    std::reverse(all.begin(), all.end());  // oldest first
    for (const auto& e : all) {
      if (!quota->full()) break;
      switch (e.state) {
        case ExportState::uploaded:
        case ExportState::import_starting:
        case ExportState::importing:
        case ExportState::imported:
        case ExportState::import_failed:
        case ExportState::nothing_to_import:
        case ExportState::failed:
        case ExportState::superseded: {
          auto dir = spool::export_dir(cfg.spool.dir, e.name);
          std::error_code ec;
          if (!fs::exists(dir, ec)) break;
          auto freed = spool::remove_export(cfg.spool.dir, e.name, quota.get());
          stats.evicted_bytes += freed;
          log::info("spool full: evicted the spool of an uploaded export",
                    {{"EXPORT_ID", e.name}, {"BYTES", std::to_string(freed)}});
          break;
        }
        default:
          break;
      }
    }
    if (quota->full()) {
      if (!quota_full_logged) {
        quota_full_logged = true;
        log::notice("spool quota reached: new exports wait until uploads finish",
                    {{"SPOOL_USED", std::to_string(quota->used())},
                     {"SPOOL_MAX", std::to_string(quota->max_bytes())}});
      }
      if (evict_timer_armed) return;
      evict_timer_armed = true;
      // Uploads that finish later make more room evictable: look again then.
      auto t = std::make_shared<asio::steady_timer>(io, std::chrono::seconds(1));
      std::weak_ptr<Impl> weak = shared_from_this();
      t->async_wait([weak, t](const boost::system::error_code& ec) {
        if (auto self = weak.lock(); self && !ec) {
          self->evict_timer_armed = false;
          self->evict();
        }
      });
    } else if (quota_full_logged) {
      quota_full_logged = false;
      log::notice("spool has room again; ingest continues",
                  {{"SPOOL_USED", std::to_string(quota->used())}});
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
    if (quota && quota->full()) s += ", spool full";
    if (importer) s += "; imports: " + importer->status_line();
    return s;
  }
};

// ------------------------------------------------------------------ Pipeline

Pipeline::Pipeline(asio::io_context& io, const config::Config& config, Options options)
    : impl_(std::make_shared<Impl>(io, config, std::move(options))) {}

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
                               bandwidth_schedule(new_config.upload));
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
  st.unwatched_roots.clear();
  for (const auto& [name, pipe] : impl_->pipes)
    if (pipe.watcher)
      if (auto why = pipe.watcher->unwatched_reason(); !why.empty())
        st.unwatched_roots.push_back("pipeline " + name + ": " + pipe.cfg.watch.string() + " " +
                                     why);
  return st;
}

}  // namespace fe::pipeline
