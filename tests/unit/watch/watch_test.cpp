// The watcher against real inotify in temp directories, on a real io_context. No sleeps as
// assertions: every test runs the loop until the event it waits for arrives (generous timeouts),
// and "not taken" is observed through the watcher's own pending report.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <cstring>
#include <fstream>
#include <functional>
#include <set>

#include "watch/from_config.hpp"
#include "watch/identity.hpp"
#include "watch/manifest.hpp"
#include "watch/watcher.hpp"

#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace fe::watch;
using namespace std::chrono_literals;

namespace {

using TempDir = fe::test::TempDir;

void write_file(const fs::path& p, const std::string& content) {
  std::ofstream f(p, std::ios::binary);
  f << content;
}

const std::string kLine = "{\"resourceType\":\"Patient\",\"id\":\"p1\"}\n";

struct Harness {
  TempDir dir;
  boost::asio::io_context io;
  std::vector<ReadyExport> ready;
  std::vector<Skipped> skipped;
  std::vector<std::pair<std::string, std::string>> pending;
  std::unique_ptr<Watcher> watcher;

  explicit Harness(CompletionRules rules = {}, std::chrono::seconds rescan = 60s,
                   std::chrono::milliseconds scan_quiet = 300ms) {
    WatchOptions o;
    o.pipeline = "test";
    o.root = dir.path();
    o.rules = rules;
    o.rescan_interval = rescan;
    o.scan_quiet = scan_quiet;
    watcher =
        std::make_unique<Watcher>(io, o, [this](const ReadyExport& r) { ready.push_back(r); });
    watcher->on_skipped([this](const Skipped& s) { skipped.push_back(s); });
    watcher->on_pending(
        [this](const std::string& n, const std::string& why) { pending.emplace_back(n, why); });
  }
  fs::path root() const { return dir.path(); }

  // Runs the loop until pred() holds; false after a generous timeout.
  bool run_until(const std::function<bool()>& pred, std::chrono::seconds timeout = 30s) {
    auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!pred()) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      io.run_one_for(100ms);
      if (io.stopped()) io.restart();
    }
    return true;
  }
  const ReadyExport* find(const std::string& name) const {
    for (const auto& r : ready)
      if (r.name == name) return &r;
    return nullptr;
  }
  bool pending_with(const std::string& name, const std::string& why_part) const {
    for (const auto& [n, w] : pending)
      if (n == name && w.find(why_part) != std::string::npos) return true;
    return false;
  }
  size_t ready_count(const std::string& name) const {
    size_t n = 0;
    for (const auto& r : ready) n += r.name == name;
    return n;
  }
};

std::vector<std::string> names(const ReadyExport& r) {
  std::vector<std::string> out;
  for (const auto& f : r.files) out.push_back(f.name);
  return out;
}

}  // namespace

TEST(Watch, RescanAtStartFindsPreExistingExports) {
  Harness h;
  fs::create_directory(h.root() / "exp1");
  write_file(h.root() / "exp1" / "A.ndjson", kLine);
  write_file(h.root() / "exp1" / "B.ndjson", kLine + kLine);
  write_file(h.root() / "exp1" / ".done", "");
  fs::create_directory(h.root() / "exp2");
  write_file(h.root() / "exp2" / "X.ndjson", kLine);
  write_file(h.root() / "single.ndjson", kLine);
  h.watcher->start();
  // Found by a scan: taken once they stayed unchanged for scan_quiet.
  EXPECT_TRUE(h.pending_with("exp1", "found by a scan"));
  ASSERT_TRUE(h.run_until([&] { return h.find("exp1") && h.find("single"); }));
  const auto* e1 = h.find("exp1");
  ASSERT_NE(e1, nullptr);
  EXPECT_EQ(e1->rule, "marker");
  EXPECT_FALSE(e1->single_file);
  EXPECT_EQ(names(*e1), (std::vector<std::string>{"A.ndjson", "B.ndjson"}));
  EXPECT_EQ(e1->files[1].identity.size, 2 * kLine.size());
  EXPECT_EQ(e1->files[1].identity, *identity_of(h.root() / "exp1" / "B.ndjson"));
  // A file in the root is an export of its own.
  const auto* s = h.find("single");
  ASSERT_NE(s, nullptr);
  EXPECT_TRUE(s->single_file);
  EXPECT_EQ(names(*s), (std::vector<std::string>{"single.ndjson"}));
  EXPECT_EQ(s->path, h.root() / "single.ndjson");
  // No rule holds for exp2.
  EXPECT_EQ(h.find("exp2"), nullptr);
  EXPECT_TRUE(h.pending_with("exp2", "waiting for a completion rule"));
  // A rescan reports nothing new: each content is reported once.
  h.watcher->rescan();
  EXPECT_EQ(h.ready.size(), 2u);
}

TEST(Watch, MarkerRuleThroughInotify) {
  Harness h;
  h.watcher->start();
  fs::create_directory(h.root() / "exp");
  write_file(h.root() / "exp" / "Patient.ndjson", kLine);
  ASSERT_TRUE(h.run_until([&] { return h.pending_with("exp", "waiting for a completion rule"); }));
  EXPECT_TRUE(h.ready.empty());
  write_file(h.root() / "exp" / ".done", "");
  ASSERT_TRUE(h.run_until([&] { return h.find("exp") != nullptr; }));
  EXPECT_EQ(h.find("exp")->rule, "marker");
  EXPECT_EQ(names(*h.find("exp")), (std::vector<std::string>{"Patient.ndjson"}));
}

