#include "journal/status.hpp"

#include <simdjson.h>

#include "common/json_number.hpp"
#include "common/json_writer.hpp"
#include "journal/digest.hpp"

#include <algorithm>
#include <cstdio>
#include <ctime>
#include <map>

namespace fe::journal {

std::vector<StatusRow> read_status(const Journal& journal, bool include_finished) {
  std::vector<StatusRow> out;
  for (auto& e : journal.exports(include_finished)) {
    auto jobs = journal.import_jobs(e.id);
    std::optional<ImportJobRow> job;
    for (const auto& j : jobs)
      if (j.part == 1) job = j;
    out.push_back({std::move(e), std::move(job), std::move(jobs)});
  }
  return out;
}

std::string format_time(TimeMs t) {
  std::time_t secs = static_cast<std::time_t>(t / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(t % 1000));
  return buf;
}

namespace {

std::string human_bytes(int64_t b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(b);
  int u = 0;
  while (v >= 1024 && u < 4) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0)
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(b));
  else
    std::snprintf(buf, sizeof buf, "%.1f %s", v, units[u]);
  return buf;
}

// One line per cell: control characters would break the table.
std::string one_line(std::string s, size_t max) {
  for (auto& c : s)
    if (static_cast<unsigned char>(c) < 0x20) c = ' ';
  if (s.size() > max) s = s.substr(0, max - 3) + "...";
  return s;
}

std::string align(const std::vector<std::vector<std::string>>& cells) {
  std::vector<size_t> width(cells[0].size(), 0);
  for (const auto& row : cells)
    for (size_t i = 0; i < row.size(); ++i) width[i] = std::max(width[i], row[i].size());
  std::string out;
  for (const auto& row : cells) {
    std::string line;
    for (size_t i = 0; i < row.size(); ++i) {
      line += row[i];
      if (i + 1 < row.size()) line += std::string(width[i] - row[i].size() + 2, ' ');
    }
    out += line + "\n";
  }
  return out;
}

// The strings of `"key":[...]` in a JSON object the importer wrote (its outcome summary), for
// the text view. \" \\ \/ are undone, \n \t become a space, other escapes show as ?.
std::vector<std::string> json_string_array(std::string_view json, std::string_view key) {
  std::vector<std::string> out;
  std::string pat = "\"" + std::string(key) + "\":[";
  auto at = json.find(pat);
  if (at == std::string_view::npos) return out;
  size_t i = at + pat.size();
  while (i < json.size() && json[i] != ']') {
    if (json[i] != '"') {
      ++i;
      continue;
    }
    std::string v;
    for (++i; i < json.size() && json[i] != '"'; ++i) {
      if (json[i] == '\\' && i + 1 < json.size()) {
        char c = json[++i];
        v += c == 'n' ? ' ' : c == 't' ? ' ' : (c == '"' || c == '\\' || c == '/') ? c : '?';
      } else {
        v += json[i];
      }
    }
    ++i;
    out.push_back(std::move(v));
  }
  return out;
}

// A job's JobProgressReport as the importer journaled it (progress_json, HealthLake's names).
struct Progress {
  int64_t files_scanned = 0, files_imported = 0, files_failed = 0;
  int64_t scanned = 0, imported = 0, failed = 0;  // resources
  double mb_scanned = 0, throughput = 0;
};

std::optional<Progress> parse_progress(const std::string& json) {
  if (json.empty()) return std::nullopt;
  simdjson::dom::parser p;
  simdjson::dom::element o;
  if (p.parse(json).get(o) || !o.is_object()) return std::nullopt;
  auto i64 = [&](const char* k) { return json::number_i64(o, k); };
  auto dbl = [&](const char* k) { return json::number_f64(o, k); };
  Progress r;
  r.files_scanned = i64("TotalNumberOfScannedFiles");
  r.files_imported = i64("TotalNumberOfImportedFiles");
  r.files_failed = i64("TotalNumberOfFilesReadWithCustomerError");
  r.scanned = i64("TotalNumberOfResourcesScanned");
  r.imported = i64("TotalNumberOfResourcesImported");
  r.failed = i64("TotalNumberOfResourcesWithCustomerError");
  r.mb_scanned = dbl("TotalSizeOfScannedFilesInMB");
  r.throughput = dbl("Throughput");
  return r;
}

