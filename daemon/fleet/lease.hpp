#pragma once
// fleet::Lease: which gateway of a fleet may start the fleet's import job (issue 16 item 3,
// docs/scale.md). HealthLake runs one import per account and Region; gateways that name the same
// `fleet` share that slot through one small object in the landing bucket, written only with S3
// conditional writes. No coordination service: S3 is strongly consistent and its conditional
// PUT is the compare-and-swap.
//
// The object (lease_key(): <prefix>/fleet/<fleet>/lease.json) is a LeaseRecord:
//   {"holder":"gw-3","epoch":7,"expires_at_ms":1767225600000,"ttl_ms":120000,
//    "token":"<128-bit hex>","released":false}
//
// Contract:
// - acquire(): create the object with "If-None-Match: *". If it exists, read it: when it is
//   ours (our token) we hold it; when it is released, or expired by its own content plus the
//   skew margin (our wall clock > expires_at + skew_margin), take it over with "If-Match: <the
//   ETag we read>" and epoch + 1; otherwise report `taken` with the record (who holds it, until
//   when). Of N contenders exactly one write succeeds; the others see `taken`.
// - renew(): rewrite with "If-Match: <our ETag>" (same epoch, new expiry). A refused write
//   (412, 404, 409) whose re-read is not our token means someone took the lease over: `lost`,
//   and held() is false from then on. The holder must stop starting work when it learns that.
// - release(): rewrite with "If-Match: <our ETag>" as released (expired now), so the next
//   acquire takes over at once. The object is never deleted (the daemon deletes no remote
//   objects, and a delete would race conditional writes into 409s).
// - held(): we hold the lease and, by our own monotonic clock, less than ttl - skew_margin has
//   passed since we sent the write that last extended it. Check it before each action that
//   needs the lease (starting an import job); renew well before (every ttl/3).
// - epoch() is a fencing token: it grows with every change of holder, so records written under
//   the lease (batch manifests, job outcomes) can say which tenure wrote them.
// - Ambiguous outcomes: the S3 client retries a PUT whose response was lost, and the retry of a
//   write that did land is refused. Every write carries a fresh token and a refused write is
//   settled by re-reading the object, never by assuming.
// - Clock skew assumption: safety needs every two gateways' wall clocks within 2 x skew_margin of
//   each other (the holder gives up at send + ttl - margin by its monotonic clock; a contender
//   takes over at expires_at + margin by its wall clock). NTP keeps gateways within a second;
//   the default margin of 30 s leaves ample room, and S3 itself refuses requests signed more than
//   15 minutes off (RequestTimeTooSkewed), which the client corrects from the server's Date.
// - Asynchronous: callbacks run on the S3 client's io_context thread, exactly once. One call at
//   a time per Lease (a call while one is in flight is a programming error: std::logic_error).
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

#include "aws/errors.hpp"
#include "aws/s3.hpp"

namespace fe::fleet {

using SysTime = std::chrono::system_clock::time_point;
using SteadyTime = std::chrono::steady_clock::time_point;

// "<prefix>/fleet/<fleet>/lease.json" (no leading '/' when prefix is empty).
std::string lease_key(std::string_view prefix, std::string_view fleet);

struct LeaseRecord {
  std::string holder;
  std::uint64_t epoch = 0;
  SysTime expires_at{};
  std::chrono::milliseconds ttl{0};
  std::string token;
  bool released = false;

  std::string to_json() const;
  static std::optional<LeaseRecord> parse(std::string_view json);
};

struct LeaseOptions {
  std::string bucket;
  std::string key;     // lease_key(prefix, fleet)
  std::string holder;  // this gateway's id, unique in the fleet
  std::chrono::milliseconds ttl{std::chrono::minutes(2)};
  std::chrono::milliseconds skew_margin{std::chrono::seconds(30)};
  // Injectable for tests (expiry without sleeping).
  std::function<SysTime()> wall_clock = [] { return std::chrono::system_clock::now(); };
  std::function<SteadyTime()> steady_clock = [] { return std::chrono::steady_clock::now(); };
};

enum class LeaseStatus {
  held,      // we hold it (acquired, taken over, or renewed)
  taken,     // another gateway holds it and it has not expired
  lost,      // we held it and someone took it over (renew/release refused)
  released,  // we let it go
  error      // S3 failed (not a refused precondition): state unchanged, try again later
};
const char* to_string(LeaseStatus s);

struct LeaseState {
  LeaseStatus status = LeaseStatus::error;
  LeaseRecord record;  // the record as last written or read (holder, epoch, expiry)
  std::optional<aws::AwsError> error;
};

class Lease {
 public:
  using Done = std::function<void(LeaseState)>;
  Lease(aws::S3Client& s3, LeaseOptions options);

  void acquire(Done done);
  void renew(Done done);
  void release(Done done);

  bool held() const;
  // We wrote the lease last, as far as we know (held() may be false already by the monotonic
  // clock): release() then writes with If-Match on that write's ETag; otherwise it writes
  // nothing.
  bool ours() const { return mine_.has_value(); }
  std::uint64_t epoch() const { return mine_ ? mine_->epoch : 0; }
  const std::string& etag() const { return etag_; }
  const LeaseOptions& options() const { return opt_; }

 private:
  void try_create(int attempts_left, Done done);
  void settle_refused(LeaseRecord wrote, int attempts_left, bool acquiring, Done done);
  void take_over(const LeaseRecord& stale, const std::string& etag, int attempts_left, Done done);
  void write_if_match(LeaseRecord rec, std::string etag, bool acquiring, int attempts_left,
                      Done done);
  LeaseRecord fresh_record(std::uint64_t epoch) const;
  void finish(Done& done, LeaseState st);
  void begin();

  aws::S3Client& s3_;
  LeaseOptions opt_;
  bool busy_ = false;
  std::optional<LeaseRecord> mine_;  // set while we believe we hold it
  std::string etag_;
  SteadyTime valid_until_{};
  SteadyTime pending_sent_{};  // when the write being settled was sent
};

}  // namespace fe::fleet
