// Exports waiting for their completion rule (table waiting_exports, issue 17 item 3): what the
// pipeline journals from the watcher's report, and what `fhir-edge status` shows of it, also
// when no daemon runs.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/wait.h>

#include <array>
#include <cstdio>

#include "journal/journal.hpp"
#include "journal/status.hpp"
#include "test_util.hpp"

using namespace fe::journal;
using namespace fe::journal::test;

namespace {

struct Result {
  int code;
  std::string out;
};

Result run(const std::string& args) {
  std::string cmd = std::string(FE_EXE) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

WaitingRow row(std::string name, std::string rule, std::string missing, TimeMs since) {
  return {"epic", name, "/in/" + name, std::move(rule), std::move(missing), since, 0};
}

}  // namespace

TEST(WaitingExports, ReplacedPerPipelineKeepingTheFirstSince) {
  TempDir dir;
  auto j = Journal::open(dir / "journal.db");
  EXPECT_TRUE(j.waiting_exports().empty());
  j.record_waiting("epic", {row("a", "marker", "no .done", 1000), row("b", "settle", "s", 2000)});
  j.record_waiting("lab", {{"lab", "c", "/lab/c", "open_file", "file open: x", 1500, 0}});
  auto w = j.waiting_exports();
  ASSERT_EQ(w.size(), 3u);  // oldest first
  EXPECT_EQ(w[0].name, "a");
  EXPECT_EQ(w[1].name, "c");
  EXPECT_EQ(w[2].name, "b");
  EXPECT_GT(w[0].updated_at, 0);

  // A new report (a later run of the watcher: a later since) keeps a's first since, updates
  // what is missing, drops b (taken or gone) and leaves lab alone.
  j.record_waiting("epic", {row("a", "bulk_manifest", "manifest names X", 9000)});
  w = j.waiting_exports();
  ASSERT_EQ(w.size(), 2u);
  EXPECT_EQ(w[0].name, "a");
  EXPECT_EQ(w[0].since, 1000);
  EXPECT_EQ(w[0].rule, "bulk_manifest");
  EXPECT_EQ(w[0].missing, "manifest names X");
  EXPECT_EQ(w[1].pipeline, "lab");

  // A pipeline dropped from the config loses its rows.
  j.forget_waiting_except({"epic"});
  w = j.waiting_exports();
  ASSERT_EQ(w.size(), 1u);
  EXPECT_EQ(w[0].pipeline, "epic");
  j.record_waiting("epic", {});
  EXPECT_TRUE(j.waiting_exports().empty());
  EXPECT_EQ(query_text(dir / "journal.db", "SELECT COUNT(*) FROM waiting_exports"), "0");
}

TEST(WaitingExports, AnOlderJournalHasNoneAndMigratesToTheTable) {
  TempDir dir;
  auto db = dir / "journal.db";
  { auto j = Journal::open(db, {.read_only = false, .max_schema_version = 6}); }
  {
    auto r = Journal::open(db, {.read_only = true});
    EXPECT_EQ(r.schema_version(), 6);
    EXPECT_TRUE(r.waiting_exports().empty());
    auto json = format_status_json(read_status(r), r.schema_version(), r.waiting_exports());
    EXPECT_NE(json.find("\"waiting\":[]"), std::string::npos) << json;
  }
  auto j = Journal::open(db);
  EXPECT_EQ(j.schema_version(), kSchemaVersion);
  j.record_waiting("epic", {row("a", "marker", "no .done", 1000)});
  EXPECT_EQ(j.waiting_exports().size(), 1u);
}

// `fhir-edge status` next to the writer (a running daemon) and without it (daemon stopped).
TEST(WaitingExports, StatusShowsRuleMissingAndSince) {
  TempDir dir;
  auto db = dir / "journal.db";
  const TimeMs since = now_ms() - 125'000;  // 2 min ago
  {
    auto j = Journal::open(db);
    j.record_waiting("epic", {row("2026-12-01-epic", "marker",
                                  "waiting for a completion rule (the marker .done)", since)});
    auto r = run("status --journal " + db.string());
    ASSERT_EQ(r.code, 0) << r.out;
    EXPECT_NE(r.out.find("waiting for completion"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("RULE"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("2026-12-01-epic"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("the marker .done"), std::string::npos) << r.out;
    EXPECT_NE(r.out.find(format_time(since) + " (2 min ago)"), std::string::npos) << r.out;
  }
  // The writer closed (no daemon): the same from the journal alone.
  auto r = run("status --json --journal " + db.string());
  ASSERT_EQ(r.code, 0) << r.out;
  simdjson::dom::parser p;
  simdjson::dom::element doc;
  ASSERT_EQ(p.parse(r.out).get(doc), simdjson::SUCCESS) << r.out;
  simdjson::dom::array w, exports;
  ASSERT_EQ(doc["waiting"].get(w), simdjson::SUCCESS) << r.out;
  ASSERT_EQ(w.size(), 1u);
  simdjson::dom::element o;
  ASSERT_EQ(w.at(0).get(o), simdjson::SUCCESS);
  auto str = [&](const char* k) {
    std::string_view v;
    EXPECT_EQ(o[k].get(v), simdjson::SUCCESS) << k;
    return std::string(v);
  };
  EXPECT_EQ(str("name"), "2026-12-01-epic");
  EXPECT_EQ(str("pipeline"), "epic");
  EXPECT_EQ(str("path"), "/in/2026-12-01-epic");
  EXPECT_EQ(str("rule"), "marker");
  EXPECT_EQ(str("since"), format_time(since));
  ASSERT_EQ(doc["exports"].get(exports), simdjson::SUCCESS);
  EXPECT_EQ(exports.size(), 0u);

  // --export of a waiting export says what it waits for (exit 0); an unknown name is still 1.
  r = run("status --export 2026-12-01-epic --journal " + db.string());
  EXPECT_EQ(r.code, 0) << r.out;
  EXPECT_NE(r.out.find("not complete yet"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("rule:    marker"), std::string::npos) << r.out;
  r = run("status --export 2026-12-01-epic --json --journal " + db.string());
  EXPECT_EQ(r.code, 0) << r.out;
  simdjson::dom::parser p2;
  std::string_view rule;
  ASSERT_EQ(p2.parse(r.out)["waiting"]["rule"].get(rule), simdjson::SUCCESS) << r.out;
  EXPECT_EQ(rule, "marker");
  EXPECT_EQ(run("status --export nope --journal " + db.string()).code, 1);
}
