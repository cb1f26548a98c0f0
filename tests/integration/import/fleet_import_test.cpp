// The fleet wired into the importer (issue 16 item 3, docs/import.md "Fleet") against
// healthlake-local: several gateways (each its own journal, spool and importer, as separate
// daemons have) in one fleet share one import job for their exports; a holder stopped after it
// claimed a batch and before Start leaves the batch to the next holder, which starts it exactly
// once; a member that was down while its batch ran reads the outcome later and ends imported.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <fstream>
#include <iterator>
#include <map>
#include <set>

#include "aws/crc32c.hpp"
#include "aws/healthlake.hpp"
#include "aws/s3.hpp"
#include "common/export_events.hpp"
#include "fleet/batch_record.hpp"
#include "fleet/lease.hpp"
#include "fleet/manifest.hpp"
#include "fleet/s3_cas.hpp"
#include "healthlake_local.hpp"
#include "import/importer.hpp"
#include "import_env.hpp"
#include "journal/journal.hpp"
#include "log_capture.hpp"
#include "temp_dir.hpp"

namespace {

using namespace fe;
using fe::test::HealthLakeLocal;
using fe::test::HealthLakeLocalOptions;
using journal::ExportState;

using fe::test::kLanding;
using fe::test::kResults;
using fe::test::kRole;

std::string patients(const std::string& tag, int n) {
  std::string s;
  for (int i = 0; i < n; ++i)
    s += "{\"resourceType\":\"Patient\",\"id\":\"" + tag + "-" + std::to_string(i) +
         "\",\"gender\":\"female\"}\n";
  return s;
}

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// One gateway: its own journal, spool and importer (what one `fhir-edge run` has).
struct Gateway {
  std::string id;
  std::filesystem::path dir;
  std::unique_ptr<journal::Journal> journal;
  ExportEvents events;
  std::unique_ptr<import::Importer> importer;
  std::vector<int64_t> exports;
};

struct Fleet : fe::test::ImportAws {
  explicit Fleet(int gateways, HealthLakeLocalOptions hopt = {}) : ImportAws(std::move(hopt)) {
    root = fe::test::make_temp_dir("fe-fleet");
    for (int i = 0; i < gateways; ++i) {
      auto g = std::make_unique<Gateway>();
      g->id = "gw-" + std::to_string(i);
      g->dir = root / g->id;
      std::filesystem::create_directories(g->dir / "spool");
      g->journal =
          std::make_unique<journal::Journal>(journal::Journal::open(g->dir / "journal.db"));
      gw.push_back(std::move(g));
    }
  }
  ~Fleet() {
    for (auto& g : gw) g->importer.reset();
    for (auto& g : gw) g->journal.reset();
    std::error_code ec;
    std::filesystem::remove_all(root, ec);
  }

