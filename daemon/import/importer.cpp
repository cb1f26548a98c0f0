// Import lifecycle: start, follow, reconcile (contract in importer.hpp, argument in
// docs/import.md).
#include "import/importer.hpp"

#include <simdjson.h>

#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <cctype>
#include <deque>
#include <map>
#include <random>
#include <set>

#include "aws/healthlake.hpp"
#include "aws/s3.hpp"
#include "config/config.hpp"
#include "import/failure_line.hpp"
#include "journal/digest.hpp"
#include "journal/journal.hpp"
#include "service/log.hpp"
#include "spool/spool.hpp"

namespace fe::pipeline {

using journal::ExportState;

namespace {

std::string trim_slashes(std::string_view s) {
  while (!s.empty() && s.front() == '/') s.remove_prefix(1);
  while (!s.empty() && s.back() == '/') s.remove_suffix(1);
  return std::string(s);
}

// "s3://bucket/prefix" -> bucket, prefix (no surrounding slashes). Empty bucket when malformed.
std::pair<std::string, std::string> split_s3_uri(std::string_view uri) {
  if (!(uri.starts_with("s3://") || uri.starts_with("S3://"))) return {};
  uri.remove_prefix(5);
  auto slash = uri.find('/');
  if (slash == std::string_view::npos) return {std::string(uri), ""};
  return {std::string(uri.substr(0, slash)), trim_slashes(uri.substr(slash + 1))};
}

std::string cut(std::string_view s, std::size_t n) {
  if (s.size() <= n) return std::string(s);
  return std::string(s.substr(0, n)) + "...";
}

std::string progress_json(const std::optional<aws::JobProgressReport>& p) {
  if (!p) return "";
  auto num = [](double d) {
    char buf[64];
    snprintf(buf, sizeof buf, "%.6g", d);
    return std::string(buf);
  };
  return "{\"TotalNumberOfScannedFiles\":" + std::to_string(p->total_number_of_scanned_files) +
         ",\"TotalSizeOfScannedFilesInMB\":" + num(p->total_size_of_scanned_files_in_mb) +
         ",\"TotalNumberOfImportedFiles\":" + std::to_string(p->total_number_of_imported_files) +
         ",\"TotalNumberOfResourcesScanned\":" +
         std::to_string(p->total_number_of_resources_scanned) +
         ",\"TotalNumberOfResourcesImported\":" +
         std::to_string(p->total_number_of_resources_imported) +
         ",\"TotalNumberOfResourcesWithCustomerError\":" +
         std::to_string(p->total_number_of_resources_with_customer_error) +
         ",\"TotalNumberOfFilesReadWithCustomerError\":" +
         std::to_string(p->total_number_of_files_read_with_customer_error) +
         ",\"Throughput\":" + num(p->throughput) + "}";
}

// Errors that a later attempt may cure without anyone changing anything.
bool transient(const aws::AwsError& e) {
  return e.retryable();
}

// Per-file counts and first reasons gathered while streaming the job's outputs.
struct FileCounts {
  std::int64_t imported = 0;
  std::int64_t failed = 0;
};

struct Manifest {
  bool present = false;
  std::int64_t scanned_files = 0, files_imported = 0, resources_scanned = 0, resources_imported = 0,
               customer_errors = 0, server_errors = 0;
  double scanned_mb = 0, imported_mb = 0;
};

}  // namespace

std::string job_name_for(std::string_view export_name) {
  std::string out;
  for (char c : export_name) {
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
              std::string_view("_.:/=+%@-").find(c) != std::string_view::npos;
    out += ok ? c : '_';
    if (out.size() == 64) break;
  }
  return out.empty() ? "export" : out;
}

std::string import_input_uri(std::string_view bucket, std::string_view prefix,
                             std::string_view export_name) {
  std::string p = trim_slashes(prefix);
  return "s3://" + std::string(bucket) + "/" + (p.empty() ? "" : p + "/") +
         std::string(export_name) + "/import/";
}

std::string job_output_uri(std::string_view output_s3_uri, std::string_view datastore_id,
                           std::string_view job_id) {
  std::string base(output_s3_uri);
  while (!base.empty() && base.back() == '/') base.pop_back();
  return base + "/" + std::string(datastore_id) + "-FHIR_IMPORT-" + std::string(job_id) + "/";
}

std::string import_job_name(std::string_view export_name, int attempt, int part, int parts) {
  std::string suffix;
  if (parts > 1) suffix += ".part" + std::to_string(part);
  if (attempt > 1) suffix += ".retry" + std::to_string(attempt);
  // The suffix keeps jobs of one export apart (recovery matches by JobName): the base is cut,
  // never the suffix.
  std::string base = job_name_for(export_name);
  if (base.size() + suffix.size() > 64) base.resize(64 - suffix.size());
  return base + suffix;
}

std::string import_part_dir(std::int64_t file_index, std::int64_t files,
                            std::int64_t max_files_per_job) {
  if (max_files_per_job <= 0 || files <= max_files_per_job) return "";
  char buf[32];
  std::snprintf(buf, sizeof buf, "part-%04lld/",
                static_cast<long long>(file_index / max_files_per_job + 1));
  return buf;
}

std::vector<std::string> import_parts(const std::vector<journal::FileRow>& files,
                                      const journal::ExportRow& e, std::string_view bucket,
                                      std::string_view prefix, std::int64_t max_files_per_job,
                                      std::string& why) {
  std::string base =
      import_input_uri(bucket, prefix, e.name);               // s3://bucket/prefix/<export>/import/
  std::string key_base = base.substr(5 + bucket.size() + 1);  // prefix/<export>/import/
  std::map<std::string, std::int64_t> groups;                 // "" = directly under import/
  std::int64_t keyed = 0;
  for (const auto& f : files) {
    if (f.import_key.empty()) continue;
    ++keyed;
    std::string_view k = f.import_key;
    std::string group;
    if (k.starts_with(key_base)) {
      auto rest = k.substr(key_base.size());
      if (auto slash = rest.find('/'); slash != std::string_view::npos)
        group = std::string(rest.substr(0, slash + 1));
    }
    ++groups[group];
  }
  // Journals that hold no keys (or files without import objects): the export's file count.
  std::int64_t total = keyed > 0 ? keyed : e.files;
  bool split = !groups.empty() && !groups.count("");
  if (!split) {
    if (groups.size() > 1) {
      why = "export has import objects both directly under " + base +
            " and in part folders; one job on " + base + " would import the part folders too";
      return {};
    }
    if (total > max_files_per_job) {
      why = "export has " + std::to_string(total) + " files, over HealthLake's " +
            std::to_string(max_files_per_job) +
            " per import job, and they were uploaded under one prefix (" + base +
            "); the upload stage must place them in part-NNNN/ folders (docs/import.md)";
      return {};
    }
    return {base};
  }
  std::vector<std::string> out;
  for (const auto& [g, n] : groups) {
    if (n > max_files_per_job) {
      why = "part " + base + g + " has " + std::to_string(n) + " files, over " +
            std::to_string(max_files_per_job) + " per import job";
      return {};
    }
    out.push_back(base + g);
  }
  return out;
}

std::string validation_level_mismatch(std::string_view export_name, std::string_view job_id,
                                      std::string_view started, std::string_view reported) {
  // An answer without the field says nothing about the level: it is journaled as not reported
  // and shown so, not taken for a mismatch. Case is not a level.
  auto same = [](std::string_view a, std::string_view b) {
    return a.size() == b.size() && std::equal(a.begin(), a.end(), b.begin(), [](char x, char y) {
             return std::tolower(static_cast<unsigned char>(x)) ==
                    std::tolower(static_cast<unsigned char>(y));
           });
  };
  if (reported.empty() || started.empty() || same(started, reported)) return "";
  return "import job " + std::string(job_id) + " runs at ValidationLevel '" +
         std::string(reported) + "', but it was started with '" + std::string(started) +
         "': HealthLake does not validate this export at the level the pipeline asked for, so it "
         "is not counted as imported (the source is kept, after_upload is not applied). Check "
         "the job in HealthLake; `fhir-edge retry --reimport " +
         std::string(export_name) + "` starts a new job at '" + std::string(started) +
         "' (what this job imported is imported again), `fhir-edge retry` checks the level again";
}

bool nothing_to_import(const std::vector<journal::FileRow>& files) {
  using journal::FileState;
  for (const auto& f : files) {
    if (!f.import_key.empty() || f.resources_valid > 0) return false;
    if (f.state != FileState::uploaded && f.state != FileState::rejected &&
        f.state != FileState::failed)
      return false;
  }
  return true;
}

ImporterOptions importer_options(const config::Config& config) {
  ImporterOptions o;
  o.spool_dir = config.spool.dir;
  for (const auto& p : config.pipelines) {
    ImportTarget t;
    t.pipeline = p.name;
    t.bucket = p.s3.bucket;
    t.prefix = p.s3.prefix;
    t.datastore_id = p.healthlake.datastore_id;
    t.data_access_role_arn = p.healthlake.data_access_role_arn;
    t.output_s3_uri = p.healthlake.output_s3_uri;
    t.output_kms_key_id = p.healthlake.output_kms_key_id;
    t.validation_level = std::string(config::to_string(p.validation_level));
    t.accept_statuses = p.healthlake.accept_statuses;
    t.max_outstanding_starts = p.healthlake.max_outstanding_starts;
    t.min_imported_share = config.import_jobs.min_imported_share;
    o.targets.push_back(std::move(t));
  }
  return o;
}

struct Importer::Impl : std::enable_shared_from_this<Importer::Impl> {
  Impl(boost::asio::io_context& io, journal::Journal& j, aws::HealthLakeClient& hl,
       aws::S3Client& s3, ImporterOptions o)
      : io(io), journal(j), hl(hl), s3(s3), opt(std::move(o)), rng(std::random_device{}()) {}

