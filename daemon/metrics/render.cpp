// render(): the Prometheus text of a Snapshot (contract in metrics.hpp). Apart from the server in
// metrics.cpp because it is the long, flat list of every family the daemon exports.
#include <map>
#include <optional>
#include <set>
#include <string>

#include "journal/journal.hpp"
#include "metrics/exposition.hpp"
#include "metrics/metrics.hpp"

namespace fe::metrics {

namespace {

double to_seconds(journal::TimeMs ms) {
  return static_cast<double>(ms) / 1000.0;
}

// HealthLake JobStatus values, shown at 0 before any job reached them (a series that appears
// only later makes rate() and alerts on it awkward).
constexpr const char* kJobStatuses[] = {"SUBMITTED",
                                        "QUEUED",
                                        "IN_PROGRESS",
                                        "COMPLETED",
                                        "COMPLETED_WITH_ERRORS",
                                        "FAILED",
                                        "CANCEL_SUBMITTED",
                                        "CANCEL_IN_PROGRESS",
                                        "CANCEL_COMPLETED",
                                        "CANCEL_FAILED"};
constexpr std::size_t kMaxExtraStatuses = 16;  // other (future) statuses a server may report

constexpr journal::ExportState kStates[] = {journal::ExportState::discovered,
                                            journal::ExportState::complete,
                                            journal::ExportState::spooling,
                                            journal::ExportState::spooled,
                                            journal::ExportState::uploading,
                                            journal::ExportState::uploaded,
                                            journal::ExportState::import_starting,
                                            journal::ExportState::importing,
                                            journal::ExportState::imported,
                                            journal::ExportState::import_failed,
                                            journal::ExportState::nothing_to_import,
                                            journal::ExportState::parked,
                                            journal::ExportState::failed,
                                            journal::ExportState::superseded};

// HELP text of the metrics other stages put in the Registry.
const std::map<std::string, std::string, std::less<>>& registry_help() {
  static const std::map<std::string, std::string, std::less<>> m = {
      {"fhir_edge_aws_requests_total", "AWS requests sent (every attempt), by service."},
      {"fhir_edge_aws_errors_total",
       "Failed AWS request attempts, by service and AWS error code (or Timeout, "
       "ConnectionError, HTTP<status>, Local.<category> when the server sent no code)."},
      {"fhir_edge_aws_retries_total",
       "AWS request attempts retried after an error, by service and AWS error code."},
      {"fhir_edge_aws_failed_calls_total",
       "AWS calls that failed for good (retries exhausted or not retryable), by service and code."},
      {"fhir_edge_aws_resent_requests_total",
       "Request bodies (S3 parts and objects) sent again after a failed attempt, by service."},
      {"fhir_edge_aws_resent_bytes_total",
       "Bytes of request bodies sent again after a failed attempt, by service."},
      {"fhir_edge_aws_credential_refreshes_total",
       "AWS credential resolutions and refreshes, by result (success, failure)."},
      {"fhir_edge_aws_credentials_expiry_timestamp_seconds",
       "Unix time when the AWS credentials in use expire (absent for long-term keys)."},
  };
  return m;
}

struct Aggregate {
  std::map<journal::ExportState, double> by_state;
  double files = 0, valid = 0, rejected = 0, source = 0, spooled = 0, uploaded = 0;
  std::optional<journal::TimeMs> last_import;
  // Exports not in a terminal state (parked ones included: they wait for a person).
  std::optional<journal::TimeMs> oldest_pending;
  double backlog_bytes = 0;  // their source bytes
  // HealthLake's JobProgressReport of the exports whose import runs (import_starting, importing).
  // (HealthLake's Throughput is not exported: "MB" is not a Prometheus base unit, and
  // deriv() of the scanned count gives the rate.)
  double scanned = 0, imported = 0, failed = 0;
};

}  // namespace

// one piece: the exposition of every metric family in a fixed order, one family()/sample() pair
// after another; a split would only cut the list.
std::string render(const Snapshot& s) {
  TextWriter w;
  w.family("fhir_edge_build_info", Kind::gauge, "Build information (always 1), with the version.");
  w.sample("fhir_edge_build_info", {{"version", s.version}}, 1);
  w.family("fhir_edge_start_time_seconds", Kind::gauge, "Unix time when the daemon started.");
  w.sample("fhir_edge_start_time_seconds", s.start_time_seconds);
  w.family("fhir_edge_ready", Kind::gauge,
           "1 when /healthz answers 200 (control loop alive and journal readable), else 0.");
  w.sample("fhir_edge_ready", s.ready ? 1 : 0);
  w.family("fhir_edge_heartbeat_age_seconds", Kind::gauge,
           "Seconds since the control loop's last heartbeat (stays near the heartbeat interval "
           "while the loop is healthy).");
  w.sample("fhir_edge_heartbeat_age_seconds", s.heartbeat_age_seconds);
  w.family("fhir_edge_journal_up", Kind::gauge,
           "1 when the journal could be read for this scrape.");
  w.sample("fhir_edge_journal_up", s.journal_up ? 1 : 0);
  // Present from the start (0), so "a root is not watched" can alert without absent() tricks.
  w.family("fhir_edge_watch_roots_unwatched", Kind::gauge,
           "Watch roots not being watched (missing, unreadable or gone); the daemon looks for "
           "them every second and /healthz names them.");
  w.sample("fhir_edge_watch_roots_unwatched",
           s.stats ? static_cast<double>(s.stats->unwatched_roots.size()) : 0);

  if (s.journal_up) {
    std::map<std::string, Aggregate> per;  // by pipeline
    for (const auto& p : s.pipelines) per[p];
    std::map<std::string, double> jobs;
    for (const char* st : kJobStatuses) jobs[st] = 0;
    std::size_t extra = 0;
    for (const auto& r : s.rows) {
      auto& a = per[r.row.pipeline];
      a.by_state[r.row.state] += 1;
      a.files += static_cast<double>(r.row.files);
      a.valid += static_cast<double>(r.row.resources_valid);
      a.rejected += static_cast<double>(r.row.resources_rejected);
      a.source += static_cast<double>(r.row.bytes_source);
      a.spooled += static_cast<double>(r.row.bytes_spooled);
      a.uploaded += static_cast<double>(r.row.bytes_uploaded);
      if (!journal::is_terminal(r.row.state)) {
        if (!a.oldest_pending || r.row.created_at < *a.oldest_pending)
          a.oldest_pending = r.row.created_at;
        a.backlog_bytes += static_cast<double>(r.row.bytes_source);
      }
      if (r.row.state == journal::ExportState::importing ||
          r.row.state == journal::ExportState::import_starting) {
        if (auto p = journal::import_progress(r.jobs)) {
          a.scanned += static_cast<double>(p->resources_scanned);
          a.imported += static_cast<double>(p->resources_imported);
          a.failed += static_cast<double>(p->resources_failed);
        }
      }
      if (r.row.state == journal::ExportState::imported) {
        auto t = r.row.finished_at.value_or(r.row.updated_at);
        if (!a.last_import || t > *a.last_import) a.last_import = t;
      }
      if (r.job) {
        std::string st = r.job->status.empty() ? "STARTING" : r.job->status;
        if (!jobs.count(st)) {
          if (extra >= kMaxExtraStatuses)
            st = "OTHER";
          else
            ++extra;
        }
        jobs[st] += 1;
      }
    }
    w.family("fhir_edge_exports", Kind::gauge,
             "Exports in the journal, by pipeline and state (finished ones until compaction).");
    for (const auto& [p, a] : per)
      for (auto st : kStates) {
        auto it = a.by_state.find(st);
        w.sample("fhir_edge_exports", {{"pipeline", p}, {"state", std::string(to_string(st))}},
                 it == a.by_state.end() ? 0 : it->second);
      }
    w.family("fhir_edge_export_files", Kind::gauge, "Files of the exports in the journal.");
    for (const auto& [p, a] : per) w.sample("fhir_edge_export_files", {{"pipeline", p}}, a.files);
    w.family("fhir_edge_export_resources", Kind::gauge,
             "Resources of the exports in the journal, by result of validation (valid, rejected).");
    for (const auto& [p, a] : per) {
      w.sample("fhir_edge_export_resources", {{"pipeline", p}, {"result", "valid"}}, a.valid);
      w.sample("fhir_edge_export_resources", {{"pipeline", p}, {"result", "rejected"}}, a.rejected);
    }
    w.family("fhir_edge_export_source_bytes", Kind::gauge,
             "Size of the source files of the exports in the journal.");
    for (const auto& [p, a] : per)
      w.sample("fhir_edge_export_source_bytes", {{"pipeline", p}}, a.source);
    w.family("fhir_edge_export_spooled_bytes", Kind::gauge,
             "Compressed bytes spooled for the exports in the journal.");
    for (const auto& [p, a] : per)
      w.sample("fhir_edge_export_spooled_bytes", {{"pipeline", p}}, a.spooled);
    w.family("fhir_edge_export_uploaded_bytes", Kind::gauge,
             "Bytes uploaded to S3 (import and archive parts) for the exports in the journal.");
    for (const auto& [p, a] : per)
      w.sample("fhir_edge_export_uploaded_bytes", {{"pipeline", p}}, a.uploaded);
    w.family("fhir_edge_import_jobs", Kind::gauge,
             "HealthLake import jobs of the exports in the journal, by last known job status "
             "(STARTING: requested, no answer recorded yet).");
    for (const auto& [st, n] : jobs) w.sample("fhir_edge_import_jobs", {{"status", st}}, n);
    // Present (0) before the first import, so "no import for 24 h" can fire on a gateway that
    // never imported, without absent() tricks.
    w.family("fhir_edge_last_successful_import_timestamp_seconds", Kind::gauge,
             "Unix time when the newest export of the pipeline reached imported (0: never).");
    for (const auto& [p, a] : per)
      w.sample("fhir_edge_last_successful_import_timestamp_seconds", {{"pipeline", p}},
               a.last_import ? to_seconds(*a.last_import) : 0);
    w.family("fhir_edge_oldest_pending_export_age_seconds", Kind::gauge,
             "Age of the oldest export of the pipeline that is not finished (parked included); "
             "0 when none is pending.");
    for (const auto& [p, a] : per) {
      double age = 0;
      if (a.oldest_pending && s.now_seconds > 0)
        age = std::max(0.0, s.now_seconds - to_seconds(*a.oldest_pending));
      w.sample("fhir_edge_oldest_pending_export_age_seconds", {{"pipeline", p}}, age);
    }
    w.family("fhir_edge_import_progress_resources", Kind::gauge,
             "Resources of the pipeline's running import jobs as HealthLake's JobProgressReport "
             "counts them: scanned, imported, failed (0 when no job runs).");
    for (const auto& [p, a] : per) {
      w.sample("fhir_edge_import_progress_resources", {{"pipeline", p}, {"count", "scanned"}},
               a.scanned);
      w.sample("fhir_edge_import_progress_resources", {{"pipeline", p}, {"count", "imported"}},
               a.imported);
      w.sample("fhir_edge_import_progress_resources", {{"pipeline", p}, {"count", "failed"}},
               a.failed);
    }
    // Exports seen by the watcher that wait for their completion rule (marker, manifest,
    // client log, quiet period, a writer): as the daemon last journaled them.
    std::map<std::string, std::pair<double, std::optional<journal::TimeMs>>> waiting;
    for (const auto& p : s.pipelines) waiting[p];
    for (const auto& wr : s.waiting) {
      auto& [n, oldest] = waiting[wr.pipeline];
      n += 1;
      if (!oldest || wr.since < *oldest) oldest = wr.since;
    }
    w.family("fhir_edge_exports_waiting", Kind::gauge,
             "Exports seen by the watcher that wait for their completion rule (not taken yet); "
             "`fhir-edge status` says which rule and what is missing.");
    for (const auto& [p, v] : waiting)
      w.sample("fhir_edge_exports_waiting", {{"pipeline", p}}, v.first);
    w.family("fhir_edge_oldest_waiting_export_age_seconds", Kind::gauge,
             "How long the pipeline's longest-waiting export has waited for its completion rule; "
             "0 when none waits.");
    for (const auto& [p, v] : waiting) {
      double age = 0;
      if (v.second && s.now_seconds > 0) age = std::max(0.0, s.now_seconds - to_seconds(*v.second));
      w.sample("fhir_edge_oldest_waiting_export_age_seconds", {{"pipeline", p}}, age);
    }
    w.family("fhir_edge_backlog_bytes", Kind::gauge,
             "Source bytes of the pipeline's exports that are not finished (parked included).");
    for (const auto& [p, a] : per)
      w.sample("fhir_edge_backlog_bytes", {{"pipeline", p}}, a.backlog_bytes);
  }

  if (s.spool_bytes) {
    w.family("fhir_edge_spool_bytes", Kind::gauge, "Bytes of files in spool.dir.");
    w.sample("fhir_edge_spool_bytes", static_cast<double>(*s.spool_bytes));
  }
  w.family("fhir_edge_spool_quota_bytes", Kind::gauge, "spool.max_bytes: the spool's quota.");
  w.sample("fhir_edge_spool_quota_bytes", static_cast<double>(s.spool_quota_bytes));

  if (s.stats) {
    const auto& st = *s.stats;
    // Per pipeline: every configured pipeline shows (0 before its first event), and one that
    // was counted but is no longer configured (a reload cannot drop one; kept for safety).
    std::set<std::string> names(s.pipelines.begin(), s.pipelines.end());
    for (const auto& [p, c] : st.by_pipeline) names.insert(p);
    auto counter = [&](const char* name, const char* help,
                       std::uint64_t pipeline::Counters::*field) {
      w.family(name, Kind::counter, help);
      for (const auto& p : names) {
        auto it = st.by_pipeline.find(p);
        w.sample(name, {{"pipeline", p}},
                 it == st.by_pipeline.end() ? 0 : static_cast<double>(it->second.*field));
      }
    };
    using C = pipeline::Counters;
    counter("fhir_edge_exports_taken_total", "Exports taken into the journal by this process.",
            &C::exports_taken);
    counter("fhir_edge_exports_redelivered_total",
            "Identical re-deliveries of an export recognised (not redone).",
            &C::exports_seen_again);
    counter("fhir_edge_files_spooled_total",
            "Files validated and spooled (or rejected whole) by this process.", &C::files_spooled);
    w.family("fhir_edge_resources_validated_total", Kind::counter,
             "Resources (lines) of spooled files, by result of validation (valid, rejected).");
    for (const auto& p : names) {
      auto it = st.by_pipeline.find(p);
      C c = it == st.by_pipeline.end() ? C{} : it->second;
      w.sample("fhir_edge_resources_validated_total", {{"pipeline", p}, {"result", "valid"}},
               static_cast<double>(c.resources_valid));
      w.sample("fhir_edge_resources_validated_total", {{"pipeline", p}, {"result", "rejected"}},
               static_cast<double>(c.resources_rejected));
    }
    counter("fhir_edge_exports_uploaded_total", "Exports whose files all reached S3.",
            &C::exports_uploaded);
    counter("fhir_edge_parts_uploaded_total",
            "Parts (or single-request objects) of import and archive objects that S3 accepted.",
            &C::parts_sent);
    counter("fhir_edge_uploaded_bytes_total",
            "Body bytes S3 accepted: import and archive parts, rejected lines, reports.",
            &C::part_bytes_sent);
    counter("fhir_edge_parts_skipped_total",
            "Parts found already uploaded when an upload was resumed (not sent again).",
            &C::parts_skipped);
    counter("fhir_edge_objects_settled_total",
            "Objects whose completion was settled by their checksum (HeadObject) after a "
            "conflict, instead of uploading again.",
            &C::settled);
    counter("fhir_edge_export_retries_total",
            "Export retries scheduled after its AWS retries ran out.", &C::retries_scheduled);
    counter("fhir_edge_exports_parked_total",
            "Exports parked by this process before their import (non-retryable upload error).",
            &C::parked);
    // Process-wide: the spool and the journal are shared by every pipeline.
    auto process_counter = [&](const char* name, const char* help, std::uint64_t v) {
      w.family(name, Kind::counter, help);
      w.sample(name, static_cast<double>(v));
    };
    process_counter("fhir_edge_spool_evicted_bytes_total",
                    "Spool bytes of uploaded exports evicted under quota pressure.",
                    st.evicted_bytes);
    process_counter("fhir_edge_journal_write_errors_total",
                    "Journal writes that failed (disk full, read-only or failing file system); "
                    "the export waited and was retried.",
                    st.journal_errors);
  }

  std::string current;
  for (const auto& series : s.registry) {
    if (series.name != current) {
      current = series.name;
      auto h = registry_help().find(series.name);
      w.family(series.name, series.kind,
               h != registry_help().end() ? h->second : std::string("fhir-edge process metric."));
    }
    w.sample(series.name, series.labels, series.value);
  }
  if (s.process) {
    const auto& p = *s.process;
    w.family("process_cpu_seconds_total", Kind::counter,
             "Total user and system CPU time spent in seconds.");
    w.sample("process_cpu_seconds_total", p.cpu_seconds);
    w.family("process_resident_memory_bytes", Kind::gauge, "Resident memory size in bytes.");
    w.sample("process_resident_memory_bytes", p.resident_memory_bytes);
    w.family("process_virtual_memory_bytes", Kind::gauge, "Virtual memory size in bytes.");
    w.sample("process_virtual_memory_bytes", p.virtual_memory_bytes);
    w.family("process_start_time_seconds", Kind::gauge,
             "Start time of the process since unix epoch in seconds.");
    w.sample("process_start_time_seconds", p.start_time_seconds);
    w.family("process_open_fds", Kind::gauge, "Number of open file descriptors.");
    w.sample("process_open_fds", p.open_fds);
    w.family("process_max_fds", Kind::gauge, "Maximum number of open file descriptors.");
    w.sample("process_max_fds", p.max_fds);
  }
  return w.text();
}

}  // namespace fe::metrics
