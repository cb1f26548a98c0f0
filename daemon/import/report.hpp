#pragma once
// import-report.json (docs/import.md "finish"): what the operator reads in spool/<export>/ and
// what the journal keeps as each job's outcome. Building the JSON and judging the export from its
// jobs' outcomes are pure; write_import_report() is the one write (spool::write_durable).
//
//   job outcome    one job: export, job id/name, part, attempt, token, status, accepted, message,
//                  levels, input/output URIs, resource counts (manifest.json when there is one,
//                  else what FAILURE/ and SUCCESS/ showed), per-file counts, first failure reasons,
//                  output_error. Journaled by the importer (record_import_outcome).
//   export report  one job: its outcome; several: a summary with every job's outcome; with
//                  "not_imported_because" when an accepted status imported nothing or less than
//                  min_imported_share. judge_export() also decides imported vs import_failed:
//                  every status in accept_statuses (CANCEL_FAILED with a manifest judged as
//                  COMPLETED / COMPLETED_WITH_ERRORS) and enough resources imported.
//   nothing        an export that started no job (no valid resource): status NOTHING_TO_IMPORT.
#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "aws/healthlake.hpp"
#include "import/reconciler.hpp"
#include "journal/journal.hpp"

namespace fe::import {

// A job's resource counts: the manifest when there is one, else what the outputs showed.
struct JobCounts {
  std::int64_t imported = 0, failed = 0, scanned = 0;
};
JobCounts job_counts(const ImportOutcome& o);

// What a job's outcome JSON says besides the ImportOutcome.
struct JobReportFields {
  std::string export_name;
  aws::ImportJobProperties job;
  int part = 1;
  int attempt = 1;
  std::string client_token;
  bool accepted = false;
  std::string validation_level;  // started with
  std::string output_s3_uri;     // s3://bucket/<job output dir>
};
std::string job_outcome_json(const JobReportFields& f, const ImportOutcome& o);

// The export's verdict from every job's journaled outcome.
struct ExportVerdict {
  bool accepted = true;  // → imported, else import_failed
  std::int64_t imported = 0, failed = 0, scanned = 0;
  std::string worst = "COMPLETED";  // the worst job status (CANCEL_FAILED as judged)
  std::string report;               // import-report.json's content (no final newline)
  std::string summary;              // the export's last_error / state message
  std::string not_imported;         // why an accepted status does not count ("" when it does)
  std::string notes;                // CANCEL_FAILED judged from the manifest
};
// `started_levels[i]` is the level jobs[i] was started with.
ExportVerdict judge_export(const journal::ExportRow& e,
                           const std::vector<journal::ImportJobRow>& jobs,
                           const std::vector<std::string>& started_levels,
                           const std::vector<std::string>& accept_statuses,
                           double min_imported_share);

// The report of an export that started no job; `message` is its state message.
std::string nothing_to_import_report(const std::string& export_name, std::size_t files,
                                     std::int64_t rejected, const std::string& message);

// spool/<export>/import-report.json, durably; a failure is logged, never thrown.
void write_import_report(const std::filesystem::path& spool_dir, const std::string& export_name,
                         const std::string& report);

}  // namespace fe::import