  boost::asio::io_context& io;
  journal::Journal& journal;
  aws::HealthLakeClient& hl;
  aws::S3Client& s3;
  ImporterOptions opt;
  ImporterStats stats;
  bool stopped = false;
  std::mt19937_64 rng;

  // One import job of an export: (export id, part).
  using Key = std::pair<std::int64_t, int>;

  // Per data store: exports holding a slot (their jobs are not all terminal) and the FIFO of
  // those waiting. An export split into parts holds one slot for all its jobs.
  struct Store {
    std::set<std::int64_t> active;
    std::deque<std::int64_t> waiting;
    int limit = 1;
  };
  std::map<std::string, Store> stores;
  std::map<Key, std::unique_ptr<boost::asio::steady_timer>> timers;
  std::set<Key> busy;                     // a request for this job is in flight (no second one)
  std::map<Key, int> conflicts_in_a_row;  // ConflictException answers to Start, per job
  std::unique_ptr<boost::asio::steady_timer> request_timer;

  const ImportTarget* target(const journal::ExportRow& e) const {
    for (const auto& t : opt.targets)
      if (t.pipeline == e.pipeline) return &t;
    return nullptr;
  }

  void changed() {
    if (opt.on_change) opt.on_change();
  }

  Store& store(const ImportTarget& t) {
    auto& s = stores[t.datastore_id];
    s.limit = std::max(1, t.max_outstanding_starts);
    return s;
  }

  bool busy_any(std::int64_t id) const {
    auto it = busy.lower_bound({id, 0});
    return it != busy.end() && it->first == id;
  }

  void drop_timers(std::int64_t id) {
    for (auto it = timers.lower_bound({id, 0}); it != timers.end() && it->first.first == id;)
      it = timers.erase(it);
    for (auto it = conflicts_in_a_row.lower_bound({id, 0});
         it != conflicts_in_a_row.end() && it->first.first == id;)
      it = conflicts_in_a_row.erase(it);
  }

  void release(const journal::ExportRow& e) {
    drop_timers(e.id);
    if (const auto* t = target(e)) {
      auto& s = store(*t);
      s.active.erase(e.id);
      pump(s);
    }
  }

  // Starts queued exports while the data store has free slots.
  void pump(Store& s) {
    while (!stopped && static_cast<int>(s.active.size()) < s.limit && !s.waiting.empty()) {
      std::int64_t id = s.waiting.front();
      s.waiting.pop_front();
      s.active.insert(id);
      begin_start(id);
    }
  }

  void park(std::int64_t id, const std::string& reason) {
    auto e = journal.find_export(id);
    if (!e) return;
    log::error("import parked: " + reason, {{"EXPORT_ID", e->name}});
    journal.park_export(id, reason);
    ++stats.parked;
    release(*e);
    changed();
  }

  template <class F>
  void after(Key k, std::chrono::milliseconds d, F f) {
    auto& t = timers[k];
    t = std::make_unique<boost::asio::steady_timer>(io, d);
    std::weak_ptr<Impl> w = weak_from_this();
    t->async_wait([w, f](const boost::system::error_code& ec) {
      auto self = w.lock();
      if (ec || !self || self->stopped) return;
      f(*self);
    });
  }

  std::chrono::milliseconds poll_delay() {
    auto lo = opt.poll_min.count(), hi = std::max(opt.poll_max.count(), lo);
    return std::chrono::milliseconds(std::uniform_int_distribution<long long>(lo, hi)(rng));
  }

  // Wraps a callback so that it does nothing once the importer is gone or stopped, and so that a
  // journal failure is logged instead of escaping into the io_context.
  template <class R, class F>
  std::function<void(R)> guard(Key k, F f) {
    std::weak_ptr<Impl> w = weak_from_this();
    return [w, k, f](R r) {
      auto self = w.lock();
      if (!self || self->stopped) return;
      self->busy.erase(k);
      try {
        f(*self, std::move(r));
      } catch (const std::exception& ex) {
        log::error(std::string("import: ") + ex.what(), {{"EXPORT_ID", std::to_string(k.first)}});
      }
    };
  }

