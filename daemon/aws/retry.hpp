#pragma once
// AWS "standard" retry mode (as in botocore/aws-sdk-js-v3/Java v2 "standard"), plus clock-skew
// correction.
//
//   attempts   max_attempts total (default 3, the first included)
//   delay      rand[0,1) x min(2^(n-1) s, 20 s) after failed attempt n (full jitter)
//   quota      one bucket per client (shared by all requests to that service): 500 tokens;
//              a retry takes 5 (10 after a timeout/connection error); no tokens -> no retry;
//              a success gives back what its last retry took, or 1 when it needed no retry;
//              never above capacity
//   retryable  ErrorCategory retryable | throttling | clock_skew (aws/errors.hpp)
// When attempts or quota run out the caller gets the typed error; the pipeline keeps the work
// queued and tries again later (nothing is dropped).
//
// Usage per logical request:
//   RetryState st;                                      // attempt 1
//   for (;;) {
//     auto t = skew.now(); sign with t; send;
//     if (ok) { strategy.on_success(st); break; }
//     bool corrected = skew.observe(err);               // server Date on skew errors
//     auto d = strategy.on_failure(st, err, corrected);
//     if (!d.retry) return err;                          // d.reason says why
//     wait d.delay (Asio timer)                          // st.attempt is now the next attempt
//   }
#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <string_view>

#include "aws/errors.hpp"

namespace fe::aws {

struct RetryConfig {
  int max_attempts = 3;  // total attempts, >= 1
  std::chrono::milliseconds max_backoff{20'000};
  int quota_capacity = 500;
  int retry_cost = 5;
  int timeout_cost = 10;  // timeouts and connection errors
  int no_retry_increment = 1;
};

// Thread-safe token bucket.
class RetryQuota {
 public:
  explicit RetryQuota(int capacity = 500) : capacity_(capacity), available_(capacity) {}
  bool acquire(int n);  // false (and nothing taken) when fewer than n tokens are left
  void release(int n);  // capped at capacity
  int available() const { return available_.load(); }
  int capacity() const { return capacity_; }

 private:
  const int capacity_;
  std::atomic<int> available_;
};

struct RetryState {
  int attempt = 1;          // the attempt being made / just made (1-based)
  int last_retry_cost = 0;  // tokens the latest retry took (0: not retried yet)
};

struct RetryDecision {
  bool retry = false;
  std::chrono::milliseconds delay{0};
  std::string reason;  // "throttling", "retry quota exhausted", "3 attempts made", ...
};

class RetryStrategy {
 public:
  // `seed` makes the jitter deterministic for tests; the daemon seeds from std::random_device.
  explicit RetryStrategy(RetryConfig cfg = {}, std::uint64_t seed = std::random_device{}());

  // After failed attempt `st.attempt` with `err`. `clock_corrected`: the ClockSkew just moved its
  // offset because of this error, so a re-signed attempt can succeed even if the error is
  // otherwise not retryable (SignatureDoesNotMatch with a bad clock). On retry st.attempt++.
  RetryDecision on_failure(RetryState& st, const AwsError& err, bool clock_corrected = false);
  void on_success(const RetryState& st);

  // rand[0,1) x min(2^(n-1) s, max_backoff); n = the attempt that failed (1 -> up to 1 s).
  std::chrono::milliseconds backoff(int failed_attempt);

  RetryQuota& quota() { return quota_; }
  const RetryConfig& config() const { return cfg_; }

 private:
  RetryConfig cfg_;
  RetryQuota quota_;
  std::mutex rng_mu_;
  std::mt19937_64 rng_;
};

// Offset between our clock and AWS's, learned from the Date header of responses that failed
// because of skew. Applied when signing: sign with skew.now(). Thread-safe.
class ClockSkew {
 public:
  // Only corrections beyond this are taken (AWS accepts 5 min (S3: 15 min); the SDKs use 4 min).
  static constexpr std::chrono::seconds kThreshold{4 * 60};

  std::chrono::system_clock::time_point now() const {
    return std::chrono::system_clock::now() + offset();
  }
  std::chrono::milliseconds offset() const { return std::chrono::milliseconds(offset_ms_.load()); }
  // Learn from a response. Takes the server's Date when the error says the time was wrong
  // (ErrorCategory::clock_skew) or it is a signature error (auth: SignatureDoesNotMatch,
  // InvalidSignatureException) and the server's Date is more than kThreshold away from
  // `local_now` (+ the current offset). Returns true when the offset changed.
  bool observe(const AwsError& err,
               std::chrono::system_clock::time_point local_now = std::chrono::system_clock::now());
  // Direct form for callers with just a Date header; `local_now` as above.
  bool update_from_date(std::string_view http_date,
                        std::chrono::system_clock::time_point local_now);
  void reset() { offset_ms_.store(0); }

 private:
  std::atomic<long long> offset_ms_{0};
};

}  // namespace fe::aws
