#pragma once
// Internal to the fleet holder: its state (FleetHolder::Impl), shared by fleet_holder.cpp
// (planning, claiming and driving batches) and fleet_holder_lease.cpp (the lease step, the stop
// and the lease given up). The contract is fleet_holder.hpp; this header is included only by
// daemon/import/fleet_holder*.cpp.
#include <algorithm>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "aws/healthlake.hpp"
#include "aws/s3.hpp"
#include "fleet/batch_record.hpp"
#include "fleet/lease.hpp"
#include "fleet/manifest.hpp"
#include "fleet/s3_cas.hpp"
#include "import/fleet_holder.hpp"
#include "service/log.hpp"

namespace fe::import {

struct FleetHolder::Impl : std::enable_shared_from_this<FleetHolder::Impl> {
  using milliseconds = std::chrono::milliseconds;

  // `done` holding `owner` alive until it runs (see Impl::lease).
  template <class O, class R>
  static std::function<void(R)> keep_alive(std::shared_ptr<O> owner, std::function<void(R)> done) {
    return [owner, done](R r) { done(std::move(r)); };
  }

  static std::int64_t wall_ms() {
    return std::chrono::duration_cast<milliseconds>(
               std::chrono::system_clock::now().time_since_epoch())
        .count();
  }

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
  // Defined in fleet_holder_lease.cpp.
  void lease_step();

  // ---- the work loop ----
  void next_tick(milliseconds d) {
    driving = false;
    arm(work_timer, d, [](Impl& me) { me.tick(); });
  }

  // Defined in fleet_holder.cpp (so is the next section).
  void tick();
  void plan(fleet::ManifestDoc doc);
  void drop_listed_before(std::vector<std::pair<std::string, std::string>> chosen);
  void claim(std::vector<std::pair<std::string, std::string>> chosen);

  // ---- driving one batch ----
  void drive(const std::string& id, std::vector<fleet::ManifestEntry> entries);
  void create_record(const std::string& id, const std::vector<fleet::ManifestEntry>& entries);
  void on_record(fleet::BatchRecord rec, std::string etag, bool fresh);
  void adopt_or_start(fleet::BatchRecord rec, std::string etag, std::string next);
  void write_pointers(fleet::BatchRecord rec, std::string etag, std::size_t i);

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

  void copy_all(fleet::BatchRecord rec, std::string etag);
  void pump_copies(const fleet::BatchRecord& rec, const std::string& etag,
                   std::shared_ptr<Copies> c);
  void start_job(fleet::BatchRecord rec, std::string etag);

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

  void follow(fleet::BatchRecord rec, std::string etag);
  void finish(const fleet::BatchRecord& rec);

  // ---- a clean stop: the lease given up (fleet_holder.hpp, release()) ----
  // Defined in fleet_holder_lease.cpp, but for the timer template.
  void halt();
  void release(std::function<void()> done);

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

  void quiet_check();
  void give_up_lease(bool waited_out);
  void release_finish();

  // Something that may pass: the next tick resumes the batch from its record.
  void stall(const std::string& id, const std::string& why) {
    say(log::Level::warning, "fleet batch: " + why + " (resumed later)", id);
    next_tick(std::max(opt.fleet.poll_interval, opt.retry_delay));
  }
};

}  // namespace fe::import