  // ---- entry points ----
  void kick(std::int64_t id) {
    if (stopped || busy_any(id)) return;
    auto e = journal.find_export(id);
    if (!e) return;
    const ImportTarget* t = target(*e);
    if (!t) {
      if (e->state == ExportState::uploaded || e->state == ExportState::import_starting ||
          e->state == ExportState::importing)
        park(id, "pipeline '" + e->pipeline + "' has no healthlake configuration");
      return;
    }
    auto& s = store(*t);
    switch (e->state) {
      case ExportState::uploaded:
        if (s.active.count(id) ||
            std::find(s.waiting.begin(), s.waiting.end(), id) != s.waiting.end())
          return;
        s.waiting.push_back(id);
        pump(s);
        break;
      case ExportState::import_starting:
        s.active.insert(id);  // already holds a slot from before the restart
        start_next(id, /*recovering=*/true);
        break;
      case ExportState::importing:
        s.active.insert(id);
        follow_all(id);
        break;
      default:
        break;
    }
    changed();
  }

  void resume() {
    apply_requests();
    for (auto st : {ExportState::importing, ExportState::import_starting, ExportState::uploaded})
      for (const auto& e : journal.exports_in(st)) kick(e.id);
    arm_request_timer();
  }

  // ---- operator requests (fhir-edge retry / journal compact while the daemon runs) ----
  void arm_request_timer() {
    if (stopped || opt.request_interval.count() <= 0) return;
    if (!request_timer) request_timer = std::make_unique<boost::asio::steady_timer>(io);
    request_timer->expires_after(opt.request_interval);
    std::weak_ptr<Impl> w = weak_from_this();
    request_timer->async_wait([w](const boost::system::error_code& ec) {
      auto self = w.lock();
      if (ec || !self || self->stopped) return;
      self->apply_requests();
      self->arm_request_timer();
    });
  }

  void apply_requests() {
    std::vector<journal::RequestRow> pending;
    try {
      pending = journal.pending_requests();
    } catch (const std::exception& ex) {
      log::warning(std::string("requests: ") + ex.what());
      return;
    }
    for (const auto& r : pending) {
      try {
        auto [ok, result] = journal.apply_request(r);
        journal.finish_request(r.id, ok, result);
        if (ok && r.kind == "retry") {
          if (auto e = journal.find_export(r.target)) after_retry(*e);
        }
      } catch (const std::exception& ex) {
        log::error(std::string("request failed: ") + ex.what(),
                   {{"REQUEST", std::to_string(r.id)}});
        try {
          journal.finish_request(r.id, false, ex.what());
        } catch (const std::exception&) {
        }
      }
    }
    if (!pending.empty()) changed();
  }

  // An export was re-driven by `fhir-edge retry`: continue it where the journal now says.
  void after_retry(const journal::ExportRow& e) {
    switch (e.state) {
      case ExportState::uploaded:
      case ExportState::import_starting:
      case ExportState::importing:
        kick(e.id);
        break;
      default:
        // Parked before the upload finished: the pipeline resumes those stages.
        if (opt.on_resumed)
          opt.on_resumed(e.id);
        else
          log::warning("export resumed as " + std::string(journal::to_string(e.state)) +
                           "; the pipeline continues it at the next start",
                       {{"EXPORT_ID", e.name}});
    }
  }

  // ---- start ----
  // The jobs of the current attempt: one per part (import_parts). Tokens and names are journaled
  // for every part, then the export moves to import_starting, BEFORE the first request leaves:
  // after a crash from here on the same tokens are found and re-used, so HealthLake can never
  // make a second job for a part.
  void begin_start(std::int64_t id) {
    try {
      auto e = journal.get_export(id);
      const ImportTarget& t = *target(e);
      auto files = journal.files(id);
      if (nothing_to_import(files)) {
        finish_nothing(e, files);
        return;
      }
      std::string why;
      auto parts = import_parts(files, e, t.bucket, t.prefix, opt.max_files_per_job, why);
      if (parts.empty()) {
        park(id, why);
        return;
      }
      for (std::size_t i = 0; i < parts.size(); ++i) {
        int part = static_cast<int>(i) + 1;
        std::string token = journal::import_client_token(e.pipeline, e.source_path, e.digest,
                                                         e.version, e.import_attempt, part);
        journal.record_import_token(
            id, token,
            import_job_name(e.name, e.import_attempt, part, static_cast<int>(parts.size())), part,
            parts[i], t.validation_level);
      }
      journal.set_export_state(
          id, ExportState::import_starting,
          parts.size() == 1 ? "StartFHIRImportJob"
                            : "StartFHIRImportJob for " + std::to_string(parts.size()) + " parts");
      start_next(id, /*recovering=*/false);
    } catch (const std::exception& ex) {
      log::error(std::string("import start: ") + ex.what(), {{"EXPORT_ID", std::to_string(id)}});
    }
  }

  // No file of the export has a valid resource, so no import object was uploaded: a job would
  // only fail on an empty prefix (and hold the account's one import slot meanwhile). The export
  // ends nothing_to_import; report.json and rejects were uploaded by the upload stage.
  void finish_nothing(const journal::ExportRow& e, const std::vector<journal::FileRow>& files) {
    std::int64_t rejected = 0;
    for (const auto& f : files) rejected += f.resources_rejected;
    rejected = std::max(rejected, e.resources_rejected);
    std::string msg = "no valid resource in " + std::to_string(files.size()) + " file(s) (" +
                      std::to_string(rejected) +
                      " rejected): no import job started; see the rejects and report.json";
    std::string report =
        "{\"export\":" + aws::json_quote(e.name) +
        ",\"status\":\"NOTHING_TO_IMPORT\",\"accepted\":false,\"job_id\":null," +
        "\"files\":" + std::to_string(files.size()) +
        ",\"resources_valid\":0,\"resources_rejected\":" + std::to_string(rejected) +
        ",\"message\":" + aws::json_quote(msg) + "}";
    try {
      auto dir = spool::export_dir(opt.spool_dir, e.name);
      std::filesystem::create_directories(dir);
      spool::write_durable(dir / "import-report.json", report + "\n");
    } catch (const std::exception& ex) {
      log::error(std::string("import report not written: ") + ex.what(), {{"EXPORT_ID", e.name}});
    }
    journal.set_export_state(e.id, ExportState::nothing_to_import, msg);
    ++stats.nothing_to_import;
    log::warning("export has nothing to import: " + msg, {{"EXPORT_ID", e.name}});
    release(e);
    changed();
  }

  // The next part without a job id is started; when every part has one the export is importing.
  // After a restart (`recovering`) the part's Start may or may not have reached HealthLake: it
  // is looked up by name first (ListFHIRImportJobs) and only re-sent, with the same token, when
  // no job is found.
  void start_next(std::int64_t id, bool recovering) {
    auto e = journal.get_export(id);
    if (e.state != ExportState::import_starting) return;
    auto jobs = journal.import_jobs(id);
    if (jobs.empty()) {  // the token is always journaled before the state: never happens
      park(id, "import_starting without a journaled client token");
      return;
    }
    for (const auto& j : jobs) {
      if (!j.job_id.empty()) continue;
      if (recovering)
        recover(id, j);
      else
        send_start(id, j.part);
      return;
    }
    journal.set_export_state(id, ExportState::importing,
                             jobs.size() == 1
                                 ? "import job " + jobs[0].job_id
                                 : std::to_string(jobs.size()) + " import jobs started");
    changed();
    for (const auto& j : jobs)
      after({id, j.part}, poll_delay(), [id, p = j.part](Impl& self) { self.poll(id, p); });
  }

