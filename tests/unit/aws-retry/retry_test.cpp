// Standard-mode retries: schedule (seeded, so deterministic), attempt budget, the quota bucket
// with its costs and refunds, and clock-skew correction from the server's Date.
#include "aws/retry.hpp"

#include <gtest/gtest.h>

#include <ctime>

using namespace fe::aws;
using namespace std::chrono;

namespace {
AwsError http_error(int status, std::string code, std::string message = {}) {
  AwsError e;
  e.http_status = status;
  e.code = std::move(code);
  e.message = std::move(message);
  e.category = classify(status, e.code, e.message);
  return e;
}

std::string http_date(system_clock::time_point t) {
  std::time_t tt = system_clock::to_time_t(t);
  std::tm tm{};
  gmtime_r(&tt, &tm);
  char buf[64];
  std::strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return buf;
}
}  // namespace

TEST(RetrySchedule, FullJitterCappedAt20s) {
  RetryStrategy s(RetryConfig{}, 1234);
  // Same seed, same draws: the schedule is rand x min(2^(n-1) s, 20 s).
  std::mt19937_64 rng(1234);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  for (int n = 1; n <= 12; ++n) {
    long long cap = std::min(1000LL << (n - 1), 20000LL);
    auto expected = milliseconds(static_cast<long long>(u(rng) * static_cast<double>(cap)));
    EXPECT_EQ(s.backoff(n), expected) << "attempt " << n;
  }
}

TEST(RetrySchedule, BoundsAndSpread) {
  RetryStrategy s(RetryConfig{}, 7);
  for (int n : {1, 2, 3, 5, 6, 30, 1000}) {
    long long cap = n >= 6 ? 20000 : (1000LL << (n - 1));
    milliseconds lo = milliseconds::max(), hi = milliseconds::zero();
    for (int i = 0; i < 2000; ++i) {
      auto d = s.backoff(n);
      ASSERT_GE(d.count(), 0);
      ASSERT_LT(d.count(), cap) << "attempt " << n;
      lo = std::min(lo, d);
      hi = std::max(hi, d);
    }
    // Full jitter: the draws cover most of [0, cap).
    EXPECT_LT(lo.count(), cap / 10) << n;
    EXPECT_GT(hi.count(), cap * 9 / 10) << n;
  }
}

TEST(RetryPolicy, MaxAttemptsAndReasons) {
  RetryStrategy s(RetryConfig{}, 1);  // 3 attempts
  RetryState st;
  AwsError e = http_error(503, "SlowDown");
  auto d1 = s.on_failure(st, e);
  EXPECT_TRUE(d1.retry);
  EXPECT_EQ(d1.reason, "throttling");
  EXPECT_LT(d1.delay, milliseconds(1000));
  EXPECT_EQ(st.attempt, 2);
  auto d2 = s.on_failure(st, e);
  EXPECT_TRUE(d2.retry);
  EXPECT_LT(d2.delay, milliseconds(2000));
  auto d3 = s.on_failure(st, e);
  EXPECT_FALSE(d3.retry);
  EXPECT_NE(d3.reason.find("3 attempts"), std::string::npos);
  EXPECT_EQ(s.quota().available(), 490);
}

TEST(RetryPolicy, NonRetryableTakesNothing) {
  RetryStrategy s(RetryConfig{}, 1);
  RetryState st;
  for (const char* code :
       {"AccessDenied", "NoSuchBucket", "InvalidPart", "KMS.DisabledException"}) {
    auto d = s.on_failure(st, http_error(403, code));
    EXPECT_FALSE(d.retry) << code;
    EXPECT_NE(d.reason.find("not retryable"), std::string::npos);
  }
  EXPECT_EQ(s.quota().available(), 500);
  EXPECT_EQ(st.attempt, 1);
}

TEST(RetryPolicy, RetryableClasses) {
  RetryConfig cfg;
  cfg.max_attempts = 100;
  RetryStrategy s(cfg, 1);
  for (auto e :
       {http_error(500, ""), http_error(502, ""), http_error(503, ""), http_error(504, ""),
        http_error(429, ""), http_error(400, "ThrottlingException"),
        http_error(400, "RequestTimeout"), http_error(500, "InternalServerException"),
        http_error(400, "TransactionInProgressException"), http_error(403, "RequestTimeTooSkewed"),
        transport_error(TransportFailure::timeout, "t"),
        transport_error(TransportFailure::connection, "c")}) {
    RetryState st;
    EXPECT_TRUE(s.on_failure(st, e).retry) << e.describe();
  }
}

TEST(RetryQuotaTest, DrainsAt5PerRetryAnd10PerTimeout) {
  RetryConfig cfg;
  cfg.max_attempts = 1000;
  RetryStrategy s(cfg, 3);
  RetryState st;
  int retries = 0;
  while (s.on_failure(st, http_error(500, "InternalError")).retry) ++retries;
  EXPECT_EQ(retries, 100);  // 500 / 5
  EXPECT_EQ(s.quota().available(), 0);
  auto d = s.on_failure(st, http_error(500, "InternalError"));
  EXPECT_FALSE(d.retry);
  EXPECT_NE(d.reason.find("quota exhausted"), std::string::npos);

  RetryStrategy t(cfg, 3);
  RetryState st2;
  retries = 0;
  while (t.on_failure(st2, transport_error(TransportFailure::timeout, "x")).retry) ++retries;
  EXPECT_EQ(retries, 50);  // 500 / 10
}

