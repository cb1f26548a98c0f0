// `fhir-edge check-config`: exactly "ok" on stdout when valid, every error on stderr with exit 2.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "temp_dir.hpp"

namespace {

namespace fs = std::filesystem;
using ::testing::HasSubstr;

struct Result {
  int code;
  std::string out, err;
};

std::string slurp(const fs::path& p) {
  std::ifstream in(p);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

class CheckConfig : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fe::test::make_temp_dir("fe-cli"); }
  void TearDown() override { fs::remove_all(dir_); }

  Result run(const std::string& args) {
    std::string cmd = std::string(FE_EXE) + " " + args + " >" + (dir_ / "out").string() + " 2>" +
                      (dir_ / "err").string();
    int status = std::system(cmd.c_str());
    return {WEXITSTATUS(status), slurp(dir_ / "out"), slurp(dir_ / "err")};
  }
  // A copy readable by its owner only: a checkout's 0644 file would (rightly) add the
  // "readable by all users" warning (tests/unit/config/uplink_config_test.cpp covers it).
  fs::path private_copy(const std::string& repo_path) {
    fs::path p = dir_ / fs::path(repo_path).filename();
    fs::copy_file(fs::path(FE_SOURCE_DIR) / repo_path, p);
    fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write);
    return p;
  }
  fs::path write(const std::string& text) {
    fs::path p = dir_ / "c.yaml";
    std::ofstream(p) << text;
    return p;
  }
  fs::path dir_;
};

TEST_F(CheckConfig, ReferenceConfigPrintsOnlyOk) {
  // Its watch root (/var/spool/fhir-edge/epic) is the package's; on a build host it may be
  // missing, which --allow-missing-roots reports as a warning only.
  auto r = run("check-config --allow-missing-roots --config " +
               private_copy("config/fhir-edge.yaml").string());
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "ok\n");
  if (!fs::is_directory("/var/spool/fhir-edge/epic")) {
    EXPECT_THAT(r.err, ::testing::HasSubstr("warning: "));
    EXPECT_THAT(r.err, ::testing::HasSubstr("/var/spool/fhir-edge/epic does not exist"));
  } else {
    EXPECT_EQ(r.err, "");
  }
}

TEST_F(CheckConfig, DemoConfigPrintsOnlyOk) {
  // Its watch root is ${FE_DEMO_DIR}/incoming, which scripts/demo creates first.
  fs::create_directories(dir_ / "demo" / "incoming");
  private_copy("config/demo.yaml");
  std::string cmd = "FE_DEMO_DIR=" + (dir_ / "demo").string() + " " + FE_EXE + " check-config -c " +
                    (dir_ / "demo.yaml").string() + " >" + (dir_ / "out").string() + " 2>" +
                    (dir_ / "err").string();
  int status = std::system(cmd.c_str());
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(slurp(dir_ / "out"), "ok\n");
  EXPECT_EQ(slurp(dir_ / "err"), "");
}

// Issue 17: a root that does not exist or cannot be read is an error (exit 2) naming the key, the
// path and how to create it; --allow-missing-roots (the unit's ExecStartPre) makes it a warning.
TEST_F(CheckConfig, MissingOrUnreadableWatchRootIsAnError) {
  fs::create_directories(dir_ / "state");
  auto cfg = write("pipelines:\n  - name: p\n    watch: " + (dir_ / "absent").string() +
                   "\n    s3: { bucket: landing }\n    healthlake:\n"
                   "      datastore_id: 0123456789abcdef0123456789abcdef\n"
                   "      data_access_role_arn: arn:aws:iam::123456789012:role/Import\n"
                   "      output_s3_uri: s3://results/imports/\n"
                   "      output_kms_key_id: alias/hl\n"
                   "spool: { dir: " +
                   (dir_ / "state/spool").string() +
                   " }\njournal: { path: " + (dir_ / "state/j.db").string() + " }\n");
  fs::permissions(cfg, fs::perms::owner_read | fs::perms::owner_write);
  auto r = run("check-config --config " + cfg.string());
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, ::testing::HasSubstr("pipelines[0].watch: watch root " +
                                          (dir_ / "absent").string() + " does not exist"));
  EXPECT_THAT(r.err, ::testing::HasSubstr("install -d -m 2770 -o fhir-edge -g fhir-edge"));

  auto w = run("check-config --allow-missing-roots --config " + cfg.string());
  EXPECT_EQ(w.code, 0);
  EXPECT_EQ(w.out, "ok\n");
  EXPECT_THAT(w.err, ::testing::HasSubstr("warning: "));
  EXPECT_THAT(w.err, ::testing::HasSubstr("fhir-edge run waits for it"));

  // A file where the directory should be.
  std::ofstream(dir_ / "absent") << "x";
  r = run("check-config --config " + cfg.string());
  EXPECT_EQ(r.code, 2);
  EXPECT_THAT(r.err, ::testing::HasSubstr("is not a directory"));
  fs::remove(dir_ / "absent");

  fs::create_directories(dir_ / "absent");
  r = run("check-config --config " + cfg.string());
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_EQ(r.out, "ok\n");
}

