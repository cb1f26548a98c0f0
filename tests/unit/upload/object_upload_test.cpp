// The object upload state machine (daemon/upload/object_upload.hpp) with a fake S3 and an
// in-memory ledger: a first upload, resume with ListParts, settle by composite CRC32C,
// NoSuchUpload (restart the multipart), journal failures, a damaged spool frame, and a crash
// between any two steps (the machine rebuilt from the ledger converges to exactly one object).
#include "upload/object_upload.hpp"

#include <gtest/gtest.h>

#include <optional>

#include "fakes.hpp"

namespace fe::upload {
namespace {

using journal::PartKind;
using journal::PartState;
using testing::FakeBodies;
using testing::FakeStore;
using testing::MemLedger;

constexpr std::int64_t kFile = 7;
const std::string kKey = "exports/e1/import/Patient.ndjson";

struct World {
  FakeStore store;
  MemLedger ledger;
  FakeBodies bodies;
  PartScheduler scheduler{4};
  int journal_errors = 0, skipped = 0, settled = 0, sent = 0;

  // `n` parts of distinct content, planned in the ledger (pending, CRC32C from the "spool").
  explicit World(int n = 3) {
    LedgerObject o;
    for (int i = 1; i <= n; ++i) {
      std::string bytes = "{\"resourceType\":\"Patient\",\"id\":\"p" + std::to_string(i) + "\"}\n";
      bytes += std::string(static_cast<size_t>(10 + i), 'x');
      bodies.parts.push_back(bytes);
      journal::PartRow p;
      p.file_id = kFile;
      p.kind = PartKind::import;
      p.part_number = i;
      p.length = static_cast<std::int64_t>(bytes.size());
      p.crc32c = aws::crc32c_base64(aws::crc32c(bytes));
      o.parts.push_back(p);
    }
    ledger.rows[{kFile, PartKind::import}] = o;
  }
  std::string content() const {
    std::string s;
    for (const auto& b : bodies.parts) s += b;
    return s;
  }
  std::vector<journal::PartRow>& ledger_parts() { return ledger.at(kFile, PartKind::import).parts; }

  std::shared_ptr<ObjectUpload> machine() {
    ObjectSpec spec;
    spec.file_id = kFile;
    spec.kind = PartKind::import;
    spec.bucket = "landing";
    spec.key = kKey;
    Hooks h;
    h.journal_error = [this] { ++journal_errors; };
    h.part_skipped = [this] { ++skipped; };
    h.settled = [this] { ++settled; };
    h.part_sent = [this](std::uint64_t, bool) { ++sent; };
    return std::make_shared<ObjectUpload>(Ports{store, ledger, bodies, scheduler}, spec, h);
  }

  // Starts a machine built from the ledger and delivers every answer; the outcome.
  std::optional<Outcome> run() {
    std::optional<Outcome> out;
    machine()->start([&](const Outcome& o) { out = o; });
    store.deliver_all();
    return out;
  }

  // Puts the object in the store as a previous life of the daemon would have completed it.
  void store_completed_object() {
    std::vector<std::uint32_t> crcs;
    for (const auto& b : bodies.parts) crcs.push_back(aws::crc32c(b));
    store.objects[kKey] = {content(), aws::composite_crc32c(crcs), "\"mp-old\""};
  }