TEST(Watch, BulkManifestRuleNamesTheFiles) {
  CompletionRules rules;
  rules.marker = "";
  rules.client_log = false;
  Harness h(rules);
  h.watcher->start();
  fs::create_directory(h.root() / "bulk");
  write_file(h.root() / "bulk" / "Patient.000.ndjson", kLine);
  write_file(h.root() / "bulk" / "unrelated.ndjson", kLine);
  write_file(h.root() / "bulk" / "manifest.json", R"({
    "transactionTime": "2026-11-26T08:00:00Z",
    "request": "https://ehr.example.org/fhir/Group/g1/$export",
    "requiresAccessToken": true,
    "output": [
      {"type": "Patient", "url": "https://ehr.example.org/out/Patient.000.ndjson"},
      {"type": "Observation", "url": "https://ehr.example.org/out/Observation.000.ndjson?sig=x"}
    ],
    "error": []
  })");
  ASSERT_TRUE(
      h.run_until([&] { return h.pending_with("bulk", "manifest names Observation.000.ndjson"); }));
  EXPECT_TRUE(h.ready.empty());
  write_file(h.root() / "bulk" / "Observation.000.ndjson", kLine);
  ASSERT_TRUE(h.run_until([&] { return h.find("bulk") != nullptr; }));
  const auto* r = h.find("bulk");
  EXPECT_EQ(r->rule, "bulk_manifest");
  // Exactly the files the manifest names.
  EXPECT_EQ(names(*r), (std::vector<std::string>{"Observation.000.ndjson", "Patient.000.ndjson"}));
  ASSERT_EQ(r->metadata.size(), 1u);
  EXPECT_EQ(r->metadata[0].filename(), "manifest.json");
}

TEST(Watch, ManifestParserGivesJsonPathsForMalformedManifests) {
  auto ok = parse_bulk_manifest_text(
      R"({"transactionTime":"t","request":"r","output":[{"type":"Patient","url":"a/b/P.ndjson"}]})",
      "m.json");
  ASSERT_TRUE(ok.manifest) << ok.error;
  EXPECT_EQ(ok.manifest->files, (std::vector<std::string>{"P.ndjson"}));
  auto bad = parse_bulk_manifest_text(
      R"({"transactionTime":"t","request":"r","output":[{"type":"P","url":"x"},{"type":"P","url":7}]})",
      "m.json");
  EXPECT_FALSE(bad.manifest);
  EXPECT_EQ(bad.error, "m.json: $.output[1].url: expected a string");
  auto missing = parse_bulk_manifest_text(R"({"request":"r","output":[]})", "m.json");
  EXPECT_EQ(missing.error, "m.json: $.transactionTime: expected a string");
  auto notjson = parse_bulk_manifest_text("{\"transactionTime\":", "m.json");
  EXPECT_NE(notjson.error.find("m.json: $: not valid JSON"), std::string::npos) << notjson.error;
  auto dotdot = parse_bulk_manifest_text(
      R"({"transactionTime":"t","request":"r","output":[{"type":"P","url":"https://x/.."}]})",
      "m.json");
  EXPECT_NE(dotdot.error.find("does not end in a file name"), std::string::npos);
}

TEST(Watch, ClientLogRuleWithTheSyntheaLog) {
  fs::path shared = fs::path(FE_SHARED_DIR) / "fhir" / "synthea-10-patients";
  if (!fs::exists(shared / "log.ndjson"))
    GTEST_SKIP() << "shared data not found at " << shared << " (FE_SHARED_DIR)";
  CompletionRules rules;
  rules.marker = "";
  rules.bulk_manifest = false;
  Harness h(rules);
  h.watcher->start();
  std::ifstream in(shared / "log.ndjson");
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);)
    if (!l.empty()) lines.push_back(l);
  ASSERT_GE(lines.size(), 2u);
  ASSERT_NE(lines.back().find("export_complete"), std::string::npos);
  fs::create_directory(h.root() / "synthea");
  fs::copy_file(shared / "Patient.000.ndjson", h.root() / "synthea" / "Patient.000.ndjson");
  fs::copy_file(shared / "Organization.000.ndjson",
                h.root() / "synthea" / "Organization.000.ndjson");
  {
    std::ofstream log(h.root() / "synthea" / "log.ndjson");
    for (size_t i = 0; i + 1 < lines.size(); ++i) log << lines[i] << "\n";
  }
  ASSERT_TRUE(
      h.run_until([&] { return h.pending_with("synthea", "waiting for a completion rule"); }));
  EXPECT_TRUE(h.ready.empty());
  {
    std::ofstream log(h.root() / "synthea" / "log.ndjson", std::ios::app);
    log << lines.back() << "\n";
  }
  ASSERT_TRUE(h.run_until([&] { return h.find("synthea") != nullptr; }));
  const auto* r = h.find("synthea");
  EXPECT_EQ(r->rule, "client_log");
  // The log is metadata, never import input.
  EXPECT_EQ(names(*r), (std::vector<std::string>{"Organization.000.ndjson", "Patient.000.ndjson"}));
  ASSERT_EQ(r->metadata.size(), 1u);
  EXPECT_EQ(r->metadata[0].filename(), "log.ndjson");
  EXPECT_TRUE(client_log_complete(shared / "log.ndjson"));
}

