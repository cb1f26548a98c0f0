// Issue 17, item 9: one parser (CLI11) for every subcommand. Each option is accepted as
// `--opt value` and as `--opt=value` with the same outcome; an unknown option is a usage error
// (exit 2) naming it and the closest known one; every command has generated help with -q/-v;
// the commands that print data take --json; the bash completion (packaging/) completes the
// subcommands and knows every option that `CMD --help` lists.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <simdjson.h>
#include <sys/wait.h>

#include <cstdlib>
#include <fstream>
#include <regex>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;
using ::testing::StartsWith;

struct Result {
  int code = -1;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class CliForms : public ::testing::Test {
 protected:
  // `fhir-edge ARGS` (ARGS shell-quoted by the caller); stdout and stderr apart.
  Result run(const std::string& args, const std::string& env = "") {
    std::string cmd = env + " " + FE_EXE + " " + args + " >" + (dir_ / "out").string() + " 2>" +
                      (dir_ / "err").string() + " </dev/null";
    int status = std::system(cmd.c_str());
    return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, slurp(dir_ / "out"), slurp(dir_ / "err")};
  }
  // The same invocation with `--opt value` and with `--opt=value`: same exit code, same output.
  void same_both_ways(const std::string& cmd, const std::string& opt, const std::string& value,
                      const std::string& rest, int want_code) {
    SCOPED_TRACE(cmd + " " + opt);
    Result spaced = run(cmd + " " + opt + " " + value + " " + rest);
    // A short option takes its value attached (-ldebug), a long one after '='.
    Result joined = run(cmd + " " + opt + (opt.starts_with("--") ? "=" : "") + value + " " + rest);
    EXPECT_EQ(spaced.code, want_code) << spaced.err;
    EXPECT_EQ(joined.code, want_code) << joined.err;
    EXPECT_EQ(spaced.out, joined.out);
    // validate's summary has its timing, which differs between two runs.
    std::regex timing("[0-9.]+ s, [0-9]+ resources/s");
    EXPECT_EQ(std::regex_replace(spaced.err, timing, "T"),
              std::regex_replace(joined.err, timing, "T"));
    EXPECT_THAT(joined.err, ::testing::Not(HasSubstr("unknown option")));
  }
  std::string valid_config() {
    fs::create_directories(dir_ / "watch");
    std::string p = dir_.write(
        "c.yaml", "pipelines:\n  - name: p\n    watch: " + (dir_ / "watch").string() +
                      "\n    s3: { bucket: landing }\n    healthlake:\n"
                      "      datastore_id: 0123456789abcdef0123456789abcdef\n"
                      "      data_access_role_arn: arn:aws:iam::123456789012:role/Import\n"
                      "      output_s3_uri: s3://results/imports/\n"
                      "      output_kms_key_id: alias/hl\n"
                      "spool: { dir: " +
                      (dir_ / "state/spool").string() +
                      " }\njournal: { path: " + (dir_ / "state/j.db").string() + " }\n");
    fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write);
    return p;
  }
  fe::test::TempDir dir_{"fe-cli-forms"};
};

const std::vector<std::string> kCommands = {"run",    "check-config", "doctor",         "validate",
                                            "status", "retry",        "journal compact"};

// One test per command: each runs the binary a few times (an ASan build starts slowly).
class BothForms : public CliForms {
 protected:
  const std::string missing_cfg = (dir_ / "absent.yaml").string();
  const std::string missing_db = (dir_ / "absent.db").string();
};

TEST_F(BothForms, Run) {
  same_both_ways("run", "--config", missing_cfg, "", 2);
  same_both_ways("run", "-l", "debug", "--config " + missing_cfg, 2);
  same_both_ways("run", "--log-level", "debug", "--config " + missing_cfg, 2);
  // The value is really taken: --log-level=X is checked like --log-level X (issue 17: it was not).
  Result bad = run("run --log-level=loud --config " + missing_cfg);
  EXPECT_EQ(bad.code, 2);
  EXPECT_THAT(bad.err, HasSubstr("loud"));
}

