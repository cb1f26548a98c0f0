// The fleet, member side (docs/import.md "Fleet"): every gateway with a `fleet` lists its
// uploaded exports in the fleet's ready.json instead of starting jobs of its own, learns which
// batch claimed each (from ready.json, or from the holder's member pointer once the entry is
// gone), follows the batch record, and reconciles its own exports from the job's outcome. The
// holder side is fleet_holder.cpp; both run in every gateway.
//
// What a member must remember across a crash is journaled (schema 9, Journal::fleet_export):
// the append (so a restart does not append twice: appends are idempotent anyway) and the
// claiming batch (the holder removes the entry after the job, maybe while this gateway is down).
// The job itself is journaled like any other (record_fleet_job: token = batch id, JobName,
// input prefix, level, job id; uploaded → importing in one transaction), so status, the level
// check, reconcile, import-report.json and after_upload are the one-gateway code.
#include <simdjson.h>

#include "fleet/batch_record.hpp"
#include "fleet/s3_cas.hpp"
#include "import/importer_impl.hpp"

namespace fe::import {

using journal::ExportState;

namespace {

std::int64_t wall_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

// `done` holding `owner` alive until it runs (Manifest calls back into itself).
template <class O, class R>
std::function<void(R)> keep_alive(std::shared_ptr<O> owner, std::function<void(R)> done) {
  return [owner, done](R r) { done(std::move(r)); };
}

}  // namespace

std::string Importer::Impl::fleet_entry_id(const journal::ExportRow& e) {
  return e.import_attempt > 1 ? e.name + ".retry" + std::to_string(e.import_attempt) : e.name;
}

std::optional<journal::FleetExportRow> Importer::Impl::fleet_member(std::int64_t id) const {
  auto row = journal.fleet_export(id);
  if (!row || row->batch_id.empty()) return std::nullopt;
  auto j = journal.import_job(id);
  if (!j || j->client_token != row->batch_id) return std::nullopt;
  return row;
}

void Importer::Impl::fleet_start() {
  if (!fleet() || holder) return;
  FleetHolderOptions h;
  h.fleet = opt.fleet;
  h.caps = opt.batch;
  h.caps.max_files = std::min(h.caps.max_files, opt.max_files_per_job);
  h.poll_min = opt.poll_min;
  h.poll_max = opt.poll_max;
  h.retry_delay = opt.retry_delay;
  holder = std::make_unique<FleetHolder>(io, s3, hl, h);
  holder->start();
  fleet_ready = std::make_shared<fleet::Manifest>(
      s3, io, opt.fleet.bucket, fleet::manifest_key(opt.fleet.prefix, opt.fleet.name));
  fleet_timer = std::make_unique<boost::asio::steady_timer>(io);
}

void Importer::Impl::fleet_arm(std::chrono::milliseconds d) {
  if (!fleet_timer || stopped) return;
  fleet_timer->expires_after(d);
  std::weak_ptr<Impl> w = weak_from_this();
  fleet_timer->async_wait([w](const boost::system::error_code& ec) {
    auto self = w.lock();
    if (ec || !self || self->stopped) return;
    try {
      self->fleet_tick();
    } catch (const std::exception& ex) {
      log::error(std::string("import (fleet): ") + ex.what());
      self->fleet_busy = false;
      self->fleet_arm(self->opt.fleet.poll_interval);
    }
  });
}

bool Importer::Impl::fleet_kick(std::int64_t id) {
  auto e = journal.get_export(id);
  const ImportTarget* t = target(e);
  if (!t) return false;
  if (!fleet_waiting.count(id)) {
    auto files = journal.files(id);
    if (nothing_to_import(files)) return false;  // finish_nothing, as without a fleet
    std::string why;
    // An export split into part folders (over 10,000 files) fills jobs on its own: it is
    // imported by its gateway as without a fleet.
    if (import_parts(files, e, t->bucket, t->prefix, opt.max_files_per_job, why) !=
        std::vector<std::string>{import_input_uri(t->bucket, t->prefix, e.name)})
      return false;
  }
  fleet_start();
  fleet_waiting.insert(id);
  if (!fleet_busy) fleet_arm(std::chrono::milliseconds(0));
  return true;
}

void Importer::Impl::fleet_done(std::shared_ptr<int> pending) {
  if (--*pending > 0) return;
  fleet_busy = false;
  changed();
  if (!fleet_waiting.empty() || !fleet_following.empty()) fleet_arm(opt.fleet.poll_interval);
}

void Importer::Impl::fleet_pointer_read(std::int64_t id, const fleet::CasRead& r) {
  if (r.absent) return journal.forget_fleet_append(id);
  simdjson::dom::parser p;
  std::string_view b;
  simdjson::dom::element el;
  if (!p.parse(r.body).get(el) && !el["batch"].get(b)) journal.record_fleet_batch(id, b);
}

void Importer::Impl::fleet_tick() {
  if (stopped || fleet_busy) return;
  fleet_busy = true;
  auto pending = std::make_shared<int>(1);
  const std::string& gw = opt.fleet.gateway_id;
  // 1. Exports never listed: first the member pointer (a crash between the append and its
  //    journal row, then a batch that ran and left ready.json meanwhile, must not list it
  //    again), then one append of all of them.
  std::vector<std::int64_t> unknown;  // no fleet row: check the pointer first
  std::vector<fleet::ManifestEntry> add;
  std::vector<std::int64_t> add_ids;
  for (auto it = fleet_waiting.begin(); it != fleet_waiting.end();) {
    auto e = journal.find_export(*it);
    if (!e || e->state != ExportState::uploaded) {
      it = fleet_waiting.erase(it);
      continue;
    }
    auto row = journal.fleet_export(*it);
    if (!row) {
      unknown.push_back(*it);
    } else if (row->appended_at == 0) {
      const ImportTarget& t = *target(*e);
      fleet::ManifestEntry en;
      en.gateway = gw;
      en.export_id = fleet_entry_id(*e);
      en.s3_uri = import_input_uri(t.bucket, t.prefix, e->name);
      en.datastore_id = t.datastore_id;
      for (const auto& f : journal.files(*it)) {
        if (f.import_key.empty()) continue;
        ++en.files;
        en.bytes += static_cast<std::uint64_t>(f.bytes_uncompressed);
      }
      en.ready_at_ms = wall_ms();
      en.validation_level = t.validation_level;
      en.role_arn = t.data_access_role_arn;
      en.output_s3_uri = t.output_s3_uri;
      en.output_kms_key_id = t.output_kms_key_id;
      en.input_kms_key_id = t.input_kms_key_id;
      add.push_back(std::move(en));
      add_ids.push_back(*it);
    }
    ++it;
  }
  std::weak_ptr<Impl> w = weak_from_this();
  for (auto id : unknown) {
    auto e = journal.get_export(id);
    std::string entry = fleet_entry_id(e);
    ++*pending;
    fleet::cas_read(s3, opt.fleet.bucket,
                    fleet::member_pointer_key(opt.fleet.prefix, opt.fleet.name, gw, entry),
                    [w, id, entry, pending](fleet::CasRead r) {
                      auto self = w.lock();
                      if (!self || self->stopped) return;
                      try {
                        if (!r.error) {
                          // Listed now either way: absent → appended next (appended_at 0).
                          self->journal.record_fleet_appended(id, self->opt.fleet.name, entry);
                          self->fleet_pointer_read(id, r);
                        }
                      } catch (const std::exception& ex) {
                        log::error(std::string("import (fleet): ") + ex.what());
                      }
                      self->fleet_done(pending);
                    });
  }
  if (add.empty()) {
    fleet_read(pending);
    return fleet_done(pending);
  }
  ++*pending;
  fleet_ready->update(
      [add](fleet::ManifestDoc& d) {
        bool any = false;
        for (const auto& en : add) {
          bool present = false;
          for (const auto& x : d.entries) present = present || x.same_export(en);
          if (!present) {
            d.entries.push_back(en);
            any = true;
          }
        }
        return any;
      },
      keep_alive(
          fleet_ready, std::function<void(fleet::ManifestResult)>([w, add_ids, add, pending](
                                                                      fleet::ManifestResult r) {
            auto self = w.lock();
            if (!self || self->stopped) return;
            try {
              if (!r.error && !r.contended) {
                for (std::size_t i = 0; i < add_ids.size(); ++i) {
                  self->journal.record_fleet_appended(add_ids[i], self->opt.fleet.name,
                                                      add[i].export_id);
                  ++self->stats.fleet_appended;
                  log::info("export listed for the fleet's import",
                            {{"EXPORT_ID", add[i].export_id}, {"FLEET", self->opt.fleet.name}});
                }
              } else {
                log::warning("fleet: appending to ready.json: " +
                             (r.error ? r.error->message : std::string("contended")) +
                             " (again at the next poll)");
              }
              self->fleet_read(pending);
            } catch (const std::exception& ex) {
              log::error(std::string("import (fleet): ") + ex.what());
            }
            self->fleet_done(pending);
          })));
  fleet_done(pending);
}

void Importer::Impl::fleet_read(std::shared_ptr<int> pending) {
  ++*pending;
  std::weak_ptr<Impl> w = weak_from_this();
  fleet_ready->read(
      keep_alive(fleet_ready,
                 std::function<void(fleet::ManifestResult)>([w, pending](fleet::ManifestResult r) {
                   auto self = w.lock();
                   if (!self || self->stopped) return;
                   try {
                     if (r.error) {
                       log::warning("fleet: reading ready.json: " + r.error->message);
                     } else {
                       self->fleet_batches(r.doc, pending);
                     }
                   } catch (const std::exception& ex) {
                     log::error(std::string("import (fleet): ") + ex.what());
                   }
                   self->fleet_done(pending);
                 })));
}

void Importer::Impl::fleet_batches(const fleet::ManifestDoc& doc, std::shared_ptr<int> pending) {
  const std::string& gw = opt.fleet.gateway_id;
  std::set<std::string> batches;
  std::weak_ptr<Impl> w = weak_from_this();
  for (auto id : std::vector<std::int64_t>(fleet_waiting.begin(), fleet_waiting.end())) {
    auto row = journal.fleet_export(id);
    if (!row || row->appended_at == 0) continue;
    if (!row->batch_id.empty()) {
      batches.insert(row->batch_id);
      continue;
    }
    const fleet::ManifestEntry* entry = nullptr;
    for (const auto& x : doc.entries)
      if (x.gateway == gw && x.export_id == row->entry_id) entry = &x;
    if (entry) {
      if (!entry->batch.empty()) {
        journal.record_fleet_batch(id, entry->batch);
        batches.insert(entry->batch);
      }
      continue;
    }
    // Gone from ready.json: a holder ran its batch (its pointer says which), or it never got
    // there (no pointer: append it again).
    ++*pending;
    std::string entry_id = row->entry_id;
    fleet::cas_read(s3, opt.fleet.bucket,
                    fleet::member_pointer_key(opt.fleet.prefix, opt.fleet.name, gw, entry_id),
                    [w, id, pending](fleet::CasRead r) {
                      auto self = w.lock();
                      if (!self || self->stopped) return;
                      try {
                        if (!r.error) self->fleet_pointer_read(id, r);
                      } catch (const std::exception& ex) {
                        log::error(std::string("import (fleet): ") + ex.what());
                      }
                      self->fleet_done(pending);
                    });
  }
  for (auto id : fleet_following)
    if (auto row = journal.fleet_export(id); row && !row->batch_id.empty())
      batches.insert(row->batch_id);
  for (const auto& b : batches) {
    ++*pending;
    fleet::cas_read(s3, opt.fleet.bucket,
                    fleet::batch_record_key(opt.fleet.prefix, opt.fleet.name, b),
                    [w, b, pending](fleet::CasRead r) {
                      auto self = w.lock();
                      if (!self || self->stopped) return;
                      try {
                        if (!r.error && !r.absent) self->fleet_apply(b, r.body);
                      } catch (const std::exception& ex) {
                        log::error(std::string("import (fleet): ") + ex.what());
                      }
                      self->fleet_done(pending);
                    });
  }
}

void Importer::Impl::fleet_apply(const std::string& batch_id, const std::string& body) {
  auto rec = fleet::BatchRecord::parse(body);
  if (!rec || rec->batch_id != batch_id) return;
  std::set<std::int64_t> mine(fleet_waiting);
  mine.insert(fleet_following.begin(), fleet_following.end());
  for (auto id : mine) {
    auto row = journal.fleet_export(id);
    if (!row || row->batch_id != batch_id) continue;
    if (!rec->member(opt.fleet.gateway_id, row->entry_id)) continue;  // not in this batch
    auto e = journal.get_export(id);
    if (e.state == ExportState::uploaded) {
      if (!rec->job_id.empty()) {
        journal.record_fleet_job(id, rec->client_token, rec->job_name, rec->input_uri,
                                 rec->validation_level, rec->job_id,
                                 rec->job_status.empty() ? "SUBMITTED" : rec->job_status);
        fleet_waiting.erase(id);
        fleet_following.insert(id);
        log::notice("fleet import job " + rec->job_id + " carries this export",
                    {{"EXPORT_ID", e.name}, {"PIPELINE", e.pipeline}, {"BATCH", batch_id}});
        changed();
        e = journal.get_export(id);
      } else if (rec->outcome) {
        fleet_waiting.erase(id);
        park(id, "fleet batch " + rec->job_name + ": " + rec->outcome->message);
        continue;
      } else {
        continue;
      }
    }
    if (e.state != ExportState::importing || !rec->outcome || busy.count({id, 1})) continue;
    fleet_following.erase(id);
    aws::ImportJobProperties job;
    job.job_id = rec->job_id;
    job.job_name = rec->job_name;
    job.job_status = rec->outcome->job_status;
    job.datastore_id = rec->datastore_id;
    job.output_s3_uri =
        rec->outcome->output_s3_uri.empty() ? rec->output_s3_uri : rec->outcome->output_s3_uri;
    job.validation_level = rec->outcome->validation_level;
    job.message = rec->outcome->message;
    auto j = journal.import_job(id);
    if (j && j->status != job.job_status) journal.record_import_status(id, job.job_status, "", 1);
    if (check_reported(e, 1, job.job_id, job.validation_level, job.message)) continue;
    ++stats.fleet_reconciled;
    reconcile(id, 1, job);
  }
}

}  // namespace fe::import
