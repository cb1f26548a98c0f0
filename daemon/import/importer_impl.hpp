#pragma once
// Internal to the import stage: the importer's state (Importer::Impl), shared by importer.cpp
// (slots, entry points, start) and importer_follow.cpp (recover, follow, reconcile, finish). The
// stage's contract is importer.hpp; this header is not included outside daemon/import/.
#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <deque>
#include <map>
#include <random>
#include <set>

#include "aws/healthlake.hpp"
#include "aws/s3.hpp"
#include "fleet/manifest.hpp"
#include "fleet/s3_cas.hpp"
#include "import/batch_former.hpp"
#include "import/fleet_holder.hpp"
#include "import/importer.hpp"
#include "import/mailbox.hpp"
#include "import/reconciler.hpp"
#include "journal/journal.hpp"
#include "service/log.hpp"

namespace fe::import {

// Errors that a later attempt may cure without anyone changing anything.
inline bool transient(const aws::AwsError& e) {
  return e.retryable();
}

struct Importer::Impl : std::enable_shared_from_this<Importer::Impl> {
  Impl(boost::asio::io_context& io, journal::Journal& j, aws::HealthLakeClient& hl,
       aws::S3Client& s3, ImporterOptions o)
      : io(io),
        journal(j),
        hl(hl),
        s3(s3),
        reader(s3),
        opt(std::move(o)),
        rng(std::random_device{}()) {}

  boost::asio::io_context& io;
  journal::Journal& journal;
  aws::HealthLakeClient& hl;
  aws::S3Client& s3;
  S3OutputReader reader;  // the Reconciler's view of s3
  ImporterOptions opt;
  ImporterStats stats;
  bool stopped = false;
  std::mt19937_64 rng;

  // One import job of an export: (export id, part).
  using Key = std::pair<std::int64_t, int>;

  // Per data store: exports holding a slot (their jobs are not all terminal) and the FIFO of
  // those waiting. An export split into parts holds one slot for all its jobs.
  struct Store {
    std::string id;  // the data store
    std::set<std::int64_t> active;
    std::deque<std::int64_t> waiting;
    int limit = 1;
    std::unique_ptr<boost::asio::steady_timer> wake;  // the first export's batch_max_wait
  };
  std::map<std::string, Store> stores;
  // Batches (docs/import.md "Batches"): every member of a batch of two or more holds the one slot
  // of the batch (key -batch id); an export alone holds its own (key = its id).
  std::map<std::int64_t, std::int64_t> slot_of;
  std::map<std::int64_t, BatchFormer::Clock::time_point> waiting_since;
  std::set<std::int64_t> copied;  // batches whose copies are in place (this process)
  std::int64_t slot_key(std::int64_t id) const {
    auto it = slot_of.find(id);
    return it == slot_of.end() ? id : it->second;
  }
  int used(const Store& s) const {
    std::set<std::int64_t> slots;
    for (auto id : s.active) slots.insert(slot_key(id));
    return static_cast<int>(slots.size());
  }
  bool batching() const { return opt.batch.max_exports > 1; }
  // The batch of the export's current attempt when it has two or more members (a batch of one
  // is the plain case and never journaled as a batch).
  std::optional<journal::BatchRow> multi_batch(std::int64_t id) const {
    auto b = journal.batch_of(id);
    if (!b || b->members.size() < 2) return std::nullopt;
    return b;
  }
  std::map<Key, std::unique_ptr<boost::asio::steady_timer>> timers;
  std::set<Key> busy;                       // a request for this job is in flight (no second one)
  std::map<Key, int> conflicts_in_a_row;    // ConflictException answers to Start, per job
  std::shared_ptr<RequestMailbox> mailbox;  // made at resume()

  const ImportTarget* target(const journal::ExportRow& e) const {
    for (const auto& t : opt.targets)
      if (t.pipeline == e.pipeline) return &t;
    return nullptr;
  }

  void changed() {
    if (opt.on_change) opt.on_change();
  }

  Store& store(const ImportTarget& t) {
    auto& s = stores[t.datastore_id];
    s.id = t.datastore_id;
    s.limit = std::max(1, t.max_outstanding_starts);
    return s;
  }

  bool busy_any(std::int64_t id) const {
    auto it = busy.lower_bound({id, 0});
    return it != busy.end() && it->first == id;
  }

