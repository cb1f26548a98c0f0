#include "fleet/lease.hpp"

#include <simdjson.h>

#include <stdexcept>

#include "common/json_writer.hpp"
#include "fleet/s3_cas.hpp"

namespace fe::fleet {

namespace {
using std::chrono::milliseconds;

std::int64_t to_ms(SysTime t) {
  return std::chrono::duration_cast<milliseconds>(t.time_since_epoch()).count();
}

aws::AwsError fleet_error(std::string code, std::string message) {
  aws::AwsError e;
  e.code = std::move(code);
  e.message = std::move(message);
  return e;
}
}  // namespace

std::string lease_key(std::string_view prefix, std::string_view fleet) {
  std::string p(prefix);
  while (!p.empty() && p.back() == '/') p.pop_back();
  return (p.empty() ? "" : p + "/") + "fleet/" + std::string(fleet) + "/lease.json";
}

std::string LeaseRecord::to_json() const {
  json::Writer w;
  w.begin_object()
      .field("holder", holder)
      .field("epoch", epoch)
      .field("expires_at_ms", to_ms(expires_at))
      .field("ttl_ms", static_cast<std::int64_t>(ttl.count()))
      .field("token", token)
      .field("released", released)
      .end_object();
  return std::move(w).str();
}

std::optional<LeaseRecord> LeaseRecord::parse(std::string_view json) {
  simdjson::dom::parser p;
  simdjson::dom::element e;
  if (p.parse(json.data(), json.size()).get(e)) return std::nullopt;
  LeaseRecord r;
  std::string_view sv;
  std::uint64_t u = 0;
  std::int64_t i = 0;
  bool b = false;
  if (e["holder"].get(sv)) return std::nullopt;
  r.holder = sv;
  if (e["epoch"].get(u)) return std::nullopt;
  r.epoch = u;
  if (e["expires_at_ms"].get(i)) return std::nullopt;
  r.expires_at = SysTime(milliseconds(i));
  if (!e["ttl_ms"].get(i)) r.ttl = milliseconds(i);
  if (e["token"].get(sv)) return std::nullopt;
  r.token = sv;
  if (!e["released"].get(b)) r.released = b;
  return r;
}

const char* to_string(LeaseStatus s) {
  switch (s) {
    case LeaseStatus::held:
      return "held";
    case LeaseStatus::taken:
      return "taken";
    case LeaseStatus::lost:
      return "lost";
    case LeaseStatus::released:
      return "released";
    case LeaseStatus::error:
      return "error";
  }
  return "?";
}

Lease::Lease(aws::S3Client& s3, LeaseOptions options) : s3_(s3), opt_(std::move(options)) {
  if (opt_.ttl <= 2 * opt_.skew_margin)
    throw std::invalid_argument("fleet lease: ttl must be more than twice the skew margin");
}

bool Lease::held() const {
  return mine_.has_value() && opt_.steady_clock() < valid_until_;
}

void Lease::begin() {
  if (busy_) throw std::logic_error("fleet::Lease: one call at a time");
  busy_ = true;
}

void Lease::finish(Done& done, LeaseState st) {
  busy_ = false;
  done(std::move(st));
}

LeaseRecord Lease::fresh_record(std::uint64_t epoch) const {
  LeaseRecord r;
  r.holder = opt_.holder;
  r.epoch = epoch;
  r.expires_at = opt_.wall_clock() + opt_.ttl;
  r.ttl = opt_.ttl;
  r.token = random_token();
  return r;
}

void Lease::acquire(Done done) {
  begin();
  if (mine_) return write_if_match(fresh_record(mine_->epoch), etag_, false, 0, std::move(done));
  try_create(3, std::move(done));
}

void Lease::renew(Done done) {
  begin();
  if (!mine_) return finish(done, LeaseState{LeaseStatus::lost, {}, std::nullopt});
  write_if_match(fresh_record(mine_->epoch), etag_, false, 0, std::move(done));
}

void Lease::release(Done done) {
  begin();
  if (!mine_) return finish(done, LeaseState{LeaseStatus::released, {}, std::nullopt});
  LeaseRecord r = fresh_record(mine_->epoch);
  r.released = true;
  r.expires_at = opt_.wall_clock();
  write_if_match(std::move(r), etag_, false, 0, std::move(done));
}

// A successful write (ours, possibly learned by re-reading): remember it.
static LeaseState adopt(std::optional<LeaseRecord>& mine, std::string& etag, SteadyTime& until,
                        const LeaseRecord& rec, const std::string& new_etag, SteadyTime sent,
                        const LeaseOptions& opt) {
  if (rec.released) {
    mine.reset();
    etag.clear();
    return LeaseState{LeaseStatus::released, rec, std::nullopt};
  }
  mine = rec;
  etag = new_etag;
  until = sent + opt.ttl - opt.skew_margin;
  return LeaseState{LeaseStatus::held, rec, std::nullopt};
}

void Lease::try_create(int attempts_left, Done done) {
  LeaseRecord rec = fresh_record(1);
  SteadyTime sent = opt_.steady_clock();
  cas_write(s3_, opt_.bucket, opt_.key, rec.to_json(), Condition::create_only, "",
            [this, rec, sent, attempts_left, done = std::move(done)](CasWrite w) mutable {
              if (w.written)
                return finish(done, adopt(mine_, etag_, valid_until_, rec, w.etag, sent, opt_));
              if (w.error) return finish(done, LeaseState{LeaseStatus::error, rec, w.error});
              pending_sent_ = sent;
              settle_refused(rec, attempts_left, true, std::move(done));
            });
}

void Lease::write_if_match(LeaseRecord rec, std::string etag, bool acquiring, int attempts_left,
                           Done done) {
  SteadyTime sent = opt_.steady_clock();
  cas_write(
      s3_, opt_.bucket, opt_.key, rec.to_json(), Condition::if_match, etag,
      [this, rec, sent, acquiring, attempts_left, done = std::move(done)](CasWrite w) mutable {
        if (w.written)
          return finish(done, adopt(mine_, etag_, valid_until_, rec, w.etag, sent, opt_));
        if (w.error) return finish(done, LeaseState{LeaseStatus::error, rec, w.error});
        pending_sent_ = sent;
        settle_refused(rec, attempts_left, acquiring, std::move(done));
      });
}

// The precondition was refused. Re-read: our own write may have landed (a retried PUT), the key
// may be gone, or another gateway holds (or held) the lease.
void Lease::settle_refused(LeaseRecord wrote, int attempts_left, bool acquiring, Done done) {
  cas_read(s3_, opt_.bucket, opt_.key,
           [this, wrote, attempts_left, acquiring, done = std::move(done)](CasRead r) mutable {
             if (r.error) return finish(done, LeaseState{LeaseStatus::error, wrote, r.error});
             if (r.absent) {
               if (acquiring && attempts_left > 0) return try_create(attempts_left - 1, done);
               mine_.reset();
               etag_.clear();
               return finish(
                   done, LeaseState{
                             acquiring ? LeaseStatus::taken : LeaseStatus::lost, {}, std::nullopt});
             }
             std::optional<LeaseRecord> cur = LeaseRecord::parse(r.body);
             if (cur && cur->token == wrote.token)
               return finish(done,
                             adopt(mine_, etag_, valid_until_, wrote, r.etag, pending_sent_, opt_));
             if (!acquiring) {
               mine_.reset();
               etag_.clear();
               return finish(
                   done, LeaseState{LeaseStatus::lost, cur.value_or(LeaseRecord{}), std::nullopt});
             }
             if (!cur)
               return finish(done, LeaseState{LeaseStatus::error,
                                              {},
                                              fleet_error("FleetLeaseUnreadable",
                                                          opt_.key + " is not a lease record")});
             bool expired = cur->released || opt_.wall_clock() > cur->expires_at + opt_.skew_margin;
             if (expired && attempts_left > 0)
               return take_over(*cur, r.etag, attempts_left - 1, std::move(done));
             finish(done, LeaseState{LeaseStatus::taken, *cur, std::nullopt});
           });
}

void Lease::take_over(const LeaseRecord& stale, const std::string& etag, int attempts_left,
                      Done done) {
  write_if_match(fresh_record(stale.epoch + 1), etag, true, attempts_left, std::move(done));
}

}  // namespace fe::fleet