TEST(Watch, SettleRuleWaitsForQuiet) {
  CompletionRules rules;
  rules.marker = "";
  rules.bulk_manifest = false;
  rules.client_log = false;
  rules.settle = 1s;
  Harness h(rules);
  h.watcher->start();
  fs::create_directory(h.root() / "quiet");
  write_file(h.root() / "quiet" / "A.ndjson", kLine);
  ASSERT_TRUE(h.run_until([&] { return h.pending_with("quiet", "settling"); }));
  EXPECT_TRUE(h.ready.empty());
  ASSERT_TRUE(h.run_until([&] { return h.find("quiet") != nullptr; }));
  EXPECT_EQ(h.find("quiet")->rule, "settle");
}

TEST(Watch, FileStillBeingWrittenIsNotTakenEvenWithTheMarker) {
  Harness h;
  h.watcher->start();
  fs::create_directory(h.root() / "busy");
  // Once the directory is watched, inotify sees the writer open the file.
  ASSERT_TRUE(h.run_until([&] { return h.pending_with("busy", ""); }));
  int fd = ::open((h.root() / "busy" / "Big.ndjson").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, kLine.data(), kLine.size()), static_cast<ssize_t>(kLine.size()));
  write_file(h.root() / "busy" / "Small.ndjson", kLine);
  write_file(h.root() / "busy" / ".done", "");
  // The marker's arrival was evaluated, and refused because Big.ndjson is still open.
  ASSERT_TRUE(
      h.run_until([&] { return h.pending_with("busy", "file open for writing: Big.ndjson"); }));
  EXPECT_EQ(h.find("busy"), nullptr);
  ASSERT_EQ(::write(fd, kLine.data(), kLine.size()), static_cast<ssize_t>(kLine.size()));
  ::close(fd);
  ASSERT_TRUE(h.run_until([&] { return h.find("busy") != nullptr; }));
  const auto* r = h.find("busy");
  EXPECT_EQ(names(*r), (std::vector<std::string>{"Big.ndjson", "Small.ndjson"}));
  EXPECT_EQ(r->files[0].identity.size, 2 * kLine.size()) << "taken after the last write";
}

TEST(Watch, SingleRootFileIsTakenOnlyAfterItIsClosed) {
  Harness h;
  h.watcher->start();
  int fd = ::open((h.root() / "drop.ndjson").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, kLine.data(), kLine.size()), static_cast<ssize_t>(kLine.size()));
  ASSERT_TRUE(h.run_until([&] { return h.pending_with("drop", "file open for writing"); }));
  EXPECT_EQ(h.find("drop"), nullptr);
  ::close(fd);
  ASSERT_TRUE(h.run_until([&] { return h.find("drop") != nullptr; }));
  EXPECT_TRUE(h.find("drop")->single_file);
  EXPECT_EQ(h.find("drop")->files.at(0).identity.size, kLine.size());
}

TEST(Watch, AtomicRenameIntoTheRootIsTaken) {
  Harness h;
  h.watcher->start();
  TempDir other;
  write_file(h.root() / ".incoming.ndjson.part", kLine);  // temporary name: ignored
  fs::rename(h.root() / ".incoming.ndjson.part", h.root() / "moved.ndjson");
  ASSERT_TRUE(h.run_until([&] { return h.find("moved") != nullptr; }));
  for (const auto& r : h.ready) EXPECT_EQ(r.name, "moved");
}

TEST(Watch, TemporaryAndNonMatchingNamesAreIgnored) {
  Harness h;
  fs::create_directory(h.root() / "mixed");
  for (const char* n :
       {".hidden.ndjson", "a.ndjson.part", "b.tmp", "c.ndjson~", "d.txt", "real.ndjson"})
    write_file(h.root() / "mixed" / n, kLine);
  write_file(h.root() / "mixed" / ".done", "");
  write_file(h.root() / ".root-hidden.ndjson", kLine);
  write_file(h.root() / "upload.ndjson.tmp", kLine);
  h.watcher->start();
  ASSERT_TRUE(h.run_until([&] { return !h.ready.empty(); }));
  h.watcher->rescan();
  ASSERT_EQ(h.ready.size(), 1u);
  EXPECT_EQ(h.ready[0].name, "mixed");
  EXPECT_EQ(names(h.ready[0]), (std::vector<std::string>{"real.ndjson"}));
  EXPECT_TRUE(Watcher::is_temporary_name(".x"));
  EXPECT_TRUE(Watcher::is_temporary_name("x.part"));
  EXPECT_TRUE(Watcher::is_temporary_name("x~"));
  EXPECT_FALSE(Watcher::is_temporary_name("Patient.000.ndjson"));
}