  import::ImporterOptions options(const Gateway& g) {
    import::ImporterOptions o = importer_options("exports/" + g.id, g.dir / "spool");
  o.events = const_cast<ExportEvents*>(&g.events);
  o.batch.max_exports = max_exports;
  o.batch.max_wait = max_wait;
  o.fleet.name = "north";
  o.fleet.gateway_id = g.id;
  o.fleet.bucket = kLanding;
  o.fleet.lease_ttl = lease_ttl;
  o.fleet.lease_skew_margin = lease_skew_margin;
  o.fleet.poll_interval = std::chrono::milliseconds(100);
  return o;
} void start(Gateway& g) {
  g.importer = std::make_unique<import::Importer>(io, *g.journal, *hl, *s3, options(g));
  g.importer->resume();
}

// An export in `uploaded` on gateway g, its import objects in S3 and their keys journaled as
// the upload stage does.
int64_t uploaded_export(Gateway& g, const std::string& name, int resources) {
  std::map<std::string, std::string> files = {{"Patient", patients(g.id + name, resources)},
                                              {"Patient2", patients(g.id + name + "b", 2)}};
  auto row = fe::test::journal_uploaded_export(*g.journal, name, files);
  auto rows = g.journal->files(row.id);
  size_t index = 0;
  for (const auto& [f, body] : files) {
    std::string key = "exports/" + g.id + "/" + row.name + "/import/" + f + ".ndjson";
    g.journal->set_file_upload(rows.at(index++).id, journal::PartKind::import, key, "");
    put(key, body);
  }
  g.exports.push_back(row.id);
  return row.id;
}

// Gateway 0 (two exports, 4 resources each) holds the lease; gateway 1 (two more) starts
// after it; gateway 0 claims one batch of all four. Returns right after that claim.
void holder_claims_four_exports_of_two_gateways() {
  max_exports = 4;
  auto& a = *gw.at(0);
  auto& b = *gw.at(1);
  for (int i = 0; i < 2; ++i) uploaded_export(a, "nightly" + std::to_string(i), 4);
  for (int i = 0; i < 2; ++i) uploaded_export(b, "daily" + std::to_string(i), 4);
  start(a);
  run_until([&] { return a.importer->fleet_holder()->holding(); });
  start(b);
  run_until([&] { return a.importer->fleet_holder()->stats().batches_claimed == 1; });
}

bool all_final(const Gateway& g) {
  for (auto id : g.exports) {
    auto s = g.journal->get_export(id).state;
    if (s != ExportState::imported && s != ExportState::import_failed && s != ExportState::parked)
      return false;
  }
  return true;
}
// lease.json as it is now, and its ETag.
std::pair<fleet::LeaseRecord, std::string> lease_now() {
  std::optional<fleet::CasRead> r;
  fleet::cas_read(*s3, kLanding, fleet::lease_key("", "north"),
                  [&](fleet::CasRead x) { r = std::move(x); });
  run_until([&] { return r.has_value(); });
  EXPECT_FALSE(r->error || r->absent);
  auto rec = fleet::LeaseRecord::parse(r->body);
  EXPECT_TRUE(rec) << r->body;
  return {rec.value_or(fleet::LeaseRecord{}), r->etag};
}
// The importer's clean stop (the daemon's SIGTERM path), run to its end.
void stop_cleanly(Gateway& g) {
  bool stopped = false;
  g.importer->stop([&] { stopped = true; });
  run_until([&] { return stopped; });
  g.importer.reset();
}
fleet::ManifestDoc ready() {
  std::optional<fleet::ManifestResult> r;
  fleet::Manifest m(*s3, io, kLanding, fleet::manifest_key("", "north"));
  m.read([&](fleet::ManifestResult x) { r = std::move(x); });
  run_until([&] { return r.has_value(); });
  return r->doc;
}

// Every export of every gateway imported, with its own report, each resource once.
void expect_each_imported_once(int resources) {
  size_t exports = 0;
  for (const auto& g : gw)
    for (auto id : g->exports) {
      ++exports;
      auto e = g->journal->get_export(id);
      ASSERT_EQ(e.state, ExportState::imported)
          << g->id << "/" << e.name << ": " << e.parked_reason << e.last_error;
      auto report = slurp(g->dir / "spool" / e.name / "import-report.json");
      EXPECT_NE(report.find("\"resources_imported\":" + std::to_string(resources + 2)),
                std::string::npos)
          << g->id << "/" << e.name << ": " << report;
      EXPECT_NE(report.find("Patient.ndjson\":{\"imported\":" + std::to_string(resources)),
                std::string::npos)
          << report;
    }
  auto res = hll->imported_resources();
  EXPECT_EQ(res.size(), exports * static_cast<size_t>(resources + 2));
  for (const auto& [k, n] : res) EXPECT_EQ(n, 1u) << k << " imported " << n << " times";
}

// A batch is due when it holds every export of the test (full), whenever the gateways' appends
// land (they race for ready.json); the wait is only a fallback.
std::size_t max_exports = 100;
std::chrono::milliseconds max_wait{std::chrono::seconds(60)};
std::chrono::milliseconds lease_ttl{std::chrono::seconds(2)};
std::chrono::milliseconds lease_skew_margin{std::chrono::milliseconds(500)};
std::filesystem::path root;
std::vector<std::unique_ptr<Gateway>> gw;
};  // namespace

}  // namespace

