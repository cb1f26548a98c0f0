// import-report.json and the export's verdict (contract in report.hpp).
#include "import/report.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cstdio>

#include "service/log.hpp"
#include "spool/spool.hpp"

namespace fe::import {

using aws::json_quote;

JobCounts job_counts(const ImportOutcome& o) {
  const Manifest& m = o.manifest;
  // A batch member's share of the job: its own output lines (the manifest counts every member).
  bool use_manifest = m.present && !o.batch_member;
  JobCounts c;
  c.imported = use_manifest ? m.resources_imported : o.success_lines;
  c.failed = use_manifest ? m.customer_errors + m.server_errors : o.failure_lines;
  c.scanned = use_manifest ? m.resources_scanned : c.imported + c.failed;
  return c;
}

std::string job_outcome_json(const JobReportFields& f, const ImportOutcome& o) {
  const auto& job = f.job;
  const Manifest& m = o.manifest;
  JobCounts c = job_counts(o);
  std::string js =
      "{\"export\":" + json_quote(f.export_name) + ",\"job_id\":" + json_quote(job.job_id) +
      ",\"job_name\":" + json_quote(job.job_name) + ",\"part\":" + std::to_string(f.part) +
      ",\"attempt\":" + std::to_string(f.attempt) +
      ",\"client_token\":" + json_quote(f.client_token) +
      ",\"datastore_id\":" + json_quote(job.datastore_id) +
      ",\"status\":" + json_quote(job.job_status) +
      ",\"accepted\":" + (f.accepted ? "true" : "false") +
      ",\"message\":" + json_quote(job.message) +
      ",\"validation_level\":" + json_quote(f.validation_level) +
      ",\"reported_validation_level\":" + json_quote(job.validation_level) +
      ",\"input_s3_uri\":" + json_quote(job.input_s3_uri) +
      ",\"output_s3_uri\":" + json_quote(f.output_s3_uri) +
      ",\"resources_scanned\":" + std::to_string(c.scanned) +
      ",\"resources_imported\":" + std::to_string(c.imported) +
      ",\"resources_failed\":" + std::to_string(c.failed) +
      ",\"failure_lines_read\":" + std::to_string(o.failure_lines) +
      ",\"success_lines_read\":" + std::to_string(o.success_lines) +
      ",\"success_outputs_read\":" + (o.read_success ? "true" : "false");
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
  for (const auto& [name, fc] : o.files) {
    js += (first ? "" : ",") + json_quote(name) + ":{\"imported\":" + std::to_string(fc.imported) +
          ",\"failed\":" + std::to_string(fc.failed) + "}";
    first = false;
  }
  js += "},\"first_failure_reasons\":[";
  for (std::size_t i = 0; i < o.reasons.size(); ++i)
    js += (i ? "," : "") + json_quote(o.reasons[i]);
  js += "],\"output_error\":" + json_quote(o.output_error) + "}";
  return js;
}

namespace {

int rank(const std::string& st) {
  return st == "COMPLETED" ? 0 : st == "COMPLETED_WITH_ERRORS" ? 1 : 2;
}

// Adds one job's journaled outcome to the verdict; HealthLake's Message of a job that did not
// complete goes to `messages` (it leads the summary, which is the export's last_error, so
// `status` shows why: issue 17).
void add_job(ExportVerdict& v, std::string& messages, const journal::ImportJobRow& j,
             std::size_t n_jobs, const std::vector<std::string>& accept_statuses) {
  std::int64_t ji = 0, jf = 0, js = 0;
  bool has_manifest = false;
  simdjson::dom::parser p;
  simdjson::dom::element o;
  auto add_message = [&](std::string_view m) {
    messages += (messages.empty() ? "" : "; ") +
                (n_jobs > 1 ? "job " + j.job_id + ": " : std::string()) + std::string(m);
  };
  if (!p.parse(j.outcome).get(o)) {
    std::int64_t val = 0;
    if (!o["resources_imported"].get_int64().get(val)) ji = val;
    if (!o["resources_failed"].get_int64().get(val)) jf = val;
    if (!o["resources_scanned"].get_int64().get(val)) js = val;
    simdjson::dom::object mo;
    has_manifest = !o["manifest"].get_object().get(mo);
    std::string_view m;
    if (j.message.empty() && j.status != "COMPLETED" && !o["message"].get_string().get(m) &&
        !m.empty())
      add_message(m);
  }
  if (!j.message.empty() && j.status != "COMPLETED") add_message(j.message);
  v.imported += ji;
  v.failed += jf;
  v.scanned += js;
  // CANCEL_FAILED: a cancel was asked for and failed, which in practice means the job ran on,
  // and its resources were imported. Counting it as a failed import would let `retry` import
  // them a second time. With a manifest.json the job is judged by what it did; with none,
  // nothing is known and it stays failed (retry_export then refuses without --reimport).
  std::string status = j.status;
  if (status == "CANCEL_FAILED" && has_manifest) {
    status = jf == 0 ? "COMPLETED" : "COMPLETED_WITH_ERRORS";
    v.notes += "; job " + j.job_id + " ended CANCEL_FAILED: the cancel failed and the job ran " +
               "on (manifest.json: " + std::to_string(ji) + " imported, " + std::to_string(jf) +
               " failed), judged as " + status;
  }
  if (std::find(accept_statuses.begin(), accept_statuses.end(), status) == accept_statuses.end())
    v.accepted = false;
  if (rank(status) > rank(v.worst) || (rank(status) == 2 && v.worst == "COMPLETED_WITH_ERRORS"))
    v.worst = status;
}

// An accepted status is not enough: COMPLETED_WITH_ERRORS also covers a job that imported
// nothing at all (inputs it could not read, e.g. not KMS-encrypted). after_upload must not move
// or delete a source whose resources are not in HealthLake.
std::string not_imported_reason(const ExportVerdict& v, const journal::ExportRow& e,
                                double min_imported_share) {
  std::int64_t expected = std::max(v.scanned, e.resources_valid);
  if (v.imported <= 0)
    return "the import imported none of the export's " +
           (expected > 0 ? std::to_string(expected) + " " : std::string()) + "resources";
  if (min_imported_share > 0 && expected > 0 &&
      static_cast<double>(v.imported) < min_imported_share * static_cast<double>(expected)) {
    char share[64];
    std::snprintf(share, sizeof share, "%.1f%% < import.min_imported_share %.1f%%",
                  100.0 * static_cast<double>(v.imported) / static_cast<double>(expected),
                  100.0 * min_imported_share);
    return "the import imported only " + std::to_string(v.imported) + " of " +
           std::to_string(expected) + " resources (" + share + ")";
  }
  return "";
}

}  // namespace

ExportVerdict judge_export(const journal::ExportRow& e,
                           const std::vector<journal::ImportJobRow>& jobs,
                           const std::vector<std::string>& started_levels,
                           const std::vector<std::string>& accept_statuses,
                           double min_imported_share) {
  ExportVerdict v;
  std::string messages;
  for (const auto& j : jobs) add_job(v, messages, j, jobs.size(), accept_statuses);
  if (v.accepted) {
    v.not_imported = not_imported_reason(v, e, min_imported_share);
    if (!v.not_imported.empty()) v.accepted = false;
  }
  // One job: its outcome is the report (docs/import.md). Several: a summary with every part.
  if (jobs.size() == 1) {
    v.report = jobs[0].outcome;
  } else {
    v.report = "{\"export\":" + json_quote(e.name) + ",\"parts\":" + std::to_string(jobs.size()) +
               ",\"status\":" + json_quote(v.worst) +
               ",\"accepted\":" + (v.accepted ? "true" : "false") + ",\"validation_level\":" +
               json_quote(started_levels.empty() ? std::string() : started_levels[0]) +
               ",\"resources_scanned\":" + std::to_string(v.scanned) +
               ",\"resources_imported\":" + std::to_string(v.imported) +
               ",\"resources_failed\":" + std::to_string(v.failed) + ",\"jobs\":[";
    for (std::size_t i = 0; i < jobs.size(); ++i) v.report += (i ? "," : "") + jobs[i].outcome;
    v.report += "]}";
  }
  if (!v.not_imported.empty() && !v.report.empty() && v.report.back() == '}') {
    v.report.pop_back();
    v.report += ",\"not_imported_because\":" + json_quote(v.not_imported) + "}";
  }
  v.summary = jobs.size() == 1 ? "import " + jobs[0].status
                               : "import of " + std::to_string(jobs.size()) + " jobs " + v.worst;
  v.summary += ": " + (messages.empty() ? std::string() : messages + "; ") +
               std::to_string(v.imported) + " imported, " + std::to_string(v.failed) +
               " failed of " + std::to_string(v.scanned) + " resources";
  v.summary += v.notes;
  if (!v.not_imported.empty())
    v.summary += "; not counted as imported: " + v.not_imported +
                 ". The source is kept; fix the cause, then `fhir-edge retry` (`--reimport` if "
                 "some resources were imported)";
  return v;
}

std::string nothing_to_import_report(const std::string& export_name, std::size_t files,
                                     std::int64_t rejected, const std::string& message) {
  return "{\"export\":" + json_quote(export_name) +
         ",\"status\":\"NOTHING_TO_IMPORT\",\"accepted\":false,\"job_id\":null," +
         "\"files\":" + std::to_string(files) +
         ",\"resources_valid\":0,\"resources_rejected\":" + std::to_string(rejected) +
         ",\"message\":" + json_quote(message) + "}";
}

void write_import_report(const std::filesystem::path& spool_dir, const std::string& export_name,
                         const std::string& report) {
  try {
    auto dir = spool::export_dir(spool_dir, export_name);
    std::filesystem::create_directories(dir);
    spool::write_durable(dir / "import-report.json", report + "\n");
  } catch (const std::exception& ex) {
    log::error(std::string("import report not written: ") + ex.what(),
               {{"EXPORT_ID", export_name}});
  }
}

}  // namespace fe::import
