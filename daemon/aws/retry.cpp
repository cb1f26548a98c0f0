#include "aws/retry.hpp"

#include <algorithm>

#include "aws/sigv4.hpp"  // parse_http_date
#include "service/log.hpp"

namespace fe::aws {

bool RetryQuota::acquire(int n) {
  int cur = available_.load();
  do {
    if (cur < n) return false;
  } while (!available_.compare_exchange_weak(cur, cur - n));
  return true;
}

void RetryQuota::release(int n) {
  int cur = available_.load();
  while (!available_.compare_exchange_weak(cur, std::min(capacity_, cur + n))) {
  }
}

RetryStrategy::RetryStrategy(RetryConfig cfg, std::uint64_t seed)
    : cfg_(cfg), quota_(cfg.quota_capacity), rng_(seed) {
  if (cfg_.max_attempts < 1) cfg_.max_attempts = 1;
}

std::chrono::milliseconds RetryStrategy::backoff(int failed_attempt) {
  double r;
  {
    std::lock_guard lk(rng_mu_);
    r = std::uniform_real_distribution<double>(0.0, 1.0)(rng_);
  }
  // 2^(n-1) seconds, computed in ms and capped before it could overflow.
  long long cap_ms = cfg_.max_backoff.count();
  long long exp_ms = 1000;
  for (int i = 1; i < failed_attempt && exp_ms < cap_ms; ++i) exp_ms *= 2;
  return std::chrono::milliseconds(
      static_cast<long long>(r * static_cast<double>(std::min(exp_ms, cap_ms))));
}

RetryDecision RetryStrategy::on_failure(RetryState& st, const AwsError& err, bool clock_corrected) {
  RetryDecision d;
  if (!err.retryable() && !clock_corrected) {
    d.reason = "not retryable (" + std::string(to_string(err.category)) + ")";
    return d;
  }
  if (st.attempt >= cfg_.max_attempts) {
    d.reason = std::to_string(st.attempt) + " attempts made (max_attempts " +
               std::to_string(cfg_.max_attempts) + ")";
    return d;
  }
  const int cost = err.transport != TransportFailure::none ? cfg_.timeout_cost : cfg_.retry_cost;
  if (!quota_.acquire(cost)) {
    d.reason = "retry quota exhausted (" + std::to_string(quota_.available()) + " of " +
               std::to_string(quota_.capacity()) + " tokens left)";
    return d;
  }
  st.last_retry_cost = cost;
  d.retry = true;
  d.delay = backoff(st.attempt);
  d.reason = clock_corrected ? "clock skew corrected" : std::string(to_string(err.category));
  ++st.attempt;
  return d;
}

void RetryStrategy::on_success(const RetryState& st) {
  quota_.release(st.last_retry_cost > 0 ? st.last_retry_cost : cfg_.no_retry_increment);
}

bool ClockSkew::update_from_date(std::string_view http_date,
                                 std::chrono::system_clock::time_point local_now) {
  auto server = parse_http_date(http_date);
  if (!server) return false;
  using namespace std::chrono;
  const auto ours = local_now + offset();
  const auto diff = duration_cast<milliseconds>(*server - ours);
  if (diff < kThreshold && diff > -kThreshold) return false;
  const auto new_offset = duration_cast<milliseconds>(*server - local_now);
  offset_ms_.store(new_offset.count());
  log::warning("clock skew against AWS corrected; check this host's time sync (NTP)",
               {{"CLOCK_OFFSET_SECONDS", std::to_string(new_offset.count() / 1000)}});
  return true;
}

bool ClockSkew::observe(const AwsError& err, std::chrono::system_clock::time_point local_now) {
  if (err.server_date.empty()) return false;
  const bool signature_error = err.code == "SignatureDoesNotMatch" ||
                               err.code == "InvalidSignatureException" || err.code == "AuthFailure";
  if (err.category != ErrorCategory::clock_skew && !signature_error) return false;
  return update_from_date(err.server_date, local_now);
}

}  // namespace fe::aws
