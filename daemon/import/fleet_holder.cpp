// The fleet's lease holder: claim, drive and finish batches of the fleet's ready exports
// (contract in fleet_holder.hpp, argument in docs/import.md "Fleet" and docs/scale.md).
#include "import/fleet_holder.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <map>
#include <random>
#include <set>

#include "aws/healthlake.hpp"
#include "aws/s3.hpp"
#include "fleet/batch_record.hpp"
#include "fleet/lease.hpp"
#include "fleet/manifest.hpp"
#include "fleet/s3_cas.hpp"
#include "import/s3_layout.hpp"
#include "service/log.hpp"

namespace fe::import {

namespace {
using std::chrono::milliseconds;

// `done` holding `owner` alive until it runs (see Impl::lease).
template <class O, class R>
std::function<void(R)> keep_alive(std::shared_ptr<O> owner, std::function<void(R)> done) {
  return [owner, done](R r) { done(std::move(r)); };
}

std::int64_t wall_ms() {
  return std::chrono::duration_cast<milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::string group_of(const fleet::ManifestEntry& e) {
  return batch_group_key(e.datastore_id, e.validation_level, e.role_arn, e.output_s3_uri,
                         e.output_kms_key_id);
}
}  // namespace

struct FleetHolder::Impl : std::enable_shared_from_this<FleetHolder::Impl> {
  Impl(boost::asio::io_context& io, aws::S3Client& s3, aws::HealthLakeClient& hl,
       FleetHolderOptions o)
      : io(io),
        s3(s3),
        hl(hl),
        opt(std::move(o)),
        lease(std::make_shared<fleet::Lease>(s3, lease_options())),
        manifest(std::make_shared<fleet::Manifest>(
            s3, io, opt.fleet.bucket, fleet::manifest_key(opt.fleet.prefix, opt.fleet.name))),
        lease_timer(io),
        work_timer(io),
        release_timer(io),
        rng(std::random_device{}()) {}

  fleet::LeaseOptions lease_options() const {
    fleet::LeaseOptions l;
    l.bucket = opt.fleet.bucket;
    l.key = fleet::lease_key(opt.fleet.prefix, opt.fleet.name);
    l.holder = opt.fleet.gateway_id;
    l.ttl = opt.fleet.lease_ttl;
    l.skew_margin = opt.fleet.lease_skew_margin;
    return l;
  }

  boost::asio::io_context& io;
  aws::S3Client& s3;
  aws::HealthLakeClient& hl;
  FleetHolderOptions opt;
  // Shared with every callback in flight: Lease and Manifest call back into themselves, and a
  // holder stopped (destroyed) mid-call must not leave them dangling.
  std::shared_ptr<fleet::Lease> lease;
  std::shared_ptr<fleet::Manifest> manifest;
  boost::asio::steady_timer lease_timer, work_timer, release_timer;
  std::mt19937_64 rng;
  FleetHolderStats stats;
  bool stopped = false;
  bool lease_busy = false;
  int in_flight = 0;  // requests sent through guard() whose answer has not come back
  std::function<void()> release_done;  // set while release() is under way
  bool release_sent = false;
  bool driving = false;  // a tick (claim or drive) is in flight
  bool was_holding = false;
  std::set<std::string> claimed_here;  // batches this holder claimed or resumed (stats)

  const std::string& bucket() const { return opt.fleet.bucket; }
  void say(log::Level level, std::string_view msg, const std::string& batch = "") const {
    log::write(level, msg,
               {{"FLEET", opt.fleet.name}, {"GATEWAY", opt.fleet.gateway_id}, {"BATCH", batch}});
  }