TEST(Watch, SymlinksAndFifosAreReportedOnceAndSkipped) {
  Harness h;
  TempDir elsewhere;
  write_file(elsewhere.path() / "outside.ndjson", kLine);
  fs::create_directory(elsewhere.path() / "outdir");
  write_file(elsewhere.path() / "outdir" / "x.ndjson", kLine);
  write_file(elsewhere.path() / "outdir" / ".done", "");
  fs::create_directory(h.root() / "exp");
  write_file(h.root() / "exp" / "real.ndjson", kLine);
  fs::create_symlink(elsewhere.path() / "outside.ndjson", h.root() / "exp" / "link.ndjson");
  ASSERT_EQ(::mkfifo((h.root() / "exp" / "pipe.ndjson").c_str(), 0644), 0);
  // A UNIX socket bound in the export directory.
  int sock = ::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ASSERT_GE(sock, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  auto sock_path = (h.root() / "exp" / "sock.ndjson").string();
  ASSERT_LT(sock_path.size(), sizeof addr.sun_path);
  std::memcpy(addr.sun_path, sock_path.c_str(), sock_path.size() + 1);
  ASSERT_EQ(::bind(sock, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  ::close(sock);
  write_file(h.root() / "exp" / ".done", "");
  fs::create_directory_symlink(elsewhere.path() / "outdir", h.root() / "linkdir");
  fs::create_symlink(elsewhere.path() / "outside.ndjson", h.root() / "rootlink.ndjson");
  h.watcher->start();
  ASSERT_TRUE(h.run_until([&] { return !h.ready.empty(); }));
  h.watcher->rescan();  // a second pass must not report them again
  ASSERT_EQ(h.ready.size(), 1u);
  EXPECT_EQ(names(h.ready[0]), (std::vector<std::string>{"real.ndjson"}));
  std::map<std::string, std::string> reasons;
  for (const auto& s : h.skipped) {
    EXPECT_EQ(reasons.count(s.path.filename().string()), 0u) << "reported twice: " << s.path;
    reasons[s.path.filename().string()] = s.reason;
  }
  EXPECT_NE(reasons["link.ndjson"].find("symlink"), std::string::npos);
  EXPECT_EQ(reasons["pipe.ndjson"], "FIFO");
  EXPECT_EQ(reasons["sock.ndjson"], "socket");
  EXPECT_NE(reasons["linkdir"].find("symlink"), std::string::npos);
  EXPECT_NE(reasons["rootlink.ndjson"].find("symlink"), std::string::npos);
}

TEST(Watch, QueueOverflowTriggersARescan) {
  long max_queued = 0;
  {
    std::ifstream q("/proc/sys/fs/inotify/max_queued_events");
    q >> max_queued;
  }
  if (max_queued <= 0 || max_queued > 100000)
    GTEST_SKIP() << "max_queued_events is " << max_queued << "; too large to overflow in a test";
  Harness h;
  h.watcher->start();
  // While the loop is not running, flood the queue: each temp file gives IN_CREATE,
  // IN_CLOSE_WRITE and IN_DELETE.
  long files = max_queued / 3 + 1000;
  for (long i = 0; i < files; ++i) {
    auto p = h.root() / (".flood" + std::to_string(i));
    int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
    ASSERT_GE(fd, 0);
    ::close(fd);
    ::unlink(p.c_str());
  }
  // Its IN_CREATE is lost in the overflow: only the rescan can find it.
  fs::create_directory(h.root() / "late");
  write_file(h.root() / "late" / "A.ndjson", kLine);
  write_file(h.root() / "late" / ".done", "");
  ASSERT_TRUE(h.run_until([&] { return h.find("late") != nullptr; }, 60s));
  EXPECT_GE(h.watcher->overflows(), 1u);
}

TEST(Watch, ChangedAfterTakenIsDetectedAndReTaken) {
  Harness h;
  fs::create_directory(h.root() / "exp");
  write_file(h.root() / "exp" / "A.ndjson", kLine);
  write_file(h.root() / "exp" / ".done", "");
  h.watcher->start();
  ASSERT_TRUE(h.run_until([&] { return h.ready_count("exp") == 1; }));
  auto taken = h.ready[0].files;
  EXPECT_TRUE(changed_after_taken(taken).empty());
  {
    std::ofstream f(h.root() / "exp" / "A.ndjson", std::ios::app);
    f << kLine;
  }
  auto changes = changed_after_taken(taken);
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].name, "A.ndjson");
  EXPECT_EQ(changes[0].what, "size");
  // The watcher reports the export again with the new identity.
  ASSERT_TRUE(h.run_until([&] { return h.ready_count("exp") == 2; }));
  EXPECT_EQ(h.ready.back().files[0].identity.size, 2 * kLine.size());
  // Replaced by a new file (new inode) and deleted.
  write_file(h.root() / "exp" / "A.new", kLine + kLine);
  fs::rename(h.root() / "exp" / "A.new", h.root() / "exp" / "A.ndjson");
  auto replaced = changed_after_taken(h.ready.back().files);
  ASSERT_EQ(replaced.size(), 1u);
  EXPECT_EQ(replaced[0].what, "replaced (inode)");
  fs::remove(h.root() / "exp" / "A.ndjson");
  EXPECT_EQ(changed_after_taken(taken).at(0).what, "deleted");
}

TEST(Watch, DeletedExportIsForgottenAndARecreatedOneIsReportedAgain) {
  Harness h;
  h.watcher->start();
  fs::create_directory(h.root() / "again");
  write_file(h.root() / "again" / "A.ndjson", kLine);
  write_file(h.root() / "again" / ".done", "");
  ASSERT_TRUE(h.run_until([&] { return h.ready_count("again") == 1; }));
  fs::remove_all(h.root() / "again");
  fs::create_directory(h.root() / "again");
  write_file(h.root() / "again" / "A.ndjson", kLine);
  write_file(h.root() / "again" / ".done", "");
  ASSERT_TRUE(h.run_until([&] { return h.ready_count("again") == 2; }));
}

TEST(Watch, PeriodicRescanRuns) {
  Harness h(CompletionRules{}, 1s);
  h.watcher->start();
  auto before = h.watcher->rescans();
  ASSERT_TRUE(h.run_until([&] { return h.watcher->rescans() >= before + 1; }));
}

TEST(Watch, FileWrittenBeforeItsDirectoryWasWatchedWaitsForQuiet) {
  // Everything happens before the loop runs, so the directory's watch is added after the file
  // was opened: inotify never reports the open. A long scan_quiet keeps it from being taken
  // while it is still open; the writer's close (seen by inotify) releases it.
  Harness h(CompletionRules{}, 60s, 60s);
  h.watcher->start();
  fs::create_directory(h.root() / "race");
  int fd = ::open((h.root() / "race" / "A.ndjson").c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, kLine.data(), kLine.size()), static_cast<ssize_t>(kLine.size()));
  write_file(h.root() / "race" / ".done", "");
  ASSERT_TRUE(h.run_until([&] { return h.pending_with("race", "may still be open for writing"); }));
  EXPECT_EQ(h.find("race"), nullptr);
  ::close(fd);
  ASSERT_TRUE(h.run_until([&] { return h.find("race") != nullptr; }));
}

