// The pipeline's completion rules and `fhir-edge status --json`, end to end through the component
// against healthlake-local on 127.0.0.1: real inotify, real SQLite journal, real zstd spool, real
// HTTP, and the real fhir-edge binary for status. Each test enables one completion rule only, so
// an upload proves that rule fired.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

#include "app/stages.hpp"
#include "component.hpp"
#include "config/config.hpp"
#include "harness.hpp"
#include "journal/journal.hpp"

namespace {
namespace fs = std::filesystem;
using namespace fe::test;
using fe::journal::ExportState;

// config_yaml with only the given completion rules (the harness enables marker + manifest).
std::string rules_yaml(const fs::path& root, const std::string& endpoint,
                       const std::string& complete_when) {
  std::string y = config_yaml(root, endpoint);
  const std::string from =
      "complete_when: { marker: .done, bulk_manifest: true, client_log: false, "
      "settle_seconds: 0 }";
  auto at = y.find(from);
  if (at == std::string::npos) throw std::runtime_error("harness config changed: no complete_when");
  y.replace(at, from.size(), "complete_when: " + complete_when);
  return y;
}

// The completion rule the journal recorded for the only export (its state event
// "discovered -> complete: complete: <rule>").
std::string journaled_rule(const fs::path& root) {
  auto j = fe::journal::Journal::open(root / "journal.db", {.read_only = true});
  auto rows = j.exports(true);
  if (rows.size() != 1) return "(" + std::to_string(rows.size()) + " exports)";
  for (const auto& ev : j.events(rows[0].id, 10000))
    if (auto at = ev.message.find("-> complete: complete: "); at != std::string::npos)
      return ev.message.substr(at + 23);
  return "(no completion event)";
}

// The names of the objects directly under <prefix>/<export>/<kind>/.
std::set<std::string> object_names(S3Reader& s3, const std::string& export_name,
                                   const std::string& kind) {
  std::set<std::string> out;
  const std::string prefix = "exports/" + export_name + "/" + kind + "/";
  for (const auto& k : s3.list(prefix)) out.insert(k.substr(prefix.size()));
  return out;
}

std::set<std::string> ndjson_names(const fs::path& dir) {
  std::set<std::string> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".ndjson") out.insert(e.path().filename());
  return out;
}

// Every named file's import object equals its source (the generator's lines are all valid).
void expect_imports_equal_sources(S3Reader& s3, const fs::path& dir, const std::string& export_name,
                                  const std::set<std::string>& names) {
  for (const auto& n : names) {
    auto obj = s3.get("exports/" + export_name + "/import/" + n);
    ASSERT_TRUE(obj) << n;
    EXPECT_TRUE(*obj == read_file(dir / n)) << n << ": import object differs from the source";
  }
}

class PipelineRulesTest : public StagesTest {};