  // Wraps the callback of a request that is being sent: nothing once stopped or gone. Counts
  // the request in flight until its answer comes (release() waits for that).
  template <class R, class F>
  std::function<void(R)> guard(F f) {
    ++in_flight;
    std::weak_ptr<Impl> w = weak_from_this();
    return [w, f](R r) mutable {
      auto self = w.lock();
      if (!self) return;
      --self->in_flight;
      if (self->stopped) return self->quiet_check();
      try {
        f(*self, std::move(r));
      } catch (const std::exception& ex) {
        self->say(log::Level::error, std::string("fleet holder: ") + ex.what());
        self->driving = false;
      }
    };
  }

  template <class F>
  void arm(boost::asio::steady_timer& t, milliseconds d, F f) {
    t.expires_after(d);
    std::weak_ptr<Impl> w = weak_from_this();
    t.async_wait([w, f](const boost::system::error_code& ec) {
      auto self = w.lock();
      if (ec || !self || self->stopped) return;
      f(*self);
    });
  }

  template <class F>
  void later(milliseconds d, F f) {
    auto t = std::make_shared<boost::asio::steady_timer>(io, d);
    std::weak_ptr<Impl> w = weak_from_this();
    t->async_wait([w, t, f](const boost::system::error_code& ec) {
      auto self = w.lock();
      if (ec || !self || self->stopped) return;
      f(*self);
    });
  }

  // ---- the lease ----
  milliseconds lease_period() const {
    auto third = opt.fleet.lease_ttl / 3;
    return lease->held() ? third : std::min(third, opt.fleet.poll_interval);
  }

  void lease_step() {
    if (stopped || lease_busy) return;
    lease_busy = true;
    auto done = [w = weak_from_this(), keep = lease](fleet::LeaseState st) {
      auto self = w.lock();
      if (!self) return;
      self->lease_busy = false;
      if (self->stopped) return self->quiet_check();
      if (st.status == fleet::LeaseStatus::held && !self->was_holding) {
        ++self->stats.lease_acquired;
        self->say(log::Level::notice,
                  "fleet lease acquired: this gateway starts the fleet's import jobs");
        self->arm(self->work_timer, milliseconds(0), [](Impl& me) { me.tick(); });
      } else if (st.status == fleet::LeaseStatus::lost) {
        self->say(log::Level::warning, "fleet lease lost to " + st.record.holder);
      } else if (st.status == fleet::LeaseStatus::error && st.error) {
        self->say(log::Level::warning, "fleet lease: " + st.error->message);
      }
      self->was_holding = self->lease->held();
      self->arm(self->lease_timer, self->lease_period(), [](Impl& me) { me.lease_step(); });
    };
    if (lease->held())
      lease->renew(done);
    else
      lease->acquire(done);
  }

  // ---- the work loop ----
  void next_tick(milliseconds d) {
    driving = false;
    arm(work_timer, d, [](Impl& me) { me.tick(); });
  }

  void tick() {
    if (stopped) return;
    if (driving) return;
    if (!lease->held()) {
      next_tick(opt.fleet.poll_interval);
      return;
    }
    driving = true;
    manifest->read(keep_alive(
        manifest, guard<fleet::ManifestResult>([](Impl& me, fleet::ManifestResult r) {
          if (r.error) {
            me.say(log::Level::warning, "fleet: reading ready.json: " + r.error->message);
            return me.next_tick(me.opt.fleet.poll_interval);
          }
          me.plan(std::move(r.doc));
        })));
  }

  void plan(fleet::ManifestDoc doc) {
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
  void drop_listed_before(std::vector<std::pair<std::string, std::string>> chosen) {
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

  void claim(std::vector<std::pair<std::string, std::string>> chosen) {
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
        keep_alive(
            manifest, guard<fleet::ManifestResult>([id](Impl& me, fleet::ManifestResult r) {
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
                     "fleet batch claimed: " + std::to_string(members.size()) + " exports", id);
              me.drive(id, std::move(members));
            })));
  }