TEST(Watch, OptionsFromThePipelineConfig) {
  fe::config::Pipeline p;
  p.name = "epic";
  p.watch = "/var/spool/fhir-edge/epic";
  p.patterns = {"*.ndjson", "*.jsonl"};
  p.complete_when.marker = "READY";
  p.complete_when.client_log = false;
  p.complete_when.settle = 30s;
  auto o = watch_options(p);
  EXPECT_EQ(o.pipeline, "epic");
  EXPECT_EQ(o.root, fs::path("/var/spool/fhir-edge/epic"));
  EXPECT_EQ(o.patterns, p.patterns);
  EXPECT_EQ(o.rules.marker, "READY");
  EXPECT_TRUE(o.rules.bulk_manifest);
  EXPECT_FALSE(o.rules.client_log);
  EXPECT_EQ(o.rules.settle, 30s);
}

TEST(Watch, RootThatDisappearsAndComesBackIsWatchedAgain) {
  Harness h(CompletionRules{}, 1s);
  h.watcher->start();
  fs::remove_all(h.root());
  // The periodic rescan notices the root is gone (nothing to report) ...
  auto before = h.watcher->rescans();
  ASSERT_TRUE(h.run_until([&] { return h.watcher->rescans() >= before + 1; }));
  fs::create_directory(h.root());
  fs::create_directory(h.root() / "back");
  write_file(h.root() / "back" / "A.ndjson", kLine);
  write_file(h.root() / "back" / ".done", "");
  // ... and a later one watches the new root and finds the export.
  ASSERT_TRUE(h.run_until([&] { return h.find("back") != nullptr; }));
  // New exports keep being found.
  fs::create_directory(h.root() / "next");
  write_file(h.root() / "next" / "B.ndjson", kLine);
  write_file(h.root() / "next" / ".done", "");
  ASSERT_TRUE(h.run_until([&] { return h.find("next") != nullptr; }));
}

TEST(Watch, NameProblems) {
  EXPECT_EQ(Watcher::name_problem("Patient.ndjson"), "");
  EXPECT_EQ(Watcher::name_problem("a..b"), "");  // ".." inside a name is not a path segment
  EXPECT_EQ(Watcher::name_problem("Müller-日本-🏥.ndjson"), "");
  EXPECT_EQ(Watcher::name_problem(std::string(240, 'x')), "");
  EXPECT_NE(Watcher::name_problem(std::string(241, 'x')).find("241 bytes is longer than 240"),
            std::string::npos);
  EXPECT_EQ(Watcher::name_problem("a\nb"), "name contains a control character");
  EXPECT_EQ(Watcher::name_problem("a\tb"), "name contains a control character");
  EXPECT_EQ(Watcher::name_problem("a\x1b[31m"), "name contains a control character");
  EXPECT_EQ(Watcher::name_problem("a\x7f"), "name contains a control character");
  EXPECT_EQ(Watcher::name_problem("bad\xff"), "name is not valid UTF-8");
  EXPECT_EQ(Watcher::name_problem("\xC0\xAF"), "name is not valid UTF-8");          // overlong '/'
  EXPECT_EQ(Watcher::name_problem("\xED\xA0\x80"), "name is not valid UTF-8");      // surrogate
  EXPECT_EQ(Watcher::name_problem("caf\xC3"), "name is not valid UTF-8");           // cut short
  EXPECT_EQ(Watcher::name_problem("\xF4\x90\x80\x80"), "name is not valid UTF-8");  // > U+10FFFF
}

