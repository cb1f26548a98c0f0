// Import lifecycle: slots, entry points and start (contract in importer.hpp, argument in
// docs/import.md). Recovery, follow, reconcile and finish are in importer_follow.cpp; the job's
// outputs are read by the Reconciler (reconciler.hpp), the report is written by report.cpp, CLI
// requests come through the RequestMailbox (mailbox.hpp), and the pure rules (parts, level check,
// options) are in importer_rules.cpp.
#include "import/importer.hpp"

#include <boost/asio/post.hpp>

#include "import/importer_impl.hpp"
#include "import/report.hpp"
#include "journal/digest.hpp"

namespace fe::import {

using journal::ExportState;

void Importer::Impl::drop_timers(std::int64_t id) {
  for (auto it = timers.lower_bound({id, 0}); it != timers.end() && it->first.first == id;)
    it = timers.erase(it);
  for (auto it = conflicts_in_a_row.lower_bound({id, 0});
       it != conflicts_in_a_row.end() && it->first.first == id;)
    it = conflicts_in_a_row.erase(it);
}

void Importer::Impl::release(const journal::ExportRow& e) {
  drop_timers(e.id);
  if (const auto* t = target(e)) {
    auto& s = store(*t);
    s.active.erase(e.id);
    slot_of.erase(e.id);  // the batch's slot is free once its last member is released
    pump(s);
  }
}

void Importer::Impl::pump(Store& s) {
  while (!stopped && used(s) < s.limit && !s.waiting.empty()) {
    if (!batching()) {
      std::int64_t id = s.waiting.front();
      s.waiting.pop_front();
      waiting_since.erase(id);
      s.active.insert(id);
      begin_start(id);
      continue;
    }
    auto ids = form_batch(s);
    if (ids.empty()) break;  // the first export may wait longer: the wake timer pumps again
    for (auto id : ids) s.active.insert(id);
    if (ids.size() == 1)
      begin_start(ids.front());
    else
      begin_batch(ids);
  }
}

std::vector<std::int64_t> Importer::Impl::form_batch(Store& s) {
  BatchFormer former(opt.batch);
  former.set_caps([&] {
    auto c = opt.batch;
    c.max_files = std::min(c.max_files, opt.max_files_per_job);
    return c;
  }());
  auto now = BatchFormer::Clock::now();
  for (auto id : s.waiting) {
    BatchCandidate c;
    c.id = id;
    c.lane = s.id;
    c.ready_at = waiting_since.count(id) ? waiting_since[id] : now;
    auto e = journal.find_export(id);
    const ImportTarget* t = e ? target(*e) : nullptr;
    if (!e || !t || e->state != ExportState::uploaded) {
      c.batchable = false;  // begin_start sorts it out on its own
      former.add(c);
      continue;
    }
    c.group = batch_group_key(t->datastore_id, t->validation_level, t->data_access_role_arn,
                              t->output_s3_uri, t->output_kms_key_id);
    auto files = journal.files(id);
    std::string why;
    // Only an export imported by one job on its own import/ prefix can be copied into a batch;
    // one with nothing to import, or split into part folders, goes alone (begin_start).
    c.batchable = !nothing_to_import(files) &&
                  import_parts(files, *e, t->bucket, t->prefix, opt.max_files_per_job, why) ==
                      std::vector<std::string>{import_input_uri(t->bucket, t->prefix, e->name)};
    for (const auto& f : files) {
      if (f.import_key.empty()) continue;
      ++c.files;
      c.bytes += f.bytes_uncompressed;
    }
    if (c.files == 0) c.batchable = false;  // journals without import keys: nothing to copy
    former.add(c);
  }
  auto ids = former.take(s.id, now);
  if (!ids) {
    if (auto due = former.due_at(s.id)) {
      if (!s.wake) s.wake = std::make_unique<boost::asio::steady_timer>(io);
      s.wake->expires_at(*due);
      std::weak_ptr<Impl> w = weak_from_this();
      std::string ds = s.id;
      s.wake->async_wait([w, ds](const boost::system::error_code& ec) {
        auto self = w.lock();
        if (ec || !self || self->stopped) return;
        auto it = self->stores.find(ds);
        if (it != self->stores.end()) self->pump(it->second);
      });
    }
    return {};
  }
  for (auto id : *ids) {
    s.waiting.erase(std::find(s.waiting.begin(), s.waiting.end(), id));
    waiting_since.erase(id);
  }
  return *ids;
}

void Importer::Impl::begin_batch(const std::vector<std::int64_t>& ids) {
  try {
    auto first = journal.get_export(ids.front());
    const ImportTarget& t = *target(first);
    std::vector<std::string> tokens;
    std::string names;
    for (auto id : ids) {
      auto e = journal.get_export(id);
      tokens.push_back(journal::import_client_token(e.pipeline, e.source_path, e.digest, e.version,
                                                    e.import_attempt, 1));
      names += (names.empty() ? "" : ",") + e.name;
    }
    journal::BatchPlan p;
    p.client_token = batch_client_token(tokens);
    p.job_name = batch_job_name(p.client_token, ids.size());
    p.input_uri = batch_input_uri(t.bucket, t.prefix, p.client_token);
    p.group_key = batch_group_key(t.datastore_id, t.validation_level, t.data_access_role_arn,
                                  t.output_s3_uri, t.output_kms_key_id);
    p.validation_level = t.validation_level;
    p.members = ids;
    std::int64_t bid = journal.record_batch(p);
    for (auto id : ids) slot_of[id] = -bid;
    ++stats.batches;
    log::notice("import batch journaled", {{"JOB_NAME", p.job_name},
                                           {"CLIENT_TOKEN", p.client_token},
                                           {"EXPORTS", std::to_string(ids.size())},
                                           {"EXPORT_IDS", names}});
    changed();
    start_next(ids.front(), /*recovering=*/false);
  } catch (const std::exception& ex) {
    log::error(std::string("import batch start: ") + ex.what(),
               {{"EXPORT_ID", std::to_string(ids.front())}});
  }
}

void Importer::Impl::copy_batch(std::int64_t id, const journal::BatchRow& b,
                                std::function<void(Impl&)> then) {
  struct Copy {
    std::string src_bucket, src_key, dst_key;
  };
  auto leader = journal.get_export(id);
  const ImportTarget& lt = *target(leader);
  auto [dst_bucket, dst_prefix] = split_s3_uri(b.input_uri);
  auto copies = std::make_shared<std::vector<Copy>>();
  for (auto m : b.members) {
    auto e = journal.get_export(m);
    const ImportTarget* t = target(e);
    if (!t) continue;
    std::string own = split_s3_uri(import_input_uri(t->bucket, t->prefix, e.name)).second + "/";
    for (const auto& f : journal.files(m)) {
      if (f.import_key.empty() || !f.import_key.starts_with(own)) continue;
      copies->push_back({t->bucket, f.import_key,
                         dst_prefix + "/" + e.name + "/" + f.import_key.substr(own.size())});
    }
  }
  auto started = BatchFormer::Clock::now();
  // At most kParallelCopies CopyObject calls in flight (each is a server-side copy: the gateway
  // sends no data, only waits). The pump keeps itself alive only through the callbacks in flight
  // (it refers to itself weakly), so an importer stopped mid-way leaves nothing behind.
  constexpr std::size_t kParallelCopies = 8;
  struct State {
    std::size_t next = 0, done = 0;
    bool failed = false, retry = false;
    std::string what;
  };
  auto st = std::make_shared<State>();
  using Pump = std::function<void(Impl&)>;
  auto pump = std::make_shared<Pump>();
  std::weak_ptr<Pump> wpump = pump;
  std::string bucket = dst_bucket, kms = lt.input_kms_key_id, job_name = b.job_name;
  std::int64_t bid = b.id;
  auto finished = [copies, then, started, job_name, bid](Impl& self) {
    self.copied.insert(bid);
    auto ms =
        std::chrono::duration_cast<std::chrono::milliseconds>(BatchFormer::Clock::now() - started);
    log::info("import batch copies in place", {{"JOB_NAME", job_name},
                                               {"OBJECTS", std::to_string(copies->size())},
                                               {"MILLISECONDS", std::to_string(ms.count())}});
    then(self);
  };
  *pump = [wpump, st, id, copies, bucket, kms, finished](Impl& self) {
    auto me_pump = wpump.lock();
    if (!me_pump || self.stopped) return;
    if (copies->empty()) return finished(self);
    while (!st->failed && st->next < copies->size() && st->next - st->done < kParallelCopies) {
      const auto& c = (*copies)[st->next++];
      ++self.stats.batch_copies;
      self.busy.insert({id, 1});
      aws::Sse sse;
      sse.kms_key_id = kms;
      self.s3.copy_object(bucket, c.dst_key, c.src_bucket, c.src_key, sse,
                          self.guard<aws::S3Result<aws::PutObjectResult>>(
                              {id, 1}, [me_pump, st, id, copies, finished, src = c.src_key](
                                           Impl& me, aws::S3Result<aws::PutObjectResult> r) {
                                ++st->done;
                                if (!r.ok() && !st->failed) {
                                  st->failed = true;
                                  st->retry = transient(*r.error);
                                  st->what =
                                      "copy of " + src + " to the batch prefix: " + r.describe();
                                }
                                if (st->done < st->next) {  // others still in flight
                                  me.busy.insert({id, 1});
                                  return;
                                }
                                if (st->failed) {
                                  if (st->retry) {
                                    ++me.stats.retries;
                                    me.journal.set_export_error(id, st->what + " (retrying later)");
                                    me.after({id, 1}, me.opt.retry_delay,
                                             [id](Impl& again) { again.start_next(id, true); });
                                  } else {
                                    me.park(id, st->what);
                                  }
                                  return;
                                }
                                if (st->done == copies->size()) return finished(me);
                                (*me_pump)(me);
                              }));
    }
  };
  (*pump)(*this);
}

void Importer::Impl::share_job(std::int64_t id, const std::string& job_id,
                               const std::string& status) {
  auto b = multi_batch(id);
  if (!b) return;
  for (auto m : b->members) {
    if (m == id) continue;
    auto e = journal.find_export(m);
    if (!e || e->state != ExportState::import_starting) continue;
    auto j = journal.import_job(m);
    if (j && j->job_id.empty()) journal.record_import_job(m, job_id, status);
  }
  for (auto m : b->members)
    if (m != id) start_next(m, false);
}

void Importer::Impl::park(std::int64_t id, const std::string& reason) {
  auto e = journal.find_export(id);
  if (!e) return;
  if (e->state == ExportState::import_starting)
    if (auto b = multi_batch(id))
      for (auto m : b->members) {
        if (m == id) continue;
        auto o = journal.find_export(m);
        if (o && o->state == ExportState::import_starting)
          park_one(m, "import batch " + b->job_name + ": " + reason);
      }
  park_one(id, reason);
}

void Importer::Impl::park_one(std::int64_t id, const std::string& reason) {
  auto e = journal.find_export(id);
  if (!e) return;
  log::error("import parked: " + reason,
             {{"MESSAGE_ID", std::string(log::message_id::export_parked)},
              {"EXPORT_ID", e->name},
              {"PIPELINE", e->pipeline}});
  journal.park_export(id, reason);
  ++stats.parked;
  release(*e);
  changed();
}

void Importer::Impl::kick(std::int64_t id) {
  if (stopped || busy_any(id)) return;
  auto e = journal.find_export(id);
  if (!e) return;
  const ImportTarget* t = target(*e);
  if (!t) {
    if (e->state == ExportState::uploaded || e->state == ExportState::import_starting ||
        e->state == ExportState::importing)
      park(id, "pipeline '" + e->pipeline + "' has no healthlake configuration");
    return;
  }
  auto& s = store(*t);
  switch (e->state) {
    case ExportState::uploaded:
      // With a fleet the holder starts the job (fleet_member.cpp); only what the fleet cannot
      // batch goes on below.
      if (fleet() && fleet_kick(id)) break;
      if (s.active.count(id) ||
          std::find(s.waiting.begin(), s.waiting.end(), id) != s.waiting.end())
        return;
      s.waiting.push_back(id);
      waiting_since.emplace(id, BatchFormer::Clock::now());
      pump(s);
      break;
    case ExportState::import_starting:
      s.active.insert(id);  // already holds a slot from before the restart
      if (auto b = multi_batch(id)) slot_of[id] = -b->id;  // the batch's one slot
      start_next(id, /*recovering=*/true);
      break;
    case ExportState::importing:
      if (fleet() && fleet_member(id)) {  // the fleet's job: its batch record says when it ends
        fleet_start();
        fleet_following.insert(id);
        if (!fleet_busy) fleet_arm(std::chrono::milliseconds(0));
        break;
      }
      s.active.insert(id);
      if (auto b = multi_batch(id)) slot_of[id] = -b->id;
      follow_all(id);
      break;
    default:
      break;
  }
  changed();
}

void Importer::Impl::resume() {
  if (!mailbox) {
    std::weak_ptr<Impl> w = weak_from_this();
    mailbox =
        std::make_shared<RequestMailbox>(RequestMailbox::Deps{io, journal, opt.events,
                                                              [w](std::int64_t id) {
                                                                if (auto self = w.lock())
                                                                  self->kick(id);
                                                              },
                                                              opt.on_change, opt.request_interval});
  }
  mailbox->check();
  for (auto st : {ExportState::importing, ExportState::import_starting, ExportState::uploaded})
    for (const auto& e : journal.exports_in(st)) kick(e.id);
  mailbox->arm();
}

void Importer::Impl::begin_start(std::int64_t id) {
  try {
    auto e = journal.get_export(id);
    const ImportTarget& t = *target(e);
    auto files = journal.files(id);
    if (nothing_to_import(files)) {
      finish_nothing(e, files);
      return;
    }
    std::string why;
    auto parts = import_parts(files, e, t.bucket, t.prefix, opt.max_files_per_job, why);
    if (parts.empty()) {
      park(id, why);
      return;
    }
    for (std::size_t i = 0; i < parts.size(); ++i) {
      int part = static_cast<int>(i) + 1;
      std::string token = journal::import_client_token(e.pipeline, e.source_path, e.digest,
                                                       e.version, e.import_attempt, part);
      journal.record_import_token(
          id, token,
          import_job_name(e.name, e.import_attempt, part, static_cast<int>(parts.size())), part,
          parts[i], t.validation_level);
    }
    journal.set_export_state(
        id, ExportState::import_starting,
        parts.size() == 1 ? "StartFHIRImportJob"
                          : "StartFHIRImportJob for " + std::to_string(parts.size()) + " parts");
    start_next(id, /*recovering=*/false);
  } catch (const std::exception& ex) {
    log::error(std::string("import start: ") + ex.what(), {{"EXPORT_ID", std::to_string(id)}});
  }
}

void Importer::Impl::finish_nothing(const journal::ExportRow& e,
                                    const std::vector<journal::FileRow>& files) {
  std::int64_t rejected = 0;
  for (const auto& f : files) rejected += f.resources_rejected;
  rejected = std::max(rejected, e.resources_rejected);
  std::string msg = "no valid resource in " + std::to_string(files.size()) + " file(s) (" +
                    std::to_string(rejected) +
                    " rejected): no import job started; see the rejects and report.json";
  write_import_report(opt.spool_dir, e.name,
                      nothing_to_import_report(e.name, files.size(), rejected, msg));
  journal.set_export_state(e.id, ExportState::nothing_to_import, msg);
  ++stats.nothing_to_import;
  log::warning("export has nothing to import: " + msg,
               {{"EXPORT_ID", e.name}, {"PIPELINE", e.pipeline}});
  release(e);
  changed();
}

void Importer::Impl::start_next(std::int64_t id, bool recovering) {
  auto e = journal.get_export(id);
  if (e.state != ExportState::import_starting) return;
  auto jobs = journal.import_jobs(id);
  if (jobs.empty()) {  // the token is always journaled before the state: never happens
    park(id, "import_starting without a journaled client token");
    return;
  }
  if (auto b = multi_batch(id)) {
    // One Start for the batch, sent by its leader: the first member still import_starting.
    // The others wait for the job id it shares (share_job).
    slot_of[id] = -b->id;
    std::int64_t leader = 0;
    for (auto m : b->members) {
      auto e2 = journal.find_export(m);
      if (e2 && e2->state == ExportState::import_starting) {
        leader = m;
        break;
      }
    }
    if (leader != id && !jobs.empty() && jobs.front().job_id.empty()) return;
  }
  for (const auto& j : jobs) {
    if (!j.job_id.empty()) continue;
    if (recovering)
      recover(id, j);
    else
      send_start(id, j.part);
    return;
  }
  journal.set_export_state(id, ExportState::importing,
                           jobs.size() == 1 ? "import job " + jobs[0].job_id
                                            : std::to_string(jobs.size()) + " import jobs started");
  changed();
  for (const auto& j : jobs)
    after({id, j.part}, poll_delay(), [id, p = j.part](Impl& self) { self.poll(id, p); });
}

bool Importer::Impl::check_reported(const journal::ExportRow& e, int part,
                                    const std::string& job_id, const std::string& reported,
                                    const std::string& message) {
  auto j = journal.import_job(e.id, part);
  if (!j) return false;
  if (j->reported_level != reported || j->message != message) {
    journal.record_import_reported(e.id, reported, message, part);
    changed();
  }
  std::string why =
      validation_level_mismatch(e.name, job_id, started_level(*target(e), *j), reported);
  if (why.empty()) return false;
  park(e.id, why);
  return true;
}

aws::StartImportRequest Importer::Impl::start_request(const journal::ExportRow& e,
                                                      const ImportTarget& t,
                                                      const journal::ImportJobRow& j) {
  aws::StartImportRequest r;
  r.job_name = j.job_name;
  r.input_s3_uri = input_of(e, t, j);
  r.output_s3_uri = t.output_s3_uri;
  r.output_kms_key_id = t.output_kms_key_id;
  r.datastore_id = t.datastore_id;
  r.data_access_role_arn = t.data_access_role_arn;
  r.client_token = j.client_token;
  // The level journaled with the token: a re-send after a config change must carry the same
  // parameters as the first Start (HealthLake refuses a token reused with others), and the
  // level check compares against what was really asked for.
  r.validation_level = started_level(t, j);
  return r;
}

void Importer::Impl::send_start(std::int64_t id, int part) {
  if (auto b = multi_batch(id); b && !copied.count(b->id)) {
    // The job reads every object under the batch prefix: the members' copies must all be there
    // before the Start leaves (after a crash they are made again: CopyObject is idempotent).
    copy_batch(id, *b, [id, part](Impl& self) {
      auto e = self.journal.find_export(id);
      if (e && e->state == ExportState::import_starting) self.send_start_now(id, part);
    });
    return;
  }
  send_start_now(id, part);
}

void Importer::Impl::send_start_now(std::int64_t id, int part) {
  auto e = journal.get_export(id);
  const ImportTarget& t = *target(e);
  auto j = journal.import_job(id, part);
  if (!j) throw journal::Error("import: no journaled token for export " + e.name);
  ++stats.starts_sent;
  busy.insert({id, part});
  log::info("starting import job", {{"EXPORT_ID", e.name},
                                    {"PIPELINE", e.pipeline},
                                    {"JOB_NAME", j->job_name},
                                    {"CLIENT_TOKEN", j->client_token}});
  hl.start_import_job(start_request(e, t, *j), guard<aws::HlResult<aws::StartImportResult>>(
                                                   {id, part}, [id, part](Impl& self, auto r) {
                                                     self.on_started(id, part, std::move(r));
                                                   }));
}

void Importer::Impl::on_started(std::int64_t id, int part,
                                aws::HlResult<aws::StartImportResult> r) {
  auto e = journal.get_export(id);
  if (e.state != ExportState::import_starting) return;  // parked or moved meanwhile
  if (r.ok()) {
    conflicts_in_a_row.erase({id, part});
    journal.record_import_job(id, r.value->job_id, r.value->job_status, part);
    log::notice("import job started", {{"EXPORT_ID", e.name},
                                       {"PIPELINE", e.pipeline},
                                       {"JOB_ID", r.value->job_id},
                                       {"STATUS", r.value->job_status}});
    changed();
    start_next(id, false);
    share_job(id, r.value->job_id, r.value->job_status);
    return;
  }
  const auto& err = *r.error;
  if (err.category == aws::ErrorCategory::conflict) {
    // HealthLake: the data store is in a transition state (or this token was used with other
    // parameters). The first waits out; the second never does, so after max_conflicts in a
    // row the export is parked with the message instead of being retried for ever.
    ++stats.conflicts;
    int n = ++conflicts_in_a_row[{id, part}];
    if (n >= opt.max_conflicts) {
      park(id, r.describe() + " (" + std::to_string(n) +
                   " times in a row with the same ClientToken; if the pipeline's healthlake "
                   "settings changed since this job was first requested, HealthLake refuses "
                   "the token with different parameters)");
      return;
    }
    journal.set_export_error(id, r.describe() + " (waiting, then the same token again)");
    after({id, part}, opt.conflict_delay, [id, part](Impl& self) { self.retry_start(id, part); });
  } else if (transient(err)) {
    ++stats.retries;
    journal.set_export_error(id, r.describe() + " (retrying later with the same token)");
    after({id, part}, opt.retry_delay, [id, part](Impl& self) { self.retry_start(id, part); });
  } else {
    park(id, r.describe());
  }
}

void Importer::Impl::retry_start(std::int64_t id, int part) {
  try {
    auto e = journal.get_export(id);
    if (e.state != ExportState::import_starting) return;
    send_start(id, part);
  } catch (const std::exception& ex) {
    log::error(std::string("import start: ") + ex.what(), {{"EXPORT_ID", std::to_string(id)}});
  }
}

Importer::Importer(boost::asio::io_context& io, journal::Journal& journal,
                   aws::HealthLakeClient& hl, aws::S3Client& s3, ImporterOptions options)
    : impl_(std::make_shared<Impl>(io, journal, hl, s3, std::move(options))) {
  if (auto* events = impl_->opt.events) {
    // The hub outlives the importer, which cannot unsubscribe: the handler holds a weak_ptr.
    std::weak_ptr<Impl> w = impl_;
    events->on(ExportEvent::uploaded, [w](std::int64_t id) {
      auto impl = w.lock();
      if (!impl) return;
      try {
        impl->kick(id);
      } catch (const std::exception& ex) {
        log::error(std::string("import: ") + ex.what(), {{"EXPORT_ID", std::to_string(id)}});
      }
    });
  }
}

Importer::~Importer() {
  stop();
}

void Importer::stop() {
  if (!impl_) return;
  impl_->stopped = true;
  for (auto& [id, t] : impl_->timers) t->cancel();
  impl_->timers.clear();
  if (impl_->mailbox) impl_->mailbox->stop();
  if (impl_->holder) impl_->holder->stop();
  if (impl_->fleet_timer) impl_->fleet_timer->cancel();
}

void Importer::stop(std::function<void()> done) {
  stop();
  if (impl_->holder)
    impl_->holder->release(std::move(done));
  else
    boost::asio::post(impl_->io, std::move(done));
}

const FleetHolder* Importer::fleet_holder() const {
  return impl_->holder.get();
}

void Importer::kick(std::int64_t export_id) {
  try {
    impl_->kick(export_id);
  } catch (const std::exception& ex) {
    log::error(std::string("import: ") + ex.what(), {{"EXPORT_ID", std::to_string(export_id)}});
  }
}

void Importer::resume() {
  impl_->resume();
}

const ImporterStats& Importer::stats() const {
  impl_->stats.following = 0;
  for (const auto& [store, s] : impl_->stores) impl_->stats.following += s.active.size();
  return impl_->stats;
}

std::string Importer::status_line() const {
  std::size_t starting = 0, importing = 0, queued = 0;
  for (const auto& [ds, s] : impl_->stores) {
    queued += s.waiting.size();
    for (auto id : s.active) {
      auto e = impl_->journal.find_export(id);
      if (e && e->state == ExportState::importing)
        ++importing;
      else
        ++starting;
    }
  }
  std::string line = std::to_string(starting) + " import starting, " + std::to_string(importing) +
                     " importing, " + std::to_string(queued) + " queued";
  if (impl_->fleet())
    line += ", " + std::to_string(impl_->fleet_waiting.size() + impl_->fleet_following.size()) +
            " in fleet " + impl_->opt.fleet.name +
            (impl_->holder && impl_->holder->holding() ? " (lease holder)" : "");
  return line;
}

void Importer::check_datastores(std::function<void(std::vector<std::string>)> done) {
  std::set<std::string> ids;
  for (const auto& t : impl_->opt.targets) ids.insert(t.datastore_id);
  struct Acc {
    std::size_t left = 0;
    std::vector<std::string> problems;
    std::function<void(std::vector<std::string>)> done;
  };
  auto acc = std::make_shared<Acc>();
  acc->left = ids.size();
  acc->done = std::move(done);
  if (ids.empty()) {
    acc->done({});
    return;
  }
  std::weak_ptr<Impl> w = impl_;
  for (const auto& id : ids) {
    impl_->hl.describe_datastore(id, [w, acc, id](aws::HlResult<aws::DatastoreProperties> r) {
      if (!w.lock()) return;
      std::string problem;
      if (!r.ok())
        problem = "data store " + id + ": " + r.describe();
      else if (r.value->datastore_status != "ACTIVE")
        problem = "data store " + id + " is " + r.value->datastore_status +
                  ", not ACTIVE: its import jobs cannot start until it is";
      if (!problem.empty()) {
        log::error(problem);
        acc->problems.push_back(problem);
      }
      if (--acc->left == 0) acc->done(acc->problems);
    });
  }
}

}  // namespace fe::import