  std::string input_of(const journal::ExportRow& e, const ImportTarget& t,
                       const journal::ImportJobRow& j) const {
    // Journals from before schema 3 have no input_uri: it was always the export's import/ prefix.
    return j.input_uri.empty() ? import_input_uri(t.bucket, t.prefix, e.name) : j.input_uri;
  }

  // The level a job was started with: journaled with its token; journals from before schema 5
  // did not record it, and the pipeline's configured level stands in.
  static std::string started_level(const ImportTarget& t, const journal::ImportJobRow& j) {
    return j.validation_level.empty() ? t.validation_level : j.validation_level;
  }

  // The level check: journals what HealthLake reports for the job (level, message) and parks the
  // export when the level is not the one the job was started with. True when it parked.
  bool check_reported(const journal::ExportRow& e, int part, const std::string& job_id,
                      const std::string& reported, const std::string& message) {
    auto j = journal.import_job(e.id, part);
    if (!j) return false;
    if (j->reported_level != reported || j->message != message) {
      journal.record_import_reported(e.id, reported, message, part);
      changed();
    }
    std::string why =
        validation_level_mismatch(e.name, job_id, started_level(*target(e), *j), reported);
    if (why.empty()) return false;
    park(e.id, why);
    return true;
  }

  aws::StartImportRequest start_request(const journal::ExportRow& e, const ImportTarget& t,
                                        const journal::ImportJobRow& j) {
    aws::StartImportRequest r;
    r.job_name = j.job_name;
    r.input_s3_uri = input_of(e, t, j);
    r.output_s3_uri = t.output_s3_uri;
    r.output_kms_key_id = t.output_kms_key_id;
    r.datastore_id = t.datastore_id;
    r.data_access_role_arn = t.data_access_role_arn;
    r.client_token = j.client_token;
    // The level journaled with the token: a re-send after a config change must carry the same
    // parameters as the first Start (HealthLake refuses a token reused with others), and the
    // level check compares against what was really asked for.
    r.validation_level = started_level(t, j);
    return r;
  }

  void send_start(std::int64_t id, int part) {
    auto e = journal.get_export(id);
    const ImportTarget& t = *target(e);
    auto j = journal.import_job(id, part);
    if (!j) throw journal::Error("import: no journaled token for export " + e.name);
    ++stats.starts_sent;
    busy.insert({id, part});
    log::info(
        "starting import job",
        {{"EXPORT_ID", e.name}, {"JOB_NAME", j->job_name}, {"CLIENT_TOKEN", j->client_token}});
    hl.start_import_job(start_request(e, t, *j), guard<aws::HlResult<aws::StartImportResult>>(
                                                     {id, part}, [id, part](Impl& self, auto r) {
                                                       self.on_started(id, part, std::move(r));
                                                     }));
  }

  void on_started(std::int64_t id, int part, aws::HlResult<aws::StartImportResult> r) {
    auto e = journal.get_export(id);
    if (e.state != ExportState::import_starting) return;  // parked or moved meanwhile
    if (r.ok()) {
      conflicts_in_a_row.erase({id, part});
      journal.record_import_job(id, r.value->job_id, r.value->job_status, part);
      log::notice(
          "import job started",
          {{"EXPORT_ID", e.name}, {"JOB_ID", r.value->job_id}, {"STATUS", r.value->job_status}});
      changed();
      start_next(id, false);
      return;
    }
    const auto& err = *r.error;
    if (err.category == aws::ErrorCategory::conflict) {
      // HealthLake: the data store is in a transition state (or this token was used with other
      // parameters). The first waits out; the second never does, so after max_conflicts in a
      // row the export is parked with the message instead of being retried for ever.
      ++stats.conflicts;
      int n = ++conflicts_in_a_row[{id, part}];
      if (n >= opt.max_conflicts) {
        park(id, r.describe() + " (" + std::to_string(n) +
                     " times in a row with the same ClientToken; if the pipeline's healthlake "
                     "settings changed since this job was first requested, HealthLake refuses "
                     "the token with different parameters)");
        return;
      }
      journal.set_export_error(id, r.describe() + " (waiting, then the same token again)");
      after({id, part}, opt.conflict_delay, [id, part](Impl& self) { self.retry_start(id, part); });
    } else if (transient(err)) {
      ++stats.retries;
      journal.set_export_error(id, r.describe() + " (retrying later with the same token)");
      after({id, part}, opt.retry_delay, [id, part](Impl& self) { self.retry_start(id, part); });
    } else {
      park(id, r.describe());
    }
  }

  void retry_start(std::int64_t id, int part) {
    try {
      auto e = journal.get_export(id);
      if (e.state != ExportState::import_starting) return;
      send_start(id, part);
    } catch (const std::exception& ex) {
      log::error(std::string("import start: ") + ex.what(), {{"EXPORT_ID", std::to_string(id)}});
    }
  }

  // Every page of ListFHIRImportJobs(JobName, SubmittedAfter) is read (NextToken followed): a
  // name shared by many jobs (retries, other gateways, a busy account) may put the one this
  // token made on a later page, and missing it would re-send Start instead of adopting the job.
  struct Listing {
    std::vector<aws::ImportJobProperties> kept;  // the oldest matching job so far (0 or 1)
    int pages = 0;
  };

  void recover(std::int64_t id, const journal::ImportJobRow& j) {
    list_page(id, j.part, std::make_shared<Listing>(), "");
  }

  void list_page(std::int64_t id, int part, std::shared_ptr<Listing> acc, std::string next) {
    auto e = journal.get_export(id);
    if (e.state != ExportState::import_starting) return;
    auto j = journal.import_job(id, part);
    if (!j) return;
    const ImportTarget& t = *target(e);
    aws::ListImportJobsRequest q;
    q.datastore_id = t.datastore_id;
    q.job_name = j->job_name;
    q.submitted_after = static_cast<double>(j->submitted_at) / 1000.0 -
                        static_cast<double>(opt.list_margin.count());
    q.max_results = 500;
    q.next_token = std::move(next);
    busy.insert({id, part});
    std::string input = input_of(e, t, *j);
    hl.list_import_jobs(q, guard<aws::HlResult<aws::ListImportJobsResult>>(
                               {id, part}, [id, part, input, acc](Impl& self, auto r) {
                                 self.on_listed(id, part, input, acc, std::move(r));
                               }));
  }

  void on_listed(std::int64_t id, int part, const std::string& input, std::shared_ptr<Listing> acc,
                 aws::HlResult<aws::ListImportJobsResult> r) {
    auto e = journal.get_export(id);
    if (e.state != ExportState::import_starting) return;
    if (!r.ok()) {
      if (transient(*r.error)) {
        ++stats.retries;
        journal.set_export_error(id, r.describe() + " (retrying later)");
        after({id, part}, opt.retry_delay, [id](Impl& self) { self.start_next(id, true); });
      } else {
        park(id, r.describe());
      }
      return;
    }
    ++acc->pages;
    // Oldest matching job: if there were ever two, the first is the one the token made.
    for (const auto& job : r.value->jobs) {
      if (job.input_s3_uri != input) continue;
      if (acc->kept.empty() || job.submit_time < acc->kept.front().submit_time) acc->kept = {job};
    }
    if (!r.value->next_token.empty()) {
      list_page(id, part, acc, r.value->next_token);
      return;
    }
    if (!acc->kept.empty()) {
      const auto& found = acc->kept.front();
      ++stats.jobs_adopted;
      journal.record_import_job(id, found.job_id, found.job_status, part);
      log::notice(
          "import job adopted after restart",
          {{"EXPORT_ID", e.name}, {"JOB_ID", found.job_id}, {"PAGES", std::to_string(acc->pages)}});
      changed();
      // ListFHIRImportJobs reports the level too: a job running at another level is parked here,
      // before anything follows it.
      if (check_reported(e, part, found.job_id, found.validation_level, found.message)) return;
      start_next(id, true);
      return;
    }
    send_start(id, part);
  }