bool terminal_job_status(const std::string& s) {
  return s == "COMPLETED" || s == "COMPLETED_WITH_ERRORS" || s == "FAILED" ||
         s == "CANCEL_COMPLETED" || s == "CANCEL_FAILED";
}

// An export's progress over the jobs of its current attempt: counts summed; the throughput of its
// one job, or with several parts of those still running (a finished part's rate says nothing
// about now). nullopt: no job reported progress yet.
struct ExportProgress {
  Progress sum;
  std::optional<double> throughput;
};

std::optional<ExportProgress> export_progress(const std::vector<ImportJobRow>& jobs) {
  std::optional<ExportProgress> out;
  for (const auto& j : jobs) {
    auto p = parse_progress(j.progress_json);
    if (!p) continue;
    if (!out) out.emplace();
    auto& s = out->sum;
    s.files_scanned += p->files_scanned;
    s.files_imported += p->files_imported;
    s.files_failed += p->files_failed;
    s.scanned += p->scanned;
    s.imported += p->imported;
    s.failed += p->failed;
    s.mb_scanned += p->mb_scanned;
    if (jobs.size() == 1 || !terminal_job_status(j.status))
      out->throughput = out->throughput.value_or(0) + p->throughput;
  }
  return out;
}

std::string number(double d) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.6g", d);
  return buf;
}

// "42 scanned, 30 imported, 2 failed, 1.5 MB/s" (HealthLake's Throughput is in MB/s).
std::string progress_cell(const std::vector<ImportJobRow>& jobs) {
  auto p = export_progress(jobs);
  if (!p) return "-";
  std::string out = std::to_string(p->sum.scanned) + " scanned, " +
                    std::to_string(p->sum.imported) + " imported, " +
                    std::to_string(p->sum.failed) + " failed";
  if (p->throughput) {
    char buf[64];
    std::snprintf(buf, sizeof buf, ", %.3g MB/s", *p->throughput);
    out += buf;
  }
  return out;
}

void progress_json(json::Writer& w, const Progress& p, std::optional<double> throughput) {
  w.begin_object()
      .field("resources_scanned", p.scanned)
      .field("resources_imported", p.imported)
      .field("resources_failed", p.failed)
      .field("files_scanned", p.files_scanned)
      .field("files_imported", p.files_imported)
      .field("files_failed", p.files_failed)
      .raw_field("size_scanned_mb", number(p.mb_scanned))  // %.6g, as the table shows it
      .raw_field("throughput_mb_per_s", throughput ? number(*throughput) : "null")
      .end_object();
}

// HealthLake's Message of a job that did not end well (FAILED...), for LAST ERROR when the
// export itself recorded none (journals from before the importer put it into last_error).
std::string job_message(const std::vector<ImportJobRow>& jobs) {
  std::string out;
  for (const auto& j : jobs) {
    if (j.message.empty() || j.status == "COMPLETED") continue;
    out += (out.empty() ? "" : "; ") + std::string("import job ") + j.job_id + " " + j.status +
           ": " + j.message;
  }
  return out;
}

// The ValidationLevel column: the level HealthLake reports, with the level the job was started
// with when they differ ("minimal (started strict)") or before HealthLake said
// ("strict (not reported)"). Several jobs: each distinct value once. "-" without a job or level.
std::string level_cell(const std::vector<ImportJobRow>& jobs) {
  std::vector<std::string> seen;
  for (const auto& j : jobs) {
    std::string v;
    if (j.reported_level.empty() && j.validation_level.empty()) continue;
    if (j.reported_level.empty())
      v = j.validation_level + " (not reported)";
    else if (j.validation_level.empty() || j.validation_level == j.reported_level)
      v = j.reported_level;
    else
      v = j.reported_level + " (started " + j.validation_level + ")";
    if (std::find(seen.begin(), seen.end(), v) == seen.end()) seen.push_back(v);
  }
  std::string out;
  for (const auto& v : seen) out += (out.empty() ? "" : ", ") + v;
  return out.empty() ? "-" : out;
}

}  // namespace

