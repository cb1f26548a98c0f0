// The fleet holder's lease: the lease step (acquire, then renew every third of lease_ttl) and the
// clean stop that gives the lease up (FleetHolder::release, contract in fleet_holder.hpp). Batches
// are driven in fleet_holder.cpp; the holder's state (FleetHolder::Impl) is in
// fleet_holder_impl.hpp.
#include <boost/asio/post.hpp>
#include <string>

#include "import/fleet_holder_impl.hpp"

namespace fe::import {

// ---- the lease ----
void FleetHolder::Impl::lease_step() {
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

// ---- a clean stop: the lease given up (fleet_holder.hpp, release()) ----
void FleetHolder::Impl::halt() {
  stopped = true;
  lease_timer.cancel();
  work_timer.cancel();
}

void FleetHolder::Impl::release(std::function<void()> done) {
  halt();
  if (release_done || release_sent) return done();  // one release per holder
  release_done = std::move(done);
  arm_release_timer([](Impl& me) { me.give_up_lease(/*waited_out=*/true); });
  quiet_check();
}

// Every request has answered and no lease write is in flight: release now (posted, so that
// it never runs inside the callback that brought the count to zero).
void FleetHolder::Impl::quiet_check() {
  if (!release_done || release_sent || in_flight > 0 || lease_busy) return;
  boost::asio::post(io, [w = weak_from_this()] {
    if (auto self = w.lock()) self->give_up_lease(/*waited_out=*/false);
  });
}

void FleetHolder::Impl::give_up_lease(bool waited_out) {
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
      self->say(log::Level::notice,
                "fleet lease not released: " +
                    (st.record.holder.empty() ? std::string("another gateway") : st.record.holder) +
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

void FleetHolder::Impl::release_finish() {
  if (!release_done) return;
  auto done = std::move(release_done);
  release_done = nullptr;
  done();
}

}  // namespace fe::import