  // ---- follow ----
  // After a restart in `importing`: poll every job that has no recorded outcome yet; when all
  // have one (crash between the last outcome and the final state) finish the export.
  void follow_all(std::int64_t id) {
    bool any = false;
    for (const auto& j : journal.import_jobs(id)) {
      if (!j.outcome.empty() && aws::is_terminal_job_status(j.status)) continue;
      any = true;
      poll(id, j.part);
    }
    if (!any) finish_export(id);
  }

  void poll(std::int64_t id, int part) {
    auto e = journal.get_export(id);
    if (e.state != ExportState::importing) return;
    auto j = journal.import_job(id, part);
    if (!j) return;
    const ImportTarget& t = *target(e);
    ++stats.polls;
    busy.insert({id, part});
    hl.describe_import_job(
        t.datastore_id, j->job_id,
        guard<aws::HlResult<aws::ImportJobProperties>>({id, part}, [id, part](Impl& self, auto r) {
          self.on_described(id, part, std::move(r));
        }));
  }

  void on_described(std::int64_t id, int part, aws::HlResult<aws::ImportJobProperties> r) {
    auto e = journal.get_export(id);
    if (e.state != ExportState::importing) return;
    if (!r.ok()) {
      if (transient(*r.error)) {
        ++stats.retries;
        journal.set_export_error(id, r.describe() + " (polling again later)");
        after({id, part}, opt.retry_delay, [id, part](Impl& self) { self.poll(id, part); });
      } else if (r.error->category == aws::ErrorCategory::not_found) {
        // The job id HealthLake gave us is unknown to it now (deleted data store or job, a
        // different account or Region behind the endpoint...). Polling it again cannot help;
        // only a new job can, and that is the operator's call: the resources may have been
        // imported by the job before it vanished.
        auto j = journal.import_job(id, part);
        park(id, "import job " + (j ? j->job_id : std::string("?")) +
                     " vanished: DescribeFHIRImportJob says " + r.describe() +
                     ". `fhir-edge retry --reimport " + e.name +
                     "` starts a new import job with a new ClientToken (resources the vanished "
                     "job imported, if any, are imported again); `fhir-edge retry` polls it again");
      } else {
        park(id, r.describe());
      }
      return;
    }
    const auto& job = *r.value;
    auto j = journal.import_job(id, part);
    std::string progress = progress_json(job.progress);
    if (!j || j->status != job.job_status || j->progress_json != progress) {
      journal.record_import_status(id, job.job_status, progress, part);
      changed();
    }
    // Checked at every answer, before a terminal status is reconciled: a job that ran at another
    // level than it was started with is never counted as imported.
    if (check_reported(e, part, job.job_id.empty() ? (j ? j->job_id : "") : job.job_id,
                       job.validation_level, job.message))
      return;
    if (!aws::is_terminal_job_status(job.job_status)) {
      after({id, part}, poll_delay(), [id, part](Impl& self) { self.poll(id, part); });
      return;
    }
    reconcile(id, part, job);
  }

  // ---- reconcile ----
  struct Recon {
    std::int64_t id = 0;
    int part = 1;
    Key key() const { return {id, part}; }
    aws::ImportJobProperties job;
    std::string bucket, dir;  // output bucket and "<prefix>/<ds>-FHIR_IMPORT-<job>/"
    Manifest manifest;
    std::map<std::string, FileCounts> files;  // by path relative to SUCCESS/ or FAILURE/
    std::vector<std::string> reasons;
    std::int64_t failure_lines = 0, success_lines = 0;
    std::string output_error;  // output could not be read completely (recorded, not fatal)
    bool read_success = true;
    // This job's files (valid resources by path relative to its input prefix): the per-file
    // imported counts when SUCCESS/ is not read.
    std::map<std::string, std::int64_t> valid_by_file;
    // The same files' journal id and source name: FAILURE/ lines are reported as source lines.
    struct SourceFile {
      std::int64_t id = 0;
      std::string name;
    };
    std::map<std::string, SourceFile> source_of;
  };

  void reconcile(std::int64_t id, int part, const aws::ImportJobProperties& job) {
    auto e = journal.get_export(id);
    const ImportTarget& t = *target(e);
    auto rc = std::make_shared<Recon>();
    rc->id = id;
    rc->part = part;
    {
      // The job's input: the files whose import keys are under its input prefix.
      auto jrow = journal.import_job(id, part);
      std::string input =
          jrow ? input_of(e, t, *jrow) : import_input_uri(t.bucket, t.prefix, e.name);
      std::string key_prefix = split_s3_uri(input).second + "/";
      std::int64_t bytes = 0, keyed = 0;
      for (const auto& f : journal.files(id)) {
        if (f.import_key.empty() || !f.import_key.starts_with(key_prefix)) continue;
        ++keyed;
        bytes += f.bytes_uncompressed;
        rc->valid_by_file[f.import_key.substr(key_prefix.size())] = f.resources_valid;
        rc->source_of[f.import_key.substr(key_prefix.size())] = {f.id, f.name};
      }
      if (keyed == 0) bytes = e.bytes_source;  // no keys journaled: the sources' size bounds it
      rc->read_success =
          opt.read_success_outputs && (keyed == 0 || bytes <= opt.success_outputs_max_bytes);
    }
    rc->job = job;
    std::string out_uri = job.output_s3_uri.empty() ? t.output_s3_uri : job.output_s3_uri;
    auto [bucket, prefix] = split_s3_uri(job_output_uri(out_uri, t.datastore_id, job.job_id));
    rc->bucket = bucket;
    rc->dir = prefix + "/";
    auto body = std::make_shared<std::string>();
    busy.insert(rc->key());
    aws::GetObjectRequest g;
    g.bucket = rc->bucket;
    g.key = rc->dir + "manifest.json";
    std::size_t cap = 1 << 20;  // a manifest is a few hundred bytes; never hold more than 1 MiB
    g.sink = [body, cap](std::string_view chunk) {
      if (body->size() + chunk.size() > cap) return false;
      body->append(chunk);
      return true;
    };
    s3.get_object(std::move(g), guard<aws::S3Result<aws::GetObjectResult>>(
                                    rc->key(), [rc, body](Impl& self, auto r) {
                                      self.on_manifest(rc, *body, std::move(r));
                                    }));
  }

