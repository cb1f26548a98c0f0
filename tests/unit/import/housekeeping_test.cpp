// Housekeeping (import/housekeeping.hpp) with a real journal, real source files and a real spool
// directory: after_upload (delete / move / keep, and a source changed since it was taken) and
// spool retention with keep_for 0, each triggered by an ExportEvent::imported on the hub.
#include "import/housekeeping.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "temp_dir.hpp"
#include "watch/identity.hpp"

using namespace fe;
using journal::ExportState;
namespace fs = std::filesystem;

namespace {

struct Env {
  test::TempDir tmp{"fe-housekeeping"};
  boost::asio::io_context io;
  config::Config cfg;
  std::optional<journal::Journal> jr;
  ExportEvents events;
  std::shared_ptr<import::Housekeeping> hk;
  std::uint64_t evicted = 0;

  explicit Env(config::AfterUploadKind kind) {
    cfg.spool.dir = tmp / "spool";
    cfg.spool.keep_for = std::chrono::hours(1);
    config::Pipeline p;
    p.name = "ehr";
    p.watch = tmp / "in";
    p.after_upload.kind = kind;
    p.after_upload.move_to = tmp / "done";
    p.complete_when.marker = "_DONE";
    cfg.pipelines.push_back(p);
    fs::create_directories(cfg.spool.dir);
    jr.emplace(journal::Journal::open(tmp / "journal.db"));
    hk = std::make_shared<import::Housekeeping>(import::Housekeeping::Deps{
        io, *jr, cfg, nullptr, [this](std::uint64_t n) { evicted += n; }});
    hk->subscribe(events);
  }

  // An export directory in/<name>/ with two files and its marker, taken, walked to `to`.
  std::int64_t export_in(const std::string& name, ExportState to) {
    fs::path dir = tmp / "in" / name;
    tmp.write("in/" + name + "/Patient.ndjson", "{\"resourceType\":\"Patient\"}\n");
    tmp.write("in/" + name + "/Observation.ndjson", "{\"resourceType\":\"Observation\"}\n");
    tmp.write("in/" + name + "/_DONE", "");
    std::vector<std::pair<std::string, journal::SourceIdentity>> files;
    for (const char* f : {"Patient.ndjson", "Observation.ndjson"}) {
      auto id = watch::identity_of(dir / f);
      files.push_back({f, journal::SourceIdentity{id->size, id->mtime_ns, id->inode, id->dev}});
    }
    auto taken = jr->take_export("ehr", dir.string(), "sha256:" + name, name, files);
    for (auto st : {ExportState::complete, ExportState::spooling, ExportState::spooled,
                    ExportState::uploading, ExportState::uploaded, ExportState::import_starting,
                    ExportState::importing, ExportState::imported}) {
      jr->set_export_state(taken.row.id, st);
      if (st == to) break;
    }
    return taken.row.id;
  }

  std::vector<std::string> after_upload_events(std::int64_t id) {
    std::vector<std::string> out;
    for (const auto& e : jr->events(id))
      if (e.kind == "after_upload") out.push_back(e.message);
    return out;
  }
};

}  // namespace

TEST(Housekeeping, ImportedEventDeletesTheTakenSource) {
  Env env(config::AfterUploadKind::remove);
  auto id = env.export_in("e1", ExportState::imported);
  env.events.emit(ExportEvent::imported, id);
  EXPECT_FALSE(fs::exists(env.tmp / "in" / "e1"));  // files, marker, then the empty directory
  auto ev = env.after_upload_events(id);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0], "deleted 2 source file(s)");
}

TEST(Housekeeping, ImportedEventMovesTheSource) {
  Env env(config::AfterUploadKind::move);
  auto id = env.export_in("e1", ExportState::imported);
  env.events.emit(ExportEvent::imported, id);
  EXPECT_FALSE(fs::exists(env.tmp / "in" / "e1"));
  EXPECT_TRUE(fs::exists(env.tmp / "done" / "e1" / "Patient.ndjson"));
  auto ev = env.after_upload_events(id);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_EQ(ev[0], "moved to " + (env.tmp / "done" / "e1").string());
}

TEST(Housekeeping, KeepLeavesTheSourceAndRecordsNothing) {
  Env env(config::AfterUploadKind::keep);
  auto id = env.export_in("e1", ExportState::imported);
  env.events.emit(ExportEvent::imported, id);
  EXPECT_TRUE(fs::exists(env.tmp / "in" / "e1" / "Patient.ndjson"));
  EXPECT_TRUE(env.after_upload_events(id).empty());
}

TEST(Housekeeping, SourceChangedSinceTakenIsLeftInPlace) {
  Env env(config::AfterUploadKind::remove);
  auto id = env.export_in("e1", ExportState::imported);
  env.tmp.write("in/e1/Patient.ndjson", "{\"resourceType\":\"Patient\",\"id\":\"new one\"}\n");
  env.events.emit(ExportEvent::imported, id);
  EXPECT_TRUE(fs::exists(env.tmp / "in" / "e1" / "Observation.ndjson"));
  auto ev = env.after_upload_events(id);
  ASSERT_EQ(ev.size(), 1u);
  EXPECT_NE(ev[0].find("source left in place: Patient.ndjson"), std::string::npos) << ev[0];
}

TEST(Housekeeping, RetentionKeepForZeroRemovesAFinishedSpoolAtOnce) {
  Env env(config::AfterUploadKind::keep);
  env.cfg.spool.keep_for = std::chrono::seconds(0);  // the live config: read at each run
  auto done = env.export_in("e1", ExportState::imported);
  auto parked = env.export_in("e2", ExportState::importing);
  env.jr->park_export(parked, "waiting for the operator");
  auto spool_of = [&](std::int64_t id) {
    return spool::export_dir(env.cfg.spool.dir, env.jr->get_export(id).name);
  };
  for (auto id : {done, parked}) {
    fs::create_directories(spool_of(id));
    env.tmp.write(fs::relative(spool_of(id) / "report.json", env.tmp.path()).string(), "{}");
  }
  env.events.emit(ExportEvent::imported, done);
  EXPECT_FALSE(fs::exists(spool_of(done)));
  EXPECT_TRUE(fs::exists(spool_of(parked)));  // parked exports keep their spool
}

TEST(Housekeeping, NothingAfterStop) {
  Env env(config::AfterUploadKind::remove);
  auto id = env.export_in("e1", ExportState::imported);
  env.hk->stop();
  env.events.emit(ExportEvent::imported, id);
  EXPECT_TRUE(fs::exists(env.tmp / "in" / "e1" / "Patient.ndjson"));
}
