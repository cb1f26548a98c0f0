// The upload's PartLedger on the real SQLite journal (upload/adapters.hpp): the machine's rows are
// journal rows, and a multipart restart after NoSuchUpload puts every part back to pending with
// the new upload id in one transaction (Journal::restart_upload).
#include <gtest/gtest.h>

#include <optional>

#include "../journal/test_util.hpp"
#include "fakes.hpp"
#include "upload/adapters.hpp"
#include "upload/object_upload.hpp"

namespace fe::upload {
namespace {

using journal::PartKind;
using journal::PartState;

TEST(JournalLedger, RestartedMultipartIsJournaledAndEveryPartSentAgain) {
  TempDir dir;
  auto j = journal::Journal::open(dir / "journal.db");
  auto taken = j.take_export("p", "/in/e1", "digest", "e1", {{"Patient.ndjson", {}}});
  const auto file_id = j.files(taken.row.id).at(0).id;
  testing::FakeBodies bodies;
  std::vector<journal::PartPlan> plan;
  for (int n = 1; n <= 3; ++n) {
    bodies.parts.push_back("part " + std::to_string(n) + " " + std::string(20, 'a' + n));
    const auto& b = bodies.parts.back();
    plan.push_back({n, (n - 1) * 100, static_cast<std::int64_t>(b.size()),
                    aws::crc32c_base64(aws::crc32c(b))});
  }
  j.plan_parts(file_id, PartKind::import, plan);

  testing::FakeStore store;
  store.apply_on_delivery = true;
  JournalLedger ledger(j);
  PartScheduler scheduler(4);
  ObjectSpec spec;
  spec.file_id = file_id;
  spec.bucket = "landing";
  spec.key = "exports/e1/import/Patient.ndjson";
  auto m = std::make_shared<ObjectUpload>(Ports{store, ledger, bodies, scheduler}, spec);
  std::optional<Outcome> out;
  m->start([&](const Outcome& o) { out = o; });
  while (m->step() != Step::complete && store.deliver_one()) {
  }
  const std::string first = j.get_file(file_id).import_upload_id;
  ASSERT_FALSE(first.empty());
  for (const auto& p : j.parts(file_id, PartKind::import)) EXPECT_EQ(p.state, PartState::uploaded);
  store.uploads.erase(first);  // aborted outside fhir-edge before the Complete arrived
  store.deliver_all();
  ASSERT_TRUE(out && out->ok()) << out->reason;
  const auto f = j.get_file(file_id);
  EXPECT_NE(f.import_upload_id, first);
  EXPECT_EQ(f.import_key, spec.key);
  for (const auto& p : j.parts(file_id, PartKind::import)) {
    EXPECT_EQ(p.state, PartState::uploaded);
    EXPECT_FALSE(p.etag.empty());
  }
  EXPECT_EQ(store.count("UploadPart 2"), 2);
  EXPECT_EQ(store.objects.at(spec.key).bytes, bodies.parts[0] + bodies.parts[1] + bodies.parts[2]);
  bool restart_event = false;
  for (const auto& e : j.events(taken.row.id))
    restart_event |= e.message.find("NoSuchUpload), restarted as") != std::string::npos;
  EXPECT_TRUE(restart_event);
}

}  // namespace
}  // namespace fe::upload