TEST(RetryQuotaTest, RefundsOnSuccess) {
  RetryConfig cfg;
  cfg.max_attempts = 5;
  RetryStrategy s(cfg, 3);
  // A success without retry gives 1 back, never above capacity.
  s.on_success(RetryState{});
  EXPECT_EQ(s.quota().available(), 500);
  RetryState a;
  ASSERT_TRUE(s.on_failure(a, transport_error(TransportFailure::connection, "reset")).retry);
  ASSERT_TRUE(s.on_failure(a, http_error(503, "SlowDown")).retry);
  EXPECT_EQ(s.quota().available(), 485);
  s.on_success(a);  // refund the last retry's cost (5)
  EXPECT_EQ(s.quota().available(), 490);
  RetryState b;
  ASSERT_TRUE(s.on_failure(b, transport_error(TransportFailure::timeout, "t")).retry);
  EXPECT_EQ(s.quota().available(), 480);
  s.on_success(b);  // 10 back
  EXPECT_EQ(s.quota().available(), 490);
  for (int i = 0; i < 5; ++i) s.on_success(RetryState{});  // +1 each
  EXPECT_EQ(s.quota().available(), 495);
  for (int i = 0; i < 50; ++i) s.on_success(RetryState{});
  EXPECT_EQ(s.quota().available(), 500);
}

TEST(RetryQuotaTest, SharedAcrossRequests) {
  RetryConfig cfg;
  cfg.quota_capacity = 20;
  RetryStrategy s(cfg, 3);
  RetryState r1, r2, r3, r4, r5;
  EXPECT_TRUE(s.on_failure(r1, http_error(503, "")).retry);
  EXPECT_TRUE(s.on_failure(r2, http_error(503, "")).retry);
  EXPECT_TRUE(s.on_failure(r3, http_error(503, "")).retry);
  EXPECT_TRUE(s.on_failure(r4, http_error(503, "")).retry);
  EXPECT_FALSE(s.on_failure(r5, http_error(503, "")).retry);  // bucket empty for everyone
}

TEST(ClockSkewTest, CorrectsFromServerDateOnSkewErrors) {
  ClockSkew skew;
  auto local = system_clock::now();
  AwsError e = http_error(403, "RequestTimeTooSkewed",
                          "The difference between the request time and the current time is too "
                          "large.");
  e.server_date = http_date(local + minutes(17));
  EXPECT_TRUE(skew.observe(e, local));
  auto off = duration_cast<seconds>(skew.offset()).count();
  EXPECT_GE(off, 17 * 60 - 1);
  EXPECT_LE(off, 17 * 60);
  auto signed_at = skew.now();
  EXPECT_GT(signed_at, system_clock::now() + minutes(16));
  // Same date again: already corrected, no change.
  EXPECT_FALSE(skew.observe(e, local));
}

TEST(ClockSkewTest, IgnoresSmallDifferencesAndUnrelatedErrors) {
  ClockSkew skew;
  auto local = system_clock::now();
  AwsError e = http_error(403, "RequestTimeTooSkewed");
  e.server_date = http_date(local + minutes(2));
  EXPECT_FALSE(skew.observe(e, local));
  AwsError nf = http_error(404, "NoSuchKey");
  nf.server_date = http_date(local + hours(2));
  EXPECT_FALSE(skew.observe(nf, local));
  AwsError bad = http_error(403, "RequestTimeTooSkewed");
  bad.server_date = "yesterday-ish";
  EXPECT_FALSE(skew.observe(bad, local));
  EXPECT_EQ(skew.offset().count(), 0);
}

TEST(ClockSkewTest, SignatureMismatchWithLargeSkewIsRetriedAfterCorrection) {
  ClockSkew skew;
  RetryStrategy s(RetryConfig{}, 5);
  auto local = system_clock::now();
  AwsError e = http_error(403, "SignatureDoesNotMatch", "The request signature we calculated...");
  e.server_date = http_date(local - hours(1));  // our clock is an hour fast
  RetryState st;
  bool corrected = skew.observe(e, local);
  EXPECT_TRUE(corrected);
  EXPECT_LT(skew.offset(), -minutes(59));
  EXPECT_TRUE(s.on_failure(st, e, corrected).retry);
  // Without a clock problem the same error is final.
  RetryState st2;
  EXPECT_FALSE(s.on_failure(st2, e, false).retry);
}

TEST(ClockSkewTest, JsonSignatureExpired) {
  ClockSkew skew;
  auto local = system_clock::now();
  AwsError e = http_error(400, "InvalidSignatureException",
                          "Signature expired: 20260101T000000Z is now earlier than ...");
  EXPECT_EQ(e.category, ErrorCategory::clock_skew);
  e.server_date = http_date(local + minutes(30));
  EXPECT_TRUE(skew.observe(e, local));
}
