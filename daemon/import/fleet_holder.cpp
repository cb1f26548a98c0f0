// The fleet's lease holder: claim, drive and finish batches of the fleet's ready exports
// (contract in fleet_holder.hpp, argument in docs/import.md "Fleet" and docs/scale.md). The lease
// step and the clean stop are in fleet_holder_lease.cpp; the holder's state (FleetHolder::Impl)
// in fleet_holder_impl.hpp.
#include "import/fleet_holder.hpp"

#include <algorithm>
#include <map>
#include <set>

#include "import/fleet_holder_impl.hpp"
#include "import/s3_layout.hpp"

namespace fe::import {

namespace {
std::string group_of(const fleet::ManifestEntry& e) {
  return batch_group_key(e.datastore_id, e.validation_level, e.role_arn, e.output_s3_uri,
                         e.output_kms_key_id);
}
}  // namespace

// ---- the work loop ----
void FleetHolder::Impl::tick() {
  if (stopped) return;
  if (driving) return;
  if (!lease->held()) {
    next_tick(opt.fleet.poll_interval);
    return;
  }
  driving = true;
  manifest->read(
      keep_alive(manifest, guard<fleet::ManifestResult>([](Impl& me, fleet::ManifestResult r) {
                   if (r.error) {
                     me.say(log::Level::warning, "fleet: reading ready.json: " + r.error->message);
                     return me.next_tick(me.opt.fleet.poll_interval);
                   }
                   me.plan(std::move(r.doc));
                 })));
}

void FleetHolder::Impl::plan(fleet::ManifestDoc doc) {
  // A claimed batch first: a holder that died left it, or ours is still running.
  for (const auto& e : doc.entries) {
    if (e.batch.empty()) continue;
    std::vector<fleet::ManifestEntry> members;
    for (const auto& m : doc.entries)
      if (m.batch == e.batch) members.push_back(m);
    if (!claimed_here.count(e.batch)) {
      // Another holder's (or this gateway's before a restart): resumed, same ClientToken.
      ++stats.batches_resumed;
      claimed_here.insert(e.batch);
      say(log::Level::notice, "fleet batch resumed", e.batch);
    }
    return drive(e.batch, std::move(members));
  }
  // The oldest waiting entry opens a batch of its group.
  const fleet::ManifestEntry* first = nullptr;
  for (const auto& e : doc.entries)
    if (e.batch.empty() && (!first || e.ready_at_ms < first->ready_at_ms)) first = &e;
  if (!first) return next_tick(opt.fleet.poll_interval);
  const std::string g = group_of(*first);
  std::vector<std::pair<std::string, std::string>> chosen;
  std::int64_t files = 0, bytes = 0;
  bool full = false;
  const std::int64_t max_files = std::min<std::int64_t>(opt.caps.max_files, 10000);
  for (const auto& e : doc.entries) {
    if (!e.batch.empty() || group_of(e) != g) continue;
    auto f = static_cast<std::int64_t>(e.files), b = static_cast<std::int64_t>(e.bytes);
    bool fits =
        files + f <= max_files && (opt.caps.max_bytes == 0 || bytes + b <= opt.caps.max_bytes);
    if (!chosen.empty() && !fits) {
      full = true;
      continue;
    }
    chosen.push_back({e.gateway, e.export_id});
    files += f;
    bytes += b;
    if (chosen.size() >= std::max<std::size_t>(opt.caps.max_exports, 1)) {
      full = true;
      break;
    }
  }
  std::int64_t waited = wall_ms() - first->ready_at_ms;
  if (!full && waited < opt.caps.max_wait.count())
    return next_tick(
        std::min(opt.fleet.poll_interval, milliseconds(opt.caps.max_wait.count() - waited)));
  drop_listed_before(std::move(chosen));
}

// An entry whose member pointer (members/<gw>/<export>.json) already exists was in an earlier
// batch: its gateway listed the export again after that batch had left ready.json (a crash
// between its append and its journal row, with a whole batch run before its next poll).
// A batch writes its pointers before its entries leave ready.json, so a second listing always
// finds the pointer: it is dropped here, never claimed, and the export is imported once. (A
// `retry --reimport` lists the export under a new entry id, "<export>.retryN", so it is not
// mistaken for a second listing.)
void FleetHolder::Impl::drop_listed_before(
    std::vector<std::pair<std::string, std::string>> chosen) {
  struct Check {
    std::size_t left = 0;
    bool failed = false;
    std::vector<std::pair<std::string, std::string>> fresh, listed;
  };
  auto c = std::make_shared<Check>();
  c->left = chosen.size();
  for (const auto& entry : chosen) {
    fleet::cas_read(
        s3, bucket(),
        fleet::member_pointer_key(opt.fleet.prefix, opt.fleet.name, entry.first, entry.second),
        guard<fleet::CasRead>([c, entry](Impl& me, fleet::CasRead r) {
          if (r.error)
            c->failed = true;
          else
            (r.absent ? c->fresh : c->listed).push_back(entry);
          if (--c->left > 0) return;
          if (c->failed) {
            me.say(log::Level::warning, "fleet: reading member pointers failed (again later)");
            return me.next_tick(me.opt.fleet.poll_interval);
          }
          if (c->listed.empty()) return me.claim(std::move(c->fresh));
          me.stats.relistings_dropped += c->listed.size();
          for (const auto& [gw, ex] : c->listed)
            me.say(log::Level::warning, "fleet: export " + ex + " of gateway " + gw +
                                            " was listed again after its batch had run; the "
                                            "second listing is dropped, not imported twice");
          me.manifest->remove(c->listed,
                              keep_alive(me.manifest, me.guard<fleet::ManifestResult>(
                                                          [](Impl& me2, fleet::ManifestResult) {
                                                            me2.next_tick(milliseconds(0));
                                                          })));
        }));
  }
}

void FleetHolder::Impl::claim(std::vector<std::pair<std::string, std::string>> chosen) {
  if (!lease->held()) return next_tick(opt.fleet.poll_interval);
  std::string id = fleet::new_batch_id();
  manifest->update(
      [chosen, id](fleet::ManifestDoc& d) {
        bool any = false;
        for (auto& e : d.entries)
          if (e.batch.empty() &&
              std::find(chosen.begin(), chosen.end(), std::make_pair(e.gateway, e.export_id)) !=
                  chosen.end()) {
            e.batch = id;
            any = true;
          }
        return any;
      },
      keep_alive(manifest, guard<fleet::ManifestResult>([id](Impl& me, fleet::ManifestResult r) {
                   if (!r.written) {
                     if (r.error)
                       me.say(log::Level::warning, "fleet: claiming a batch: " + r.error->message);
                     return me.next_tick(me.opt.fleet.poll_interval);
                   }
                   std::vector<fleet::ManifestEntry> members;
                   for (const auto& e : r.doc.entries)
                     if (e.batch == id) members.push_back(e);
                   ++me.stats.batches_claimed;
                   me.claimed_here.insert(id);
                   me.say(log::Level::notice,
                          "fleet batch claimed: " + std::to_string(members.size()) + " exports",
                          id);
                   me.drive(id, std::move(members));
                 })));
}

// ---- driving one batch ----
void FleetHolder::Impl::drive(const std::string& id, std::vector<fleet::ManifestEntry> entries) {
  const std::string key = fleet::batch_record_key(opt.fleet.prefix, opt.fleet.name, id);
  fleet::cas_read(s3, bucket(), key,
                  guard<fleet::CasRead>([id, entries, key](Impl& me, fleet::CasRead r) {
                    if (r.error)
                      return me.stall(id, "reading the batch record: " + r.error->message);
                    if (!r.absent) {
                      auto rec = fleet::BatchRecord::parse(r.body);
                      if (!rec) return me.stall(id, key + " is not a fleet batch record");
                      return me.on_record(std::move(*rec), r.etag, /*fresh=*/false);
                    }
                    me.create_record(id, entries);
                  }));
}

void FleetHolder::Impl::create_record(const std::string& id,
                                      const std::vector<fleet::ManifestEntry>& entries) {
  if (entries.empty()) return next_tick(opt.fleet.poll_interval);
  if (!lease->held()) return next_tick(opt.fleet.poll_interval);
  fleet::BatchRecord rec;
  rec.batch_id = id;
  rec.client_token = id;
  rec.fleet = opt.fleet.name;
  rec.holder = opt.fleet.gateway_id;
  rec.epoch = lease->epoch();
  rec.job_name = fleet::fleet_job_name(opt.fleet.name, id, entries.size());
  rec.input_uri =
      "s3://" + bucket() + "/" + fleet::batch_copy_prefix(opt.fleet.prefix, opt.fleet.name, id);
  const auto& f = entries.front();
  rec.datastore_id = f.datastore_id;
  rec.validation_level = f.validation_level;
  rec.role_arn = f.role_arn;
  rec.output_s3_uri = f.output_s3_uri;
  rec.output_kms_key_id = f.output_kms_key_id;
  for (const auto& e : entries)
    rec.members.push_back({e.gateway, e.export_id, e.s3_uri, e.files, e.bytes, e.input_kms_key_id});
  rec.created_at_ms = rec.updated_at_ms = wall_ms();
  const std::string key = fleet::batch_record_key(opt.fleet.prefix, opt.fleet.name, id);
  fleet::cas_write(s3, bucket(), key, rec.to_json(), fleet::Condition::create_only, "",
                   guard<fleet::CasWrite>([id, entries, rec](Impl& me, fleet::CasWrite w) {
                     if (w.written) return me.on_record(rec, w.etag, /*fresh=*/true);
                     if (w.conflict) return me.drive(id, entries);  // it exists: read it
                     me.stall(id, "writing the batch record: " +
                                      (w.error ? w.error->message : std::string("?")));
                   }));
}

void FleetHolder::Impl::on_record(fleet::BatchRecord rec, std::string etag, bool fresh) {
  if (rec.outcome) return finish(rec);
  if (!rec.job_id.empty()) return follow(std::move(rec), std::move(etag));
  if (fresh) return write_pointers(std::move(rec), std::move(etag), 0);
  // A record without a job id that someone wrote before: its Start may have reached
  // HealthLake (the holder died waiting for the answer). Look the job up by its JobName first
  // and adopt it; the Start below carries the same ClientToken anyway.
  adopt_or_start(std::move(rec), std::move(etag), "");
}

void FleetHolder::Impl::adopt_or_start(fleet::BatchRecord rec, std::string etag, std::string next) {
  aws::ListImportJobsRequest q;
  q.datastore_id = rec.datastore_id;
  q.job_name = rec.job_name;
  q.submitted_after = static_cast<double>(rec.created_at_ms) / 1000.0 - 600.0;
  q.max_results = 500;
  q.next_token = std::move(next);
  hl.list_import_jobs(
      q,
      guard<aws::HlResult<aws::ListImportJobsResult>>(
          [rec, etag](Impl& me, aws::HlResult<aws::ListImportJobsResult> r) mutable {
            if (!r.ok()) return me.stall(rec.batch_id, "ListFHIRImportJobs: " + r.describe());
            const aws::ImportJobProperties* found = nullptr;
            for (const auto& j : r.value->jobs)
              if (j.input_s3_uri == rec.input_uri && (!found || j.submit_time < found->submit_time))
                found = &j;
            if (found) {
              rec.job_id = found->job_id;
              rec.job_status = found->job_status;
              me.say(log::Level::notice, "fleet import job adopted: " + rec.job_id, rec.batch_id);
              return me.write_record(std::move(rec), etag,
                                     [](Impl& me2, auto rec2, std::string etag2) {
                                       me2.follow(std::move(rec2), std::move(etag2));
                                     });
            }
            if (!r.value->next_token.empty())
              return me.adopt_or_start(std::move(rec), etag, r.value->next_token);
            me.write_pointers(std::move(rec), std::move(etag), 0);
          }));
}

// members/<gw>/<export>.json: where a member finds its batch once the entry is gone.
void FleetHolder::Impl::write_pointers(fleet::BatchRecord rec, std::string etag, std::size_t i) {
  if (i >= rec.members.size()) return copy_all(std::move(rec), std::move(etag));
  const auto& m = rec.members[i];
  std::string body = "{\"batch\":\"" + rec.batch_id + "\"}";
  fleet::cas_write(
      s3, bucket(),
      fleet::member_pointer_key(opt.fleet.prefix, opt.fleet.name, m.gateway, m.export_id), body,
      fleet::Condition::create_only, "",
      guard<fleet::CasWrite>([rec, etag, i](Impl& me, fleet::CasWrite w) {
        if (!w.written && !w.conflict)
          return me.stall(rec.batch_id, "writing a member pointer: " +
                                            (w.error ? w.error->message : std::string("?")));
        me.write_pointers(rec, etag, i + 1);
      }));
}

void FleetHolder::Impl::copy_all(fleet::BatchRecord rec, std::string etag) {
  auto c = std::make_shared<Copies>();
  const std::string dst = fleet::batch_copy_prefix(opt.fleet.prefix, opt.fleet.name, rec.batch_id);
  auto list_one = std::make_shared<std::function<void(std::size_t)>>();
  std::weak_ptr<std::function<void(std::size_t)>> wl = list_one;
  *list_one = [this, c, rec, etag, dst, wl, keep = weak_from_this()](std::size_t i) {
    auto self = keep.lock();
    auto me_list = wl.lock();
    if (!self || stopped || !me_list) return;
    if (i >= rec.members.size()) {
      if (c->all.empty()) return stall(rec.batch_id, "no import objects under the members");
      return pump_copies(rec, etag, c);
    }
    const auto& m = rec.members[i];
    auto [src_bucket, src_prefix] = split_s3_uri(m.s3_uri);
    aws::ListObjectsRequest q;
    q.bucket = src_bucket;
    q.prefix = src_prefix + "/";
    std::string to = dst + m.gateway + "/" + m.export_id + "/";
    s3.list_all_objects(
        q, guard<aws::S3Result<aws::ListObjectsResult>>(
               [c, me_list, i, q, to, kms = m.input_kms_key_id, rec](
                   Impl& me, aws::S3Result<aws::ListObjectsResult> r) {
                 if (!r.ok())
                   return me.stall(rec.batch_id, "listing " + q.prefix + ": " + r.describe());
                 for (const auto& o : r.value->objects)
                   c->all.push_back({q.bucket, o.key, to + o.key.substr(q.prefix.size()), kms});
                 (*me_list)(i + 1);
               }));
  };
  (*list_one)(0);
}

void FleetHolder::Impl::pump_copies(const fleet::BatchRecord& rec, const std::string& etag,
                                    std::shared_ptr<Copies> c) {
  while (!c->failed && c->next < c->all.size() &&
         c->next - c->done < static_cast<std::size_t>(std::max(1, opt.max_parallel_copies))) {
    const auto& one = c->all[c->next++];
    ++stats.copies;
    aws::Sse sse;
    sse.kms_key_id = one.kms;
    s3.copy_object(
        bucket(), one.dst_key, one.src_bucket, one.src_key, sse,
        guard<aws::S3Result<aws::PutObjectResult>>(
            [rec, etag, c, src = one.src_key](Impl& me, aws::S3Result<aws::PutObjectResult> r) {
              ++c->done;
              if (!r.ok() && !c->failed) {
                c->failed = true;
                c->why = "copy of " + src + ": " + r.describe();
              }
              if (c->done < c->next) return;  // others in flight
              if (c->failed) return me.stall(rec.batch_id, c->why);
              if (c->done == c->all.size()) return me.start_job(rec, etag);
              me.pump_copies(rec, etag, c);
            }));
  }
}

void FleetHolder::Impl::start_job(fleet::BatchRecord rec, std::string etag) {
  // The lease must still be ours when the Start leaves: a holder cut off past ttl - margin
  // has stopped trusting it, and the next holder sends this same token anyway.
  if (!lease->held()) return next_tick(opt.fleet.poll_interval);
  aws::StartImportRequest q;
  q.job_name = rec.job_name;
  q.input_s3_uri = rec.input_uri;
  q.output_s3_uri = rec.output_s3_uri;
  q.output_kms_key_id = rec.output_kms_key_id;
  q.datastore_id = rec.datastore_id;
  q.data_access_role_arn = rec.role_arn;
  q.client_token = rec.client_token;
  q.validation_level = rec.validation_level;
  ++stats.starts_sent;
  say(log::Level::info, "starting fleet import job", rec.batch_id);
  hl.start_import_job(
      q, guard<aws::HlResult<aws::StartImportResult>>(
             [rec, etag](Impl& me, aws::HlResult<aws::StartImportResult> r) mutable {
               if (r.ok()) {
                 rec.job_id = r.value->job_id;
                 rec.job_status = r.value->job_status;
                 me.say(log::Level::notice,
                        "fleet import job started: " + rec.job_id + " for " +
                            std::to_string(rec.members.size()) + " exports",
                        rec.batch_id);
                 return me.write_record(std::move(rec), etag,
                                        [](Impl& me2, auto rec2, std::string etag2) {
                                          me2.follow(std::move(rec2), std::move(etag2));
                                        });
               }
               if (r.error->retryable() || r.error->category == aws::ErrorCategory::conflict)
                 return me.stall(rec.batch_id, "StartFHIRImportJob: " + r.describe());
               // Refused for good: the members end import_failed with the reason.
               fleet::BatchOutcome o;
               o.job_status = "FAILED";
               o.message = "StartFHIRImportJob refused: " + r.describe();
               rec.outcome = o;
               me.write_record(std::move(rec), etag,
                               [](Impl& me2, auto rec2, std::string) { me2.finish(rec2); });
             }));
}

void FleetHolder::Impl::follow(fleet::BatchRecord rec, std::string etag) {
  if (!lease->held()) return next_tick(opt.fleet.poll_interval);
  hl.describe_import_job(
      rec.datastore_id, rec.job_id,
      guard<aws::HlResult<aws::ImportJobProperties>>(
          [rec, etag](Impl& me, aws::HlResult<aws::ImportJobProperties> r) mutable {
            if (!r.ok()) {
              if (r.error->retryable())
                return me.stall(rec.batch_id, "DescribeFHIRImportJob: " + r.describe());
              fleet::BatchOutcome o;
              o.job_status = "FAILED";
              o.message = "import job " + rec.job_id + ": " + r.describe();
              rec.outcome = o;
              return me.write_record(std::move(rec), etag,
                                     [](Impl& me2, auto rec2, std::string) { me2.finish(rec2); });
            }
            if (!aws::is_terminal_job_status(r.value->job_status)) {
              return me.later(me.poll_delay(), [rec, etag](Impl& me2) { me2.follow(rec, etag); });
            }
            fleet::BatchOutcome o;
            o.job_status = r.value->job_status;
            o.output_s3_uri = r.value->output_s3_uri;
            o.validation_level = r.value->validation_level;
            o.message = r.value->message;
            rec.outcome = o;
            me.say(log::Level::notice, "fleet import job " + rec.job_id + " " + o.job_status,
                   rec.batch_id);
            me.write_record(std::move(rec), etag, [](Impl& me2, auto rec2, std::string) {
              ++me2.stats.outcomes_written;
              me2.finish(rec2);
            });
          }));
}

// The outcome is in the record: the batch's entries leave ready.json.
void FleetHolder::Impl::finish(const fleet::BatchRecord& rec) {
  std::string id = rec.batch_id;
  manifest->update(
      [id](fleet::ManifestDoc& d) {
        auto before = d.entries.size();
        std::erase_if(d.entries, [&](const fleet::ManifestEntry& e) { return e.batch == id; });
        return d.entries.size() != before;
      },
      keep_alive(manifest, guard<fleet::ManifestResult>([id](Impl& me, fleet::ManifestResult r) {
                   if (r.error || r.contended)
                     return me.stall(id,
                                     "removing the batch from ready.json: " +
                                         (r.error ? r.error->message : std::string("contended")));
                   ++me.stats.batches_done;
                   me.next_tick(milliseconds(0));  // the next batch at once
                 })));
}

FleetHolder::FleetHolder(boost::asio::io_context& io, aws::S3Client& s3, aws::HealthLakeClient& hl,
                         FleetHolderOptions options)
    : impl_(std::make_shared<Impl>(io, s3, hl, std::move(options))) {}

FleetHolder::~FleetHolder() {
  stop();
}

void FleetHolder::start() {
  impl_->stopped = false;
  impl_->lease_step();
  impl_->next_tick(impl_->opt.fleet.poll_interval);
}

void FleetHolder::stop() {
  if (!impl_) return;
  impl_->halt();
}

void FleetHolder::release(std::function<void()> done) {
  impl_->release(std::move(done));
}

bool FleetHolder::holding() const {
  return impl_->lease->held();
}

const FleetHolderStats& FleetHolder::stats() const {
  return impl_->stats;
}

}  // namespace fe::import