  void drop_timers(std::int64_t id);

  void release(const journal::ExportRow& e);

  // Starts queued exports while the data store has free slots.
  void pump(Store& s);

  // Parks the export; a member of a batch that has no job yet parks with every member still
  // starting (they share the one Start).
  void park(std::int64_t id, const std::string& reason);
  void park_one(std::int64_t id, const std::string& reason);

  // ---- batches ----
  // The next batch of the store's waiting exports (BatchFormer over the queue), taken out of the
  // queue; empty when the first must wait longer (the store's wake timer is armed).
  std::vector<std::int64_t> form_batch(Store& s);
  // Journals the batch (members, token, JobName, input prefix; all → import_starting) and starts
  // it. Before the Start the members' import objects are copied under the batch prefix.
  void begin_batch(const std::vector<std::int64_t>& ids);
  // CopyObject of every member's import objects to the batch prefix, at most 8 at a time, then
  // `then`. Idempotent: after a crash the same copies are made again before any Start.
  void copy_batch(std::int64_t id, const journal::BatchRow& b, std::function<void(Impl&)> then);
  // The leader (first member still import_starting) got the job: every other member still
  // starting gets the same job id, then each moves on.
  void share_job(std::int64_t id, const std::string& job_id, const std::string& status);

  template <class F>
  void after(Key k, std::chrono::milliseconds d, F f) {
    auto& t = timers[k];
    t = std::make_unique<boost::asio::steady_timer>(io, d);
    std::weak_ptr<Impl> w = weak_from_this();
    t->async_wait([w, f](const boost::system::error_code& ec) {
      auto self = w.lock();
      if (ec || !self || self->stopped) return;
      f(*self);
    });
  }

  std::chrono::milliseconds poll_delay() {
    auto lo = opt.poll_min.count(), hi = std::max(opt.poll_max.count(), lo);
    return std::chrono::milliseconds(std::uniform_int_distribution<long long>(lo, hi)(rng));
  }

  // Wraps a callback so that it does nothing once the importer is gone or stopped, and so that a
  // journal failure is logged instead of escaping into the io_context.
  template <class R, class F>
  std::function<void(R)> guard(Key k, F f) {
    std::weak_ptr<Impl> w = weak_from_this();
    return [w, k, f](R r) {
      auto self = w.lock();
      if (!self || self->stopped) return;
      self->busy.erase(k);
      try {
        f(*self, std::move(r));
      } catch (const std::exception& ex) {
        log::error(std::string("import: ") + ex.what(), {{"EXPORT_ID", std::to_string(k.first)}});
      }
    };
  }

  // ---- the fleet (fleet_member.cpp; docs/import.md "Fleet") ----
  bool fleet() const { return opt.fleet.enabled(); }
  std::unique_ptr<FleetHolder> holder;           // made at the first fleet work
  std::shared_ptr<fleet::Manifest> fleet_ready;  // ready.json (shared with calls in flight)
  std::unique_ptr<boost::asio::steady_timer> fleet_timer;
  bool fleet_busy = false;                 // a member tick is in flight
  std::set<std::int64_t> fleet_waiting;    // uploaded, listed (or to be listed) in ready.json
  std::set<std::int64_t> fleet_following;  // importing, waiting for the batch's outcome
  void fleet_start();
  // An uploaded export: listed for the fleet (true), or not one the fleet can batch (false: it
  // goes the local way, e.g. nothing to import, or split into part folders).
  bool fleet_kick(std::int64_t id);
  // The export's entry in ready.json ("<name>", ".retry<A>" from the second attempt).
  static std::string fleet_entry_id(const journal::ExportRow& e);
  // The fleet batch the export's current job is (its row's token), if it is a fleet member.
  std::optional<journal::FleetExportRow> fleet_member(std::int64_t id) const;
  void fleet_arm(std::chrono::milliseconds d);
  // One round: list what is new, read ready.json, find each export's batch, read the batch
  // records, apply them (fleet_apply). `pending` counts the calls in flight; fleet_done ends the
  // round when it reaches 0 and arms the next one (poll_interval).
  void fleet_tick();
  void fleet_read(std::shared_ptr<int> pending);
  void fleet_batches(const fleet::ManifestDoc& doc, std::shared_ptr<int> pending);
  void fleet_apply(const std::string& batch_id, const std::string& body);
  void fleet_done(std::shared_ptr<int> pending);
  // A member pointer as read: absent → the export is to be listed (again); present → its batch.
  void fleet_pointer_read(std::int64_t id, const fleet::CasRead& r);

