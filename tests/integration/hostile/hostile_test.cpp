// Hostile and broken input against the real daemon (`fhir-edge run`) and healthlake-local: each
// case gives one log line naming the file and the cause, good exports next to it are imported,
// and the daemon keeps running. docs/hostile-input.md describes each case.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <fstream>

#include "daemon_run.hpp"

namespace {

using namespace fe::test;

constexpr uint64_t kMiB = 1ull << 20;

// Writes an export directory under a temporary name with `fill(dir)`, adds the marker and renames
// it into the root.
void drop_with(const fs::path& root, const std::string& name,
               const std::function<void(const fs::path&)>& fill) {
  fs::path tmp = root / (".tmp-" + name.substr(0, 40));
  fs::create_directories(tmp);
  fill(tmp);
  write_file(tmp / ".done", "");
  fs::rename(tmp, root / name);
}

std::string patient(const std::string& id) {
  return "{\"resourceType\":\"Patient\",\"id\":\"" + id + "\",\"gender\":\"male\"}";
}

TEST(HostileInput, BadLinesAreRejectedAloneWithOneLogLineNamingFileAndCause) {
  DaemonRun run({});
  run.start();
  drop_export(run.watch(), "good-before", {{"Patient.ndjson", patients("before", 20)}});
  ASSERT_EQ(run.wait_final("good-before"), "imported") << run.log();
  const uint64_t base_rss = run.peak_rss();

  // 1. One 100 MiB line between two valid ones, written streamed (the test never holds it).
  const uint64_t huge = 100 * kMiB;
  fs::path huge_file;
  drop_with(run.watch(), "huge-line", [&](const fs::path& d) {
    std::ofstream out(d / "Patient.ndjson", std::ios::binary);
    out << patient("huge-before") << "\n";
    std::string head = "{\"resourceType\":\"Patient\",\"id\":\"huge\",\"text\":\"";
    out << head;
    std::string chunk(kMiB, 'a');
    uint64_t left = huge - head.size() - 2;
    while (left > 0) {
      auto n = std::min<uint64_t>(left, chunk.size());
      out.write(chunk.data(), static_cast<std::streamsize>(n));
      left -= n;
    }
    out << "\"}\n" << patient("huge-after") << "\n";
  });
  huge_file = run.watch() / "huge-line" / "Patient.ndjson";
  ASSERT_EQ(run.wait_final("huge-line"), "imported") << run.log();
  auto st = run.export_status("huge-line");
  EXPECT_EQ(st->valid, 2);
  EXPECT_EQ(st->rejected, 1);
  auto lines = run.log_lines({"warning: 1 invalid line(s) rejected, first line 2: line of " +
                                  std::to_string(huge) + " bytes exceeds the line size limit",
                              "FHIR_FILE=" + huge_file.string()});
  EXPECT_EQ(lines.size(), 1u) << run.log();
  // Bounded memory: the line was never held whole (the reader keeps at most its line limit).
  const uint64_t peak = run.peak_rss();
  EXPECT_LT(peak - base_rss, huge) << "peak RSS grew by " << (peak - base_rss) / kMiB << " MiB";
  std::cout << "[ hostile ] 100 MiB line: daemon peak RSS " << base_rss / kMiB << " MiB before, "
            << peak / kMiB << " MiB after\n";

  // 2. One file per kind of broken line, each with valid lines around it.
  const std::string deep = std::string(10000, '[') + std::string(10000, ']');
  std::map<std::string, std::string> files = {
      {"deep.ndjson", patient("deep-1") +
                          "\n{\"resourceType\":\"Patient\",\"id\":\"deep\","
                          "\"extension\":" +
                          deep + "}\n" + patient("deep-3") + "\n"},
      {"utf8.ndjson", patient("utf8-1") +
                          "\n{\"resourceType\":\"Patient\",\"id\":\"utf8\",\"gender\":\"m\xC3\x28"
                          "le\"}\n" +
                          patient("utf8-3") + "\n"},
      {"nul.ndjson", patient("nul-1") + "\n" + std::string("{\"resourceType\":\"Pat\0ient\"}", 26) +
                         "\n" + patient("nul-3") + "\n"},
      {"bom.ndjson", "\xEF\xBB\xBF" + patient("bom-1") + "\n" + patient("bom-2") + "\n"},
      {"bom-inside.ndjson", patient("bomin-1") + "\n\xEF\xBB\xBF" + patient("bomin-2") + "\n"},
  };
  drop_export(run.watch(), "bad-lines", files);
  ASSERT_EQ(run.wait_final("bad-lines"), "imported") << run.log();
  st = run.export_status("bad-lines");
  EXPECT_EQ(st->valid, 2 + 2 + 2 + 2 + 1);
  EXPECT_EQ(st->rejected, 4);
  const fs::path bad = run.watch() / "bad-lines";
  for (const auto& [file, cause] :
       std::vector<std::pair<std::string, std::string>>{{"deep.ndjson", "first line 2: "},
                                                        {"utf8.ndjson", "first line 2: "},
                                                        {"nul.ndjson", "first line 2: "},
                                                        {"bom-inside.ndjson", "first line 2: "}}) {
    auto l =
        run.log_lines({"invalid line(s) rejected, " + cause, "FHIR_FILE=" + (bad / file).string()});
    EXPECT_EQ(l.size(), 1u) << file << "\n" << run.log();
  }
  EXPECT_EQ(run.log_lines({"nest", "FHIR_FILE=" + (bad / "deep.ndjson").string()}).size(), 1u)
      << run.log();
  EXPECT_EQ(run.log_lines({"UTF-8", "FHIR_FILE=" + (bad / "utf8.ndjson").string()}).size(), 1u)
      << run.log();
  // A BOM before line 1 is tolerated (one notice) and not sent on to HealthLake.
  EXPECT_EQ(run.log_lines({"notice: leading UTF-8 byte order mark on line 1 ignored",
                           "FHIR_FILE=" + (bad / "bom.ndjson").string()})
                .size(),
            1u)
      << run.log();
  auto obj = run.hll().object("landing", "exports/bad-lines/import/bom.ndjson");
  ASSERT_TRUE(obj);
  EXPECT_EQ(*obj, patient("bom-1") + "\n" + patient("bom-2") + "\n");

  auto imported = run.hll().imported_resources();
  for (const char* id : {"huge-before", "huge-after", "deep-1", "deep-3", "utf8-1", "utf8-3",
                         "nul-1", "nul-3", "bom-1", "bom-2", "bomin-1", "before-20"})
    EXPECT_EQ(imported["Patient/" + std::string(id)], 1u) << id;
  for (const char* id : {"huge", "deep", "utf8", "bomin-2"})
    EXPECT_EQ(imported.count("Patient/" + std::string(id)), 0u) << id;

  for (const auto& l : run.log_lines({"FHIR_FILE="}))
    if (l.find("rejected") != std::string::npos || l.find("byte order") != std::string::npos)
      std::cout << "[ hostile ] " << l << "\n";

  // Still running and still taking exports.
  drop_export(run.watch(), "good-after", {{"Patient.ndjson", patients("after", 5)}});
  EXPECT_EQ(run.wait_final("good-after"), "imported") << run.log();
  EXPECT_EQ(run.stop(), 0);
}

TEST(HostileInput, UnusableNamesSymlinksAndFifosAreSkippedWithOneWarningEach) {
  TempDir outside;
  write_file(outside.path() / "secret.ndjson", patient("outside") + "\n");
  fs::create_directories(outside.path() / "dir");
  write_file(outside.path() / "dir" / "Patient.ndjson", patient("outside-dir") + "\n");
  write_file(outside.path() / "dir" / ".done", "");

  DaemonRun run({});
  const fs::path root = run.watch();
  run.start();

  // Names that cannot be spool paths or S3 keys: refused before anything is read.
  const std::string nl_dir = "line\nbreak";
  drop_export(root, nl_dir, {{"Patient.ndjson", patients("nl", 2)}});
  const std::string esc_file = std::string("evil\x1b[31m.ndjson");
  const std::string long241(241, 'x');
  drop_with(root, "mixed-names", [&](const fs::path& d) {
    write_file(d / "Patient.ndjson", patients("mixed", 3));
    write_file(d / "has\nnewline.ndjson", patients("nlfile", 1));
    write_file(d / esc_file, patients("esc", 1));
    write_file(d / (long241 + ".ndjson"), patients("long", 1));
    write_file(d / "bad\xff"
                   ".ndjson",
               patients("latin1", 1));
    ASSERT_EQ(::symlink((outside.path() / "secret.ndjson").c_str(), (d / "Link.ndjson").c_str()),
              0);
    ::mkfifo((d / "Fifo.ndjson").c_str(), 0644);
  });
  // Symlinks and FIFOs at the root: never followed, never opened.
  ASSERT_EQ(::symlink((outside.path() / "dir").c_str(), (root / "linked-export").c_str()), 0);
  ASSERT_EQ(::symlink((outside.path() / "secret.ndjson").c_str(), (root / "linked.ndjson").c_str()),
            0);
  ::mkfifo((root / "pipe.ndjson").c_str(), 0644);
  // Names that look odd but are fine: ".." inside a name, non-ASCII UTF-8, 240 bytes.
  const std::string uni = "Müller-日本-ünïcödé";
  drop_export(root, "a..b", {{"x..y.ndjson", patients("dots", 2)}});
  drop_export(root, uni, {{uni + ".ndjson", patients("uni", 2)}});
  const std::string name240 = std::string(233, 'n') + ".ndjson";
  drop_export(root, std::string(240, 'e'), {{name240, patients("n240", 2)}});

  for (const auto& name : {"mixed-names", "a..b"})
    EXPECT_EQ(run.wait_final(name), "imported") << name << "\n" << run.log();
  EXPECT_EQ(run.wait_final(uni), "imported") << run.log();
  EXPECT_EQ(run.wait_final(std::string(240, 'e')), "imported") << run.log();
  auto st = run.export_status("mixed-names");
  EXPECT_EQ(st->files, 1);  // only Patient.ndjson
  EXPECT_EQ(st->valid, 3);

  auto one = [&](const std::string& what, const fs::path& p) {
    // The plain log escapes control characters: look for the escaped form.
    std::string shown = p.string(), esc;
    for (unsigned char c : shown) {
      if (c == '\n') {
        esc += "\\n";
      } else if (c < 0x20 || c == 0x7f) {
        char b[8];
        std::snprintf(b, sizeof b, "\\x%02x", c);
        esc += b;
      } else {
        esc += static_cast<char>(c);
      }
    }
    auto l = run.log_lines({"warning: skipping " + what, esc});
    EXPECT_EQ(l.size(), 1u) << what << " " << esc << "\n" << run.log();
  };
  one("unusable name (name contains a control character)", root / nl_dir);
  one("unusable name (name contains a control character)",
      root / "mixed-names" / "has\nnewline.ndjson");
  one("unusable name (name contains a control character)", root / "mixed-names" / esc_file);
  one("unusable name (name of 248 bytes is longer than 240",
      root / "mixed-names" / (long241 + ".ndjson"));
  one("unusable name (name is not valid UTF-8)", root / "mixed-names" / "bad\xff.ndjson");
  one("symlink (never followed)", root / "mixed-names" / "Link.ndjson");
  one("FIFO", root / "mixed-names" / "Fifo.ndjson");
  one("symlink (never followed)", root / "linked-export");
  one("symlink (never followed)", root / "linked.ndjson");
  one("FIFO", root / "pipe.ndjson");
  // No raw control character ever reaches the log.
  for (char c : run.log()) EXPECT_FALSE(c != '\n' && static_cast<unsigned char>(c) < 0x20);

  // Unicode names become UTF-8 S3 keys as they are.
  EXPECT_TRUE(run.hll().object("landing", "exports/" + uni + "/import/" + uni + ".ndjson"));
  EXPECT_TRUE(run.hll().object("landing", "exports/a..b/import/x..y.ndjson"));
  auto imported = run.hll().imported_resources();
  for (const char* id :
       {"outside", "outside-dir", "nl-1", "nlfile-1", "esc-1", "long-1", "latin1-1"})
    EXPECT_EQ(imported.count("Patient/" + std::string(id)), 0u) << id;
  EXPECT_EQ(imported["Patient/uni-2"], 1u);
  EXPECT_EQ(imported["Patient/n240-2"], 1u);
  // The OS refuses a 1,000-character name outright (NAME_MAX 255 bytes): nothing to watch.
  std::ofstream thousand(root / (std::string(1000, 'k') + ".ndjson"));
  EXPECT_FALSE(thousand.good());
  EXPECT_TRUE(run.running());
  EXPECT_EQ(run.stop(), 0);
}

TEST(HostileInput, ObjectKeyLongerThan1024BytesParksTheExportWithTheReason) {
  // A long configured prefix plus long (allowed) names exceed S3's 1,024-byte key limit.
  TempDir d;
  DaemonRun::Options o;
  o.pipelines.push_back({"long", d.path() / "long", std::string(600, 'p')});
  o.pipelines.push_back({"short", d.path() / "short"});
  DaemonRun run(o);
  run.start();
  const std::string name(240, 'e');
  drop_export(run.watch(0), name, {{std::string(233, 'f') + ".ndjson", patients("long", 2)}});
  drop_export(run.watch(1), "fine", {{"Patient.ndjson", patients("fine", 2)}});
  EXPECT_EQ(run.wait_final(name), "parked") << run.log();
  EXPECT_NE(run.export_status(name)->parked_reason.find("object key longer than 1024 bytes"),
            std::string::npos)
      << run.export_status(name)->parked_reason;
  EXPECT_EQ(run.log_lines({"error: export parked", "object key longer than 1024 bytes"}).size(), 1u)
      << run.log();
  EXPECT_EQ(run.wait_final("fine"), "imported") << run.log();
  EXPECT_EQ(run.stop(), 0);
}

TEST(HostileInput, SourceTruncatedOrReplacedWhileReadIsTakenAgainAsANewVersion) {
  DaemonRun run({});
  run.start();
  // Large enough that it is still being read when it is cut (validation runs at a few MB/s
  // under the sanitizers); either way the outcome below must hold.
  const int n = 150000;
  drop_export(run.watch(), "cut", {{"Patient.ndjson", patients("cut", n)}});
  const fs::path file = run.watch() / "cut" / "Patient.ndjson";
  ASSERT_TRUE(DaemonRun::wait_until([&] { return run.log_has("export taken EXPORT_ID=cut"); }))
      << run.log();
  // Truncate in place to the first 10 lines (open, ftruncate, close: the writer's close is what
  // tells the watcher the file is settled again).
  std::string keep = patients("cut", 10);
  int fd = ::open(file.c_str(), O_WRONLY | O_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::ftruncate(fd, static_cast<off_t>(keep.size())), 0);
  ::close(fd);

  // Replace a second export by rename while it is read.
  drop_export(run.watch(), "swap", {{"Patient.ndjson", patients("swap", n)}});
  const fs::path sfile = run.watch() / "swap" / "Patient.ndjson";
  ASSERT_TRUE(DaemonRun::wait_until([&] { return run.log_has("export taken EXPORT_ID=swap"); }))
      << run.log();
  write_file(run.watch() / "swap" / ".new.tmp", patients("swapped", 7));
  fs::rename(run.watch() / "swap" / ".new.tmp", sfile);

  drop_export(run.watch(), "good", {{"Patient.ndjson", patients("good", 5)}});
  EXPECT_EQ(run.wait_final("good"), "imported") << run.log();

  // Nothing is imported half-old. Seen mid-read, the version imported last is the file as it is
  // now. Read completely before the change (a fast machine), the old version is consistent and
  // goes on; the changed one is then a new version of an export already past spooling, held for
  // the operator (on_changed: hold, issue 18) rather than imported a second time.
  auto settled = [](const std::optional<ExportStatus>& e, int64_t valid) {
    return e && ((e->state == "imported" && e->valid == valid) ||
                 (e->state == "parked" && e->parked_reason.starts_with("held: changed after")));
  };
  ASSERT_TRUE(DaemonRun::wait_until([&] {
    return settled(run.export_status("cut"), 10) && settled(run.export_status("swap"), 7);
  })) << run.status_json()
      << run.log();
  const bool cut_held = run.export_status("cut")->state == "parked";
  const bool swap_held = run.export_status("swap")->state == "parked";
  auto imported = run.hll().imported_resources();
  if (!cut_held) {
    EXPECT_EQ(imported["Patient/cut-10"], 1u);
  }
  if (!swap_held) {
    EXPECT_EQ(imported["Patient/swapped-7"], 1u);
  } else {
    EXPECT_EQ(imported.count("Patient/swapped-7"), 0u);
  }
  // Each change gives one warning naming the file and what changed. (If the machine was fast
  // enough to finish reading before the change, the old version was complete and consistent,
  // and the change makes a new version all the same.)
  bool cut_seen_mid_read = !run.log_lines({"changed while it was spooled", file.string()}).empty();
  bool swap_seen_mid_read =
      !run.log_lines({"changed while it was spooled", sfile.string()}).empty();
  if (cut_seen_mid_read) {
    EXPECT_FALSE(cut_held) << run.status_json();
    EXPECT_EQ(run.log_lines({"warning: source changed after it was taken", file.string()}).size(),
              1u)
        << run.log();
    EXPECT_EQ(imported.count("Patient/cut-11"), 0u);
  }
  if (swap_seen_mid_read) {
    EXPECT_FALSE(swap_held) << run.status_json();
    EXPECT_EQ(imported.count("Patient/swap-1"), 0u);
  }
  std::cout << "[ hostile ] change seen while reading: truncated=" << cut_seen_mid_read
            << " replaced=" << swap_seen_mid_read << "; new version held: truncated=" << cut_held
            << " replaced=" << swap_held << "\n";
  EXPECT_EQ(run.stop(), 0);
}

TEST(HostileInput, WatchRootDeletedAndRecreatedIsWatchedAgain) {
  DaemonRun run({});
  const fs::path root = run.watch();
  run.start();
  drop_export(root, "first", {{"Patient.ndjson", patients("first", 3)}});
  ASSERT_EQ(run.wait_final("first"), "imported") << run.log();
  fs::remove_all(root);
  ASSERT_TRUE(DaemonRun::wait_until([&] { return run.log_has("watch root disappeared"); }))
      << run.log();
  fs::create_directories(root);
  ASSERT_TRUE(DaemonRun::wait_until([&] { return run.log_has("watch root is back"); }))
      << run.log();
  drop_export(root, "second", {{"Patient.ndjson", patients("second", 3)}});
  EXPECT_EQ(run.wait_final("second"), "imported") << run.log();
  EXPECT_EQ(run.log_lines({"error: watch root disappeared", "WATCH_ROOT=" + root.string()}).size(),
            1u)
      << run.log();
  EXPECT_EQ(run.hll().imported_resources()["Patient/second-3"], 1u);
  EXPECT_EQ(run.stop(), 0);
}

}  // namespace