TEST_F(CheckConfig, ErrorsGoToStderrWithPositionsAndExitTwo) {
  auto p = write(
      "pipelines:\n"
      "  - name: x\n"
      "    watch: in\n"
      "    s3: { bucket: b }\n"
      "logg: { level: info }\n");
  auto r = run("check-config --config " + p.string());
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr(p.string() + ":3:12: pipelines[0].watch: must be an absolute path"));
  EXPECT_THAT(r.err, HasSubstr(p.string() + ":4:19: pipelines[0].s3.bucket: S3 bucket names are "
                                            "3 to 63 characters long"));
  EXPECT_THAT(r.err, HasSubstr(p.string() + ":2:5: pipelines[0].healthlake: missing required key"));
  EXPECT_THAT(r.err, HasSubstr(p.string() + ":5:1: logg: unknown key 'logg'; did you mean 'log'?"));
  EXPECT_THAT(r.err, HasSubstr("4 errors in " + p.string()));
}

// issue 12: a strict pipeline without fhir_packages can only check the built-in US Core 3.1.x;
// check-config still prints 'ok' (it is a valid config) and says so in one warning line.
TEST_F(CheckConfig, StrictWithoutPackagesWarnsWhatIsChecked) {
  auto p = write(
      "pipelines:\n"
      "  - name: epic\n"
      "    watch: " +
      dir_.string() +
      "\n"
      "    validation_level: strict\n"
      "    s3: { bucket: landing-bucket }\n"
      "    healthlake:\n"
      "      datastore_id: 0123456789abcdef0123456789abcdef\n"
      "      data_access_role_arn: arn:aws:iam::123456789012:role/Import\n"
      "      output_s3_uri: s3://results-bucket/imports/\n"
      "      output_kms_key_id: alias/healthlake\n");
  fs::permissions(p, fs::perms::owner_read | fs::perms::owner_write);
  auto r = run("check-config --config " + p.string());
  EXPECT_EQ(r.code, 0);
  EXPECT_EQ(r.out, "ok\n");
  EXPECT_EQ(r.err, "warning: " + p.string() +
                       ":4:23: pipelines[0].validation_level: strict with no fhir_packages checks "
                       "meta.profile only against the built-in US Core 3.1.0 (also answering "
                       "|3.1.1, HealthLake's default) and R4 core profiles (vitalsigns...); "
                       "profiles of other guides or US Core "
                       "versions (4.0.0, 5.0.1, 6.1.0, 7.0.0) are reported as not checked: add "
                       "their packages to fhir_packages\n");
  // With a package, or at structure-only, nothing to warn about.
  auto q = write(
      "pipelines:\n"
      "  - name: epic\n"
      "    watch: " +
      dir_.string() +
      "\n"
      "    validation_level: strict\n"
      "    fhir_packages: [/usr/share/fhir/hl7.fhir.us.core-6.1.0.tgz]\n"
      "    s3: { bucket: landing-bucket }\n"
      "    healthlake:\n"
      "      datastore_id: 0123456789abcdef0123456789abcdef\n"
      "      data_access_role_arn: arn:aws:iam::123456789012:role/Import\n"
      "      output_s3_uri: s3://results-bucket/imports/\n"
      "      output_kms_key_id: alias/healthlake\n");
  fs::permissions(q, fs::perms::owner_read | fs::perms::owner_write);
  auto rq = run("check-config --config " + q.string());
  EXPECT_EQ(rq.code, 0);
  EXPECT_EQ(rq.out, "ok\n");
  EXPECT_EQ(rq.err, "");
}

TEST_F(CheckConfig, MissingFileIsAConfigError) {
  auto r = run("check-config --config " + (dir_ / "absent.yaml").string());
  EXPECT_EQ(r.code, 2);
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("absent.yaml: cannot read: No such file or directory"));
}

TEST_F(CheckConfig, UsageErrorsAndHelp) {
  EXPECT_EQ(run("check-config --bogus").code, 2);
  auto h = run("check-config --help");
  EXPECT_EQ(h.code, 0);
  EXPECT_THAT(h.out, HasSubstr("--config FILE"));
  auto rh = run("run --help");
  EXPECT_EQ(rh.code, 0);
  EXPECT_THAT(rh.out, HasSubstr("--log-level"));
  EXPECT_EQ(run("run --frobnicate").code, 2);
}

}  // namespace