TEST(Watch, UnusableNamesAreSkippedOnceAndTheRestOfTheExportIsTaken) {
  Harness h;
  fs::create_directory(h.root() / "exp");
  write_file(h.root() / "exp" / "good.ndjson", kLine);
  write_file(h.root() / "exp" / "new\nline.ndjson", kLine);
  write_file(h.root() / "exp" / (std::string(241, 'l') + ".ndjson"), kLine);
  write_file(h.root() / "exp" / ".done", "");
  fs::create_directory(h.root() /
                       "bad\x1b"
                       "dir");
  write_file(h.root() /
                 "bad\x1b"
                 "dir" /
                 "x.ndjson",
             kLine);
  write_file(h.root() /
                 "bad\x1b"
                 "dir" /
                 ".done",
             "");
  write_file(h.root() / "root\xfe.ndjson", kLine);
  h.watcher->start();
  ASSERT_TRUE(h.run_until([&] { return h.find("exp") != nullptr; }));
  h.watcher->rescan();
  // Created while watched, through inotify, too.
  write_file(h.root() / "late\n.ndjson", kLine);
  fs::create_directory(h.root() / "late\ndir");
  h.watcher->rescan();
  ASSERT_TRUE(h.run_until([&] { return h.skipped.size() >= 6; }));
  EXPECT_EQ(h.ready.size(), 1u);
  EXPECT_EQ(names(h.ready[0]), (std::vector<std::string>{"good.ndjson"}));
  std::map<std::string, std::string> reasons;
  for (const auto& s : h.skipped) {
    EXPECT_EQ(reasons.count(s.path.filename().string()), 0u) << "reported twice: " << s.path;
    reasons[s.path.filename().string()] = s.reason;
  }
  EXPECT_EQ(reasons.size(), 6u);
  EXPECT_EQ(reasons["new\nline.ndjson"], "unusable name (name contains a control character)");
  EXPECT_NE(reasons[std::string(241, 'l') + ".ndjson"].find("longer than 240"), std::string::npos);
  EXPECT_EQ(reasons["bad\x1b"
                    "dir"],
            "unusable name (name contains a control character)");
  EXPECT_EQ(reasons["root\xfe.ndjson"], "unusable name (name is not valid UTF-8)");
  EXPECT_EQ(reasons["late\n.ndjson"], "unusable name (name contains a control character)");
  EXPECT_EQ(reasons["late\ndir"], "unusable name (name contains a control character)");
}

TEST(Watch, RootDeletedAndRecreatedIsWatchedAgainWithoutWaitingForTheRescan) {
  // The periodic rescan is an hour away: only the root re-check can find the new root.
  Harness h(CompletionRules{}, 3600s);
  h.watcher->start();
  fs::remove_all(h.root());
  ASSERT_TRUE(h.run_until([&] { return !fs::exists(h.root()) && h.watcher->rescans() >= 2; }));
  fs::create_directory(h.root());
  fs::create_directory(h.root() / "back");
  write_file(h.root() / "back" / "A.ndjson", kLine);
  write_file(h.root() / "back" / ".done", "");
  ASSERT_TRUE(h.run_until([&] { return h.find("back") != nullptr; }));
  // inotify works on the new root: an export created afterwards is reported without a rescan.
  auto scans = h.watcher->rescans();
  fs::create_directory(h.root() / "next");
  write_file(h.root() / "next" / "B.ndjson", kLine);
  write_file(h.root() / "next" / ".done", "");
  ASSERT_TRUE(h.run_until([&] { return h.find("next") != nullptr; }));
  EXPECT_EQ(h.watcher->rescans(), scans);
}

TEST(Watch, OptionsFromTheDaemonWideWatchSection) {
  fe::config::Config c;
  c.watch.rescan_interval = 120s;
  c.watch.scan_quiet = 1500ms;
  fe::config::Pipeline p;
  p.name = "epic";
  p.watch = "/var/spool/fhir-edge/epic";
  p.complete_when.marker = "READY";
  auto o = watch_options(c, p);
  EXPECT_EQ(o.pipeline, "epic");
  EXPECT_EQ(o.rules.marker, "READY");
  EXPECT_EQ(o.rescan_interval, 120s);
  EXPECT_EQ(o.scan_quiet, 1500ms);
}

TEST(Watch, FileOpenForWritingTooLongIsReportedButStillNotTaken) {
  // truncate(2) by path modifies without an open, so no close ever follows: the export waits
  // (the writer state is unknown) and, past open_warn_after, says so.
  Harness h(CompletionRules{}, 1s);
  WatchOptions o = h.watcher->options();
  o.open_warn_after = 1s;
  h.watcher =
      std::make_unique<Watcher>(h.io, o, [&](const ReadyExport& r) { h.ready.push_back(r); });
  h.watcher->on_pending(
      [&](const std::string& n, const std::string& why) { h.pending.emplace_back(n, why); });
  fs::create_directory(h.root() / "cut");
  write_file(h.root() / "cut" / "A.ndjson", kLine + kLine);
  write_file(h.root() / "cut" / ".done", "");
  h.watcher->start();
  ASSERT_TRUE(h.run_until([&] { return h.find("cut") != nullptr; }));
  ASSERT_EQ(::truncate((h.root() / "cut" / "A.ndjson").c_str(), kLine.size()), 0);
  ASSERT_TRUE(h.run_until([&] {
    return h.pending_with("cut", "file open for writing for ") &&
           h.pending_with("cut", "s without a close: A.ndjson");
  }));
  EXPECT_EQ(h.ready_count("cut"), 1u);
}

