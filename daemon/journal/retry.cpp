// The operator's `fhir-edge retry` (Journal::retry_export), applied by the request mailbox (or by
// the CLI itself when no daemon runs). It decides; what it changes is written through the ledger
// of the stage that owns the export at that point (an export parked before `uploaded` is the
// pipeline's, anything from `uploaded` on the import stage's), all in one transaction.
#include <simdjson.h>

#include <algorithm>

#include "journal/ledgers.hpp"
#include "journal/sql.hpp"

namespace fe::journal {
namespace {

std::string refusal(const ExportRow& row, const std::string& why) {
  return row.name + " is " + std::string(to_string(row.state)) + ": " + why;
}

std::string job_ids(const std::vector<ImportJobRow>& jobs) {
  std::string out;
  for (const auto& j : jobs)
    if (!j.job_id.empty()) out += (out.empty() ? "" : ", ") + j.job_id;
  return out;
}

// A parked export: back to the state it was parked from (same tokens), or, with --reimport, a new
// import attempt when resuming would only poll a job that is gone or runs at another level.
void retry_parked(Journal& j, const ExportRow& row, bool reimport, RetryOutcome& out) {
  if (!row.parked_from) {
    out.message = refusal(row, "parked without a state to resume (journal damaged?)");
    return;
  }
  const auto jobs = j.import_jobs(row.id);
  // Parked while starting, but every job of the attempt is known (adopted from
  // ListFHIRImportJobs after a crash, then parked for its ValidationLevel): no Start is in
  // doubt, so a new attempt is as safe as from importing.
  bool jobs_known = false;
  if (reimport && *row.parked_from == ExportState::import_starting)
    jobs_known = !jobs.empty() && std::all_of(jobs.begin(), jobs.end(), [](const ImportJobRow& r) {
      return !r.job_id.empty();
    });
  if (reimport && (*row.parked_from == ExportState::importing || jobs_known)) {
    // Parked while its job was followed (typically: the job vanished, Describe answers
    // ResourceNotFound, or it runs at another ValidationLevel). Resuming would poll the same
    // job id again; --reimport is the way out: a new attempt with new ClientToken(s) and a
    // new job.
    const std::string old_jobs = job_ids(jobs);
    const int attempt = row.import_attempt + 1;
    ImportLedger(j).new_attempt(row.id, "parked -> uploaded: import attempt " +
                                            std::to_string(attempt) +
                                            " (--reimport; previous job(s): " + old_jobs + ")");
    out.to = ExportState::uploaded;
    out.new_token = true;
    out.applied = true;
    out.message = row.name + ": parked (" + row.parked_reason + ") -> uploaded, import attempt " +
                  std::to_string(attempt) +
                  ": a NEW import job with a new ClientToken will be started; the job(s) of "
                  "the previous attempt (" +
                  (old_jobs.empty() ? std::string("none") : old_jobs) + ") are no longer followed";
    return;
  }
  out.to = *row.parked_from;
  if (detail::import_phase(j, row))
    ImportLedger(j).unpark_export(row.id, "retry requested");
  else
    IngestLedger(j).unpark_export(row.id, "retry requested");
  out.applied = true;
  out.message = row.name + ": resumed as " + std::string(to_string(out.to)) +
                " (it was parked: " + row.parked_reason + ")";
  bool has_token = false;
  for (const auto& r : jobs)
    if (!r.client_token.empty()) has_token = true;
  if (has_token) out.message += "; the import continues with the same ClientToken";
}

// A failed import is not always an import that did nothing: COMPLETED_WITH_ERRORS under the
// accepted share, or CANCEL_FAILED (the job ran on). A new job would import what was imported a
// second time, so that takes --reimport, and the refusal says what was imported (from the
// outcome reconcile journaled from manifest.json and outputs). Empty: nothing against a retry.
std::string imported_already(const std::vector<ImportJobRow>& jobs) {
  std::string imported_by, unknown;
  for (const auto& j : jobs) {
    simdjson::dom::parser p;
    simdjson::dom::element o;
    if (j.outcome.empty() || p.parse(j.outcome).get(o)) continue;
    int64_t n = 0;
    simdjson::dom::object mo;
    bool manifest = !o["manifest"].get_object().get(mo);
    if (!o["resources_imported"].get_int64().get(n) && n > 0)
      imported_by += (imported_by.empty() ? "" : ", ") + std::to_string(n) + " by job " + j.job_id +
                     " (" + j.status + ")";
    else if (j.status == "CANCEL_FAILED" && !manifest)
      unknown += (unknown.empty() ? "" : ", ") + j.job_id;
  }
  if (!imported_by.empty())
    return "resources of it were imported: " + imported_by +
           ". A new job would import those a second time; pass --reimport to import the whole "
           "export again anyway";
  if (!unknown.empty())
    return "job(s) " + unknown +
           " ended CANCEL_FAILED without a manifest.json: the cancel failed, so the job probably "
           "ran on, and what it imported is not known. Check the job in HealthLake; pass "
           "--reimport to import the whole export again anyway";
  return {};
}

// import_failed, or imported with --reimport: a new attempt (new ClientTokens, a new job).
void retry_finished(Journal& j, const ExportRow& row, bool reimport, RetryOutcome& out) {
  if (row.state == ExportState::imported && !reimport) {
    out.message = refusal(
        row,
        "its import job already finished with a status the pipeline accepts. Importing it again "
        "creates a new HealthLake job with a new ClientToken and imports every resource once "
        "more (new resource versions); pass --reimport to do that");
    return;
  }
  if (row.state == ExportState::import_failed && !reimport) {
    if (auto why = imported_already(j.import_jobs(row.id)); !why.empty()) {
      out.message = refusal(row, why);
      return;
    }
  }
  const int attempt = row.import_attempt + 1;
  ImportLedger(j).new_attempt(row.id,
                              std::string(to_string(row.state)) + " -> uploaded: import attempt " +
                                  std::to_string(attempt) + (reimport ? " (--reimport)" : ""));
  out.to = ExportState::uploaded;
  out.new_token = true;
  out.applied = true;
  out.message = row.name + ": " + std::string(to_string(row.state)) +
                " -> uploaded, import attempt " + std::to_string(attempt) +
                ": a NEW import job with a new ClientToken will be started (the objects "
                "already in S3 are used; nothing is uploaded again)";
}

}  // namespace

RetryOutcome Journal::retry_export(std::string_view export_name, bool reimport) {
  detail::require_writable(*this);
  detail::Tx tx(*this);
  RetryOutcome out;
  auto row = find_export(export_name);
  if (!row) {
    out.message = "no export named '" + std::string(export_name) + "' in the journal";
    if (auto t = find_tombstone(export_name))
      out.message += " (it was compacted away after it ended " + std::string(to_string(t->state)) +
                     "; its source is remembered and is not taken again)";
    return out;
  }
  out.export_id = row->id;
  out.from = row->state;
  switch (row->state) {
    case ExportState::parked:
      retry_parked(*this, *row, reimport, out);
      break;
    case ExportState::import_failed:
    case ExportState::imported:
      retry_finished(*this, *row, reimport, out);
      break;
    case ExportState::nothing_to_import:
      out.message = refusal(
          *row,
          "none of its resources is valid, so there is nothing to import (see its rejects and "
          "report.json); fix the source and drop it again: a changed export is taken as a new "
          "version");
      break;
    case ExportState::failed:
      out.message = refusal(*row, "it was given up (" + row->last_error +
                                      "); fix the source and drop it again: a changed export is "
                                      "taken as a new version");
      break;
    case ExportState::superseded:
      out.message = refusal(
          *row, "its source changed after it was taken; the newer version is imported instead");
      break;
    default:
      out.message = refusal(
          *row, "it is in progress" +
                    (row->last_error.empty()
                         ? std::string()
                         : " (last error, retried automatically: " + row->last_error + ")") +
                    "; nothing to retry");
  }
  if (out.applied) tx.commit();  // a refusal changes nothing
  return out;
}

}  // namespace fe::journal