TEST_F(BothForms, CheckConfigAndDoctor) {
  same_both_ways("check-config", "--config", missing_cfg, "", 2);
  same_both_ways("check-config", "--config", valid_config(), "", 0);
  same_both_ways("doctor", "--config", missing_cfg, "", 2);
}

TEST_F(BothForms, Validate) {
  const std::string good = dir_.write("ok.ndjson", R"({"resourceType":"Patient","id":"a"})"
                                                   "\n");
  same_both_ways("validate", "--level", "minimal", good, 0);
  same_both_ways("validate", "--format", "json", good, 0);
  same_both_ways("validate", "--max-errors", "3", good, 0);
  same_both_ways("validate", "--max-line-bytes", "4096", good, 0);
  same_both_ways("validate", "--package", "/nonexistent/p.tgz", "--level strict " + good, 2);
  EXPECT_THAT(run("validate --level=lenient " + good).err, HasSubstr("lenient"));
}

TEST_F(BothForms, Status) {
  same_both_ways("status", "--journal", missing_db, "", 1);
  same_both_ways("status", "--config", missing_cfg, "", 2);
  same_both_ways("status", "--export", "x", "--journal " + missing_db, 1);
}

TEST_F(BothForms, RetryAndJournalCompact) {
  same_both_ways("retry", "--journal", missing_db, "x", 1);
  same_both_ways("retry", "--config", missing_cfg, "x", 2);
  same_both_ways("retry", "--wait", "1", "x --journal " + missing_db, 1);
  same_both_ways("journal compact", "--older-than", "90d", "--journal " + missing_db, 1);
  same_both_ways("journal compact", "--wait", "1", "--older-than 1d --journal " + missing_db, 1);
}

TEST_F(CliForms, UnknownOptionNamesItAndTheClosestOne) {
  for (const std::string& c : kCommands) {
    SCOPED_TRACE(c);
    Result r = run(c + " --bogus-option");
    EXPECT_EQ(r.code, 2);
    EXPECT_THAT(r.err, HasSubstr("fhir-edge " + c.substr(0, c.find(' ')) +
                                 ": unknown option '--bogus-option'"));
    EXPECT_THAT(r.err, HasSubstr("--help"));
  }
  Result typo = run("status --jsn");
  EXPECT_EQ(typo.code, 2);
  EXPECT_THAT(typo.err, HasSubstr("unknown option '--jsn' (did you mean --json?)"));
  Result typo2 = run("check-config --confg=x.yaml");
  EXPECT_THAT(typo2.err, HasSubstr("unknown option '--confg=x.yaml' (did you mean --config?)"));
  Result extra = run("retry a b --journal x");
  EXPECT_EQ(extra.code, 2);
  EXPECT_THAT(extra.err, HasSubstr("unexpected argument 'b'"));
  Result missing = run("status --journal");
  EXPECT_EQ(missing.code, 2);
  EXPECT_THAT(missing.err, HasSubstr("--journal"));
}

TEST_F(CliForms, EveryCommandHasGeneratedHelpWithQuietAndVerbose) {
  for (const std::string& c : kCommands) {
    SCOPED_TRACE(c);
    for (const char* h : {"--help", "-h"}) {
      Result r = run(c + " " + h);
      EXPECT_EQ(r.code, 0);
      EXPECT_THAT(r.out, StartsWith("Usage: fhir-edge " + c + " [OPTIONS]"));
      EXPECT_THAT(r.out, HasSubstr("-q,--quiet"));
      EXPECT_THAT(r.out, HasSubstr("-v,--verbose"));
      EXPECT_THAT(r.out, HasSubstr("Exit codes:"));
      EXPECT_EQ(r.err, "");
    }
  }
  for (std::string c : {"check-config", "doctor", "validate", "status", "retry", "journal compact"})
    EXPECT_THAT(run(c + " --help").out, HasSubstr("--json")) << c;
  Result top = run("--help");
  EXPECT_EQ(top.code, 0);
  for (const std::string& c : kCommands) EXPECT_THAT(top.out, HasSubstr(c));
}