// Three gateways, two exports each: the lease holder starts ONE job for all six (the oldest
// waits for partners), and every gateway ends its own exports imported from it.
TEST(ImportFleet, ExportsOfSeveralGatewaysShareOneJob) {
  Fleet f(3);
  f.max_exports = 6;
  for (auto& g : f.gw)
    for (int i = 0; i < 2; ++i) f.uploaded_export(*g, "nightly" + std::to_string(i), 5);
  std::map<std::string, int> imported_events;
  for (auto& g : f.gw)
    g->events.on(ExportEvent::imported, [&, id = g->id](int64_t) { ++imported_events[id]; });
  for (auto& g : f.gw) f.start(*g);
  f.run_until([&] {
    for (auto& g : f.gw)
      if (!f.all_final(*g)) return false;
    return true;
  });
  f.expect_each_imported_once(5);
  EXPECT_EQ(f.started_job_ids().size(), 1u);  // six exports of three gateways, one job
  int holders = 0;
  for (auto& g : f.gw) {
    // No gateway started a job of its own.
    EXPECT_EQ(g->importer->stats().starts_sent, 0u);
    EXPECT_EQ(g->importer->stats().fleet_appended, 2u);
    EXPECT_EQ(g->importer->stats().fleet_reconciled, 2u);
    EXPECT_EQ(imported_events[g->id], 2);  // after_upload runs per export, on its gateway
    const auto& hs = g->importer->fleet_holder()->stats();
    if (hs.starts_sent > 0) {
      ++holders;
      EXPECT_EQ(hs.batches_claimed, 1u);
      EXPECT_EQ(hs.copies, 12u);  // 6 exports x 2 files, server-side
    }
    // Each member's job row is the batch's: token = batch id, the job HealthLake made.
    auto row = g->journal->fleet_export(g->exports[0]);
    ASSERT_TRUE(row);
    auto j = g->journal->import_job(g->exports[0]);
    EXPECT_EQ(j->client_token, row->batch_id);
    EXPECT_EQ(*f.started_job_ids().begin(), j->job_id);
  }
  EXPECT_EQ(holders, 1);
  EXPECT_TRUE(f.ready().entries.empty());  // the batch left ready.json after its outcome
}

// The holder claims a batch and is stopped (its daemon killed) before Start: the claim is in
// ready.json, so the next holder (once the lease lapsed) resumes that batch and starts it exactly
// once, with the batch's one ClientToken. The stopped gateway comes back after the batch ran and
// its entries left ready.json: it finds its batch through its member pointer, reads the outcome
// and ends its exports imported (a member offline while its batch ran).
TEST(ImportFleet, HolderStoppedAfterClaimTheNextHolderStartsTheBatchOnce) {
  Fleet f(2);
  f.holder_claims_four_exports_of_two_gateways();
  auto& a = *f.gw[0];
  auto& b = *f.gw[1];
  a.importer.reset();  // "kill": right after the claim, before the record, copies and Start
  EXPECT_TRUE(f.start_tokens().empty());
  auto claimed = f.ready();
  ASSERT_EQ(claimed.entries.size(), 4u);
  std::string batch = claimed.entries.front().batch;
  ASSERT_FALSE(batch.empty());
  for (const auto& e : claimed.entries) EXPECT_EQ(e.batch, batch);

  // b takes the lease over once a's lapsed, resumes the claimed batch and runs it.
  f.run_until([&] { return f.all_final(b); });
  const auto& hs = b.importer->fleet_holder()->stats();
  EXPECT_EQ(hs.batches_claimed, 0u);
  EXPECT_GE(hs.batches_resumed, 1u);
  f.run_until([&] { return b.importer->fleet_holder()->stats().batches_done == 1; });
  EXPECT_TRUE(f.ready().entries.empty());
  for (auto id : a.exports) EXPECT_EQ(a.journal->get_export(id).state, ExportState::uploaded);

  // a comes back a "week" later: its entries are gone; its pointers lead it to the outcome.
  f.start(a);
  f.run_until([&] { return f.all_final(a); });
  f.expect_each_imported_once(4);
  EXPECT_EQ(f.started_job_ids().size(), 1u);
  for (const auto& t : f.start_tokens()) EXPECT_EQ(t, batch);  // only ever the batch's token
  for (auto id : a.exports) EXPECT_EQ(a.journal->fleet_export(id)->batch_id, batch);
  EXPECT_EQ(a.importer->stats().starts_sent, 0u);
  EXPECT_EQ(a.importer->stats().fleet_appended, 0u);  // listed once, before the "kill"
}

