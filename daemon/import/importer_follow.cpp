// Import lifecycle: recovery after a restart, follow, reconcile and finish (contract in
// importer.hpp; the state is Importer::Impl in importer_impl.hpp).
#include <cstdio>

#include "import/importer_impl.hpp"
#include "import/report.hpp"

namespace fe::import {

using journal::ExportState;

namespace {

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

}  // namespace

void Importer::Impl::recover(std::int64_t id, const journal::ImportJobRow& j) {
  list_page(id, j.part, std::make_shared<Listing>(), "");
}

void Importer::Impl::list_page(std::int64_t id, int part, std::shared_ptr<Listing> acc,
                               std::string next) {
  auto e = journal.get_export(id);
  if (e.state != ExportState::import_starting) return;
  auto j = journal.import_job(id, part);
  if (!j) return;
  const ImportTarget& t = *target(e);
  aws::ListImportJobsRequest q;
  q.datastore_id = t.datastore_id;
  q.job_name = j->job_name;
  q.submitted_after =
      static_cast<double>(j->submitted_at) / 1000.0 - static_cast<double>(opt.list_margin.count());
  q.max_results = 500;
  q.next_token = std::move(next);
  busy.insert({id, part});
  std::string input = input_of(e, t, *j);
  hl.list_import_jobs(q, guard<aws::HlResult<aws::ListImportJobsResult>>(
                             {id, part}, [id, part, input, acc](Impl& self, auto r) {
                               self.on_listed(id, part, input, acc, std::move(r));
                             }));
}

void Importer::Impl::on_listed(std::int64_t id, int part, const std::string& input,
                               std::shared_ptr<Listing> acc,
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
    log::notice("import job adopted after restart", {{"EXPORT_ID", e.name},
                                                     {"PIPELINE", e.pipeline},
                                                     {"JOB_ID", found.job_id},
                                                     {"PAGES", std::to_string(acc->pages)}});
    changed();
    // ListFHIRImportJobs reports the level too: a job running at another level is parked here,
    // before anything follows it.
    if (check_reported(e, part, found.job_id, found.validation_level, found.message)) return;
    start_next(id, true);
    share_job(id, found.job_id, found.job_status);
    return;
  }
  send_start(id, part);
}

void Importer::Impl::follow_all(std::int64_t id) {
  bool any = false;
  for (const auto& j : journal.import_jobs(id)) {
    if (!j.outcome.empty() && aws::is_terminal_job_status(j.status)) continue;
    any = true;
    poll(id, j.part);
  }
  if (!any) finish_export(id);
}