std::optional<ImportProgress> import_progress(const std::vector<ImportJobRow>& jobs) {
  auto p = export_progress(jobs);
  if (!p) return std::nullopt;
  return ImportProgress{p->sum.scanned, p->sum.imported, p->sum.failed, p->throughput};
}

std::string format_status_table(const std::vector<StatusRow>& rows) {
  std::vector<std::vector<std::string>> cells;
  cells.push_back({"EXPORT", "PIPELINE", "STATE", "FILES", "VALID", "REJECTED", "SPOOLED",
                   "UPLOADED", "JOB", "PROGRESS", "LEVEL", "LAST ERROR"});
  for (const auto& r : rows) {
    const auto& e = r.row;
    std::string state(to_string(e.state));
    std::string error = e.state == ExportState::parked ? e.parked_reason : e.last_error;
    if (error.empty()) error = job_message(r.jobs);
    std::string job = "-";
    if (r.jobs.size() > 1) {
      // "3 jobs: 2 COMPLETED, 1 IN_PROGRESS"
      std::map<std::string, int> by;
      for (const auto& j : r.jobs) ++by[j.status.empty() ? "starting" : j.status];
      job = std::to_string(r.jobs.size()) + " jobs:";
      bool first = true;
      for (const auto& [st, n] : by) {
        job += (first ? " " : ", ") + std::to_string(n) + " " + st;
        first = false;
      }
    } else if (r.job) {
      job = r.job->status.empty() ? "starting" : r.job->status;
    }
    if (e.import_attempt > 1) job += " (attempt " + std::to_string(e.import_attempt) + ")";
    cells.push_back({one_line(e.name, 48), one_line(e.pipeline, 24), state, std::to_string(e.files),
                     std::to_string(e.resources_valid), std::to_string(e.resources_rejected),
                     human_bytes(e.bytes_spooled), human_bytes(e.bytes_uploaded), job,
                     progress_cell(r.jobs), level_cell(r.jobs),
                     one_line(error.empty() ? "-" : error, 80)});
  }
  std::string out = align(cells);
  if (rows.empty()) out += "(no exports in the journal)\n";
  return out;
}

namespace {

// A string, or null when it is empty.
void string_or_null(json::Writer& w, std::string_view key, std::string_view v) {
  w.key(key);
  if (v.empty())
    w.null();
  else
    w.value(v);
}

// The fields every job object shares in status --json.
void job_fields(json::Writer& w, const ImportJobRow& j) {
  w.field("job_name", j.job_name)
      .field("job_id", j.job_id)
      .field("status", j.status)
      .field("submitted_at", format_time(j.submitted_at));
  // The level the job was started with, what HealthLake reports (null: not yet, or not sent),
  // and whether they agree (null until HealthLake reported one).
  string_or_null(w, "validation_level", j.validation_level);
  string_or_null(w, "reported_validation_level", j.reported_level);
  w.key("validation_level_match");
  if (j.reported_level.empty() || j.validation_level.empty())
    w.null();
  else
    w.value(j.reported_level == j.validation_level);
  // JobProgressReport (null until HealthLake sent one) and HealthLake's Message.
  auto p = parse_progress(j.progress_json);
  w.key("progress");
  if (p)
    progress_json(w, *p, p->throughput);
  else
    w.null();
  w.field("message", j.message);
}

void export_json(json::Writer& w, const StatusRow& r) {
  const auto& e = r.row;
  w.begin_object()
      .field("id", e.id)
      .field("name", e.name)
      .field("pipeline", e.pipeline)
      .field("source_path", e.source_path)
      .field("digest", e.digest)
      .field("version", e.version)
      .field("state", to_string(e.state));
  w.key("parked_from");
  if (e.parked_from)
    w.value(to_string(*e.parked_from));
  else
    w.null();
  w.field("parked_reason", e.parked_reason)
      .field("files", e.files)
      .field("resources_valid", e.resources_valid)
      .field("resources_rejected", e.resources_rejected)
      .field("bytes_source", e.bytes_source)
      .field("bytes_spooled", e.bytes_spooled)
      .field("bytes_uploaded", e.bytes_uploaded);
  {
    // As the table: HealthLake's Message of a failed job when the export recorded no error.
    std::string error = e.last_error;
    if (error.empty() && e.state != ExportState::parked) error = job_message(r.jobs);
    w.field("last_error", error);
  }
  w.field("created_at", format_time(e.created_at)).field("updated_at", format_time(e.updated_at));
  w.key("finished_at");
  if (e.finished_at)
    w.value(format_time(*e.finished_at));
  else
    w.null();
  w.field("import_attempt", e.import_attempt);
  auto progress = export_progress(r.jobs);
  w.key("import_progress");
  if (progress)
    progress_json(w, progress->sum, progress->throughput);
  else
    w.null();
  w.key("import_jobs").begin_array();
  for (const auto& j : r.jobs) {
    w.begin_object().field("part", j.part);
    job_fields(w, j);
    w.field("input_uri", j.input_uri).end_object();
  }
  w.end_array();
  w.key("import_job");
  if (r.job) {
    w.begin_object();
    job_fields(w, *r.job);
    w.end_object();
  } else {
    w.null();
  }
  w.end_object();
}

}  // namespace