// A member (not the holder) lists its exports and goes down; the holder runs the batch, writes
// the outcome and removes the entries meanwhile. When the member comes back it follows its
// pointers to the batch record, reconciles its exports from the job and ends them imported,
// without appending them again or starting anything.
TEST(ImportFleet, MemberOfflineWhileItsBatchRanEndsImportedLater) {
  Fleet f(2);
  f.max_exports = 3;
  auto& holder = *f.gw[0];
  auto& member = *f.gw[1];
  f.uploaded_export(holder, "nightly0", 3);
  for (int i = 0; i < 2; ++i) f.uploaded_export(member, "daily" + std::to_string(i), 3);
  f.start(holder);
  f.run_until([&] { return holder.importer->fleet_holder()->holding(); });
  f.start(member);
  f.run_until([&] { return member.importer->stats().fleet_appended == 2; });
  member.importer.reset();  // down for a "week"
  f.run_until([&] { return holder.importer->fleet_holder()->stats().batches_done == 1; });
  f.run_until([&] { return f.all_final(holder); });  // its own member side reconciles
  EXPECT_TRUE(f.ready().entries.empty());
  for (auto id : member.exports)
    EXPECT_EQ(member.journal->get_export(id).state, ExportState::uploaded);

  f.start(member);
  f.run_until([&] { return f.all_final(member); });
  f.expect_each_imported_once(3);
  EXPECT_EQ(f.started_job_ids().size(), 1u);
  EXPECT_EQ(member.importer->stats().fleet_appended, 0u);
  EXPECT_EQ(member.importer->stats().fleet_reconciled, 2u);
  EXPECT_EQ(member.importer->fleet_holder()->stats().starts_sent, 0u);
}

// A gateway lists an export, crashes before its journal row, and a whole batch runs with that
// export before its next poll: the gateway lists it again. The holder finds the export's member
// pointer (written before the first batch's entries left ready.json), drops the second listing
// and starts no second job: the export is imported once.
TEST(ImportFleet, ListingAgainAfterItsBatchRanIsDroppedNotImportedTwice) {
  Fleet f(1);
  f.max_exports = 1;
  f.max_wait = std::chrono::milliseconds(0);
  auto& g = *f.gw[0];
  auto id = f.uploaded_export(g, "nightly0", 3);
  f.start(g);
  f.run_until([&] { return f.all_final(g); });
  f.run_until([&] { return g.importer->fleet_holder()->stats().batches_done == 1; });
  ASSERT_EQ(f.started_job_ids().size(), 1u);

  // The second listing, as the gateway's append would write it.
  fleet::ManifestEntry again;
  again.gateway = g.id;
  again.export_id = g.journal->get_export(id).name;
  again.s3_uri =
      "s3://" + std::string(kLanding) + "/exports/" + g.id + "/" + again.export_id + "/import/";
  again.datastore_id = f.hll->datastore();
  again.validation_level = "structure-only";
  again.role_arn = kRole;
  again.output_s3_uri = std::string("s3://") + kResults + "/imports";
  again.files = 2;
  again.ready_at_ms = 1;
  std::optional<fleet::ManifestResult> r;
  fleet::Manifest m(*f.s3, f.io, kLanding, fleet::manifest_key("", "north"));
  m.append(again, [&](fleet::ManifestResult x) { r = std::move(x); });
  f.run_until([&] { return r.has_value(); });
  ASSERT_TRUE(r->written);

  f.run_until([&] { return g.importer->fleet_holder()->stats().relistings_dropped == 1; });
  f.run_until([&] { return f.ready().entries.empty(); });
  EXPECT_EQ(g.importer->fleet_holder()->stats().batches_claimed, 1u);
  EXPECT_EQ(f.started_job_ids().size(), 1u);
  f.expect_each_imported_once(3);
}