TEST_F(CliForms, QuietAndJson) {
  std::string cfg = valid_config();
  Result q = run("check-config -q -c " + cfg);
  EXPECT_EQ(q.code, 0) << q.err;
  EXPECT_EQ(q.out, "");
  EXPECT_EQ(q.err, "");
  EXPECT_EQ(run("check-config --quiet --config=" + cfg).out, "");

  simdjson::dom::parser parser;
  Result ok = run("check-config --json -c " + cfg);
  EXPECT_EQ(ok.code, 0);
  auto doc = parser.parse(ok.out);
  ASSERT_FALSE(doc.error()) << ok.out;
  EXPECT_TRUE(doc["ok"].get_bool().value());
  EXPECT_EQ(doc["errors"].get_array().size(), 0u);

  std::string broken = dir_.write("broken.yaml", "pipelines: 3\nbogus_key: 1\n");
  fs::permissions(broken, fs::perms::owner_read | fs::perms::owner_write);
  Result bad = run("check-config --json --config " + broken);
  EXPECT_EQ(bad.code, 2);
  auto bdoc = parser.parse(bad.out);
  ASSERT_FALSE(bdoc.error()) << bad.out;
  EXPECT_FALSE(bdoc["ok"].get_bool().value());
  ASSERT_GT(bdoc["errors"].get_array().size(), 0u);
  EXPECT_EQ(std::string(bdoc["errors"].at(0)["file"].get_string().value()), broken);

  // validate: --json is --format json (the alias stays).
  std::string bad_res =
      dir_.write("bad.ndjson", R"({"resourceType":"Patient","id":"b","gender":"boy"})"
                               "\n");
  Result a = run("validate --json " + bad_res), b = run("validate --format json " + bad_res);
  EXPECT_EQ(a.code, 1);
  EXPECT_EQ(a.out, b.out);
  EXPECT_THAT(a.out, HasSubstr("\"resourceType\":\"OperationOutcome\""));
}

// The completion file the package installs: sourced by bash, it completes the subcommands, a
// subcommand's options and option values; and it lists every option each command's --help shows.
std::vector<std::string> complete(const std::string& line_words, int cword) {
  std::string script = "source '" + std::string(FE_SOURCE_DIR) +
                       "/packaging/fhir-edge.bash-completion'; COMP_WORDS=(" + line_words +
                       "); COMP_CWORD=" + std::to_string(cword) +
                       "; _fhir_edge; printf '%s\\n' \"${COMPREPLY[@]}\"";
  fe::test::TempDir d{"fe-compl"};
  std::string f = d.write("c.sh", script);
  FILE* p = ::popen(("bash --norc --noprofile " + f).c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  ::pclose(p);
  std::vector<std::string> words;
  std::istringstream in(out);
  for (std::string w; std::getline(in, w);)
    if (!w.empty()) words.push_back(w);
  return words;
}

TEST_F(CliForms, BashCompletionCompletesSubcommandsAndOptions) {
  EXPECT_THAT(complete("fhir-edge chec", 1), ::testing::ElementsAre("check-config"));
  EXPECT_THAT(complete("fhir-edge st", 1), ::testing::ElementsAre("status"));
  EXPECT_THAT(complete("fhir-edge status --j", 2),
              ::testing::UnorderedElementsAre("--journal", "--json"));
  EXPECT_THAT(complete("fhir-edge validate --level s", 3),
              ::testing::UnorderedElementsAre("structure-only", "strict"));
  EXPECT_THAT(complete("fhir-edge journal c", 2), ::testing::ElementsAre("compact"));

  // Every long option of every command's help is offered after `--`.
  std::regex long_opt("--[a-z][a-z-]+");
  for (const std::string& c : kCommands) {
    SCOPED_TRACE(c);
    std::string help = run(c + " --help").out;
    std::set<std::string> in_help;
    for (auto it = std::sregex_iterator(help.begin(), help.end(), long_opt);
         it != std::sregex_iterator(); ++it)
      in_help.insert(it->str());
    int words = c == "journal compact" ? 3 : 2;
    auto offered = complete("fhir-edge " + c + " --", words);
    std::set<std::string> offered_set(offered.begin(), offered.end());
    for (const std::string& o : in_help)
      EXPECT_TRUE(offered_set.count(o)) << o << " is in `" << c << " --help` but not completed";
  }
}

}  // namespace