namespace {

void waiting_json(json::Writer& w, const WaitingRow& r) {
  w.begin_object()
      .field("pipeline", r.pipeline)
      .field("name", r.name)
      .field("path", r.path)
      .field("rule", r.rule)
      .field("missing", r.missing)
      .field("since", format_time(r.since))
      .field("updated_at", format_time(r.updated_at))
      .end_object();
}

// "12 s", "3 min", "2 h 5 min", "3 d 4 h".
std::string human_age(TimeMs ms) {
  int64_t s = std::max<int64_t>(0, ms / 1000);
  if (s < 60) return std::to_string(s) + " s";
  if (s < 3600) return std::to_string(s / 60) + " min";
  if (s < 86400) return std::to_string(s / 3600) + " h " + std::to_string(s % 3600 / 60) + " min";
  return std::to_string(s / 86400) + " d " + std::to_string(s % 86400 / 3600) + " h";
}

}  // namespace

std::string format_status_json(const std::vector<StatusRow>& rows, int schema_version,
                               const std::vector<WaitingRow>& waiting) {
  json::Writer w;
  w.begin_object().field("schema_version", schema_version).key("exports").begin_array();
  for (const auto& r : rows) export_json(w, r);
  w.end_array().key("waiting").begin_array();
  for (const auto& r : waiting) waiting_json(w, r);
  w.end_array().end_object();
  return std::move(w).str() + "\n";
}

std::string format_waiting_table(const std::vector<WaitingRow>& waiting, TimeMs now) {
  if (waiting.empty()) return {};
  std::vector<std::vector<std::string>> cells;
  cells.push_back({"EXPORT", "PIPELINE", "RULE", "MISSING", "SINCE"});
  TimeMs as_of = 0;
  for (const auto& r : waiting) {
    cells.push_back({one_line(r.name, 48), one_line(r.pipeline, 24), one_line(r.rule, 40),
                     one_line(r.missing, 100),
                     format_time(r.since) + " (" + human_age(now - r.since) + " ago)"});
    as_of = std::max(as_of, r.updated_at);
  }
  // As of the daemon's last report: status also runs while no daemon does.
  return "\nwaiting for completion (seen by the watcher, not taken yet; as of " +
         format_time(as_of) + "):\n" + align(cells);
}

std::string format_waiting_detail(const WaitingRow& row, bool json, TimeMs now) {
  if (json) {
    json::Writer w;
    w.begin_object().key("waiting");
    waiting_json(w, row);
    w.end_object();
    return std::move(w).str() + "\n";
  }
  return "export " + one_line(row.name, 200) + " (pipeline " + one_line(row.pipeline, 64) +
         ") is not complete yet, so not taken\npath:    " + one_line(row.path, 400) +
         "\nrule:    " + one_line(row.rule, 80) + "\nmissing: " + one_line(row.missing, 400) +
         "\nsince:   " + format_time(row.since) + " (" + human_age(now - row.since) +
         " ago)\nas of:   " + format_time(row.updated_at) + "\n";
}