// Default patterns take compressed NDJSON; every other file of the export is reported once with
// the reason and listed in ReadyExport::skipped (before: ignored without a word); a subdirectory
// that holds files is listed in `nested` (the pipeline parks such an export).
TEST(Watch, CompressedTakenOthersSkippedWithReasonNestedListed) {
  Harness h;
  fs::create_directory(h.root() / "exp");
  write_file(h.root() / "exp" / "Patient.ndjson.gz", "gz");
  write_file(h.root() / "exp" / "Observation.ndjson.zst", "zst");
  write_file(h.root() / "exp" / "Condition.ndjson", kLine);
  write_file(h.root() / "exp" / "Condition.ndjson.gz", "gz");  // same import name
  write_file(h.root() / "exp" / "notes.txt", "x");
  fs::create_directories(h.root() / "exp" / "more" / "deeper");
  write_file(h.root() / "exp" / "more" / "deeper" / "Encounter.ndjson", kLine);
  fs::create_directory(h.root() / "exp" / "empty");
  write_file(h.root() / "exp" / ".done", "");
  write_file(h.root() / "Single.ndjson.gz", "gz");
  h.watcher->start();
  ASSERT_TRUE(h.run_until([&] { return h.find("exp") && h.find("Single"); }));
  h.watcher->rescan();
  const auto* e = h.find("exp");
  EXPECT_EQ(names(*e), (std::vector<std::string>{"Condition.ndjson", "Observation.ndjson.zst",
                                                 "Patient.ndjson.gz"}));
  std::map<std::string, std::string> skipped;
  for (const auto& s : e->skipped) skipped[s.path.filename().string()] = s.reason;
  EXPECT_EQ(skipped.size(), 2u);
  EXPECT_EQ(skipped["notes.txt"], "does not match patterns (*.ndjson, *.ndjson.gz, *.ndjson.zst)");
  EXPECT_EQ(skipped["Condition.ndjson.gz"], "same import name as Condition.ndjson");
  EXPECT_EQ(e->nested, (std::vector<std::string>{"more/ (1 entries)"}));
  // Logged (on_skipped) once each, even after a rescan.
  size_t notes = 0;
  for (const auto& s : h.skipped) notes += s.path.filename() == "notes.txt";
  EXPECT_EQ(notes, 1u);
  EXPECT_EQ(names(*h.find("Single")), (std::vector<std::string>{"Single.ndjson.gz"}));
  EXPECT_EQ(Watcher::plain_name("Patient.ndjson.gz"), "Patient.ndjson");
  EXPECT_EQ(Watcher::plain_name("Patient.ndjson.zst"), "Patient.ndjson");
  EXPECT_EQ(Watcher::plain_name("Patient.ndjson"), "Patient.ndjson");
}

// issue 18 defect 6: a file of a taken export replaced by a FIFO (as during spooling) held the
// export "open for writing" until a restart (IN_CREATE, never a close). The FIFO is skipped with
// its reason and the export is reported again without it.
TEST(Watch, FifoSwappedInForATakenFileIsSkippedAndTheExportGoesOn) {
  Harness h;
  h.watcher->start();
  fs::create_directory(h.root() / "exp");
  write_file(h.root() / "exp" / "A.ndjson", kLine);
  write_file(h.root() / "exp" / "B.ndjson", kLine);
  write_file(h.root() / "exp" / ".done", "");
  ASSERT_TRUE(h.run_until([&] { return h.find("exp") != nullptr; }));
  EXPECT_EQ(names(*h.find("exp")), (std::vector<std::string>{"A.ndjson", "B.ndjson"}));
  const size_t pending_before = h.pending.size();
  fs::remove(h.root() / "exp" / "B.ndjson");
  ASSERT_EQ(::mkfifo((h.root() / "exp" / "B.ndjson").c_str(), 0644), 0);
  ASSERT_TRUE(h.run_until([&] { return h.ready_count("exp") == 2; }, 15s))
      << "export held back: " << (h.pending.empty() ? std::string("-") : h.pending.back().second);
  EXPECT_EQ(names(h.ready.back()), (std::vector<std::string>{"A.ndjson"}));
  ASSERT_EQ(h.ready.back().skipped.size(), 1u);
  EXPECT_EQ(h.ready.back().skipped[0].reason, "FIFO");
  for (size_t i = pending_before; i < h.pending.size(); ++i)
    EXPECT_EQ(h.pending[i].second.find("open for writing"), std::string::npos)
        << h.pending[i].second;
}

