// The three building blocks together, as the pipeline will use them: the watcher reports a
// complete export, the journal takes it by identity (path + content digest), the spool writes its
// files as frames and the journal records them and plans the upload parts from the frame index.
// No upload here (that is the pipeline's and the AWS layer's part).
#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>
#include <fstream>

#include "common/hashing.hpp"
#include "journal/digest.hpp"
#include "journal/journal.hpp"
#include "journal/status.hpp"
#include "spool/spool.hpp"
#include "test_util.hpp"
#include "watch/watcher.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

std::string lines(const std::string& type, int n) {
  std::string out;
  for (int i = 0; i < n; ++i)
    out += "{\"resourceType\":\"" + type + "\",\"id\":\"" + type + "-" + std::to_string(i) +
           "\",\"text\":{\"status\":\"generated\",\"div\":\"" + std::string(i % 97, 'x') + "\"}}\n";
  return out;
}

}  // namespace

TEST(Flow, WatchTakeSpoolRecord) {
  TempDir dir;
  auto root = dir / "incoming";
  auto spool_dir = dir / "spool";
  fs::create_directories(root / "2026-11-26-epic");
  std::map<std::string, std::string> content = {
      {"Patient.000.ndjson", lines("Patient", 500)},
      {"Observation.000.ndjson", lines("Observation", 3000)}};
  for (const auto& [n, c] : content) std::ofstream(root / "2026-11-26-epic" / n) << c;
  std::ofstream(root / "2026-11-26-epic" / ".done");

  boost::asio::io_context io;
  std::vector<fe::watch::ReadyExport> ready;
  fe::watch::WatchOptions wo;
  wo.pipeline = "epic";
  wo.root = root;
  wo.scan_quiet = 100ms;
  fe::watch::Watcher watcher(io, wo, [&](const fe::watch::ReadyExport& r) { ready.push_back(r); });
  watcher.start();
  auto deadline = std::chrono::steady_clock::now() + 30s;
  while (ready.empty() && std::chrono::steady_clock::now() < deadline) io.run_one_for(100ms);
  ASSERT_EQ(ready.size(), 1u);
  const auto& r = ready[0];

  auto journal = fe::journal::Journal::open(dir / "journal.db");
  std::vector<std::string> names;
  std::vector<std::pair<std::string, fe::journal::SourceIdentity>> files;
  for (const auto& f : r.files) {
    names.push_back(f.name);
    files.push_back(
        {f.name, {f.identity.size, f.identity.mtime_ns, f.identity.inode, f.identity.dev}});
  }
  auto digest = fe::journal::content_digest(r.path, names);
  auto taken = journal.take_export(wo.pipeline, r.path.string(), digest, r.name, files);
  ASSERT_FALSE(taken.existing);
  // Re-delivery of the same content is recognised.
  EXPECT_TRUE(journal.take_export(wo.pipeline, r.path.string(), digest, r.name, files).existing);

  auto id = taken.row.id;
  journal.set_export_state(id, fe::journal::ExportState::complete);
  journal.set_export_state(id, fe::journal::ExportState::spooling);
  fe::spool::Quota quota(1 << 30);
  const uint64_t part = 64 * 1024;
  for (const auto& f : journal.files(id)) {
    journal.set_file_state(f.id, fe::journal::FileState::spooling);
    fe::spool::SpoolWriter w(fe::spool::import_path(spool_dir, taken.row.name, f.name),
                             {.part_size = part, .zstd_level = 3, .quota = &quota});
    const std::string& c = content.at(f.name);
    size_t pos = 0, count = 0;
    while (pos < c.size()) {  // line by line, as the validator hands them over
      size_t nl = c.find('\n', pos);
      w.write(std::string_view(c).substr(pos, nl + 1 - pos));
      pos = nl + 1;
      ++count;
    }
    const auto& idx = w.finish();
    journal.record_spooled(
        f.id, {static_cast<int64_t>(count), 0, static_cast<int64_t>(idx.uncompressed_size),
               static_cast<int64_t>(idx.compressed_size), fe::crc32c_base64(idx.crc32c)});
    std::vector<fe::journal::PartPlan> plan;
    for (size_t n = 0; n < idx.frames.size(); ++n)
      plan.push_back({static_cast<int>(n + 1),
                      static_cast<int64_t>(idx.frames[n].uncompressed_offset),
                      static_cast<int64_t>(idx.frames[n].uncompressed_size),
                      fe::crc32c_base64(idx.frames[n].crc32c)});
    journal.plan_parts(f.id, fe::journal::PartKind::import, plan);
  }
  journal.set_export_state(id, fe::journal::ExportState::spooled);

  // What the uploader will do for a part: frame N of the spool file is part N+1.
  for (const auto& f : journal.files(id)) {
    auto sf = fe::spool::SpoolFile::open(fe::spool::import_path(spool_dir, taken.row.name, f.name));
    std::string whole;
    for (const auto& p : journal.parts(f.id, fe::journal::PartKind::import)) {
      std::string body;
      sf.read_frame(static_cast<size_t>(p.part_number - 1), body);
      EXPECT_EQ(static_cast<int64_t>(body.size()), p.length);
      EXPECT_EQ(fe::crc32c_base64(fe::crc32c(body)), p.crc32c);
      whole += body;
    }
    EXPECT_EQ(whole, content.at(f.name));
    // The source has not changed since it was taken.
    EXPECT_TRUE(fe::watch::changed_after_taken(r.files).empty());
  }
  auto row = journal.get_export(id);
  EXPECT_EQ(row.state, fe::journal::ExportState::spooled);
  EXPECT_EQ(row.resources_valid, 3500);
  // bytes_spooled counts the .zst files; the quota counts everything on disk (with the indexes).
  uint64_t zst = 0;
  for (const auto& e : fs::recursive_directory_iterator(spool_dir))
    if (e.path().extension() == ".zst") zst += fs::file_size(e.path());
  EXPECT_EQ(static_cast<uint64_t>(row.bytes_spooled), zst);
  EXPECT_EQ(quota.used(), fe::spool::disk_usage(spool_dir));
}
