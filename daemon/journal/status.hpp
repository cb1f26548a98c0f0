#pragma once
// What `fhir-edge status` shows: one row per export with its import job, as a text table or as
// JSON. Read from a (read-only) Journal; no SQL here either.
#include <optional>
#include <string>
#include <vector>

#include "journal/journal.hpp"

namespace fe::journal {

struct StatusRow {
  ExportRow row;
  std::optional<ImportJobRow> job;  // part 1 of the current attempt
  std::vector<ImportJobRow> jobs;   // every part of the current attempt (several when split)
};

std::vector<StatusRow> read_status(const Journal& journal, bool include_finished = true);

// Columns: EXPORT PIPELINE STATE FILES VALID REJECTED SPOOLED UPLOADED JOB PROGRESS LEVEL
// LAST-ERROR. PROGRESS is HealthLake's JobProgressReport as journaled while the job is followed
// ("42 scanned, 30 imported, 2 failed, 1.5 MB/s"; counts summed over the parts, throughput of the
// job, or of the parts still running). LAST-ERROR is the park reason, else last_error, else
// HealthLake's Message of a job that did not complete ("import job J FAILED: ...").
// LEVEL is the ValidationLevel HealthLake reports for the job(s), with the started level when it
// differs ("minimal (started strict)") or is not reported yet ("strict (not reported)").
std::string format_status_table(const std::vector<StatusRow>& rows);

// {"schema_version":N,"exports":[{"id","name","pipeline","source_path","digest","version",
//  "state","parked_from","parked_reason","files","resources_valid","resources_rejected",
//  "bytes_source","bytes_spooled","bytes_uploaded","last_error","created_at","updated_at",
//  "finished_at","import_attempt","import_progress":<progress>|null,"import_job":{<job>}|null,
//  "import_jobs":[{"part",<job>,"input_uri"}]}]} with <job> = "job_name","job_id","status",
//  "submitted_at","validation_level" (started with; null in journals before schema 5),
//  "reported_validation_level" (what HealthLake reports; null until it did),
//  "validation_level_match" (true|false|null),"progress":<progress>|null,"message" (HealthLake's)
//  and <progress> = {"resources_scanned","resources_imported","resources_failed","files_scanned",
//  "files_imported","files_failed","size_scanned_mb","throughput_mb_per_s"|null}
//  (import_progress sums the parts as the PROGRESS column does; last_error as LAST-ERROR, without
//  the park reason, which is parked_reason)
//  (import_job is part 1; import_jobs lists every part of the current attempt)
// Timestamps are RFC 3339 UTC strings.
//  ,"waiting":[{"pipeline","name","path","rule","missing","since","updated_at"}] : exports the
//  watcher has seen that wait for their completion rule (WaitingRow; [] before schema 7).
std::string format_status_json(const std::vector<StatusRow>& rows, int schema_version,
                               const std::vector<WaitingRow>& waiting = {});

// The waiting exports as a text section for `status` ("" when none): a heading, then
// EXPORT PIPELINE RULE MISSING SINCE, SINCE with its age at `now` ("... (3 min ago)").
std::string format_waiting_table(const std::vector<WaitingRow>& waiting, TimeMs now);
// `status --export NAME` for an export that is only waiting (not taken yet): its row as text, or
// as JSON {"waiting":{...as above...}}.
std::string format_waiting_detail(const WaitingRow& row, bool json, TimeMs now);

// One export in detail: its files (state, resources, bytes, upload ids, error), the first import
// failure reasons (source file:line) and its most recent events, as text or as JSON
// ({"export":{...as above...},"files":[...],"import_outcomes":[<importer outcome of each job of
// the current attempt>],"events":[...]}).
std::string format_export_detail(const Journal& journal, const ExportRow& row, bool json,
                                 size_t max_events = 20);

std::string format_time(TimeMs t);  // RFC 3339 UTC, millisecond precision

// HealthLake's JobProgressReport of an export's jobs (current attempt), summed as the PROGRESS
// column sums it (throughput: of its one job, or of the parts still running); nullopt until
// HealthLake sent one. /metrics shows it for the jobs that run.
struct ImportProgress {
  int64_t resources_scanned = 0;
  int64_t resources_imported = 0;
  int64_t resources_failed = 0;
  std::optional<double> throughput_mb_per_s;
};
std::optional<ImportProgress> import_progress(const std::vector<ImportJobRow>& jobs);

}  // namespace fe::journal
