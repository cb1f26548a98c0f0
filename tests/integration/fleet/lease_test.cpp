// fleet::Lease against healthlake-local's S3 conditional writes (If-None-Match / If-Match), over
// real loopback HTTP with the daemon's S3 client: contention, renewal, expiry and takeover,
// release, a holder that lost the lease, and a write whose response was lost.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <memory>
#include <set>
#include <vector>

#include "aws/s3.hpp"
#include "fleet/lease.hpp"
#include "fleet/s3_cas.hpp"
#include "healthlake_local.hpp"

namespace {

using namespace fe::aws;
using namespace fe::fleet;
using fe::test::HealthLakeLocal;
using fe::test::HealthLakeLocalOptions;
using namespace std::chrono_literals;

constexpr const char* kBucket = "fhir-landing";

// Each gateway gets its own client stack on one io_context (as separate daemons would have
// their own), and its own clock that a test can move forward.
struct Gateway {
  Gateway(boost::asio::io_context& io, const HealthLakeLocal& hll, const std::string& id,
          std::chrono::milliseconds ttl = 60s, std::chrono::milliseconds margin = 5s)
      : engine(io), caller(engine, config(hll), static_credentials(creds(hll))), s3(caller) {
    LeaseOptions o;
    o.bucket = kBucket;
    o.key = lease_key("exports", "north");
    o.holder = id;
    o.ttl = ttl;
    o.skew_margin = margin;
    o.wall_clock = [this] { return std::chrono::system_clock::now() + wall_offset; };
    o.steady_clock = [this] { return std::chrono::steady_clock::now() + steady_offset; };
    lease = std::make_unique<Lease>(s3, o);
  }
  static ClientConfig config(const HealthLakeLocal& hll) {
    ClientConfig cfg;
    cfg.region = hll.region();
    cfg.s3_endpoint = hll.endpoint();
    return cfg;
  }
  static Credentials creds(const HealthLakeLocal& hll) {
    Credentials c;
    c.access_key_id = hll.access_key();
    c.secret_access_key = hll.secret_key();
    return c;
  }
  HttpEngine engine;
  AwsCaller caller;
  S3Client s3;
  std::chrono::milliseconds wall_offset{0};
  std::chrono::milliseconds steady_offset{0};
  std::unique_ptr<Lease> lease;
};

template <class Pred>
void run_until(boost::asio::io_context& io, Pred done, int seconds = 120) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  io.restart();
  while (!done()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "test hung";
    io.run_one_for(std::chrono::milliseconds(50));
  }
}

class LeaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    HealthLakeLocalOptions o;
    o.buckets = {kBucket};
    o.faults = faults_;
    hll_ = std::make_unique<HealthLakeLocal>(o);
  }
  Gateway& gateway(const std::string& id, std::chrono::milliseconds ttl = 60s) {
    gws_.push_back(std::make_unique<Gateway>(io_, *hll_, id, ttl));
    return *gws_.back();
  }
  LeaseState call(Gateway& g, void (Lease::*op)(Lease::Done)) {
    std::optional<LeaseState> out;
    ((*g.lease).*op)([&](LeaseState s) { out = std::move(s); });
    run_until(io_, [&] { return out.has_value(); });
    return out.value_or(LeaseState{});
  }
  LeaseRecord stored() {
    auto body = hll_->object(kBucket, lease_key("exports", "north"));
    EXPECT_TRUE(body.has_value());
    return LeaseRecord::parse(body.value_or("")).value_or(LeaseRecord{});
  }
  std::string faults_;
  boost::asio::io_context io_;
  std::unique_ptr<HealthLakeLocal> hll_;
  std::vector<std::unique_ptr<Gateway>> gws_;
};

TEST(LeaseKey, UnderThePrefix) {
  EXPECT_EQ(lease_key("exports", "north"), "exports/fleet/north/lease.json");
  EXPECT_EQ(lease_key("exports/", "north"), "exports/fleet/north/lease.json");
  EXPECT_EQ(lease_key("", "north"), "fleet/north/lease.json");
}

TEST(LeaseRecord, RoundTripsAndRejectsGarbage) {
  LeaseRecord r;
  r.holder = "gw-1";
  r.epoch = 7;
  r.expires_at = fe::fleet::SysTime(std::chrono::milliseconds(1767225600123));
  r.ttl = 120s;
  r.token = "abc";
  auto back = LeaseRecord::parse(r.to_json());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->holder, "gw-1");
  EXPECT_EQ(back->epoch, 7u);
  EXPECT_EQ(back->expires_at, r.expires_at);
  EXPECT_EQ(back->token, "abc");
  EXPECT_FALSE(back->released);
  EXPECT_FALSE(LeaseRecord::parse("{\"holder\":1}").has_value());
  EXPECT_FALSE(LeaseRecord::parse("not json").has_value());
}

