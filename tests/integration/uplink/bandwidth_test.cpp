// The global upload bandwidth cap (aws/http.hpp) measured end to end: multipart uploads with
// several parts in flight to healthlake-local, the achieved rate compared with the configured cap
// (±10%), a time-of-day window that changes it, and a change while transfers are in flight (what a
// SIGHUP reload does). The bands come from the configured caps, not from our own speed: an engine
// that capped each transfer instead of their sum would run `concurrency` times faster and fail.
// The upper bounds are tight (+10%): the cap is honoured whatever the machine does. The lower
// bounds measure the machine as much as the limiter (a sanitizer build on a loaded 2-core box ran
// at 0.70 of a 1 MiB/s cap), so they are only as tight as the faults they must catch: a limiter
// that split the cap between 4 transfers would run at 0.25, a reload that did not apply at 1.0
// of the old rate. Throughput itself is measured in bench/, never here.
#include <gtest/gtest.h>

#include <ctime>

#include "upload_fixture.hpp"

namespace {

using namespace fe::aws;
using fe::test::HealthLakeLocal;
using fe::test::HealthLakeLocalOptions;
using fe::test::MultipartUpload;
using fe::test::S3Fixture;

constexpr std::uint64_t kMiB = 1ull << 20;

std::unique_ptr<HealthLakeLocal> start_emulator() {
  HealthLakeLocalOptions opt;
  opt.buckets = {fe::test::kBucket};
  opt.min_part_size = 1 * kMiB;  // several small parts, so many transfers share the bucket
  try {
    return std::make_unique<HealthLakeLocal>(opt);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "healthlake-local did not start: " << e.what();
    return nullptr;
  }
}

int minute_now() {
  std::time_t t = std::time(nullptr);
  std::tm tm{};
  localtime_r(&t, &tm);
  return tm.tm_hour * 60 + tm.tm_min;
}

// A window of local time starting `from_offset` minutes from now, `length` minutes long.
BandwidthWindow window(int from_offset, int length, std::uint64_t rate) {
  const int now = minute_now();
  return BandwidthWindow{(now + from_offset + 1440) % 1440,
                         (now + from_offset + length + 1440) % 1440, rate};
}

void expect_rate_near(const fe::test::MultipartResult& r, double cap, const char* what) {
  ASSERT_FALSE(r.error) << *r.error;
  const double rate = static_cast<double>(r.bytes) / r.seconds;
  std::printf(
      "[ rate     ] %s: %.2f MiB in %.2f s = %.3f MiB/s, cap %.3f MiB/s (ratio %.3f), "
      "%zu parts in flight at most\n",
      what, static_cast<double>(r.bytes) / kMiB, r.seconds, rate / kMiB, cap / kMiB, rate / cap,
      r.max_in_flight);
  EXPECT_GE(rate, 0.5 * cap) << what << ": far below the cap (is it split between transfers?)";
  EXPECT_LE(rate, 1.1 * cap) << what;
}

TEST(UplinkBandwidth, FourConcurrentPartsShareOneCapAndAScheduleWindowChangesIt) {
  auto hll = start_emulator();
  if (!hll) return;
  S3Fixture f(*hll);  // starts unlimited: the caps below are set as a reload would
  EXPECT_EQ(f.engine.current_bandwidth_limit(), 0u);

  // 1) 2 MiB/s outside the schedule's only window (which is later today): 10 MiB in 1 MiB parts,
  // 4 in flight (per-transfer caps would give 8 MiB/s).
  f.engine.set_bandwidth(2 * kMiB, {window(120, 60, 64 * kMiB)});
  EXPECT_EQ(f.engine.current_bandwidth_limit(), 2 * kMiB);
  const std::string data = fe::test::make_bytes(10 * kMiB, 1);
  MultipartUpload a(f, "bw/capped/import/Observation.ndjson", data, 1 * kMiB);
  auto ra = a.run(4);
  expect_rate_near(ra, 2.0 * kMiB, "cap 2 MiB/s, 4 parts in flight");
  EXPECT_GE(ra.max_in_flight, 3u) << "the parts did not run concurrently";
  auto stored = hll->object(fe::test::kBucket, "bw/capped/import/Observation.ndjson");
  ASSERT_TRUE(stored);
  EXPECT_TRUE(*stored == data) << "object differs from what was uploaded";

  // 2) Same base, but a window around now (business hours, say) lowers it to 1 MiB/s.
  f.engine.set_bandwidth(2 * kMiB, {window(-10, 40, 1 * kMiB)});
  EXPECT_EQ(f.engine.current_bandwidth_limit(), 1 * kMiB);
  const std::string data2 = fe::test::make_bytes(4 * kMiB, 2);
  MultipartUpload b(f, "bw/window/import/Observation.ndjson", data2, 1 * kMiB);
  expect_rate_near(b.run(4), 1.0 * kMiB, "window 1 MiB/s (base 2 MiB/s)");

  // 3) A window that wraps midnight (from > to, "22:00-06:00" style) and covers now.
  const int now = minute_now();
  const BandwidthWindow wrap = now >= 720 ? BandwidthWindow{now - 10, now - 700, 3 * kMiB}
                                          : BandwidthWindow{now + 700, now + 10, 3 * kMiB};
  ASSERT_GT(wrap.from_minute, wrap.to_minute);
  f.engine.set_bandwidth(2 * kMiB, {wrap});
  EXPECT_EQ(f.engine.current_bandwidth_limit(), 3 * kMiB);
  f.engine.set_bandwidth(0, {});
  EXPECT_EQ(f.engine.current_bandwidth_limit(), 0u);
}

TEST(UplinkBandwidth, ReloadWhileTransfersAreInFlightSwitchesTheRate) {
  auto hll = start_emulator();
  if (!hll) return;
  HttpOptions http;
  http.max_send_bytes_per_second = kMiB / 2;
  S3Fixture f(*hll, http);
  const std::string data = fe::test::make_bytes(5 * kMiB, 3);
  MultipartUpload up(f, "bw/reload/import/Patient.ndjson", data, 1 * kMiB);
  // After 1 MiB at 0.5 MiB/s the cap goes to 8 MiB/s for the remaining 4 MiB: at best
  // 1/0.5 + 4/8 = 2.5 s, while all at the old cap takes 10 s. The switch is posted, as a SIGHUP
  // handler runs on the event loop.
  std::uint64_t switched_at = 0;
  auto r = up.run(3, [&](std::uint64_t sent) {
    if (switched_at == 0 && sent >= 1 * kMiB) {
      switched_at = sent;
      boost::asio::post(f.io, [&] { f.engine.set_bandwidth(8 * kMiB, {}); });
    }
  });
  ASSERT_FALSE(r.error) << *r.error;
  ASSERT_GT(switched_at, 0u);
  const double fastest = static_cast<double>(switched_at) / (kMiB / 2) +
                         static_cast<double>(r.bytes - switched_at) / (8 * kMiB);
  const double unchanged = static_cast<double>(r.bytes) / (kMiB / 2);
  std::printf(
      "[ rate     ] reload 0.5 -> 8 MiB/s after %.2f MiB: %.2f s; fastest the caps allow %.2f s, "
      "all at the old cap %.2f s\n",
      static_cast<double>(switched_at) / kMiB, r.seconds, fastest, unchanged);
  EXPECT_GE(r.seconds, 0.9 * fastest) << "faster than the caps allow";
  EXPECT_LE(r.seconds, 0.6 * unchanged) << "the new cap did not apply to the transfers in flight";
  EXPECT_EQ(f.engine.current_bandwidth_limit(), 8 * kMiB);
}

TEST(UplinkBandwidth, ScheduleWindowsIncludingMidnightWrap) {
  const std::vector<BandwidthWindow> s = {
      {22 * 60, 6 * 60, 0},              // 22:00-06:00 unlimited (wraps midnight)
      {12 * 60, 13 * 60, 1 * kMiB},      // lunch: 1 MiB/s
      {12 * 60 + 30, 14 * 60, 3 * kMiB}  // overlaps lunch: the first listed window wins
  };
  const std::uint64_t base = 2 * kMiB;
  EXPECT_EQ(bandwidth_limit_at(base, s, 22 * 60), 0u);
  EXPECT_EQ(bandwidth_limit_at(base, s, 23 * 60 + 59), 0u);
  EXPECT_EQ(bandwidth_limit_at(base, s, 0), 0u);
  EXPECT_EQ(bandwidth_limit_at(base, s, 5 * 60 + 59), 0u);
  EXPECT_EQ(bandwidth_limit_at(base, s, 6 * 60), base);  // `to` is exclusive
  EXPECT_EQ(bandwidth_limit_at(base, s, 21 * 60 + 59), base);
  EXPECT_EQ(bandwidth_limit_at(base, s, 12 * 60 + 45), 1 * kMiB);
  EXPECT_EQ(bandwidth_limit_at(base, s, 13 * 60 + 30), 3 * kMiB);
  EXPECT_EQ(bandwidth_limit_at(base, {{9 * 60, 9 * 60, 5}}, 3), 5u);  // from == to: all day
  EXPECT_EQ(bandwidth_limit_at(base, {}, 3), base);
}

}  // namespace