// `fhir-edge status --json --journal PATH` (the real binary) reports what the journal holds and
// what the store holds: state, files, resources valid and rejected, source and uploaded bytes.
TEST_F(PipelineRulesTest, StatusJsonAgreesWithJournalAndStore) {
  REQUIRE_TOOLS();
  auto root = temp_dir("status");
  LocalS3 server(root / "s3", kPart);
  auto exp = root / "watch" / "st";
  auto gen = generate(exp, {"--patients", "12", "--invalid-every", "7", "--seed", "21"});
  ASSERT_FALSE(gen.invalid.empty());
  auto cfg = load(root, config_yaml(root, server.endpoint()));
  boost::asio::io_context io;
  {
    fe::app::Stages p(io, cfg, test_options());
    p.start(cfg);
    write_file(exp / ".done", "");
    ASSERT_TRUE(uploaded(io, p, 1, std::chrono::seconds(120)));
    stop_component(io, p);
  }

  std::string out;
  int rc =
      run_capture({FE_EXE, "status", "--json", "--journal", (root / "journal.db").string()}, out);
  ASSERT_EQ(rc, 0) << out;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_FALSE(parser.parse(out).get(doc)) << "status --json is not JSON: " << out;
  simdjson::dom::array exports;
  ASSERT_FALSE(doc["exports"].get(exports)) << out;
  ASSERT_EQ(exports.size(), 1u) << out;
  simdjson::dom::element st = exports.at(0);

  auto j = fe::journal::Journal::open(root / "journal.db", {.read_only = true});
  auto rows = j.exports(true);
  ASSERT_EQ(rows.size(), 1u);
  const auto& row = rows[0];
  EXPECT_EQ(row.state, ExportState::uploaded);
  EXPECT_EQ(std::string_view(st["name"].get_string()), row.name);
  EXPECT_EQ(std::string_view(st["state"].get_string()), "uploaded");
  EXPECT_EQ(st["files"].get_int64().value(), row.files);
  EXPECT_EQ(st["resources_valid"].get_int64().value(), row.resources_valid);
  EXPECT_EQ(st["resources_rejected"].get_int64().value(), row.resources_rejected);
  EXPECT_EQ(st["bytes_source"].get_int64().value(), row.bytes_source);
  EXPECT_EQ(st["bytes_spooled"].get_int64().value(), row.bytes_spooled);
  EXPECT_EQ(st["bytes_uploaded"].get_int64().value(), row.bytes_uploaded);

  // ... and the store / the sources agree with both, computed independently.
  S3Reader s3(server.endpoint());
  const auto sources = ndjson_names(exp);
  EXPECT_EQ(object_names(s3, "st", "import"), sources);
  int64_t lines_in_store = 0, import_bytes = 0, archive_bytes = 0, source_bytes = 0, rejected = 0;
  for (const auto& n : sources) {
    source_bytes += static_cast<int64_t>(fs::file_size(exp / n));
    rejected += static_cast<int64_t>(gen.invalid[n].size());
    auto [valid, bad] = split_expected(exp / n, gen.invalid[n]);
    auto imp = s3.get("exports/st/import/" + n);
    ASSERT_TRUE(imp) << n;
    EXPECT_TRUE(*imp == valid) << n;
    lines_in_store += std::count(imp->begin(), imp->end(), '\n');
    import_bytes += static_cast<int64_t>(imp->size());
    auto arc = s3.get("exports/st/archive/" + n + ".zst");
    ASSERT_TRUE(arc) << n;
    archive_bytes += static_cast<int64_t>(arc->size());
  }
  EXPECT_EQ(st["files"].get_int64().value(), static_cast<int64_t>(sources.size()));
  EXPECT_EQ(st["resources_valid"].get_int64().value(), lines_in_store);
  EXPECT_EQ(st["resources_rejected"].get_int64().value(), rejected);
  EXPECT_GT(rejected, 0);
  EXPECT_EQ(st["bytes_source"].get_int64().value(), source_bytes);
  // Uploaded bytes are the parts of both kinds: import objects plus archive objects.
  EXPECT_EQ(st["bytes_uploaded"].get_int64().value(), import_bytes + archive_bytes);
  std::printf("[ status ] %s", out.c_str());

  // The per-export detail: one entry per file, agreeing with the journal's file rows and with
  // the generator's count of invalid lines.
  std::string detail;
  rc = run_capture(
      {FE_EXE, "status", "--json", "--export", "st", "--journal", (root / "journal.db").string()},
      detail);
  ASSERT_EQ(rc, 0) << detail;
  simdjson::dom::parser parser2;
  simdjson::dom::element d;
  ASSERT_FALSE(parser2.parse(detail).get(d)) << detail;
  std::map<std::string, fe::journal::FileRow> jfiles;
  for (const auto& f : j.files(row.id)) jfiles[f.name] = f;
  std::set<std::string> listed;
  for (auto f : d["files"].get_array()) {
    std::string name(std::string_view(f["name"].get_string()));
    listed.insert(name);
    ASSERT_EQ(jfiles.count(name), 1u) << name;
    const auto& jf = jfiles[name];
    EXPECT_EQ(std::string_view(f["state"].get_string()), "uploaded") << name;
    EXPECT_EQ(f["resources_valid"].get_int64().value(), jf.resources_valid) << name;
    EXPECT_EQ(f["resources_rejected"].get_int64().value(), jf.resources_rejected) << name;
    EXPECT_EQ(f["resources_rejected"].get_int64().value(),
              static_cast<int64_t>(gen.invalid[name].size()))
        << name;
    EXPECT_EQ(uint64_t(f["size"].get_int64().value()), fs::file_size(exp / name)) << name;
    // The journal records the key of multipart uploads (single PutObjects leave it empty).
    std::string_view key = f["import_key"].get_string();
    EXPECT_EQ(key, jf.import_key) << name;
    if (!key.empty()) {
      EXPECT_EQ(key, "exports/st/import/" + name);
    }
  }
  EXPECT_EQ(listed, sources);

  // --active keeps it: `uploaded` is not finished (the import follows).
  std::string active;
  ASSERT_EQ(run_capture({FE_EXE, "status", "--json", "--active", "--journal",
                         (root / "journal.db").string()},
                        active),
            0);
  ASSERT_FALSE(parser2.parse(active).get(d)) << active;
  EXPECT_EQ(d["exports"].get_array().size(), 1u) << "uploaded is not terminal (import follows)";
  fs::remove_all(root);
}