  // ---- entry points ----
  void kick(std::int64_t id);

  void resume();

  // ---- start ----
  // The jobs of the current attempt: one per part (import_parts). Tokens and names are journaled
  // for every part, then the export moves to import_starting, BEFORE the first request leaves:
  // after a crash from here on the same tokens are found and re-used, so HealthLake can never
  // make a second job for a part.
  void begin_start(std::int64_t id);

  // No file of the export has a valid resource, so no import object was uploaded: a job would
  // only fail on an empty prefix (and hold the account's one import slot meanwhile). The export
  // ends nothing_to_import; report.json and rejects were uploaded by the upload stage.
  void finish_nothing(const journal::ExportRow& e, const std::vector<journal::FileRow>& files);

  // The next part without a job id is started; when every part has one the export is importing.
  // After a restart (`recovering`) the part's Start may or may not have reached HealthLake: it
  // is looked up by name first (ListFHIRImportJobs) and only re-sent, with the same token, when
  // no job is found.
  void start_next(std::int64_t id, bool recovering);

  std::string input_of(const journal::ExportRow& e, const ImportTarget& t,
                       const journal::ImportJobRow& j) const {
    // Journals from before schema 3 have no input_uri: it was always the export's import/ prefix.
    return j.input_uri.empty() ? import_input_uri(t.bucket, t.prefix, e.name) : j.input_uri;
  }

  // The level a job was started with: journaled with its token; journals from before schema 5
  // did not record it, and the pipeline's configured level stands in.
  static std::string started_level(const ImportTarget& t, const journal::ImportJobRow& j) {
    return j.validation_level.empty() ? t.validation_level : j.validation_level;
  }

  // The level check: journals what HealthLake reports for the job (level, message) and parks the
  // export when the level is not the one the job was started with. True when it parked.
  bool check_reported(const journal::ExportRow& e, int part, const std::string& job_id,
                      const std::string& reported, const std::string& message);

  aws::StartImportRequest start_request(const journal::ExportRow& e, const ImportTarget& t,
                                        const journal::ImportJobRow& j);

  // Sends Start; for a batch, after its copies are in place (copy_batch).
  void send_start(std::int64_t id, int part);
  void send_start_now(std::int64_t id, int part);

  void on_started(std::int64_t id, int part, aws::HlResult<aws::StartImportResult> r);

  void retry_start(std::int64_t id, int part);

  // Every page of ListFHIRImportJobs(JobName, SubmittedAfter) is read (NextToken followed): a
  // name shared by many jobs (retries, other gateways, a busy account) may put the one this
  // token made on a later page, and missing it would re-send Start instead of adopting the job.
  struct Listing {
    std::vector<aws::ImportJobProperties> kept;  // the oldest matching job so far (0 or 1)
    int pages = 0;
  };

  void recover(std::int64_t id, const journal::ImportJobRow& j);

  void list_page(std::int64_t id, int part, std::shared_ptr<Listing> acc, std::string next);

  void on_listed(std::int64_t id, int part, const std::string& input, std::shared_ptr<Listing> acc,
                 aws::HlResult<aws::ListImportJobsResult> r);

  // ---- follow ----
  // After a restart in `importing`: poll every job that has no recorded outcome yet; when all
  // have one (crash between the last outcome and the final state) finish the export.
  void follow_all(std::int64_t id);

  void poll(std::int64_t id, int part);

  void on_described(std::int64_t id, int part, aws::HlResult<aws::ImportJobProperties> r);

  // ---- reconcile ----
  // The Reconciler (reconciler.hpp) reads the job's outputs into an ImportOutcome; this journals
  // it (record_import_outcome), logs it, and finishes the export when every part has one.
  void reconcile(std::int64_t id, int part, const aws::ImportJobProperties& job);

  void on_reconciled(std::int64_t id, int part, const aws::ImportJobProperties& job,
                     const std::string& out_dir, ImportOutcome o);

  // Every job of the export has its outcome: the local report (durable) first, then the final
  // state. A crash in between redoes this from the journal's outcomes (follow_all).
  void finish_export(std::int64_t id);
};

}  // namespace fe::import