namespace {
// Compresses `path` in place with the real tool (gzip -> .gz, zstd -> .zst), as clients do.
void compress_with(const std::string& tool, const fs::path& path) {
  std::string cmd = tool + (tool == "zstd" ? " -q --rm " : " ") + shell_quote(path.string());
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
}
}  // namespace

// issue 15 defects 5 and 6: .ndjson.gz / .ndjson.zst exports are read decompressed with the
// default patterns and imported as plain .ndjson; a file no pattern matches is logged once and
// listed in `status --export`; an export with files in a subdirectory is parked, saying why
// (before: the gzip file and the nested file were ignored in silence and the export "imported").
TEST(HostileInput, CompressedExportsImportedSkippedFilesListedNestedExportParked) {
  DaemonRun run({});
  run.start();
  drop_with(run.watch(), "gz-export", [&](const fs::path& d) {
    write_file(d / "Patient.ndjson", patients("gz", 30));
    compress_with("gzip", d / "Patient.ndjson");
    write_file(d / "Other.ndjson", patients("zst", 20));
    compress_with("zstd", d / "Other.ndjson");
    write_file(d / "README.txt", "export notes");
  });
  ASSERT_EQ(run.wait_final("gz-export"), "imported") << run.log();
  auto st = run.export_status("gz-export");
  EXPECT_EQ(st->files, 2);
  EXPECT_EQ(st->valid, 50);
  EXPECT_EQ(st->rejected, 0);
  auto obj = run.hll().object("landing", "exports/gz-export/import/Patient.ndjson");
  ASSERT_TRUE(obj);
  EXPECT_EQ(*obj, patients("gz", 30));  // plain NDJSON, as HealthLake documents its input
  EXPECT_TRUE(run.hll().object("landing", "exports/gz-export/import/Other.ndjson"));
  auto imported = run.hll().imported_resources();
  EXPECT_EQ(imported["Patient/gz-30"], 1u);
  EXPECT_EQ(imported["Patient/zst-20"], 1u);
  const fs::path readme = run.watch() / "gz-export" / "README.txt";
  EXPECT_EQ(run.log_lines({"warning: skipping does not match patterns", readme.string()}).size(),
            1u)
      << run.log();
  std::string detail =
      capture(std::string(FE_EXE) + " status --json --export gz-export --journal " +
              shell_quote(run.journal().string()));
  EXPECT_NE(detail.find(R"("skipped":[{"name":"README.txt","reason":"does not match patterns)"),
            std::string::npos)
      << detail;
  std::string text = capture(std::string(FE_EXE) + " status --export gz-export --journal " +
                             shell_quote(run.journal().string()));
  EXPECT_NE(text.find("not taken:\n  README.txt  does not match patterns"), std::string::npos)
      << text;

  drop_with(run.watch(), "nested", [&](const fs::path& d) {
    write_file(d / "Patient.ndjson", patients("top", 2));
    fs::create_directories(d / "2026-12-01");
    write_file(d / "2026-12-01" / "Patient.ndjson", patients("deep", 2));
  });
  ASSERT_EQ(run.wait_final("nested"), "parked") << run.log();
  auto nst = run.export_status("nested");
  EXPECT_NE(nst->parked_reason.find("files in subdirectories, which are not taken: 2026-12-01/"),
            std::string::npos)
      << nst->parked_reason;
  EXPECT_EQ(run.hll().imported_resources().count("Patient/top-1"), 0u);
  EXPECT_TRUE(run.running());
  EXPECT_EQ(run.stop(), 0);
}