// bulk_manifest only: the export waits until every file the manifest names is there, then is
// uploaded with exactly those files (an extra .ndjson the manifest does not name stays out).
TEST_F(PipelineRulesTest, BulkManifestNamesTheFiles) {
  REQUIRE_TOOLS();
  auto root = temp_dir("manifest");
  LocalS3 server(root / "s3", kPart);
  auto exp = root / "watch" / "bm";
  generate(exp, {"--patients", "4", "--seed", "31", "--complete", "none"});
  auto all = ndjson_names(exp);
  ASSERT_GE(all.size(), 3u);
  // Named: every file but the last one; the first named one is held back at first.
  std::set<std::string> named(all.begin(), std::prev(all.end()));
  const std::string extra = *all.rbegin();
  const std::string late = *named.begin();
  fs::rename(exp / late, root / late);
  std::string manifest =
      "{\"transactionTime\":\"2024-08-06T18:12:57Z\",\"request\":\"https://example.com/fhir/"
      "Group/g/$export\",\"requiresAccessToken\":false,\"output\":[";
  bool first = true;
  for (const auto& n : named) {
    if (!first) manifest += ",";
    first = false;
    manifest += "{\"type\":\"" + n.substr(0, n.find('.')) +
                "\",\"url\":\"https://example.com/files/" + n + "?token=x\"}";
  }
  manifest += "],\"error\":[]}";
  write_file(exp / "manifest.json", manifest);

  auto cfg = load(root, rules_yaml(root, server.endpoint(),
                                   "{ marker: \"\", bulk_manifest: true, client_log: false, "
                                   "settle_seconds: 0 }"));
  LogCapture log(fe::log::Level::debug);  // the watcher says why it holds an export
  boost::asio::io_context io;
  fe::app::Stages p(io, cfg, test_options());
  p.start(cfg);
  // A named file is missing: the watcher looked at the export and said so; nothing taken.
  ASSERT_TRUE(wait_pending(io, log, "bm", "manifest names " + late + ", which is not there yet"))
      << log.text();
  EXPECT_EQ(p.stats().exports_taken, 0u) << "taken while a file named in the manifest was missing";
  EXPECT_TRUE(journal_exports(root).empty());
  fs::rename(root / late, exp / late);  // IN_MOVED_TO
  ASSERT_TRUE(uploaded(io, p, 1, std::chrono::seconds(120)));
  stop_component(io, p);

  S3Reader s3(server.endpoint());
  EXPECT_EQ(object_names(s3, "bm", "import"), named);
  EXPECT_EQ(object_names(s3, "bm", "import").count(extra), 0u);
  EXPECT_EQ(journaled_rule(root), "bulk_manifest");
  expect_imports_equal_sources(s3, exp, "bm", named);
  auto rows = journal_exports(root);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].files, static_cast<int64_t>(named.size()));
  fs::remove_all(root);
}