  void on_manifest(std::shared_ptr<Recon> rc, const std::string& body,
                   aws::S3Result<aws::GetObjectResult> r) {
    if (!r.ok()) {
      if (transient(*r.error)) {
        ++stats.retries;
        journal.set_export_error(rc->id, r.describe() + " (reconcile retried later)");
        after(rc->key(), opt.retry_delay,
              [id = rc->id, part = rc->part, job = rc->job](Impl& self) {
                self.reconcile(id, part, job);
              });
        return;
      }
      // A FAILED job may have written no manifest; everything else is still reconciled.
      rc->output_error = "manifest.json: " + r.describe();
    } else {
      simdjson::dom::parser p;
      simdjson::dom::element m;
      if (p.parse(body).get(m)) {
        rc->output_error = "manifest.json is not valid JSON";
      } else {
        rc->manifest.present = true;
        auto i64 = [&](const char* k) {
          int64_t v = 0;
          if (m[k].get_int64().get(v)) {
            double d = 0;
            if (!m[k].get_double().get(d)) v = static_cast<int64_t>(d);
          }
          return v;
        };
        auto dbl = [&](const char* k) {
          double v = 0;
          if (m[k].get_double().get(v)) v = 0;
          return v;
        };
        rc->manifest.scanned_files = i64("numberOfScannedFiles");
        rc->manifest.files_imported = i64("numberOfFilesImported");
        rc->manifest.resources_scanned = i64("numberOfResourcesScanned");
        rc->manifest.resources_imported = i64("numberOfResourcesImportedSuccessfully");
        rc->manifest.customer_errors = i64("numberOfResourcesWithCustomerError");
        rc->manifest.server_errors = i64("numberOfResourcesWithServerError");
        rc->manifest.scanned_mb = dbl("sizeOfScannedFilesInMB");
        rc->manifest.imported_mb = dbl("sizeOfDataImportedSuccessfullyInMB");
      }
    }
    list_outputs(rc, "FAILURE/", "");
  }

  // Lists one page of <dir><kind> and reads its objects one at a time.
  void list_outputs(std::shared_ptr<Recon> rc, std::string kind, std::string continuation) {
    aws::ListObjectsRequest q;
    q.bucket = rc->bucket;
    q.prefix = rc->dir + kind;
    q.continuation_token = continuation;
    busy.insert(rc->key());
    s3.list_objects_v2(
        q, guard<aws::S3Result<aws::ListObjectsResult>>(rc->key(), [rc, kind](Impl& self, auto r) {
          if (!r.ok()) {
            rc->output_error += (rc->output_error.empty() ? "" : "; ") + r.describe();
            self.next_kind(rc, kind);
            return;
          }
          auto page = std::make_shared<aws::ListObjectsResult>(std::move(*r.value));
          self.read_object(rc, kind, page, 0);
        }));
  }

  void next_kind(std::shared_ptr<Recon> rc, const std::string& kind) {
    if (kind == "FAILURE/" && rc->read_success)
      list_outputs(rc, "SUCCESS/", "");
    else
      finish(rc);
  }

  void read_object(std::shared_ptr<Recon> rc, std::string kind,
                   std::shared_ptr<aws::ListObjectsResult> page, std::size_t i) {
    if (i >= page->objects.size()) {
      if (page->is_truncated && !page->next_continuation_token.empty())
        list_outputs(rc, kind, page->next_continuation_token);
      else
        next_kind(rc, kind);
      return;
    }
    const auto& obj = page->objects[i];
    std::string rel = obj.key.substr(std::min(obj.key.size(), rc->dir.size() + kind.size()));
    bool failure = kind == "FAILURE/";
    // Streamed line by line: only the current partial line is held (cut at max_line_bytes).
    struct LineState {
      std::string partial;
      bool overlong = false;
    };
    auto ls = std::make_shared<LineState>();
    std::size_t max_line = opt.max_line_bytes, max_reasons = opt.max_reasons,
                max_chars = opt.max_reason_chars;
    journal::Journal* jr = &journal;  // outlives every transfer (the Pipeline owns both)
    auto on_line = [rc, rel, failure, max_reasons, max_chars, jr](std::string_view line,
                                                                  bool whole) {
      if (line.find_first_not_of(" \t\r") == std::string_view::npos && whole) return;
      auto& fc = rc->files[rel];
      if (!failure) {
        ++fc.imported;
        ++rc->success_lines;
        return;
      }
      ++fc.failed;
      ++rc->failure_lines;
      if (rc->reasons.size() >= max_reasons) return;
      std::string reason = rel + ": ";
      simdjson::dom::parser p;
      simdjson::dom::element oo;
      if (!whole) {
        reason += "failure record longer than the line limit (not parsed; see the FAILURE output)";
      } else if (p.parse(line).get(oo)) {
        reason += cut(line, max_chars);
      } else {
        simdjson::dom::array issues;
        simdjson::dom::element issue;
        std::string_view diag, expr;
        if (!oo["issue"].get_array().get(issues))
          for (auto is : issues) {
            if (is["diagnostics"].get_string().get(diag)) continue;
            issue = is;
            simdjson::dom::array ex;
            if (!is["expression"].get_array().get(ex))
              for (auto x : ex) {
                if (x.get_string().get(expr)) expr = {};
                break;
              }
            break;
          }
        reason += diag.empty() ? std::string(line) : std::string(diag);
        if (!expr.empty()) reason += " (at " + std::string(expr) + ")";
        // HealthLake numbers the line in the import object (valid lines only); the operator
        // needs the source file's line.
        auto src = rc->source_of.find(rel);
        std::int64_t at = diag.empty() ? 0 : failure_import_line(issue, diag);
        if (at > 0 && src != rc->source_of.end()) {
          std::string msg(strip_object_position(diag, at));
          if (!expr.empty()) msg += " (at " + std::string(expr) + ")";
          reason = source_position_reason(src->second.name, jr->source_line(src->second.id, at), at,
                                          msg);
        }
      }
      rc->reasons.push_back(cut(reason, max_chars));
    };
    aws::GetObjectRequest g;
    g.bucket = rc->bucket;
    g.key = obj.key;
    g.sink = [ls, on_line, max_line](std::string_view chunk) {
      while (!chunk.empty()) {
        auto nl = chunk.find('\n');
        std::string_view piece = chunk.substr(0, nl);
        if (!ls->overlong) {
          if (ls->partial.size() + piece.size() > max_line) {
            ls->overlong = true;
            ls->partial.clear();
          } else {
            ls->partial.append(piece);
          }
        }
        if (nl == std::string_view::npos) break;
        on_line(ls->partial, !ls->overlong);
        ls->partial.clear();
        ls->overlong = false;
        chunk.remove_prefix(nl + 1);
      }
      return true;
    };
    busy.insert(rc->key());
    s3.get_object(std::move(g),
                  guard<aws::S3Result<aws::GetObjectResult>>(
                      rc->key(), [rc, kind, page, i, ls, on_line](Impl& self, auto r) {
                        if (!r.ok()) {
                          rc->output_error += (rc->output_error.empty() ? "" : "; ") + r.describe();
                        } else if (!ls->partial.empty() || ls->overlong) {
                          on_line(ls->partial, !ls->overlong);  // no final newline
                        }
                        self.read_object(rc, kind, page, i + 1);
                      }));
  }