void Importer::Impl::poll(std::int64_t id, int part) {
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

void Importer::Impl::on_described(std::int64_t id, int part,
                                  aws::HlResult<aws::ImportJobProperties> r) {
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

void Importer::Impl::reconcile(std::int64_t id, int part, const aws::ImportJobProperties& job) {
  auto e = journal.get_export(id);
  const ImportTarget& t = *target(e);
  ReconcileInput in;
  {
    // The job's input: the files whose import keys are under its input prefix.
    auto jrow = journal.import_job(id, part);
    std::string input = jrow ? input_of(e, t, *jrow) : import_input_uri(t.bucket, t.prefix, e.name);
    std::string key_prefix = split_s3_uri(input).second + "/";
    // A batch member's objects were copied to <batch prefix>/<export>/<rel>: its outputs are the
    // ones under FAILURE/<export>/ and SUCCESS/<export>/ (HealthLake names each output after its
    // input's path below the input prefix), and only those are read and counted for it.
    std::string member;
    if (multi_batch(id)) {
      member = e.name + "/";
      key_prefix = split_s3_uri(import_input_uri(t.bucket, t.prefix, e.name)).second + "/";
      in.only = member;
    } else if (auto fm = fleet_member(id)) {
      // A member of a fleet batch: copied to batches/<id>/<gateway>/<entry>/<rel> by the holder.
      member = opt.fleet.gateway_id + "/" + fm->entry_id + "/";
      key_prefix = split_s3_uri(import_input_uri(t.bucket, t.prefix, e.name)).second + "/";
      in.only = member;
    }
    std::int64_t bytes = 0, keyed = 0;
    for (const auto& f : journal.files(id)) {
      if (f.import_key.empty() || !f.import_key.starts_with(key_prefix)) continue;
      ++keyed;
      bytes += f.bytes_uncompressed;
      in.sources[member + f.import_key.substr(key_prefix.size())] = {f.id, f.name,
                                                                     f.resources_valid};
    }
    if (keyed == 0) bytes = e.bytes_source;  // no keys journaled: the sources' size bounds it
    in.read_success =
        opt.read_success_outputs && (keyed == 0 || bytes <= opt.success_outputs_max_bytes);
  }
  std::string out_uri = job.output_s3_uri.empty() ? t.output_s3_uri : job.output_s3_uri;
  auto [bucket, prefix] = split_s3_uri(job_output_uri(out_uri, t.datastore_id, job.job_id));
  in.bucket = bucket;
  in.dir = prefix + "/";
  journal::Journal* jr = &journal;  // outlives every transfer (the Pipeline owns both)
  in.source_line = [jr](std::int64_t file_id, std::int64_t line) {
    return jr->source_line(file_id, line);
  };
  ReconcileLimits lim{opt.max_reasons, opt.max_reason_chars, opt.max_line_bytes};
  std::weak_ptr<Impl> w = weak_from_this();
  auto live = [w] {
    auto self = w.lock();
    return self && !self->stopped;
  };
  busy.insert({id, part});  // until the outcome is in: kick() leaves the job alone
  std::string out_dir = "s3://" + in.bucket + "/" + in.dir;
  Reconciler::start(
      reader, std::move(in), lim, live,
      guard<ImportOutcome>({id, part}, [id, part, job, out_dir](Impl& self, ImportOutcome o) {
        self.on_reconciled(id, part, job, out_dir, std::move(o));
      }));
}

void Importer::Impl::on_reconciled(std::int64_t id, int part, const aws::ImportJobProperties& job,
                                   const std::string& out_dir, ImportOutcome o) {
  if (!o.retry_later.empty()) {
    ++stats.retries;
    journal.set_export_error(id, o.retry_later + " (reconcile retried later)");
    after({id, part}, opt.retry_delay,
          [id, part, job](Impl& self) { self.reconcile(id, part, job); });
    return;
  }
  auto e = journal.get_export(id);
  if (e.state != ExportState::importing) return;
  const ImportTarget& t = *target(e);
  auto jrow = journal.import_job(id, part);
  JobReportFields f;
  f.export_name = e.name;
  f.job = job;
  f.part = part;
  f.attempt = e.import_attempt;
  f.client_token = jrow ? jrow->client_token : "";
  f.accepted = std::find(t.accept_statuses.begin(), t.accept_statuses.end(), job.job_status) !=
               t.accept_statuses.end();
  f.validation_level = jrow ? started_level(t, *jrow) : "";
  f.output_s3_uri = out_dir;
  journal.record_import_outcome(id, job_outcome_json(f, o), part);

  JobCounts c = job_counts(o);
  std::string summary = "import " + job.job_status + ": " + std::to_string(c.imported) +
                        " imported, " + std::to_string(c.failed) + " failed of " +
                        std::to_string(c.scanned) + " resources";
  if (!o.reasons.empty()) summary += "; first failure: " + o.reasons.front();
  if (!job.message.empty()) summary += "; " + job.message;
  std::initializer_list<log::Field> fields = {{"EXPORT_ID", e.name},
                                              {"PIPELINE", e.pipeline},
                                              {"JOB_ID", job.job_id},
                                              {"JOB_STATUS", job.job_status}};
  if (job.job_status == "COMPLETED")
    log::notice(summary, fields);
  else
    log::warning(summary, fields);
  finish_export(id);
}

void Importer::Impl::finish_export(std::int64_t id) {
  auto e = journal.get_export(id);
  if (e.state != ExportState::importing) return;
  const ImportTarget& t = *target(e);
  auto jobs = journal.import_jobs(id);
  for (const auto& j : jobs)
    if (j.outcome.empty()) return;  // other parts still running
  // The level check once more, from the journal: whatever path led here (a restart after the
  // last outcome), an export whose job ran at another level is never marked imported.
  std::vector<std::string> levels;
  for (const auto& j : jobs) {
    levels.push_back(started_level(t, j));
    std::string why = validation_level_mismatch(e.name, j.job_id, levels.back(), j.reported_level);
    if (!why.empty()) {
      park(id, why);
      return;
    }
  }
  ExportVerdict v = judge_export(e, jobs, levels, t.accept_statuses, t.min_imported_share);
  write_import_report(opt.spool_dir, e.name, v.report);
  if (jobs.size() > 1 || !v.not_imported.empty() || !v.notes.empty()) {
    if (v.worst == "COMPLETED" && v.not_imported.empty())
      log::notice(v.summary, {{"EXPORT_ID", e.name}, {"PIPELINE", e.pipeline}});
    else
      log::warning(v.summary, {{"EXPORT_ID", e.name}, {"PIPELINE", e.pipeline}});
  }
  if (v.accepted) {
    journal.set_export_state(id, ExportState::imported, v.summary);
    ++stats.imported;
    log::info("export imported: " + v.summary,
              {{"MESSAGE_ID", std::string(log::message_id::export_imported)},
               {"EXPORT_ID", e.name},
               {"PIPELINE", e.pipeline}});
    if (opt.events) opt.events->emit(ExportEvent::imported, id);
  } else {
    journal.set_export_state(id, ExportState::import_failed, v.summary);
    ++stats.import_failed;
    log::error("import failed: " + v.summary,
               {{"MESSAGE_ID", std::string(log::message_id::import_failed)},
                {"EXPORT_ID", e.name},
                {"PIPELINE", e.pipeline}});
  }
  release(e);
  changed();
}

}  // namespace fe::import