// client_log only: log.ndjson without export_complete keeps the export waiting; once its last
// event is export_complete the export is uploaded, and log.ndjson (which matches *.ndjson) is
// metadata, never import input.
TEST_F(PipelineRulesTest, ClientLogExportComplete) {
  REQUIRE_TOOLS();
  auto root = temp_dir("clientlog");
  LocalS3 server(root / "s3", kPart);
  auto exp = root / "watch" / "cl";
  generate(exp, {"--patients", "3", "--seed", "41", "--complete", "none"});
  const auto sources = ndjson_names(exp);
  const std::string kickoff =
      "{\"exportId\": \"export-1\", \"timestamp\": \"2024-08-06T14:11:57.560606-04:00\", "
      "\"eventId\": \"kickoff\", \"eventDetail\": {\"exportUrl\": "
      "\"https://example.com/fhir/Group/g/$export\"}}\n"
      "{\"exportId\": \"export-1\", \"timestamp\": \"2024-08-06T14:12:57.779320-04:00\", "
      "\"eventId\": \"manifest_complete\", \"eventDetail\": {\"totalOutputFileCount\": 3}}\n";
  // Written by rename, as a client would, so the log itself is never half-written.
  write_file(root / "log.tmp", kickoff);
  fs::rename(root / "log.tmp", exp / "log.ndjson");

  auto cfg = load(root, rules_yaml(root, server.endpoint(),
                                   "{ marker: \"\", bulk_manifest: false, client_log: true, "
                                   "settle_seconds: 0 }"));
  LogCapture log(fe::log::Level::debug);  // the watcher says why it holds an export
  boost::asio::io_context io;
  fe::app::Stages p(io, cfg, test_options());
  p.start(cfg);
  // The watcher read the log and found no export_complete: not complete, nothing taken.
  ASSERT_TRUE(wait_pending(io, log, "cl", "waiting for a completion rule")) << log.text();
  EXPECT_EQ(p.stats().exports_taken, 0u) << "taken before the client log said export_complete";
  write_file(root / "log.tmp",
             kickoff +
                 "{\"exportId\": \"export-1\", \"timestamp\": "
                 "\"2024-08-06T14:12:58.124336-04:00\", \"eventId\": \"export_complete\", "
                 "\"eventDetail\": {\"files\": 3, \"duration\": 563}}\n");
  fs::rename(root / "log.tmp", exp / "log.ndjson");
  ASSERT_TRUE(uploaded(io, p, 1, std::chrono::seconds(120)));
  stop_component(io, p);

  S3Reader s3(server.endpoint());
  EXPECT_EQ(object_names(s3, "cl", "import"), sources);
  for (const auto& k : s3.list("exports/cl/import/"))
    EXPECT_EQ(k.find("log.ndjson"), std::string::npos) << "client log uploaded as import input";
  EXPECT_EQ(journaled_rule(root), "client_log");
  expect_imports_equal_sources(s3, exp, "cl", sources);
  auto rows = journal_exports(root);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].files, static_cast<int64_t>(sources.size()));
  fs::remove_all(root);
}