  void finish(std::shared_ptr<Recon> rc) {
    auto e = journal.get_export(rc->id);
    if (e.state != ExportState::importing) return;
    const ImportTarget& t = *target(e);
    const auto& job = rc->job;
    auto jrow = journal.import_job(rc->id, rc->part);
    bool accepted = std::find(t.accept_statuses.begin(), t.accept_statuses.end(), job.job_status) !=
                    t.accept_statuses.end();
    const Manifest& m = rc->manifest;
    if (!rc->read_success)
      for (const auto& [name, valid] : rc->valid_by_file) {
        auto& fc = rc->files[name];
        fc.imported = std::max<std::int64_t>(0, valid - fc.failed);
      }
    // Counts: the manifest when there is one, else what the outputs showed.
    std::int64_t imported = m.present ? m.resources_imported : rc->success_lines;
    std::int64_t failed = m.present ? m.customer_errors + m.server_errors : rc->failure_lines;
    std::int64_t scanned = m.present ? m.resources_scanned : imported + failed;

    std::string js =
        "{\"export\":" + aws::json_quote(e.name) + ",\"job_id\":" + aws::json_quote(job.job_id) +
        ",\"job_name\":" + aws::json_quote(job.job_name) + ",\"part\":" + std::to_string(rc->part) +
        ",\"attempt\":" + std::to_string(e.import_attempt) +
        ",\"client_token\":" + aws::json_quote(jrow ? jrow->client_token : "") +
        ",\"datastore_id\":" + aws::json_quote(job.datastore_id) +
        ",\"status\":" + aws::json_quote(job.job_status) +
        ",\"accepted\":" + (accepted ? "true" : "false") +
        ",\"message\":" + aws::json_quote(job.message) +
        ",\"validation_level\":" + aws::json_quote(jrow ? started_level(t, *jrow) : "") +
        ",\"reported_validation_level\":" + aws::json_quote(job.validation_level) +
        ",\"input_s3_uri\":" + aws::json_quote(job.input_s3_uri) +
        ",\"output_s3_uri\":" + aws::json_quote("s3://" + rc->bucket + "/" + rc->dir) +
        ",\"resources_scanned\":" + std::to_string(scanned) +
        ",\"resources_imported\":" + std::to_string(imported) +
        ",\"resources_failed\":" + std::to_string(failed) +
        ",\"failure_lines_read\":" + std::to_string(rc->failure_lines) +
        ",\"success_lines_read\":" + std::to_string(rc->success_lines) +
        ",\"success_outputs_read\":" + (rc->read_success ? "true" : "false");
    if (m.present)
      js += ",\"manifest\":{\"numberOfScannedFiles\":" + std::to_string(m.scanned_files) +
            ",\"numberOfFilesImported\":" + std::to_string(m.files_imported) +
            ",\"numberOfResourcesScanned\":" + std::to_string(m.resources_scanned) +
            ",\"numberOfResourcesImportedSuccessfully\":" + std::to_string(m.resources_imported) +
            ",\"numberOfResourcesWithCustomerError\":" + std::to_string(m.customer_errors) +
            ",\"numberOfResourcesWithServerError\":" + std::to_string(m.server_errors) + "}";
    else
      js += ",\"manifest\":null";
    js += ",\"files\":{";
    bool first = true;
    for (const auto& [name, c] : rc->files) {
      js += (first ? "" : ",") + aws::json_quote(name) +
            ":{\"imported\":" + std::to_string(c.imported) +
            ",\"failed\":" + std::to_string(c.failed) + "}";
      first = false;
    }
    js += "},\"first_failure_reasons\":[";
    for (std::size_t i = 0; i < rc->reasons.size(); ++i)
      js += (i ? "," : "") + aws::json_quote(rc->reasons[i]);
    js += "],\"output_error\":" + aws::json_quote(rc->output_error) + "}";

    journal.record_import_outcome(rc->id, js, rc->part);

    std::string summary = "import " + job.job_status + ": " + std::to_string(imported) +
                          " imported, " + std::to_string(failed) + " failed of " +
                          std::to_string(scanned) + " resources";
    if (!rc->reasons.empty()) summary += "; first failure: " + rc->reasons.front();
    if (!job.message.empty()) summary += "; " + job.message;
    std::initializer_list<log::Field> fields = {
        {"EXPORT_ID", e.name}, {"JOB_ID", job.job_id}, {"JOB_STATUS", job.job_status}};
    if (job.job_status == "COMPLETED")
      log::notice(summary, fields);
    else
      log::warning(summary, fields);
    finish_export(rc->id);
  }