// issue 18 defect 7: pipelines[].max_line_bytes bounds the line the daemon holds (and so its
// memory); a valid line over it is counted, not held, and rejected naming the configured limit.
TEST(HostileInput, ConfiguredMaxLineBytesRejectsALongerValidLine) {
  DaemonRun::Options o;
  TempDir in;
  o.pipelines.push_back({"p", in.path() / "in"});
  o.pipelines[0].complete_when += "\n    max_line_bytes: 1MiB";
  DaemonRun run(o);
  run.start();
  drop_with(run.watch(), "long-valid", [&](const fs::path& d) {
    std::string big =
        "{\"resourceType\":\"Patient\",\"id\":\"big\",\"text\":{\"status\":"
        "\"generated\",\"div\":\"<div xmlns=\\\"http://www.w3.org/1999/xhtml\\\">" +
        std::string(2 * kMiB, 'a') + "</div>\"}}";
    write_file(d / "Patient.ndjson",
               patient("short-1") + "\n" + big + "\n" + patient("short-3") + "\n");
  });
  ASSERT_EQ(run.wait_final("long-valid"), "imported") << run.log();
  auto st = run.export_status("long-valid");
  EXPECT_EQ(st->valid, 2);
  EXPECT_EQ(st->rejected, 1);
  EXPECT_EQ(run.log_lines({"first line 2: line of", "exceeds the line size limit of 1048576 bytes"})
                .size(),
            1u)
      << run.log();
  EXPECT_EQ(run.stop(), 0);
}