// settle only (1 s): an export with no marker, manifest or log is uploaded once it is quiet.
TEST_F(PipelineRulesTest, SettleSeconds) {
  REQUIRE_TOOLS();
  auto root = temp_dir("settle");
  LocalS3 server(root / "s3", kPart);
  auto exp = root / "watch" / "se";
  fs::create_directories(exp);
  auto cfg = load(root, rules_yaml(root, server.endpoint(),
                                   "{ marker: \"\", bulk_manifest: false, client_log: false, "
                                   "settle_seconds: 1 }"));
  boost::asio::io_context io;
  fe::app::Stages p(io, cfg, test_options());
  p.start(cfg);
  run_for(io, std::chrono::milliseconds(300));
  // Written while the daemon watches (IN_CREATE ... IN_CLOSE_WRITE).
  generate(exp, {"--patients", "3", "--seed", "51", "--complete", "none"});
  const auto sources = ndjson_names(exp);
  ASSERT_TRUE(uploaded(io, p, 1, std::chrono::seconds(120)));
  stop_component(io, p);
  S3Reader s3(server.endpoint());
  EXPECT_EQ(object_names(s3, "se", "import"), sources);
  EXPECT_EQ(journaled_rule(root), "settle");
  expect_imports_equal_sources(s3, exp, "se", sources);
  fs::remove_all(root);
}

// A file still open for writing (inotify saw it created and modified, never closed) keeps the
// export from being taken even when the marker is there; once closed, the export is uploaded with
// the whole file.
TEST_F(PipelineRulesTest, FileOpenForWritingIsNotTaken) {
  REQUIRE_TOOLS();
  auto root = temp_dir("openfd");
  LocalS3 server(root / "s3", kPart);
  auto gen_dir = root / "gen";
  generate(gen_dir, {"--patients", "3", "--seed", "61", "--complete", "none"});
  auto exp = root / "watch" / "of";
  fs::create_directories(exp);
  auto cfg = load(root, config_yaml(root, server.endpoint()));
  LogCapture log(fe::log::Level::debug);  // the watcher says why it holds an export
  boost::asio::io_context io;
  fe::app::Stages p(io, cfg, test_options());
  p.start(cfg);
  run_for(io, std::chrono::milliseconds(300));  // the export directory is watched from start()

  // Other files complete, one being written: half of it, fd kept open.
  const auto names = ndjson_names(gen_dir);
  const std::string open_name = *names.begin();
  for (const auto& n : names)
    if (n != open_name) fs::copy_file(gen_dir / n, exp / n);
  const std::string text = read_file(gen_dir / open_name);
  const size_t half = text.find('\n', text.size() / 2) + 1;
  int fd = ::open((exp / open_name).c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::write(fd, text.data(), half), static_cast<ssize_t>(half));
  write_file(exp / ".done", "");
  // The watcher looked at the export with its marker there and held it for the open file (the
  // writer state is known from inotify, not guessed); nothing taken.
  ASSERT_TRUE(wait_pending(io, log, "of", "file open for writing", log.mark())) << log.text();
  EXPECT_EQ(p.stats().exports_taken, 0u) << "taken while a file was open for writing";
  EXPECT_TRUE(journal_exports(root).empty());
  ASSERT_EQ(::write(fd, text.data() + half, text.size() - half),
            static_cast<ssize_t>(text.size() - half));
  ::close(fd);
  ASSERT_TRUE(uploaded(io, p, 1, std::chrono::seconds(120)));
  stop_component(io, p);
  S3Reader s3(server.endpoint());
  EXPECT_EQ(journaled_rule(root), "marker");
  EXPECT_EQ(object_names(s3, "of", "import"), names);
  auto obj = s3.get("exports/of/import/" + open_name);
  ASSERT_TRUE(obj);
  EXPECT_TRUE(*obj == text) << "the file was not uploaded whole (" << obj->size() << " of "
                            << text.size() << " bytes)";
  EXPECT_EQ(p.stats().exports_taken, 1u);
  fs::remove_all(root);
}