  // Every job of the export has its outcome: the local report (durable) first, then the final
  // state. A crash in between redoes this from the journal's outcomes (follow_all).
  void finish_export(std::int64_t id) {
    auto e = journal.get_export(id);
    if (e.state != ExportState::importing) return;
    const ImportTarget& t = *target(e);
    auto jobs = journal.import_jobs(id);
    for (const auto& j : jobs)
      if (j.outcome.empty()) return;  // other parts still running
    // The level check once more, from the journal: whatever path led here (a restart after the
    // last outcome), an export whose job ran at another level is never marked imported.
    for (const auto& j : jobs) {
      std::string why =
          validation_level_mismatch(e.name, j.job_id, started_level(t, j), j.reported_level);
      if (!why.empty()) {
        park(id, why);
        return;
      }
    }
    bool accepted = true;
    std::int64_t imported = 0, failed = 0, scanned = 0;
    std::string worst = "COMPLETED";
    std::string notes;  // CANCEL_FAILED judged from the manifest
    // HealthLake's Message of each job that did not complete (a FAILED job's reason): it leads
    // the summary, which is the export's last_error, so `status` shows why (issue 17).
    std::string messages;
    auto rank = [](const std::string& st) {
      return st == "COMPLETED" ? 0 : st == "COMPLETED_WITH_ERRORS" ? 1 : 2;
    };
    for (const auto& j : jobs) {
      std::int64_t ji = 0, jf = 0, js = 0;
      bool has_manifest = false;
      simdjson::dom::parser p;
      simdjson::dom::element o;
      if (!p.parse(j.outcome).get(o)) {
        std::int64_t v = 0;
        if (!o["resources_imported"].get_int64().get(v)) ji = v;
        if (!o["resources_failed"].get_int64().get(v)) jf = v;
        if (!o["resources_scanned"].get_int64().get(v)) js = v;
        simdjson::dom::object mo;
        has_manifest = !o["manifest"].get_object().get(mo);
        std::string_view m;
        if (j.message.empty() && j.status != "COMPLETED" && !o["message"].get_string().get(m) &&
            !m.empty())
          messages += (messages.empty() ? "" : "; ") +
                      (jobs.size() > 1 ? "job " + j.job_id + ": " : std::string()) + std::string(m);
      }
      if (!j.message.empty() && j.status != "COMPLETED")
        messages += (messages.empty() ? "" : "; ") +
                    (jobs.size() > 1 ? "job " + j.job_id + ": " : std::string()) + j.message;
      imported += ji;
      failed += jf;
      scanned += js;
      // CANCEL_FAILED: a cancel was asked for and failed, which in practice means the job ran
      // on, and its resources were imported. Counting it as a failed import would let `retry`
      // import them a second time. With a manifest.json the job is judged by what it did; with
      // none, nothing is known and it stays failed (retry_export then refuses without
      // --reimport).
      std::string status = j.status;
      if (status == "CANCEL_FAILED" && has_manifest) {
        status = jf == 0 ? "COMPLETED" : "COMPLETED_WITH_ERRORS";
        notes += "; job " + j.job_id + " ended CANCEL_FAILED: the cancel failed and the job ran " +
                 "on (manifest.json: " + std::to_string(ji) + " imported, " + std::to_string(jf) +
                 " failed), judged as " + status;
      }
      if (std::find(t.accept_statuses.begin(), t.accept_statuses.end(), status) ==
          t.accept_statuses.end())
        accepted = false;
      if (rank(status) > rank(worst) || (rank(status) == 2 && worst == "COMPLETED_WITH_ERRORS"))
        worst = status;
    }
    // An accepted status is not enough: COMPLETED_WITH_ERRORS also covers a job that imported
    // nothing at all (inputs it could not read, e.g. not KMS-encrypted). after_upload must not
    // move or delete a source whose resources are not in HealthLake.
    std::string not_imported;
    if (accepted) {
      std::int64_t expected = std::max(scanned, e.resources_valid);
      if (imported <= 0) {
        not_imported = "the import imported none of the export's " +
                       (expected > 0 ? std::to_string(expected) + " " : std::string()) +
                       "resources";
      } else if (t.min_imported_share > 0 && expected > 0 &&
                 static_cast<double>(imported) <
                     t.min_imported_share * static_cast<double>(expected)) {
        char share[64];
        std::snprintf(share, sizeof share, "%.1f%% < import.min_imported_share %.1f%%",
                      100.0 * static_cast<double>(imported) / static_cast<double>(expected),
                      100.0 * t.min_imported_share);
        not_imported = "the import imported only " + std::to_string(imported) + " of " +
                       std::to_string(expected) + " resources (" + share + ")";
      }
      if (!not_imported.empty()) accepted = false;
    }
    // One job: its outcome is the report (docs/import.md). Several: a summary with every part.
    std::string report;
    if (jobs.size() == 1) {
      report = jobs[0].outcome;
    } else {
      report = "{\"export\":" + aws::json_quote(e.name) +
               ",\"parts\":" + std::to_string(jobs.size()) +
               ",\"status\":" + aws::json_quote(worst) +
               ",\"accepted\":" + (accepted ? "true" : "false") +
               ",\"validation_level\":" + aws::json_quote(started_level(t, jobs[0])) +
               ",\"resources_scanned\":" + std::to_string(scanned) +
               ",\"resources_imported\":" + std::to_string(imported) +
               ",\"resources_failed\":" + std::to_string(failed) + ",\"jobs\":[";
      for (std::size_t i = 0; i < jobs.size(); ++i) report += (i ? "," : "") + jobs[i].outcome;
      report += "]}";
    }
    if (!not_imported.empty() && !report.empty() && report.back() == '}') {
      report.pop_back();
      report += ",\"not_imported_because\":" + aws::json_quote(not_imported) + "}";
    }
    try {
      auto dir = spool::export_dir(opt.spool_dir, e.name);
      std::filesystem::create_directories(dir);
      spool::write_durable(dir / "import-report.json", report + "\n");
    } catch (const std::exception& ex) {
      log::error(std::string("import report not written: ") + ex.what(), {{"EXPORT_ID", e.name}});
    }
    std::string summary = jobs.size() == 1
                              ? "import " + jobs[0].status
                              : "import of " + std::to_string(jobs.size()) + " jobs " + worst;
    summary += ": " + (messages.empty() ? std::string() : messages + "; ") +
               std::to_string(imported) + " imported, " + std::to_string(failed) + " failed of " +
               std::to_string(scanned) + " resources";
    summary += notes;
    if (!not_imported.empty())
      summary += "; not counted as imported: " + not_imported +
                 ". The source is kept; fix the cause, then `fhir-edge retry` (`--reimport` if "
                 "some resources were imported)";
    if (jobs.size() > 1 || !not_imported.empty() || !notes.empty()) {
      if (worst == "COMPLETED" && not_imported.empty())
        log::notice(summary, {{"EXPORT_ID", e.name}});
      else
        log::warning(summary, {{"EXPORT_ID", e.name}});
    }
    if (accepted) {
      journal.set_export_state(id, ExportState::imported, summary);
      ++stats.imported;
      if (opt.on_imported) opt.on_imported(id);
    } else {
      journal.set_export_state(id, ExportState::import_failed, summary);
      ++stats.import_failed;
    }
    release(e);
    changed();
  }
};

Importer::Importer(boost::asio::io_context& io, journal::Journal& journal,
                   aws::HealthLakeClient& hl, aws::S3Client& s3, ImporterOptions options)
    : impl_(std::make_shared<Impl>(io, journal, hl, s3, std::move(options))) {}

Importer::~Importer() {
  stop();
}

void Importer::stop() {
  if (!impl_) return;
  impl_->stopped = true;
  for (auto& [id, t] : impl_->timers) t->cancel();
  impl_->timers.clear();
  if (impl_->request_timer) impl_->request_timer->cancel();
}

void Importer::kick(std::int64_t export_id) {
  try {
    impl_->kick(export_id);
  } catch (const std::exception& ex) {
    log::error(std::string("import: ") + ex.what(), {{"EXPORT_ID", std::to_string(export_id)}});
  }
}

void Importer::resume() {
  impl_->resume();
}

const ImporterStats& Importer::stats() const {
  return impl_->stats;
}

std::string Importer::status_line() const {
  std::size_t starting = 0, importing = 0, queued = 0;
  for (const auto& [ds, s] : impl_->stores) {
    queued += s.waiting.size();
    for (auto id : s.active) {
      auto e = impl_->journal.find_export(id);
      if (e && e->state == ExportState::importing)
        ++importing;
      else
        ++starting;
    }
  }
  return std::to_string(starting) + " import starting, " + std::to_string(importing) +
         " importing, " + std::to_string(queued) + " queued";
}

void Importer::check_datastores(std::function<void(std::vector<std::string>)> done) {
  std::set<std::string> ids;
  for (const auto& t : impl_->opt.targets) ids.insert(t.datastore_id);
  struct Acc {
    std::size_t left = 0;
    std::vector<std::string> problems;
    std::function<void(std::vector<std::string>)> done;
  };
  auto acc = std::make_shared<Acc>();
  acc->left = ids.size();
  acc->done = std::move(done);
  if (ids.empty()) {
    acc->done({});
    return;
  }
  std::weak_ptr<Impl> w = impl_;
  for (const auto& id : ids) {
    impl_->hl.describe_datastore(id, [w, acc, id](aws::HlResult<aws::DatastoreProperties> r) {
      if (!w.lock()) return;
      std::string problem;
      if (!r.ok())
        problem = "data store " + id + ": " + r.describe();
      else if (r.value->datastore_status != "ACTIVE")
        problem = "data store " + id + " is " + r.value->datastore_status +
                  ", not ACTIVE: its import jobs cannot start until it is";
      if (!problem.empty()) {
        log::error(problem);
        acc->problems.push_back(problem);
      }
      if (--acc->left == 0) acc->done(acc->problems);
    });
  }
}

}  // namespace fe::pipeline