  // ---- driving one batch ----
  void drive(const std::string& id, std::vector<fleet::ManifestEntry> entries) {
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

  void create_record(const std::string& id, const std::vector<fleet::ManifestEntry>& entries) {
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
      rec.members.push_back(
          {e.gateway, e.export_id, e.s3_uri, e.files, e.bytes, e.input_kms_key_id});
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

  void on_record(fleet::BatchRecord rec, std::string etag, bool fresh) {
    if (rec.outcome) return finish(rec);
    if (!rec.job_id.empty()) return follow(std::move(rec), std::move(etag));
    if (fresh) return write_pointers(std::move(rec), std::move(etag), 0);
    // A record without a job id that someone wrote before: its Start may have reached
    // HealthLake (the holder died waiting for the answer). Look the job up by its JobName first
    // and adopt it; the Start below carries the same ClientToken anyway.
    adopt_or_start(std::move(rec), std::move(etag), "");
  }

  void adopt_or_start(fleet::BatchRecord rec, std::string etag, std::string next) {
    aws::ListImportJobsRequest q;
    q.datastore_id = rec.datastore_id;
    q.job_name = rec.job_name;
    q.submitted_after = static_cast<double>(rec.created_at_ms) / 1000.0 - 600.0;
    q.max_results = 500;
    q.next_token = std::move(next);
    hl.list_import_jobs(
        q, guard<aws::HlResult<aws::ListImportJobsResult>>(
               [rec, etag](Impl& me, aws::HlResult<aws::ListImportJobsResult> r) mutable {
                 if (!r.ok()) return me.stall(rec.batch_id, "ListFHIRImportJobs: " + r.describe());
                 const aws::ImportJobProperties* found = nullptr;
                 for (const auto& j : r.value->jobs)
                   if (j.input_s3_uri == rec.input_uri &&
                       (!found || j.submit_time < found->submit_time))
                     found = &j;
                 if (found) {
                   rec.job_id = found->job_id;
                   rec.job_status = found->job_status;
                   me.say(log::Level::notice, "fleet import job adopted: " + rec.job_id,
                          rec.batch_id);
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
  void write_pointers(fleet::BatchRecord rec, std::string etag, std::size_t i) {
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

  // The members' import objects under the batch prefix, at most max_parallel_copies at a time.
  struct Copies {
    struct One {
      std::string src_bucket, src_key, dst_key, kms;
    };
    std::vector<One> all;
    std::size_t next = 0, done = 0, listed = 0;
    bool failed = false;
    std::string why;
  };

  void copy_all(fleet::BatchRecord rec, std::string etag) {
    auto c = std::make_shared<Copies>();
    const std::string dst =
        fleet::batch_copy_prefix(opt.fleet.prefix, opt.fleet.name, rec.batch_id);
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

  void pump_copies(const fleet::BatchRecord& rec, const std::string& etag,
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

  void start_job(fleet::BatchRecord rec, std::string etag) {
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

  // Rewrites the record with If-Match on the ETag we read or wrote last. A refused write means
  // another holder (after a lapse of ours) wrote it: stop; the next tick reads it afresh.
  template <class Then>
  void write_record(fleet::BatchRecord rec, const std::string& etag, Then then) {
    if (!lease->held()) return next_tick(opt.fleet.poll_interval);
    rec.holder = opt.fleet.gateway_id;
    rec.epoch = lease->epoch();
    rec.updated_at_ms = wall_ms();
    fleet::cas_write(
        s3, bucket(), fleet::batch_record_key(opt.fleet.prefix, opt.fleet.name, rec.batch_id),
        rec.to_json(), fleet::Condition::if_match, etag,
        guard<fleet::CasWrite>([rec, then](Impl& me, fleet::CasWrite w) {
          if (w.written) return then(me, rec, w.etag);
          me.stall(rec.batch_id, w.conflict ? "the batch record changed under us"
                                            : "writing the batch record: " +
                                                  (w.error ? w.error->message : std::string("?")));
        }));
  }

  milliseconds poll_delay() {
    auto lo = opt.poll_min.count(), hi = std::max(opt.poll_max.count(), lo);
    return milliseconds(std::uniform_int_distribution<long long>(lo, hi)(rng));
  }

  void follow(fleet::BatchRecord rec, std::string etag) {
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
  void finish(const fleet::BatchRecord& rec) {
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

  // ---- a clean stop: the lease given up (fleet_holder.hpp, release()) ----
  void halt() {
    stopped = true;
    lease_timer.cancel();
    work_timer.cancel();
  }

  void release(std::function<void()> done) {
    halt();
    if (release_done || release_sent) return done();  // one release per holder
    release_done = std::move(done);
    arm_release_timer([](Impl& me) { me.give_up_lease(/*waited_out=*/true); });
    quiet_check();
  }

  template <class F>
  void arm_release_timer(F f) {
    release_timer.expires_after(opt.release_wait);
    std::weak_ptr<Impl> w = weak_from_this();
    release_timer.async_wait([w, f](const boost::system::error_code& ec) {
      auto self = w.lock();
      if (ec || !self) return;
      f(*self);
    });
  }

  // Every request has answered and no lease write is in flight: release now (posted, so that
  // it never runs inside the callback that brought the count to zero).
  void quiet_check() {
    if (!release_done || release_sent || in_flight > 0 || lease_busy) return;
    boost::asio::post(io, [w = weak_from_this()] {
      if (auto self = w.lock()) self->give_up_lease(/*waited_out=*/false);
    });
  }

  void give_up_lease(bool waited_out) {
    if (!release_done || release_sent) return;
    release_sent = true;
    if (lease_busy) {
      // fleet::Lease takes one call at a time: an acquire or renew sent before the stop has not
      // answered. What it wrote, if anything, lapses after lease_ttl, as after a crash.
      say(log::Level::warning,
          "fleet lease not released: a lease write is still unanswered; it lapses after "
          "lease_ttl");
      return release_finish();
    }
    if (!lease->ours()) return release_finish();  // not the holder: nothing to give up
    if (waited_out)
      say(log::Level::notice,
          "fleet lease: " + std::to_string(in_flight) +
              " request(s) still unanswered at the stop; releasing anyway (the next holder's "
              "conditional writes and the batch's ClientToken settle them)");
    lease_busy = true;
    arm_release_timer([](Impl& me) {
      if (!me.release_done) return;
      me.say(log::Level::warning, "fleet lease release unanswered: it lapses after lease_ttl");
      me.release_finish();
    });
    lease->release([w = weak_from_this(), keep = lease](fleet::LeaseState st) {
      auto self = w.lock();
      if (!self) return;
      self->lease_busy = false;
      self->release_timer.cancel();
      if (st.status == fleet::LeaseStatus::released) {
        ++self->stats.lease_released;
        self->say(log::Level::notice, "fleet lease released: the next holder may take it at once");
      } else if (st.status == fleet::LeaseStatus::lost) {
        // Our If-Match was refused: another gateway took the lease over meanwhile (after a
        // lapse of ours). Its lease is left as it is.
        self->say(log::Level::notice, "fleet lease not released: " +
                                          (st.record.holder.empty() ? std::string("another gateway")
                                                                    : st.record.holder) +
                                          " took it over meanwhile; left as it is");
      } else {
        self->say(log::Level::warning,
                  "fleet lease not released (" +
                      (st.error ? st.error->message : std::string(fleet::to_string(st.status))) +
                      "): it lapses after lease_ttl");
      }
      self->release_finish();
    });
  }

  void release_finish() {
    if (!release_done) return;
    auto done = std::move(release_done);
    release_done = nullptr;
    done();
  }

  // Something that may pass: the next tick resumes the batch from its record.
  void stall(const std::string& id, const std::string& why) {
    say(log::Level::warning, "fleet batch: " + why + " (resumed later)", id);
    next_tick(std::max(opt.fleet.poll_interval, opt.retry_delay));
  }
};

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
