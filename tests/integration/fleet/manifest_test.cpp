// fleet::Manifest, the fleet's shared list of ready exports, against healthlake-local's S3
// conditional writes: gateways append at once and every entry lands exactly once; appends are
// idempotent; the holder removes what it batched; a lost response does not duplicate an entry.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <memory>
#include <set>
#include <vector>

#include "aws/s3.hpp"
#include "fleet/manifest.hpp"
#include "healthlake_local.hpp"

namespace {

using namespace fe::aws;
using namespace fe::fleet;
using fe::test::HealthLakeLocal;
using fe::test::HealthLakeLocalOptions;

constexpr const char* kBucket = "fhir-landing";

struct Gateway {
  Gateway(boost::asio::io_context& io, const HealthLakeLocal& hll)
      : engine(io),
        caller(engine, config(hll), static_credentials(creds(hll))),
        s3(caller),
        manifest(s3, io, kBucket, manifest_key("exports", "north")) {}
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
  Manifest manifest;
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

ManifestEntry entry(const std::string& gw, int n) {
  ManifestEntry e;
  e.gateway = gw;
  e.export_id = "export-" + std::to_string(n);
  e.s3_uri = "s3://fhir-landing/exports/" + gw + "/" + e.export_id + "/import/";
  e.datastore_id = "0123456789abcdef0123456789abcdef";
  e.files = 3;
  e.bytes = 1000 + n;
  e.ready_at_ms = 1767225600000 + n;
  return e;
}

class ManifestTest : public ::testing::Test {
 protected:
  void start(std::string faults = {}) {
    HealthLakeLocalOptions o;
    o.buckets = {kBucket};
    o.faults = std::move(faults);
    hll_ = std::make_unique<HealthLakeLocal>(o);
  }
  Gateway& gateway() {
    gws_.push_back(std::make_unique<Gateway>(io_, *hll_));
    return *gws_.back();
  }
  ManifestResult call(std::function<void(Manifest::Done)> f) {
    std::optional<ManifestResult> out;
    f([&](ManifestResult r) { out = std::move(r); });
    run_until(io_, [&] { return out.has_value(); });
    return out.value_or(ManifestResult{});
  }
  ManifestDoc stored() {
    auto body = hll_->object(kBucket, manifest_key("exports", "north"));
    EXPECT_TRUE(body.has_value());
    return ManifestDoc::parse(body.value_or("")).value_or(ManifestDoc{});
  }
  boost::asio::io_context io_;
  std::unique_ptr<HealthLakeLocal> hll_;
  std::vector<std::unique_ptr<Gateway>> gws_;
};

TEST(ManifestDoc, RoundTrips) {
  ManifestDoc d;
  d.version = 4;
  d.entries = {entry("gw-1", 1), entry("gw-2", 2)};
  auto back = ManifestDoc::parse(d.to_json());
  ASSERT_TRUE(back.has_value());
  EXPECT_EQ(back->version, 4u);
  ASSERT_EQ(back->entries.size(), 2u);
  EXPECT_EQ(back->entries[1].s3_uri, d.entries[1].s3_uri);
  EXPECT_EQ(back->entries[1].bytes, 1002u);
  EXPECT_EQ(back->entries[1].ready_at_ms, 1767225600002);
  EXPECT_FALSE(ManifestDoc::parse("{\"entries\":[]}").has_value());
  EXPECT_EQ(manifest_key("exports/", "north"), "exports/fleet/north/ready.json");
}

// Six gateways append four exports each, all at once: read-modify-write with If-Match and retry
// on 412 lands every entry exactly once.
TEST_F(ManifestTest, ConcurrentAppendsLandExactlyOnce) {
  start();
  constexpr int kGateways = 6, kEach = 4;
  std::vector<Gateway*> gs;
  for (int g = 0; g < kGateways; ++g) gs.push_back(&gateway());
  int finished = 0, refused_retries = 0;
  std::vector<std::string> errors;
  // Each gateway appends its exports one after another; the gateways run concurrently.
  std::function<void(int, int)> next = [&](int g, int n) {
    if (n == kEach) return void(++finished);
    gs[g]->manifest.append(entry("gw-" + std::to_string(g), n), [&, g, n](ManifestResult r) {
      if (!r.written) errors.push_back(r.error ? r.error->describe() : "not written");
      refused_retries += r.attempts - 1;
      next(g, n + 1);
    });
  };
  for (int g = 0; g < kGateways; ++g) next(g, 0);
  run_until(io_, [&] { return finished == kGateways; });
  EXPECT_TRUE(errors.empty()) << errors.front();
  ManifestDoc d = stored();
  std::set<std::pair<std::string, std::string>> seen;
  for (const auto& e : d.entries) EXPECT_TRUE(seen.insert({e.gateway, e.export_id}).second);
  EXPECT_EQ(seen.size(), static_cast<size_t>(kGateways * kEach));
  EXPECT_EQ(d.version, static_cast<uint64_t>(kGateways * kEach)) << "one version per append";
  EXPECT_GT(refused_retries, 0) << "the gateways really raced (412s were retried)";
}

TEST_F(ManifestTest, AppendIsIdempotentAndRemoveTakesABatch) {
  start();
  Gateway& a = gateway();
  ASSERT_TRUE(call([&](auto d) { a.manifest.append(entry("gw-a", 1), d); }).written);
  ASSERT_TRUE(call([&](auto d) { a.manifest.append(entry("gw-a", 2), d); }).written);
  ManifestResult again = call([&](auto d) { a.manifest.append(entry("gw-a", 1), d); });
  EXPECT_FALSE(again.written) << "already listed: nothing written";
  EXPECT_FALSE(again.error.has_value());
  EXPECT_EQ(stored().entries.size(), 2u);
  EXPECT_EQ(stored().version, 2u);

  ManifestResult rm = call([&](auto d) { a.manifest.remove({{"gw-a", "export-1"}}, d); });
  ASSERT_TRUE(rm.written);
  ASSERT_EQ(stored().entries.size(), 1u);
  EXPECT_EQ(stored().entries[0].export_id, "export-2");
  ManifestResult read = call([&](auto d) { a.manifest.read(d); });
  EXPECT_EQ(read.doc.version, 3u);
}

// The first append's response is lost after S3 stored it; the client retries the create, S3
// refuses (the key exists now), the manifest re-reads, finds the entry and writes nothing more.
TEST_F(ManifestTest, LostResponseDoesNotDuplicate) {
  start("PutObject:drop-after=@1");
  Gateway& a = gateway();
  ManifestResult r = call([&](auto d) { a.manifest.append(entry("gw-a", 1), d); });
  EXPECT_FALSE(r.error.has_value()) << r.error->describe();
  ManifestDoc d = stored();
  ASSERT_EQ(d.entries.size(), 1u);
  EXPECT_EQ(d.version, 1u);
}

}  // namespace
