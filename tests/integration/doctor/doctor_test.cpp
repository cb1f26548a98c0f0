// `fhir-edge doctor` against a real healthlake-local: every check ok, then one fault at a time
// (wrong secret, no landing bucket, data store not ACTIVE, data-access role refused, missing
// watch root). Each fault must fail exactly its own check line, with a fix hint, and exit 1; a
// config error exits 2. The secret never appears in the output.
#include <gtest/gtest.h>

#include <sstream>

#include "../hostile/daemon_run.hpp"

namespace {

using namespace fe::test;

const char* kRole = "arn:aws:iam::123456789012:role/HealthLakeImport";

struct DoctorOut {
  int rc = -1;
  std::string text;
  std::vector<std::string> lines;
  // The line of a check ("landing bucket", "data store", ...); "" when there is none.
  std::string line(const std::string& check) const {
    for (const auto& l : lines)
      if (l.size() > 5 && l.compare(5, check.size(), check) == 0) return l;
    return "";
  }
  int count(const std::string& status) const {
    int n = 0;
    for (const auto& l : lines) n += l.starts_with(status + " ");
    return n;
  }
};

DoctorOut doctor(DaemonRun& d, const std::map<std::string, std::string>& env_over = {},
                 const std::string& args = "") {
  std::map<std::string, std::string> env = {
      {"AWS_ACCESS_KEY_ID", d.hll().access_key()},
      {"AWS_SECRET_ACCESS_KEY", d.hll().secret_key()},
      {"AWS_EC2_METADATA_DISABLED", "true"},
  };
  for (const auto& [k, v] : env_over) env[k] = v;
  std::string cmd = "env -u AWS_SESSION_TOKEN -u AWS_PROFILE";
  for (const auto& [k, v] : env) cmd += " " + k + "=" + shell_quote(v);
  cmd += std::string(" ") + FE_EXE + " doctor --config " + shell_quote(d.config().string()) + " " +
         args + " 2>&1";
  DoctorOut out;
  out.text = capture(cmd, &out.rc);
  std::istringstream in(out.text);
  for (std::string l; std::getline(in, l);) out.lines.push_back(l);
  std::cout << out.text;
  return out;
}

DaemonRun::Options options(std::vector<std::string> extra_args = {},
                           std::vector<std::string> buckets = {"landing", "results"}) {
  DaemonRun::Options o;
  o.hll.buckets = std::move(buckets);
  o.hll.extra_args = std::move(extra_args);
  return o;
}

TEST(Doctor, EveryCheckOkAgainstAWorkingSetup) {
  DaemonRun d(options());
  auto out = doctor(d);
  EXPECT_EQ(out.rc, 0);
  EXPECT_EQ(out.count("FAIL"), 0);
  for (const char* check : {"config ", "watch root ", "spool ", "journal ", "credentials",
                            "landing bucket s3://landing/exports/", "data store ",
                            "data-access role ", "results bucket s3://results/imports/"})
    EXPECT_TRUE(out.line(check).starts_with("ok ")) << check << ": " << out.line(check);
  EXPECT_NE(out.line("credentials").find("from env"), std::string::npos);
  EXPECT_NE(out.line("data store ").find("ACTIVE"), std::string::npos);
  // The probe was really written under the prefix, and deleted again.
  int puts = 0, deletes = 0;
  for (const auto& l : d.hll().request_log_lines()) {
    if (l.find("exports/.fhir-edge-doctor/probe-") == std::string::npos) continue;
    puts += l.find("\"PutObject\"") != std::string::npos;
    deletes += l.find("\"DeleteObject\"") != std::string::npos;
  }
  EXPECT_EQ(puts, 1);
  EXPECT_EQ(deletes, 1);
  EXPECT_NE(out.text.find("all checks passed"), std::string::npos);
}

TEST(Doctor, WrongSecretFailsTheAwsChecksWithoutPrintingIt) {
  DaemonRun d(options());
  const std::string wrong = "wrongSecretValueThatMustNotBePrinted0000";
  auto out = doctor(d, {{"AWS_SECRET_ACCESS_KEY", wrong}});
  EXPECT_EQ(out.rc, 1);
  EXPECT_TRUE(out.line("credentials").starts_with("ok ")) << "they resolve; AWS refuses them";
  const std::string landing = out.line("landing bucket");
  EXPECT_TRUE(landing.starts_with("FAIL ")) << landing;
  EXPECT_NE(landing.find("SignatureDoesNotMatch"), std::string::npos) << landing;
  EXPECT_NE(landing.find("fix: the secret access key does not belong"), std::string::npos);
  EXPECT_TRUE(out.line("data store").starts_with("FAIL ")) << out.line("data store");
  EXPECT_EQ(out.text.find(wrong), std::string::npos);
  EXPECT_EQ(out.text.find(d.hll().secret_key()), std::string::npos);
}

TEST(Doctor, MissingLandingBucketIsNamedWithTheFix) {
  DaemonRun d(options({}, {"results"}));
  auto out = doctor(d);
  EXPECT_EQ(out.rc, 1);
  const std::string landing = out.line("landing bucket");
  EXPECT_TRUE(landing.starts_with("FAIL ")) << landing;
  EXPECT_NE(landing.find("NoSuchBucket"), std::string::npos) << landing;
  EXPECT_NE(landing.find("fix: create bucket landing"), std::string::npos) << landing;
  // The other checks still ran and passed.
  EXPECT_TRUE(out.line("data store").starts_with("ok ")) << out.line("data store");
  EXPECT_TRUE(out.line("results bucket").starts_with("ok ")) << out.line("results bucket");
  EXPECT_EQ(out.count("FAIL"), 1);
}

TEST(Doctor, DataStoreNotActiveFails) {
  DaemonRun d(options({"--datastore-status", "0123456789abcdef0123456789abcdef=CREATING"}));
  auto out = doctor(d);
  EXPECT_EQ(out.rc, 1);
  const std::string ds = out.line("data store");
  EXPECT_TRUE(ds.starts_with("FAIL ")) << ds;
  EXPECT_NE(ds.find("status CREATING, imports need ACTIVE"), std::string::npos) << ds;
  EXPECT_NE(ds.find("fix: wait until it is ACTIVE"), std::string::npos) << ds;
  EXPECT_TRUE(out.line("landing bucket").starts_with("ok ")) << out.line("landing bucket");
  EXPECT_EQ(out.count("FAIL"), 1);
}

TEST(Doctor, RefusedDataAccessRoleFailsTheImportProbe) {
  DaemonRun d(options({"--refuse-role", kRole}));
  // Without the probe, doctor says it cannot know (no import is started behind one's back).
  auto plain = doctor(d);
  EXPECT_EQ(plain.rc, 0);
  EXPECT_NE(plain.line("data-access role").find("--import-probe"), std::string::npos);
  auto out = doctor(d, {}, "--import-probe");
  EXPECT_EQ(out.rc, 1);
  const std::string role = out.line("data-access role");
  EXPECT_TRUE(role.starts_with("FAIL ")) << role;
  EXPECT_NE(role.find("AccessDeniedException"), std::string::npos) << role;
  EXPECT_NE(role.find("iam:PassRole"), std::string::npos) << role;
  EXPECT_EQ(out.count("FAIL"), 1);
}

TEST(Doctor, ImportProbeStartsAJobThatImportsNothingWhenTheRoleIsAccepted) {
  DaemonRun d(options());
  auto out = doctor(d, {}, "--import-probe");
  EXPECT_EQ(out.rc, 0);
  const std::string role = out.line("data-access role");
  EXPECT_TRUE(role.starts_with("ok ")) << role;
  EXPECT_NE(role.find("probe import job"), std::string::npos) << role;
  EXPECT_TRUE(d.hll().imported_resources().empty());
}

TEST(Doctor, MissingWatchRootFailsItsLine) {
  DaemonRun d(options());
  fs::remove_all(d.watch());
  auto out = doctor(d);
  EXPECT_EQ(out.rc, 1);
  const std::string root = out.line("watch root " + d.watch().string());
  EXPECT_TRUE(root.starts_with("FAIL ")) << root;
  EXPECT_NE(root.find("does not exist; fix: create it"), std::string::npos) << root;
}

TEST(Doctor, ConfigErrorExitsTwo) {
  DaemonRun d(options());
  write_file(d.config(), read_file(d.config()) + "spool: { zstd_level: 99 }\n");
  auto out = doctor(d);
  EXPECT_EQ(out.rc, 2);
  EXPECT_NE(out.text.find("FAIL config "), std::string::npos) << out.text;
  EXPECT_EQ(out.line("credentials"), "");  // nothing else is checked
}

// A gateway with a `fleet` (issue 16 item 3): doctor says the fleet's objects are reachable (the
// lease readable: none yet, then held by the running daemon), and the daemon imports an export
// through the fleet (it is its own lease holder): listed in ready.json, one job with the batch's
// ClientToken, imported, ready.json empty again.
TEST(Doctor, FleetIsReachableAndOneGatewayImportsThroughIt) {
  auto o = options();
  o.extra_yaml =
      "fleet: { name: north, gateway_id: gw-1, lease_ttl: 6s, lease_skew_margin: 1s, "
      "poll_interval: 200ms }\n";
  DaemonRun d(o);
  auto before = doctor(d);
  EXPECT_EQ(before.rc, 0) << before.text;
  const std::string line = before.line("fleet north");
  EXPECT_TRUE(line.starts_with("ok ")) << before.text;
  EXPECT_NE(line.find("no lease yet"), std::string::npos) << line;

  d.start();
  drop_export(d.watch(), "exp1", {{"Patient.ndjson", patients("fl", 7)}});
  EXPECT_EQ(d.wait_final("exp1"), "imported") << d.log();
  EXPECT_TRUE(d.log_has("export listed for the fleet's import")) << d.log();
  int starts = 0;
  for (const auto& l : d.hll().request_log_lines())
    if (l.find("\"StartFHIRImportJob\"") != std::string::npos) {
      ++starts;
      EXPECT_NE(l.find("\"client_token\":\"fb-"), std::string::npos) << l;
    }
  EXPECT_EQ(starts, 1);
  auto during = doctor(d);
  EXPECT_NE(during.line("fleet north").find("held by gw-1"), std::string::npos) << during.text;
  EXPECT_NE(during.line("fleet north").find("0 export(s) in ready.json"), std::string::npos)
      << during.text;
  EXPECT_EQ(d.stop(), 0);
}

}  // namespace