// N gateways ask at once: exactly one S3 write succeeds, the others are told who holds it.
TEST_F(LeaseTest, ContentionExactlyOneWins) {
  constexpr int kContenders = 8;
  std::vector<Gateway*> gs;
  for (int i = 0; i < kContenders; ++i) gs.push_back(&gateway("gw-" + std::to_string(i)));
  std::vector<std::optional<LeaseState>> out(kContenders);
  for (int i = 0; i < kContenders; ++i)
    gs[i]->lease->acquire([&out, i](LeaseState s) { out[i] = std::move(s); });
  run_until(io_, [&] {
    for (auto& o : out)
      if (!o) return false;
    return true;
  });
  int winners = 0;
  std::string winner;
  for (int i = 0; i < kContenders; ++i) {
    ASSERT_NE(out[i]->status, LeaseStatus::error) << out[i]->error->describe();
    if (out[i]->status == LeaseStatus::held) {
      ++winners;
      winner = "gw-" + std::to_string(i);
      EXPECT_TRUE(gs[i]->lease->held());
      EXPECT_EQ(gs[i]->lease->epoch(), 1u);
    } else {
      EXPECT_EQ(out[i]->status, LeaseStatus::taken);
      EXPECT_FALSE(gs[i]->lease->held());
    }
  }
  EXPECT_EQ(winners, 1);
  EXPECT_EQ(stored().holder, winner);
  for (int i = 0; i < kContenders; ++i)
    if (out[i]->status == LeaseStatus::taken) {
      EXPECT_EQ(out[i]->record.holder, winner);
    }
}

// Renewal moves the expiry and the ETag, keeps the epoch; contenders keep being refused.
TEST_F(LeaseTest, RenewalExtendsAndKeepsOthersOut) {
  Gateway& a = gateway("gw-a");
  Gateway& b = gateway("gw-b");
  ASSERT_EQ(call(a, &Lease::acquire).status, LeaseStatus::held);
  std::string etag = a.lease->etag();
  auto first_expiry = stored().expires_at;
  for (int i = 0; i < 3; ++i) {
    a.wall_offset += 20s;
    a.steady_offset += 20s;
    LeaseState s = call(a, &Lease::renew);
    ASSERT_EQ(s.status, LeaseStatus::held);
    EXPECT_TRUE(a.lease->held());
    EXPECT_NE(a.lease->etag(), etag);
    etag = a.lease->etag();
    EXPECT_EQ(a.lease->epoch(), 1u);
  }
  EXPECT_GT(stored().expires_at, first_expiry + 59s);
  // b's clock is where a's is: the renewed lease has not expired for b.
  b.wall_offset = a.wall_offset + 30s;
  LeaseState sb = call(b, &Lease::acquire);
  EXPECT_EQ(sb.status, LeaseStatus::taken);
  EXPECT_EQ(sb.record.holder, "gw-a");
}

// A holder that stops renewing: its own held() turns false at ttl - margin; a contender takes
// over only after expiry + margin, with epoch + 1; the old holder's renew is refused (412) and it
// learns it lost the lease.
TEST_F(LeaseTest, ExpiryTakeoverAndTheOldHolderLearnsOnRenew) {
  Gateway& a = gateway("gw-a");
  Gateway& b = gateway("gw-b");
  ASSERT_EQ(call(a, &Lease::acquire).status, LeaseStatus::held);
  a.steady_offset = 56s;  // ttl 60 s - margin 5 s has passed for a
  EXPECT_FALSE(a.lease->held()) << "the holder stops trusting its lease before it expires";

  b.wall_offset = 63s;  // expired, but within the skew margin: not yet
  EXPECT_EQ(call(b, &Lease::acquire).status, LeaseStatus::taken);
  b.wall_offset = 66s;
  LeaseState t = call(b, &Lease::acquire);
  ASSERT_EQ(t.status, LeaseStatus::held);
  EXPECT_EQ(b.lease->epoch(), 2u) << "the epoch is a fencing token";
  EXPECT_EQ(stored().holder, "gw-b");

  LeaseState lost = call(a, &Lease::renew);
  EXPECT_EQ(lost.status, LeaseStatus::lost);
  EXPECT_EQ(lost.record.holder, "gw-b");
  EXPECT_FALSE(a.lease->held());
  EXPECT_EQ(call(a, &Lease::renew).status, LeaseStatus::lost) << "and stays out";
  EXPECT_EQ(stored().holder, "gw-b") << "a's refused write changed nothing";
  // a asks again like any contender: taken.
  a.wall_offset = b.wall_offset;
  EXPECT_EQ(call(a, &Lease::acquire).status, LeaseStatus::taken);
}