// The holder is stopped cleanly (SIGTERM) right after its claim: it gives the lease up, and the
// other gateway takes it at once and drives the claimed batch to one job. lease_ttl is 10
// minutes, so without the release the other gateway could not take the lease before the test's
// deadline: this passes only if the release happened.
TEST(ImportFleet, CleanStopReleasesTheLeaseAndTheNextHolderTakesItAtOnce) {
  Fleet f(2);
  f.lease_ttl = std::chrono::minutes(10);
  f.lease_skew_margin = std::chrono::seconds(30);
  f.holder_claims_four_exports_of_two_gateways();
  auto& a = *f.gw[0];
  auto& b = *f.gw[1];
  auto [held, held_etag] = f.lease_now();
  EXPECT_EQ(held.holder, a.id);
  EXPECT_FALSE(held.released);

  // a stops cleanly mid-batch (its record, copies and Start not done): the lease is released,
  // by a's own conditional write (same holder and epoch, a new version).
  f.stop_cleanly(a);
  auto [released, released_etag] = f.lease_now();
  EXPECT_EQ(released.holder, a.id);
  EXPECT_EQ(released.epoch, held.epoch);
  ASSERT_TRUE(released.released);  // else b could not take it before the deadline
  EXPECT_NE(released_etag, held_etag);

  // b takes it over (epoch + 1), resumes the claimed batch and runs it: one job, its token.
  f.run_until([&] { return b.importer->fleet_holder()->holding(); });
  auto [taken, taken_etag] = f.lease_now();
  EXPECT_EQ(taken.holder, b.id);
  EXPECT_EQ(taken.epoch, held.epoch + 1);
  EXPECT_FALSE(taken.released);
  f.run_until([&] { return f.all_final(b); });
  f.run_until([&] { return b.importer->fleet_holder()->stats().batches_done == 1; });
  EXPECT_EQ(b.importer->fleet_holder()->stats().batches_claimed, 0u);
  EXPECT_EQ(b.importer->fleet_holder()->stats().batches_resumed, 1u);
  f.start(a);
  f.run_until([&] { return f.all_final(a); });
  f.expect_each_imported_once(4);
  EXPECT_EQ(f.started_job_ids().size(), 1u);
  auto tokens = f.start_tokens();
  ASSERT_FALSE(tokens.empty());
  for (const auto& t : tokens) EXPECT_EQ(t, tokens.front());
}

// The holder's lease was taken over behind its back (it was cut off past expiry, here: a
// gateway whose clock says the lease expired) and the holder is then stopped cleanly: its
// release is a conditional write on the ETag it last wrote, which S3 refuses. The other
// gateway's lease stays as it is, and the refusal is logged, not an error at stop.
TEST(ImportFleet, CleanStopDoesNotOverwriteALeaseAnotherGatewayTook) {
  Fleet f(1);
  f.lease_ttl = std::chrono::minutes(10);
  f.lease_skew_margin = std::chrono::seconds(30);
  auto& a = *f.gw[0];
  f.uploaded_export(a, "nightly0", 3);
  f.start(a);
  f.run_until([&] { return a.importer->fleet_holder()->holding(); });

  fleet::LeaseOptions lo;
  lo.bucket = kLanding;
  lo.key = fleet::lease_key("", "north");
  lo.holder = "gw-other";
  lo.ttl = f.lease_ttl;
  lo.skew_margin = f.lease_skew_margin;
  lo.wall_clock = [] { return std::chrono::system_clock::now() + std::chrono::hours(1); };
  fleet::Lease other(*f.s3, lo);
  std::optional<fleet::LeaseState> st;
  other.acquire([&](fleet::LeaseState s) { st = std::move(s); });
  f.run_until([&] { return st.has_value(); });
  ASSERT_EQ(st->status, fleet::LeaseStatus::held);
  auto [before, before_etag] = f.lease_now();
  ASSERT_EQ(before.holder, "gw-other");
  EXPECT_TRUE(a.importer->fleet_holder()->holding());  // a has not noticed (renews every ttl/3)

  fe::test::LogCapture log(fe::log::Level::info);
  f.stop_cleanly(a);
  std::string text = log.restore();
  auto [after, after_etag] = f.lease_now();
  EXPECT_EQ(after_etag, before_etag);
  EXPECT_EQ(after.holder, "gw-other");
  EXPECT_EQ(after.token, before.token);
  EXPECT_FALSE(after.released);
  EXPECT_NE(text.find("fleet lease not released: gw-other took it over meanwhile"),
            std::string::npos)
      << text;
  EXPECT_EQ(text.find("error:"), std::string::npos) << text;
}