std::string format_export_detail(const Journal& journal, const ExportRow& row, bool json,
                                 size_t max_events) {
  auto files = journal.files(row.id);
  auto events = journal.events(row.id, max_events);
  // Entries of the export that were not taken ("skipped" events: reason TAB name), every one of
  // them whatever max_events (they are written once, when the export is taken).
  std::vector<std::pair<std::string, std::string>> skipped;  // name, reason
  for (const auto& ev : journal.events(row.id, 100000)) {
    if (ev.kind != "skipped") continue;
    auto tab = ev.message.find('\t');
    if (tab == std::string::npos)
      skipped.emplace_back(ev.message, "");
    else
      skipped.emplace_back(ev.message.substr(tab + 1), ev.message.substr(0, tab));
  }
  std::sort(skipped.begin(), skipped.end());
  std::string out;
  if (json) {
    json::Writer w;
    w.begin_object().key("export");
    export_json(w, {row, journal.import_job(row.id), journal.import_jobs(row.id)});
    w.key("files").begin_array();
    for (const auto& f : files) {
      w.begin_object()
          .field("name", f.name)
          .field("state", to_string(f.state))
          .field("size", f.source.size)
          .field("resources_valid", f.resources_valid)
          .field("resources_rejected", f.resources_rejected)
          .field("bytes_uncompressed", f.bytes_uncompressed)
          .field("bytes_spooled", f.bytes_spooled)
          .field("import_key", f.import_key)
          .field("import_upload_id", f.import_upload_id)
          .field("archive_key", f.archive_key)
          .field("last_error", f.last_error)
          .end_object();
    }
    w.end_array().key("skipped").begin_array();
    for (const auto& [name, reason] : skipped)
      w.begin_object().field("name", name).field("reason", reason).end_object();
    // What each import job of the current attempt reported (importer's outcome summary, with the
    // first failure reasons as source file:line): JSON the importer wrote, inserted as is.
    w.end_array().key("import_outcomes").begin_array();
    for (const auto& j : journal.import_jobs(row.id))
      if (!j.outcome.empty() && j.outcome.front() == '{') w.raw(j.outcome);
    w.end_array().key("events").begin_array();
    for (const auto& ev : events)
      w.begin_object()
          .field("time", format_time(ev.time))
          .field("kind", ev.kind)
          .field("message", ev.message)
          .end_object();
    w.end_array().end_object();
    return std::move(w).str() + "\n";
  }
  out += format_status_table({{row, journal.import_job(row.id), journal.import_jobs(row.id)}});
  out += "\nsource: " + one_line(row.source_path, 400) + "\ndigest: " +
         (is_pending_digest(row.digest) ? std::string("pending (hashed as the export spools)")
                                        : row.digest) +
         "\n\n";
  std::vector<std::vector<std::string>> cells;
  cells.push_back({"FILE", "STATE", "VALID", "REJECTED", "SOURCE", "SPOOLED", "LAST ERROR"});
  for (const auto& f : files)
    cells.push_back({one_line(f.name, 64), std::string(to_string(f.state)),
                     std::to_string(f.resources_valid), std::to_string(f.resources_rejected),
                     human_bytes(static_cast<int64_t>(f.source.size)), human_bytes(f.bytes_spooled),
                     one_line(f.last_error.empty() ? "-" : f.last_error, 80)});
  out += align(cells);
  if (!skipped.empty()) {
    out += "\nnot taken:\n";
    for (const auto& [name, reason] : skipped)
      out += "  " + one_line(name, 120) + "  " + one_line(reason, 200) + "\n";
  }
  for (const auto& j : journal.import_jobs(row.id)) {
    auto reasons = json_string_array(j.outcome, "first_failure_reasons");
    if (reasons.empty()) continue;
    out += "\nimport failures" + (j.part > 1 ? " (part " + std::to_string(j.part) + ")" : "") +
           ", first " + std::to_string(reasons.size()) + " (source file:line):\n";
    for (const auto& r : reasons) out += "  " + one_line(r, 400) + "\n";
  }
  out += "\nrecent events:\n";
  for (const auto& ev : events)
    out += "  " + format_time(ev.time) + "  " + ev.kind + "  " + one_line(ev.message, 200) + "\n";
  return out;
}

}  // namespace fe::journal