// Release hands the lease on at once, without waiting for the expiry.
TEST_F(LeaseTest, ReleaseLetsTheNextTakeOverAtOnce) {
  Gateway& a = gateway("gw-a");
  Gateway& b = gateway("gw-b");
  ASSERT_EQ(call(a, &Lease::acquire).status, LeaseStatus::held);
  EXPECT_EQ(call(b, &Lease::acquire).status, LeaseStatus::taken);
  ASSERT_EQ(call(a, &Lease::release).status, LeaseStatus::released);
  EXPECT_FALSE(a.lease->held());
  EXPECT_TRUE(stored().released);
  ASSERT_EQ(call(b, &Lease::acquire).status, LeaseStatus::held);
  EXPECT_EQ(b.lease->epoch(), 2u);
  EXPECT_EQ(call(a, &Lease::renew).status, LeaseStatus::lost) << "nothing to renew";
}

// Two contenders see the same expired lease; both try If-Match on its ETag; one wins.
TEST_F(LeaseTest, RacingTakeoversOneWins) {
  Gateway& a = gateway("gw-a");
  ASSERT_EQ(call(a, &Lease::acquire).status, LeaseStatus::held);
  std::vector<Gateway*> cs = {&gateway("gw-b"), &gateway("gw-c"), &gateway("gw-d")};
  std::vector<std::optional<LeaseState>> out(cs.size());
  for (size_t i = 0; i < cs.size(); ++i) {
    cs[i]->wall_offset = 120s;
    cs[i]->lease->acquire([&out, i](LeaseState s) { out[i] = std::move(s); });
  }
  run_until(io_, [&] {
    for (auto& o : out)
      if (!o) return false;
    return true;
  });
  int held = 0;
  for (auto& o : out) {
    ASSERT_NE(o->status, LeaseStatus::error);
    held += o->status == LeaseStatus::held;
  }
  EXPECT_EQ(held, 1);
  EXPECT_EQ(stored().epoch, 2u);
}

// The emulator applies the first PutObject and cuts its response; the client retries, S3
// refuses the retry (the key exists now), and the lease settles by re-reading its own token.
class LeaseLostResponseTest : public LeaseTest {
 protected:
  LeaseLostResponseTest() {  // PutObject #1 (acquire) and #3 (renew) are applied and their
                             // responses cut; #2 and #4 are the
    // client's retries, which S3 refuses.
    faults_ = "PutObject:drop-after=@1,PutObject:drop-after=@3";
  }
};
TEST_F(LeaseLostResponseTest, RefusedRetryOfOwnWriteIsStillHeld) {
  Gateway& a = gateway("gw-a");
  LeaseState s = call(a, &Lease::acquire);
  ASSERT_EQ(s.status, LeaseStatus::held) << (s.error ? s.error->describe() : "");
  EXPECT_FALSE(a.lease->etag().empty());
  LeaseState r = call(a, &Lease::renew);
  ASSERT_EQ(r.status, LeaseStatus::held) << (r.error ? r.error->describe() : "");
  EXPECT_EQ(stored().token, r.record.token);
  EXPECT_EQ(call(a, &Lease::renew).status, LeaseStatus::held) << "the settled ETag is current";
}

// The CAS primitive itself: create-only, If-Match, and 404/412 reported as `conflict`.
TEST_F(LeaseTest, CasWriteReportsRefusedPreconditions) {
  Gateway& g = gateway("gw-a");
  auto write = [&](std::string body, Condition c, std::string etag) {
    std::optional<CasWrite> out;
    cas_write(g.s3, kBucket, "exports/fleet/x.json", std::move(body), c, etag,
              [&](CasWrite w) { out = std::move(w); });
    run_until(io_, [&] { return out.has_value(); });
    return *out;
  };
  CasWrite missing = write("{}", Condition::if_match, "\"00\"");
  EXPECT_TRUE(missing.conflict) << "404 NoSuchKey under If-Match";
  CasWrite made = write("{\"a\":1}", Condition::create_only, "");
  ASSERT_TRUE(made.written);
  EXPECT_TRUE(write("{}", Condition::create_only, "").conflict);
  EXPECT_TRUE(write("{}", Condition::if_match, "\"00\"").conflict);
  CasWrite swapped = write("{\"a\":2}", Condition::if_match, made.etag);
  EXPECT_TRUE(swapped.written);
  std::optional<CasRead> rd;
  cas_read(g.s3, kBucket, "exports/fleet/x.json", [&](CasRead r) { rd = std::move(r); });
  run_until(io_, [&] { return rd.has_value(); });
  EXPECT_EQ(rd->body, "{\"a\":2}");
  EXPECT_EQ(rd->etag, swapped.etag);
}

}  // namespace