// Issue 17 item 3: what waits for its completion rule is reported (on_waiting) with the rule,
// what is missing and since when; `since` stays while the reason changes; the export leaves the
// set once it is ready, and a deleted one too. The first report comes from start() even when
// nothing waits (it replaces an earlier run's).
TEST(Watch, WaitingExportsAreReportedWithRuleMissingAndSince) {
  Harness h;  // marker .done, bulk manifest and client log enabled
  WatchOptions o = h.watcher->options();
  o.waiting_report_delay = 0ms;
  h.watcher =
      std::make_unique<Watcher>(h.io, o, [&](const ReadyExport& r) { h.ready.push_back(r); });
  std::vector<std::vector<Waiting>> reports;
  h.watcher->on_waiting([&](const std::vector<Waiting>& w) { reports.push_back(w); });
  auto now = std::chrono::system_clock::now();
  h.watcher->start();
  ASSERT_EQ(reports.size(), 1u);
  EXPECT_TRUE(reports.back().empty());

  fs::create_directory(h.root() / "exp");
  write_file(h.root() / "exp" / "Patient.ndjson", kLine);
  auto waiting_for = [&](const std::string& rule) {
    return !reports.empty() && reports.back().size() == 1 && reports.back()[0].rule == rule;
  };
  ASSERT_TRUE(h.run_until([&] { return waiting_for("bulk_manifest|marker|client_log"); }));
  Waiting first = reports.back()[0];
  EXPECT_EQ(first.name, "exp");
  EXPECT_EQ(first.path, h.root() / "exp");
  EXPECT_NE(first.missing.find("manifest.json naming every file, the marker .done or log.ndjson "
                               "recording export_complete"),
            std::string::npos)
      << first.missing;
  EXPECT_GE(first.since, now - 1s);
  EXPECT_LE(first.since, std::chrono::system_clock::now());

  // A manifest that names a file not there yet: the rule and what is missing change, since not.
  write_file(h.root() / "exp" / "manifest.json", R"({"transactionTime":"2026-11-26T08:00:00Z",
    "request":"https://ehr.example.org/fhir/$export","requiresAccessToken":false,
    "output":[{"type":"Patient","url":"https://x/Patient.ndjson"},
              {"type":"Observation","url":"https://x/Observation.ndjson"}],"error":[]})");
  ASSERT_TRUE(h.run_until([&] { return waiting_for("bulk_manifest"); }));
  EXPECT_NE(reports.back()[0].missing.find("Observation.ndjson"), std::string::npos);
  EXPECT_EQ(reports.back()[0].since, first.since);
  EXPECT_EQ(h.watcher->waiting().size(), 1u);

  // A second export, deleted while it waits, leaves the set.
  fs::create_directory(h.root() / "gone");
  write_file(h.root() / "gone" / "A.ndjson", kLine);
  ASSERT_TRUE(h.run_until([&] { return !reports.empty() && reports.back().size() == 2; }));
  EXPECT_EQ(reports.back()[0].name, "exp");  // oldest first
  fs::remove_all(h.root() / "gone");
  ASSERT_TRUE(h.run_until([&] { return waiting_for("bulk_manifest"); }));

  write_file(h.root() / "exp" / "Observation.ndjson", kLine);
  ASSERT_TRUE(h.run_until([&] { return h.find("exp") != nullptr; }));
  ASSERT_TRUE(h.run_until([&] { return !reports.empty() && reports.back().empty(); }));
  EXPECT_TRUE(h.watcher->waiting().empty());
}

// Changes are coalesced: a burst of files opening and closing in one export (each a change of
// what is missing) is one report after waiting_report_delay, not one per change.
TEST(Watch, WaitingReportsAreCoalesced) {
  Harness h;
  WatchOptions o = h.watcher->options();
  o.waiting_report_delay = 5s;  // far longer than the burst below takes
  h.watcher =
      std::make_unique<Watcher>(h.io, o, [&](const ReadyExport& r) { h.ready.push_back(r); });
  std::vector<std::vector<Waiting>> reports;
  h.watcher->on_waiting([&](const std::vector<Waiting>& w) { reports.push_back(w); });
  std::set<std::string> reasons;
  h.watcher->on_pending([&](const std::string&, const std::string& why) { reasons.insert(why); });
  h.watcher->start();
  ASSERT_EQ(reports.size(), 1u);  // start()
  fs::create_directory(h.root() / "burst");
  h.io.poll();
  for (int i = 0; i < 10; ++i) {
    std::string name = "F" + std::to_string(i) + ".ndjson";
    int fd = ::open((h.root() / "burst" / name).c_str(), O_CREAT | O_WRONLY, 0644);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(::write(fd, kLine.data(), kLine.size()), static_cast<ssize_t>(kLine.size()));
    h.run_until([&] { return reasons.count("file open for writing: " + name) > 0; }, 5s);
    ::close(fd);
    h.io.poll();
  }
  EXPECT_GE(reasons.size(), 10u);  // the reason changed at least once per file...
  EXPECT_EQ(reports.size(), 1u);   // ...and nothing was reported yet
  ASSERT_TRUE(h.run_until([&] { return reports.size() >= 2; }));
  ASSERT_EQ(reports[1].size(), 1u);
  EXPECT_EQ(reports[1][0].rule, "bulk_manifest|marker|client_log");
}