  void expect_one_right_object() {
    ASSERT_EQ(store.objects.size(), 1u);
    const auto& o = store.objects.at(kKey);
    EXPECT_EQ(o.bytes, content());
    EXPECT_EQ(o.checksum, ObjectUpload::expected_checksum(ledger_parts()));
    for (const auto& p : ledger_parts())
      EXPECT_EQ(p.state, PartState::uploaded) << "part " << p.part_number;
  }
};

TEST(ObjectUpload, FirstUploadCreatesSendsEveryPartAndCompletesWithCompositeChecksum) {
  World w(3);
  auto out = w.run();
  ASSERT_TRUE(out && out->ok()) << (out ? out->reason : "no outcome");
  w.expect_one_right_object();
  EXPECT_EQ(w.store.objects.at(kKey).checksum.substr(w.store.objects.at(kKey).checksum.size() - 2),
            "-3");
  EXPECT_EQ(w.store.count("CreateMultipartUpload"), 1);
  EXPECT_EQ(w.store.count("CompleteMultipartUpload"), 1);
  EXPECT_EQ(w.sent, 3);
  EXPECT_EQ(w.store.writes[kKey], 1);
  EXPECT_FALSE(w.ledger.at(kFile, PartKind::import).upload_id.empty());
  EXPECT_EQ(w.ledger.at(kFile, PartKind::import).key, kKey);
}

TEST(ObjectUpload, SinglePartIsOnePutObjectWithTheKeyJournaledFirst) {
  World w(1);
  auto out = w.run();
  ASSERT_TRUE(out && out->ok()) << out->reason;
  w.expect_one_right_object();
  EXPECT_EQ(w.store.log, std::vector<std::string>{"PutObject"});
  EXPECT_EQ(w.ledger.at(kFile, PartKind::import).key, kKey);
  EXPECT_TRUE(w.ledger.at(kFile, PartKind::import).upload_id.empty());
  // Done in the ledger: a second run sends nothing.
  w.store.log.clear();
  auto again = w.run();
  ASSERT_TRUE(again && again->ok());
  EXPECT_TRUE(w.store.log.empty());
  EXPECT_EQ(w.skipped, 1);
}

TEST(ObjectUpload, ResumeAfterRestartSendsOnlyThePartsListPartsLacks) {
  World w(4);
  // A previous life: upload created and journaled; part 1 recorded, part 2 reached S3 but the
  // daemon died before recording it (still `uploading`), parts 3-4 never sent.
  auto& row = w.ledger.at(kFile, PartKind::import);
  row.key = kKey;
  row.upload_id = "up-old";
  auto& up = w.store.uploads["up-old"];
  up.key = kKey;
  for (int n : {1, 2}) {
    const auto& b = w.bodies.parts[static_cast<size_t>(n - 1)];
    up.parts[n] = {b, "\"e" + std::to_string(n) + "\"", aws::crc32c_base64(aws::crc32c(b))};
  }
  w.ledger_parts()[0].state = PartState::uploaded;
  w.ledger_parts()[0].etag = "\"e1\"";
  w.ledger_parts()[1].state = PartState::uploading;

  auto out = w.run();
  ASSERT_TRUE(out && out->ok()) << out->reason;
  w.expect_one_right_object();
  EXPECT_EQ(w.store.count("ListParts"), 1);
  EXPECT_EQ(w.store.count("CreateMultipartUpload"), 0);
  EXPECT_EQ(w.store.count("UploadPart 1"), 0);
  EXPECT_EQ(w.store.count("UploadPart 2"), 0);  // adopted from the listing, never sent again
  EXPECT_EQ(w.store.count("UploadPart 3"), 1);
  EXPECT_EQ(w.store.count("UploadPart 4"), 1);
  EXPECT_EQ(w.ledger_parts()[1].etag, "\"e2\"");
  EXPECT_EQ(w.skipped, 2);
}

TEST(ObjectUpload, ServerWithoutListPartsResumesFromTheJournalAlone) {
  World w(2);
  auto& row = w.ledger.at(kFile, PartKind::import);
  row.key = kKey;
  row.upload_id = "up-old";
  w.store.uploads["up-old"].key = kKey;
  w.store.list_parts_not_implemented = true;
  auto out = w.run();
  ASSERT_TRUE(out && out->ok()) << out->reason;
  w.expect_one_right_object();
  EXPECT_EQ(w.store.count("UploadPart 1") + w.store.count("UploadPart 2"), 2);
}

TEST(ObjectUpload, CompletedBeforeTheCrashIsSettledByCompositeChecksum) {
  World w(3);
  // Every part recorded and the Complete went through, but the daemon died before the export
  // moved on: the upload id no longer exists.
  auto& row = w.ledger.at(kFile, PartKind::import);
  row.key = kKey;
  row.upload_id = "up-gone";
  for (auto& p : w.ledger_parts()) p.state = PartState::uploading;
  w.store_completed_object();

  auto out = w.run();
  ASSERT_TRUE(out && out->ok()) << out->reason;
  EXPECT_EQ(w.store.log, (std::vector<std::string>{"ListParts", "HeadObject"}));
  EXPECT_EQ(w.settled, 1);
  EXPECT_EQ(w.store.writes[kKey], 0);  // never written again
  w.expect_one_right_object();
}

TEST(ObjectUpload, ExistingObjectWithOtherContentParksAndIsNotOverwritten) {
  World w(3);
  w.store.objects[kKey] = {"something else", "AAAAAA==-3", "\"other\""};
  auto out = w.run();
  ASSERT_TRUE(out);
  EXPECT_TRUE(out->parked());
  EXPECT_NE(out->reason.find("already exists with other content"), std::string::npos);
  EXPECT_EQ(w.store.objects.at(kKey).bytes, "something else");
  EXPECT_EQ(w.store.count("HeadObject"), 1);  // Complete said 412, HeadObject compared
}

TEST(ObjectUpload, SinglePutOn412IsSettledWhenTheContentIsOurs) {
  World w(1);
  const auto& b = w.bodies.parts[0];
  w.store.objects[kKey] = {b, aws::crc32c_base64(aws::crc32c(b)), "\"x\""};
  auto out = w.run();
  ASSERT_TRUE(out && out->ok()) << out->reason;
  EXPECT_EQ(w.store.log, (std::vector<std::string>{"PutObject", "HeadObject"}));
  EXPECT_EQ(w.settled, 1);
  EXPECT_EQ(w.ledger_parts()[0].state, PartState::uploaded);
}

TEST(ObjectUpload, NoSuchUploadOnCompleteWithNoObjectRestartsTheMultipart) {
  World w(3);
  w.store.apply_on_delivery = true;
  auto m = w.machine();
  std::optional<Outcome> out;
  m->start([&](const Outcome& o) { out = o; });
  // Create and the three parts answered; the Complete is on its way when the upload is aborted
  // outside fhir-edge (a lifecycle rule, an operator).
  while (m->step() != Step::complete && w.store.deliver_one()) {
  }
  ASSERT_EQ(m->step(), Step::complete);
  const std::string first = w.ledger.at(kFile, PartKind::import).upload_id;
  w.store.uploads.erase(first);
  w.store.deliver_all();
  ASSERT_TRUE(out && out->ok()) << out->reason;
  EXPECT_EQ(w.store.count("HeadObject"), 1);  // settle first: no object, so start again
  EXPECT_EQ(w.ledger.restarts, 1);
  EXPECT_NE(w.ledger.at(kFile, PartKind::import).upload_id, first);
  EXPECT_EQ(w.store.count("CreateMultipartUpload"), 2);
  EXPECT_EQ(w.store.count("UploadPart 1"), 2);  // every part sent again to the new upload
  EXPECT_EQ(w.store.writes[kKey], 1);
  w.expect_one_right_object();
}

TEST(ObjectUpload, NoSuchUploadOnUploadPartSettlesThenStartsANewUpload) {
  World w(3);
  w.store.apply_on_delivery = true;
  auto m = w.machine();
  std::optional<Outcome> out;
  m->start([&](const Outcome& o) { out = o; });
  ASSERT_TRUE(w.store.deliver_one());  // CreateMultipartUpload
  ASSERT_EQ(m->step(), Step::send_parts);
  w.store.uploads.clear();  // aborted while the parts are in flight
  w.store.deliver_all();
  ASSERT_TRUE(out && out->ok()) << out->reason;
  EXPECT_EQ(w.ledger.restarts, 1);
  EXPECT_EQ(w.store.count("HeadObject"), 1);
  EXPECT_EQ(w.store.count("CreateMultipartUpload"), 2);
  w.expect_one_right_object();
}

TEST(ObjectUpload, AnUploadThatKeepsDisappearingIsRetriedLaterNotLooped) {
  World w(2);
  w.store.apply_on_delivery = true;
  auto m = w.machine();
  std::optional<Outcome> out;
  m->start([&](const Outcome& o) { out = o; });
  for (int i = 0; i < 100 && !out; ++i) {
    w.store.uploads.clear();  // every upload is aborted at once
    if (!w.store.deliver_one()) break;
  }
  ASSERT_TRUE(out);
  EXPECT_TRUE(out->retrying()) << out->reason;
  EXPECT_EQ(w.store.count("CreateMultipartUpload"), 2);  // one restart per run
  EXPECT_TRUE(w.store.objects.empty());
}

TEST(ObjectUpload, JournalWriteFailureEndsRetryLaterAndTheRetryReconciles) {
  World w(3);
  w.store.apply_on_delivery = true;
  auto m = w.machine();
  std::optional<Outcome> out;
  m->start([&](const Outcome& o) { out = o; });
  ASSERT_TRUE(w.store.deliver_one());  // Create, journaled
  w.ledger.fail_writes = true;         // the journal's disk fills up with the parts in flight
  w.store.deliver_all();
  ASSERT_TRUE(out);
  EXPECT_TRUE(out->retrying());
  EXPECT_NE(out->reason.find("journal write failed, will retry"), std::string::npos);
  EXPECT_GE(w.journal_errors, 1);
  // Room again: the retry adopts what S3 has (ListParts) and sends no part twice.
  w.ledger.fail_writes = false;
  w.store.log.clear();
  auto again = w.run();
  ASSERT_TRUE(again && again->ok()) << again->reason;
  for (int n = 1; n <= 3; ++n) EXPECT_EQ(w.store.count("UploadPart " + std::to_string(n)), 0);
  w.expect_one_right_object();
}

TEST(ObjectUpload, DamagedSpoolFrameParksAndSendsNothing) {
  World w(2);
  w.bodies.damaged = true;
  auto out = w.run();
  ASSERT_TRUE(out);
  EXPECT_TRUE(out->parked());
  EXPECT_NE(out->reason.find("spool file damaged"), std::string::npos);
  EXPECT_EQ(w.store.count("UploadPart 1") + w.store.count("UploadPart 2"), 0);
  EXPECT_EQ(w.scheduler.in_flight(), 0);
}

TEST(ObjectUpload, SchedulerBoundsPartsInFlightAcrossObjects) {
  World w(6);
  w.scheduler.set_limit(2);
  w.store.apply_on_delivery = true;
  auto m = w.machine();
  std::optional<Outcome> out;
  m->start([&](const Outcome& o) { out = o; });
  int max_seen = 0;
  while (w.store.deliver_one()) max_seen = std::max(max_seen, w.scheduler.in_flight());
  ASSERT_TRUE(out && out->ok());
  EXPECT_LE(max_seen, 2);
  EXPECT_EQ(w.scheduler.in_flight(), 0);
  w.expect_one_right_object();
}

// Issue 13 item 5: a background job (an archive part) runs only when no foreground job (an import
// part) waits, whatever order they were queued in; FIFO within each class; the limit holds.
TEST(PartScheduler, ForegroundJobsRunBeforeQueuedBackgroundJobs) {
  PartScheduler s(1);
  std::vector<std::string> ran;
  auto job = [&](std::string name) {
    return [&ran, name] {
      ran.push_back(name);
      return true;  // holds the slot until release()
    };
  };
  s.submit(job("fg1"));        // takes the only slot
  s.submit(job("bg1"), true);  // queued
  s.submit(job("bg2"), true);  // queued
  s.submit(job("fg2"));        // queued after them, runs before them
  s.submit(job("fg3"));
  EXPECT_EQ(s.in_flight(), 1);
  EXPECT_EQ(s.queued(), 4u);
  for (int i = 0; i < 5; ++i) s.release();
  EXPECT_EQ(ran, (std::vector<std::string>{"fg1", "fg2", "fg3", "bg1", "bg2"}));
  EXPECT_EQ(s.queued(), 0u);
}

TEST(ObjectUpload, UntrackedObjectIsOnePutOfTheWholeFileAndSettlesOn412) {
  World w(0);
  w.bodies.whole = "{\"export\":\"e1\"}";
  ObjectSpec spec;
  spec.bucket = "landing";
  spec.key = "exports/e1/report.json";
  auto run = [&] {
    std::optional<Outcome> out;
    auto m = std::make_shared<ObjectUpload>(Ports{w.store, w.ledger, w.bodies, w.scheduler}, spec);
    m->start([&](const Outcome& o) { out = o; });
    w.store.deliver_all();
    return out;
  };
  auto out = run();
  ASSERT_TRUE(out && out->ok());
  EXPECT_EQ(w.store.objects.at(spec.key).bytes, w.bodies.whole);
  auto again = run();  // 412, then HeadObject: the same CRC32C
  ASSERT_TRUE(again && again->ok()) << again->reason;
  EXPECT_EQ(w.store.writes[spec.key], 1);
}

// A crash between any two steps: the first life delivers `k` answers, then the process dies
// (answers in flight are lost; with apply_on_delivery their requests never arrived either) and a
// new machine is built from the ledger alone. Whatever k, the object converges to exactly one
// complete object with the right parts, written once, and the ledger says every part uploaded.
void crash_at_every_boundary(int parts, bool apply_on_delivery) {
  World probe(parts);
  probe.store.apply_on_delivery = apply_on_delivery;
  probe.machine()->start([](const Outcome&) {});
  const int answers = probe.store.deliver_all();
  ASSERT_GT(answers, 0);
  for (int k = 0; k <= answers; ++k) {
    SCOPED_TRACE("parts " + std::to_string(parts) + ", crash after answer " + std::to_string(k) +
                 (apply_on_delivery ? " (requests applied on delivery)" : ""));
    World w(parts);
    w.store.apply_on_delivery = apply_on_delivery;
    {
      auto first = w.machine();
      first->start([](const Outcome&) {});
      for (int i = 0; i < k; ++i) w.store.deliver_one();
      w.store.crash();
      w.scheduler = PartScheduler(4);  // the process is gone: so is its scheduler
    }
    auto out = w.run();
    ASSERT_TRUE(out && out->ok()) << (out ? out->reason : "no outcome");
    w.expect_one_right_object();
    EXPECT_EQ(w.store.writes[kKey], 1);
  }
}

TEST(ObjectUpload, CrashBetweenAnyTwoStepsConvergesToOneObject) {
  crash_at_every_boundary(1, false);
  crash_at_every_boundary(1, true);
  crash_at_every_boundary(3, false);
  crash_at_every_boundary(3, true);
}

// Harsher: the process dies after every second answer (a resume needs two round trips to
// settle: ListParts, HeadObject), each new life built from the ledger; progress is still made and
// the same single object results.
TEST(ObjectUpload, CrashAfterEverySecondAnswerStillConverges) {
  for (bool on_delivery : {false, true}) {
    World w(4);
    w.store.apply_on_delivery = on_delivery;
    std::optional<Outcome> out;
    int lives = 0;
    while (!(out && out->ok()) && lives < 50) {
      ++lives;
      out.reset();
      w.scheduler = PartScheduler(4);
      w.machine()->start([&](const Outcome& o) { out = o; });
      w.store.deliver_all(2);
      w.store.crash();
    }
    ASSERT_TRUE(out && out->ok()) << "no convergence after " << lives << " lives";
    w.expect_one_right_object();
    EXPECT_EQ(w.store.writes[kKey], 1);
  }
}

// ------------------------------------------------------------------ streaming (issue 13 item 5)
// The import object of a file that is still being spooled: parts arrive one by one (each already
// planned in the ledger, as UploadStage::stream_part journals it first), Complete only after
// close(true).

spool::Frame frame_of(const journal::PartRow& p) {
  spool::Frame f;
  f.uncompressed_offset = static_cast<std::uint64_t>(p.offset);
  f.uncompressed_size = static_cast<std::uint64_t>(p.length);
  return f;
}

struct Stream {
  World& w;
  std::shared_ptr<ObjectUpload> m;
  std::optional<Outcome> out;
  explicit Stream(World& world) : w(world), m(world.machine()) {
    m->start_streaming([this](const Outcome& o) { out = o; });
  }
  void add(int n) {
    const auto p = w.ledger.part(kFile, PartKind::import, n);
    m->add_part(p, frame_of(p), "/spool/e1/import/Patient.ndjson.zst.tmp");
  }
};

TEST(ObjectUploadStreaming, PartsGoUpAsTheyComeAndCompleteWaitsForClose) {
  World w(3);
  Stream s(w);
  EXPECT_EQ(w.store.log, std::vector<std::string>{"CreateMultipartUpload"});
  w.store.deliver_all();
  EXPECT_FALSE(w.ledger.at(kFile, PartKind::import).upload_id.empty());  // journaled at once
  s.add(1);
  w.store.deliver_all();
  EXPECT_EQ(w.ledger.part(kFile, PartKind::import, 1).state, PartState::uploaded);
  s.add(2);
  s.add(3);
  w.store.deliver_all();
  // Every part is up, but the file may still have more: no Complete, no outcome.
  EXPECT_EQ(w.store.count("CompleteMultipartUpload"), 0);
  EXPECT_FALSE(s.out);
  s.m->close(true);
  w.store.deliver_all();
  ASSERT_TRUE(s.out && s.out->ok()) << (s.out ? s.out->reason : "no outcome");
  w.expect_one_right_object();
  EXPECT_EQ(w.store.log,
            (std::vector<std::string>{"CreateMultipartUpload", "UploadPart 1", "UploadPart 2",
                                      "UploadPart 3", "CompleteMultipartUpload"}));
}

TEST(ObjectUploadStreaming, PartsHandedOverBeforeTheUploadIdIsKnownAreSentOnceItIs) {
  World w(2);
  Stream s(w);
  s.add(1);
  s.add(2);
  s.m->close(true);  // the file was spooled before CreateMultipartUpload answered
  EXPECT_EQ(w.store.log, std::vector<std::string>{"CreateMultipartUpload"});
  w.store.deliver_all();
  ASSERT_TRUE(s.out && s.out->ok()) << (s.out ? s.out->reason : "no outcome");
  w.expect_one_right_object();
  EXPECT_EQ(w.store.count("UploadPart 1") + w.store.count("UploadPart 2"), 2);
}

TEST(ObjectUploadStreaming, CloseWithoutCompleteStopsAndTheResumeSendsOnlyWhatIsMissing) {
  World w(3);
  Stream s(w);
  w.store.deliver_all();
  s.add(1);
  s.add(2);
  s.m->close(false);    // the file's spooling failed with parts 1-2 in flight
  EXPECT_FALSE(s.out);  // not before the parts in flight are back
  w.store.deliver_all();
  ASSERT_TRUE(s.out);
  EXPECT_TRUE(s.out->retrying()) << s.out->reason;
  EXPECT_NE(s.out->reason.find("not spooled completely"), std::string::npos) << s.out->reason;
  EXPECT_EQ(w.store.count("CompleteMultipartUpload"), 0);
  EXPECT_TRUE(w.store.objects.empty());
  // Adding after close is ignored (nothing is sent).
  s.add(3);
  EXPECT_EQ(w.store.count("UploadPart 3"), 0);
  // The retry: the file is spooled again and its object resumed from the ledger.
  auto again = w.run();
  ASSERT_TRUE(again && again->ok()) << again->reason;
  w.expect_one_right_object();
  EXPECT_EQ(w.store.count("ListParts"), 1);
  EXPECT_EQ(w.store.count("UploadPart 1"), 1);  // not sent twice
  EXPECT_EQ(w.store.count("UploadPart 2"), 1);
  EXPECT_EQ(w.store.count("UploadPart 3"), 1);
  EXPECT_EQ(w.store.writes[kKey], 1);
}

TEST(ObjectUploadStreaming, AnUploadGoneWhileStreamingEndsItAndLaterPartsAreNotSent) {
  World w(3);
  Stream s(w);
  w.store.deliver_all();
  s.add(1);
  w.store.deliver_all();
  w.store.uploads.clear();  // aborted by a lifecycle rule while the file spools
  s.add(2);
  w.store.deliver_all();
  ASSERT_TRUE(s.out);
  EXPECT_TRUE(s.out->retrying()) << s.out->reason;
  EXPECT_NE(s.out->reason.find("disappeared"), std::string::npos) << s.out->reason;
  s.add(3);
  s.m->close(true);
  w.store.deliver_all();
  EXPECT_EQ(w.store.count("UploadPart 3"), 0);
  EXPECT_EQ(w.store.count("CompleteMultipartUpload"), 0);
}

TEST(ObjectUploadStreaming, OnePartStreamedIsAMultipartObjectSettledByItsCompositeChecksum) {
  World w(1);  // the file turned out to be one part (most lines rejected)
  Stream s(w);
  s.add(1);
  w.store.deliver_one();  // CreateMultipartUpload
  w.store.deliver_one();  // UploadPart 1
  s.m->close(true);
  w.store.crash();  // the daemon dies with the Complete sent, its answer lost
  ASSERT_EQ(w.store.objects.count(kKey), 1u);
  const std::string stored = w.store.objects.at(kKey).checksum;
  EXPECT_EQ(stored.substr(stored.size() - 2), "-1");
  // The next life: one part with an upload id is a multipart object, not a PutObject; the
  // Complete that went through is settled with the composite checksum S3 reports.
  w.store.log.clear();
  auto out = w.run();
  ASSERT_TRUE(out && out->ok()) << out->reason;
  EXPECT_EQ(w.store.count("PutObject"), 0);
  EXPECT_EQ(w.settled, 1);
  EXPECT_EQ(ObjectUpload::expected_checksum(w.ledger_parts(), true), stored);
  EXPECT_EQ(w.store.writes[kKey], 1);
}

TEST(Outcome, MergeKeepsTheWorstAndItsFirstReason) {
  Outcome o;
  o.merge(Outcome::retry_later("a"));
  o.merge(Outcome::retry_later("b"));
  EXPECT_EQ(o.reason, "a");
  o.merge(Outcome::park("p"));
  o.merge(Outcome::retry_later("c"));
  EXPECT_TRUE(o.parked());
  EXPECT_EQ(o.reason, "p");
}

}  // namespace
}  // namespace fe::upload