namespace {

// Issue 15 defect 1: an export in which no line is valid starts no import job (it used to start
// one on an empty prefix, which failed with "No input files found" and would hold the account's
// single import slot on AWS). It ends nothing_to_import with its report and rejects uploaded,
// the source is kept, and the next export is imported as usual.
TEST(HostileInput, ExportWithNothingValidStartsNoImportJob) {
  DaemonRun run({});
  run.start();
  drop_export(run.watch(), "all-bad",
              {{"Patient.ndjson", "not json\n{\"resourceType\":\"NoSuchType\",\"id\":\"x\"}\n"}});
  ASSERT_EQ(run.wait_final("all-bad"), "nothing_to_import") << run.log();
  auto st = run.export_status("all-bad");
  EXPECT_EQ(st->valid, 0);
  EXPECT_EQ(st->rejected, 2);
  EXPECT_NE(st->last_error.find("no import job started"), std::string::npos) << st->last_error;
  EXPECT_TRUE(run.hll().object("landing", "exports/all-bad/report.json").has_value());
  EXPECT_TRUE(
      run.hll().object("landing", "exports/all-bad/rejected/Patient.ndjson.zst").has_value());

  drop_export(run.watch(), "good", {{"Patient.ndjson", patients("good", 3)}});
  ASSERT_EQ(run.wait_final("good"), "imported") << run.log();
  size_t starts = 0;
  for (const auto& l : run.hll().request_log_lines())
    if (l.find("\"StartFHIRImportJob\"") != std::string::npos) ++starts;
  EXPECT_EQ(starts, 1u);  // only `good`'s
  EXPECT_EQ(run.wait_final("all-bad"), "nothing_to_import");
  EXPECT_TRUE(run.running());
  EXPECT_EQ(run.stop(), 0);
}

// Issue 18 defect 1: healthlake-local --require-sse-kms and s3.kms_key_id: null (no SSE-KMS on
// the uploaded objects): the job ends COMPLETED_WITH_ERRORS with 0 of N resources imported. That
// is not `imported`, so after_upload: delete must leave the source alone, and status says why.
TEST(HostileInput, ImportThatImportedNothingKeepsTheSource) {
  DaemonRun::Options o;
  o.after_upload = "delete";
  o.hll.extra_args = {"--require-sse-kms"};
  DaemonRun run(o);
  run.start();
  drop_export(run.watch(), "nokms", {{"Patient.ndjson", patients("nokms", 4)}});
  ASSERT_EQ(run.wait_final("nokms"), "import_failed") << run.log();
  auto st = run.export_status("nokms");
  EXPECT_NE(st->last_error.find("imported none of the export's 4 resources"), std::string::npos)
      << st->last_error;
  EXPECT_NE(st->last_error.find("The source is kept"), std::string::npos) << st->last_error;
  EXPECT_TRUE(fs::exists(run.watch() / "nokms" / "Patient.ndjson"));  // not deleted
  EXPECT_TRUE(run.hll().imported_resources().empty());
  EXPECT_EQ(run.stop(), 0);
}

}  // namespace