// The same for a single file dropped into the root (an export of its own, named after the file):
// taken only once its writer closed it.
TEST_F(PipelineRulesTest, RootFileOpenForWritingIsNotTaken) {
  REQUIRE_TOOLS();
  auto root = temp_dir("openroot");
  LocalS3 server(root / "s3", kPart);
  generate(root / "gen", {"--patients", "3", "--seed", "81", "--complete", "none"});
  const std::string text = read_file(root / "gen" / "Observation.000.ndjson");
  fs::create_directories(root / "watch");
  auto cfg = load(root, config_yaml(root, server.endpoint()));
  LogCapture log(fe::log::Level::debug);  // the watcher says why it holds an export
  boost::asio::io_context io;
  fe::app::Stages p(io, cfg, test_options());
  p.start(cfg);
  run_for(io, std::chrono::milliseconds(300));
  const auto file = root / "watch" / "Observation.000.ndjson";
  int fd = ::open(file.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  ASSERT_GE(fd, 0);
  const size_t half = text.find('\n', text.size() / 2) + 1;
  ASSERT_EQ(::write(fd, text.data(), half), static_cast<ssize_t>(half));
  // The watcher looked at it and held it for its open writer; nothing taken.
  ASSERT_TRUE(wait_pending(io, log, "Observation.000", "file open for writing")) << log.text();
  EXPECT_EQ(p.stats().exports_taken, 0u) << "a root file was taken while open for writing";
  ASSERT_EQ(::write(fd, text.data() + half, text.size() - half),
            static_cast<ssize_t>(text.size() - half));
  ::close(fd);
  ASSERT_TRUE(uploaded(io, p, 1, std::chrono::seconds(120)));
  stop_component(io, p);
  auto rows = journal_exports(root);
  ASSERT_EQ(rows.size(), 1u);
  S3Reader s3(server.endpoint());
  const std::string key =
      "exports/" + rows[0].name + "/import/Observation.000.ndjson";  // name: the file's stem
  EXPECT_EQ(rows[0].name, "Observation.000");
  auto obj = s3.get(key);
  ASSERT_TRUE(obj) << key;
  EXPECT_TRUE(*obj == text) << "not uploaded whole (" << obj->size() << " of " << text.size()
                            << " bytes)";
  fs::remove_all(root);
}

// A symlink and a FIFO matching the pattern are skipped (never followed, never opened: a FIFO
// would block a reader); the regular files upload.
TEST_F(PipelineRulesTest, SymlinkAndFifoAreSkipped) {
  REQUIRE_TOOLS();
  auto root = temp_dir("special");
  LocalS3 server(root / "s3", kPart);
  auto exp = root / "watch" / "sp";
  generate(exp, {"--patients", "3", "--seed", "71", "--complete", "none"});
  const auto regular = ndjson_names(exp);
  ASSERT_FALSE(regular.empty());
  write_file(root / "outside.ndjson", read_file(exp / *regular.begin()));
  fs::create_symlink(root / "outside.ndjson", exp / "Linked.000.ndjson");
  ASSERT_EQ(::mkfifo((exp / "Fifo.000.ndjson").c_str(), 0644), 0);
  auto cfg = load(root, config_yaml(root, server.endpoint()));
  boost::asio::io_context io;
  fe::app::Stages p(io, cfg, test_options());
  p.start(cfg);
  write_file(exp / ".done", "");
  ASSERT_TRUE(uploaded(io, p, 1, std::chrono::seconds(120)));
  stop_component(io, p);
  S3Reader s3(server.endpoint());
  EXPECT_EQ(object_names(s3, "sp", "import"), regular);
  EXPECT_EQ(object_names(s3, "sp", "archive").size(), regular.size());
  EXPECT_EQ(journaled_rule(root), "marker");
  expect_imports_equal_sources(s3, exp, "sp", regular);
  auto rows = journal_exports(root);
  ASSERT_EQ(rows.size(), 1u);
  EXPECT_EQ(rows[0].files, static_cast<int64_t>(regular.size()));
  EXPECT_TRUE(fs::is_symlink(exp / "Linked.000.ndjson"));  // left alone
  fs::remove_all(root);
}

}  // namespace
