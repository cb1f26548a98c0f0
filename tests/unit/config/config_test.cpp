// Configuration loading: every error class reports FILE:LINE:COL: key.path: message, all errors
// come at once, the shipped configs load cleanly, and values are converted as documented.
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <stdlib.h>

#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/units.hpp"
#include "config_text.hpp"

namespace {

using fe::config::load_config_text;
using ::testing::ElementsAre;
using ::testing::HasSubstr;

using fe::test::errors;
using fe::test::kHead;
using fe::test::ok;

TEST(ConfigLoad, MinimalPipelineGetsDocumentedDefaults) {
  auto c = ok(kHead);
  ASSERT_EQ(c.pipelines.size(), 1u);
  const auto& p = c.pipelines[0];
  EXPECT_EQ(p.name, "epic");
  EXPECT_EQ(p.watch, "/data/epic");
  EXPECT_EQ(p.patterns, (std::vector<std::string>{"*.ndjson", "*.ndjson.gz", "*.ndjson.zst"}));
  EXPECT_EQ(p.complete_when.marker, ".done");
  EXPECT_EQ(p.validation_level, fe::config::ValidationLevel::structure_only);
  EXPECT_EQ(p.on_invalid, fe::config::OnInvalid::reject_resource);
  EXPECT_EQ(p.on_changed, fe::config::OnChanged::hold);
  EXPECT_TRUE(p.s3.archive);
  EXPECT_EQ(p.s3.prefix, "exports");
  EXPECT_EQ(p.healthlake.max_outstanding_starts, 1);
  EXPECT_THAT(p.healthlake.accept_statuses, ElementsAre("COMPLETED", "COMPLETED_WITH_ERRORS"));
  EXPECT_EQ(p.after_upload.kind, fe::config::AfterUploadKind::keep);
  EXPECT_EQ(c.spool.dir, "/var/lib/fhir-edge/spool");
  EXPECT_EQ(c.spool.max_bytes, 20ULL << 30);
  EXPECT_EQ(c.spool.keep_for, std::chrono::hours(24 * 7));
  EXPECT_EQ(c.journal.path, "/var/lib/fhir-edge/journal.db");
  EXPECT_FALSE(c.upload.part_size.has_value());
  EXPECT_EQ(c.upload.concurrency, 4);
  EXPECT_TRUE(c.metrics.enabled);
  EXPECT_EQ(c.metrics.port, 10464);
  EXPECT_EQ(c.log.level, fe::log::Level::info);
  EXPECT_EQ(c.aws.credential_source, fe::config::CredentialSource::automatic);
  EXPECT_FALSE(c.aws.region.has_value());
}

TEST(ConfigLoad, HumanUnitsAreConverted) {
  auto c = ok(std::string(kHead) +
              "    complete_when: { settle_seconds: 1m30s }\n"  // 10
              "    after_upload: move:/data/archive/\n"         // 11
              "spool: { max_bytes: 1.5GB, keep_for: 1h30m, zstd_level: 19 }\n"
              "upload: { part_size: 64MiB, concurrency: 8, bandwidth_limit: 20MiB/s }\n"
              "import: { poll_min: 2s, poll_max: 1m }\n"
              "metrics: { listen: \"[::1]:9100\" }\n"
              "log: { level: debug }\n");
  EXPECT_EQ(c.pipelines[0].complete_when.settle, std::chrono::seconds(90));
  EXPECT_EQ(c.pipelines[0].after_upload.kind, fe::config::AfterUploadKind::move);
  EXPECT_EQ(c.pipelines[0].after_upload.move_to, "/data/archive");
  EXPECT_EQ(c.spool.max_bytes, 1'500'000'000ULL);
  EXPECT_EQ(c.spool.keep_for, std::chrono::seconds(5400));
  EXPECT_EQ(c.spool.zstd_level, 19);
  EXPECT_EQ(c.upload.part_size, 64ULL << 20);
  EXPECT_EQ(c.upload.concurrency, 8);
  EXPECT_EQ(c.upload.bandwidth_limit, 20ULL << 20);
  EXPECT_EQ(c.import_jobs.poll_min, std::chrono::seconds(2));
  EXPECT_EQ(c.import_jobs.poll_max, std::chrono::seconds(60));
  EXPECT_EQ(c.metrics.host, "::1");
  EXPECT_EQ(c.metrics.port, 9100);
  EXPECT_EQ(c.log.level, fe::log::Level::debug);
}

TEST(Units, SizesDurationsRates) {
  std::string why;
  EXPECT_EQ(fe::config::parse_size("64MiB", why), 64ULL << 20);
  EXPECT_EQ(fe::config::parse_size("20GiB", why), 20ULL << 30);
  EXPECT_EQ(fe::config::parse_size("1.25GB", why), 1'250'000'000ULL);
  EXPECT_EQ(fe::config::parse_size("4096", why), 4096ULL);
  EXPECT_EQ(fe::config::parse_size("0.5KiB", why), 512ULL);
  EXPECT_FALSE(fe::config::parse_size("1.1B", why));
  EXPECT_FALSE(fe::config::parse_size("12XB", why));
  EXPECT_THAT(why, HasSubstr("unknown size unit 'XB'"));
  EXPECT_FALSE(fe::config::parse_size("99999999999TiB", why));
  EXPECT_THAT(why, HasSubstr("too large"));
  EXPECT_FALSE(fe::config::parse_size("-1", why));
  EXPECT_EQ(fe::config::parse_duration("30s", why), std::chrono::seconds(30));
  EXPECT_EQ(fe::config::parse_duration("5m", why), std::chrono::minutes(5));
  EXPECT_EQ(fe::config::parse_duration("7d", why), std::chrono::hours(24 * 7));
  EXPECT_EQ(fe::config::parse_duration("1h30m", why), std::chrono::minutes(90));
  EXPECT_EQ(fe::config::parse_duration("250ms", why), std::chrono::milliseconds(250));
  EXPECT_EQ(fe::config::parse_duration("45", why), std::chrono::seconds(45));
  EXPECT_FALSE(fe::config::parse_duration("7days", why));
  EXPECT_FALSE(fe::config::parse_duration("h", why));
  EXPECT_EQ(fe::config::parse_rate("20MiB/s", why), 20ULL << 20);
  EXPECT_EQ(fe::config::parse_rate("500KB/s", why), 500'000ULL);
  EXPECT_FALSE(fe::config::parse_rate("fast", why));
  EXPECT_EQ(fe::config::format_size(20ULL << 30), "20GiB");
  EXPECT_EQ(fe::config::format_size(5ULL << 20), "5MiB");
}

// ---- one test per error class, each with the exact position ----

TEST(ConfigErrors, ImportPollBounds) {
  EXPECT_THAT(errors(std::string(kHead) + "import: { poll_min: 90s }\n"),
              ElementsAre("t.yaml:10:21: import.poll_min: poll_max must not be less than "
                          "poll_min"));
  EXPECT_THAT(errors(std::string(kHead) + "import: { poll_min: 30s, poll_max: 10s }\n"),
              ElementsAre("t.yaml:10:36: import.poll_max: poll_max must not be less than "
                          "poll_min"));
}

TEST(ConfigLoad, MinImportedShare) {
  EXPECT_EQ(ok(std::string(kHead)).import_jobs.min_imported_share, 0.0);
  EXPECT_EQ(ok(std::string(kHead) + "import: { min_imported_share: 90% }\n")
                .import_jobs.min_imported_share,
            0.9);
  EXPECT_EQ(ok(std::string(kHead) + "import: { min_imported_share: 0.25 }\n")
                .import_jobs.min_imported_share,
            0.25);
}

TEST(ConfigErrors, MinImportedShareBounds) {
  EXPECT_THAT(errors(std::string(kHead) + "import: { min_imported_share: 1.5 }\n"),
              ElementsAre("t.yaml:10:31: import.min_imported_share: must be between 0 and 1 (0% "
                          "and 100%), got '1.5'"));
  EXPECT_THAT(errors(std::string(kHead) + "import: { min_imported_share: most }\n"),
              ElementsAre("t.yaml:10:31: import.min_imported_share: expected a share such as 0.9 "
                          "or 90%, got 'most'"));
}

TEST(ConfigErrors, UnknownKeySuggestsNearest) {
  EXPECT_THAT(errors(std::string(kHead) + "    validaton_level: strict\n"),
              ElementsAre("t.yaml:10:5: pipelines[0].validaton_level: unknown key "
                          "'validaton_level'; did you mean 'validation_level'?"));
  EXPECT_THAT(errors(std::string("aws: { regoin: us-east-1 }\n") + kHead),
              ElementsAre("t.yaml:1:8: aws.regoin: unknown key 'regoin'; did you mean 'region'?"));
  // Nothing close: no suggestion.
  EXPECT_THAT(errors(std::string(kHead) + "frobnicator: 1\n"),
              ElementsAre("t.yaml:10:1: frobnicator: unknown key 'frobnicator'"));
}

TEST(ConfigErrors, EnumValues) {
  EXPECT_THAT(errors(std::string(kHead) + "    validation_level: structure_only\n"),
              ElementsAre("t.yaml:10:23: pipelines[0].validation_level: must be one of strict, "
                          "structure-only, minimal, got 'structure_only'; did you mean "
                          "'structure-only'?"));
  EXPECT_THAT(errors(std::string(kHead) + "    on_invalid: drop\n"),
              ElementsAre("t.yaml:10:17: pipelines[0].on_invalid: must be one of "
                          "reject-resource, reject-file, fail-export, got 'drop'"));
  EXPECT_THAT(errors(std::string(kHead) + "    on_changed: overwrite\n"),
              ElementsAre("t.yaml:10:17: pipelines[0].on_changed: must be one of hold, "
                          "reimport, got 'overwrite'"));
  EXPECT_EQ(ok(std::string(kHead) + "    on_changed: reimport\n").pipelines[0].on_changed,
            fe::config::OnChanged::reimport);
  EXPECT_THAT(errors(std::string(kHead) + "aws: { credentials: { source: vault } }\n"),
              ElementsAre("t.yaml:10:31: aws.credentials.source: must be one of auto, env, "
                          "profile, process, imds, container, systemd, got 'vault'"));
  EXPECT_THAT(errors(std::string(kHead) + "log: { level: verbose }\n"),
              ElementsAre("t.yaml:10:15: log.level: must be one of error, warning, notice, "
                          "info, debug, got 'verbose'"));
  EXPECT_THAT(errors(std::string(kHead) + "    after_upload: remove\n"),
              ElementsAre("t.yaml:10:19: pipelines[0].after_upload: must be keep, delete or "
                          "move:/absolute/dir, got 'remove'"));
}

TEST(ConfigErrors, AbsolutePaths) {
  EXPECT_THAT(errors(std::string(kHead) + "spool: { dir: var/spool }\njournal:\n  path: j.db\n"),
              ElementsAre("t.yaml:10:15: spool.dir: must be an absolute path, got 'var/spool'",
                          "t.yaml:12:9: journal.path: must be an absolute path, got 'j.db'"));
  EXPECT_THAT(errors(std::string(kHead) + "    after_upload: move:archive\n"),
              ElementsAre("t.yaml:10:19: pipelines[0].after_upload: move: needs an absolute "
                          "directory, e.g. move:/var/archive"));
}

TEST(ConfigErrors, BucketNamingRules) {
  auto with_bucket = [](const std::string& b) {
    std::string y = kHead;
    y.replace(y.find("landing-bucket"), 14, b);
    return errors(y);
  };
  EXPECT_THAT(with_bucket("Landing_Bucket"),
              ElementsAre("t.yaml:4:19: pipelines[0].s3.bucket: S3 bucket names use only "
                          "lowercase letters, digits, '.' and '-'"));
  EXPECT_THAT(with_bucket("ab"), ElementsAre(HasSubstr("3 to 63 characters")));
  EXPECT_THAT(with_bucket("my..bucket"), ElementsAre(HasSubstr("no two adjacent periods")));
  EXPECT_THAT(with_bucket("192.168.5.4"), ElementsAre(HasSubstr("IP addresses")));
  EXPECT_THAT(with_bucket("xn--bucket"), ElementsAre(HasSubstr("do not start with 'xn--'")));
  EXPECT_THAT(with_bucket("bucket-"), ElementsAre(HasSubstr("begin and end")));
  EXPECT_THAT(with_bucket("bucket-s3alias"), ElementsAre(HasSubstr("-s3alias")));
}

TEST(ConfigErrors, HealthLakeIdentifiers) {
  std::string y = kHead;
  y.replace(y.find("0123456789abcdef0123456789abcdef"), 32, "0123456789abcdef");
  y.replace(y.find("arn:aws:iam::123456789012:role/Import"), 37, "arn:aws:iam::1234:user/x");
  y.replace(y.find("s3://results-bucket/imports/"), 28, "https://results/");
  y.replace(y.find("alias/healthlake"), 16, "not a key");
  EXPECT_THAT(
      errors(y),
      ElementsAre("t.yaml:6:21: pipelines[0].healthlake.datastore_id: a HealthLake data store "
                  "id is 32 letters and digits, got '0123456789abcdef' (16 characters)",
                  "t.yaml:7:29: pipelines[0].healthlake.data_access_role_arn: expected an IAM "
                  "role ARN such as arn:aws:iam::123456789012:role/Name",
                  "t.yaml:8:22: pipelines[0].healthlake.output_s3_uri: expected an S3 URI such "
                  "as s3://bucket/prefix/",
                  "t.yaml:9:26: pipelines[0].healthlake.output_kms_key_id: expected a KMS key "
                  "ARN (arn:aws:kms:REGION:ACCOUNT:key/ID), alias ARN, key id or alias/NAME"));
  // GovCloud role ARNs and full KMS key ARNs are accepted.
  std::string g = kHead;
  g.replace(g.find("arn:aws:iam::"), 13, "arn:aws-us-gov:iam::");
  g.replace(g.find("alias/healthlake"), 16,
            "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab");
  ok(g);
}

TEST(ConfigErrors, MissingRequiredKeysPointAtTheirMapping) {
  EXPECT_THAT(errors("pipelines:\n"
                     "  - name: epic\n"
                     "    watch: /data/epic\n"
                     "    s3: { prefix: x }\n"
                     "    healthlake:\n"
                     "      datastore_id: 0123456789abcdef0123456789abcdef\n"),
              ElementsAre("t.yaml:4:9: pipelines[0].s3.bucket: missing required key 'bucket'",
                          "t.yaml:6:7: pipelines[0].healthlake.data_access_role_arn: missing "
                          "required key 'data_access_role_arn'",
                          "t.yaml:6:7: pipelines[0].healthlake.output_s3_uri: missing required "
                          "key 'output_s3_uri'",
                          "t.yaml:6:7: pipelines[0].healthlake.output_kms_key_id: missing "
                          "required key 'output_kms_key_id' (StartFHIRImportJob requires a KMS "
                          "key for its output)"));
  EXPECT_THAT(errors("log: { level: info }\n"),
              ElementsAre("t.yaml:1:1: pipelines: missing required key 'pipelines' (at least one "
                          "pipeline)"));
}

TEST(ConfigErrors, RangesAndUnits) {
  EXPECT_THAT(
      errors(std::string(kHead) +
             "spool: { max_bytes: 10MiB, zstd_level: 20, keep_for: 7days }\n"  // 10
             "upload:\n"                                                       // 11
             "  part_size: 4MiB\n"                                             // 12
             "  concurrency: 100\n"                                            // 13
             "  bandwidth_limit: fast\n"                                       // 14
             "metrics: { listen: 127.0.0.1:70000 }\n"),                        // 15
      ElementsAre(
          "t.yaml:10:21: spool.max_bytes: must be at least 64MiB, got 10MiB",
          "t.yaml:10:40: spool.zstd_level: must be between 1 and 19, got 20",
          "t.yaml:10:54: spool.keep_for: expected a duration such as 30s, 5m, 7d or 1h30m, got "
          "'7days'",
          "t.yaml:12:14: upload.part_size: must be between 5MiB and 5GiB, got 4MiB",
          "t.yaml:13:16: upload.concurrency: must be between 1 and 64, got 100",
          "t.yaml:14:20: upload.bandwidth_limit: expected a rate such as 20MiB/s or 500KB/s, or "
          "unlimited, got 'fast'",
          "t.yaml:15:20: metrics.listen: expected HOST:PORT (e.g. 127.0.0.1:10464 or [::1]:10464) "
          "or off, got '127.0.0.1:70000'"));
  EXPECT_THAT(errors(std::string(kHead) + "upload: { part_size: 6GiB }\n"),
              ElementsAre("t.yaml:10:22: upload.part_size: must be between 5MiB and 5GiB, got "
                          "6GiB"));
}

TEST(ConfigErrors, TypeMismatches) {
  EXPECT_THAT(errors(std::string(kHead) + "    s3: [a, b]\n"),
              ElementsAre("t.yaml:10:5: pipelines[0].s3: duplicate key 's3'"));
  EXPECT_THAT(errors("pipelines: {}\n"),
              ElementsAre("t.yaml:1:12: pipelines: expected a list of pipelines, got a mapping"));
  EXPECT_THAT(errors(std::string(kHead) + "aws: { s3_path_style: yes please }\n"),
              ElementsAre("t.yaml:10:23: aws.s3_path_style: expected true or false, got 'yes "
                          "please'"));
  EXPECT_THAT(errors(std::string(kHead) + "spool: 3\n"),
              ElementsAre("t.yaml:10:8: spool: expected a mapping, got a scalar"));
}

TEST(ConfigErrors, DuplicatePipelineNames) {
  std::string second = std::string(kHead).substr(std::string("pipelines:\n").size());
  second.replace(second.find("/data/epic"), 10, "/data/cerner");
  EXPECT_THAT(errors(std::string(kHead) + second),
              ElementsAre("t.yaml:10:11: pipelines[1].name: duplicate pipeline name 'epic' "
                          "(also pipelines[0])"));
}

TEST(ConfigErrors, SameOrNestedWatchDirectories) {
  std::string second = std::string(kHead).substr(std::string("pipelines:\n").size());
  second.replace(second.find("name: epic"), 10, "name: copy");
  second.replace(second.find("/data/epic"), 10, "/data/epic/");  // same after normalising
  EXPECT_THAT(errors(std::string(kHead) + second),
              ElementsAre("t.yaml:11:12: pipelines[1].watch: watches the same directory as "
                          "pipelines[0] ('epic')"));
  second.replace(second.find("/data/epic/"), 11, "/data/epic/sub");
  EXPECT_THAT(errors(std::string(kHead) + second),
              ElementsAre("t.yaml:11:12: pipelines[1].watch: '/data/epic/sub' and "
                          "pipelines[0].watch '/data/epic' are nested: one pipeline would ingest "
                          "the other's exports"));
  // A sibling whose name merely starts with the same characters is not nested.
  second.replace(second.find("/data/epic/sub"), 14, "/data/epic2");
  ok(std::string(kHead) + second);
}

TEST(ConfigErrors, MoveTargetInsideAWatchedDirectory) {
  EXPECT_THAT(errors(std::string(kHead) + "    after_upload: move:/data/epic/done\n"),
              ElementsAre("t.yaml:10:19: pipelines[0].after_upload: moving into "
                          "'/data/epic/done' would feed the files back into watched directory "
                          "'/data/epic'"));
}

TEST(ConfigErrors, SpoolInsideWatchDirectory) {
  EXPECT_THAT(errors(std::string(kHead) + "spool: { dir: /data/epic/spool }\n"),
              ElementsAre("t.yaml:3:12: pipelines[0].watch: overlaps spool.dir "
                          "'/data/epic/spool'"));
}

TEST(ConfigErrors, YamlSyntax) {
  EXPECT_THAT(errors("pipelines: [\n  {name: a\n"),
              ElementsAre(::testing::StartsWith("t.yaml:3:1: YAML syntax error: ")));
}

TEST(ConfigErrors, AllErrorsAtOnceInFileOrder) {
  std::string y = kHead;
  y.replace(y.find("landing-bucket"), 14, "Bad");
  y += "    on_invalid: nope\n"
       "spool: { zstd_level: 0 }\n";
  auto e = errors(y);
  ASSERT_EQ(e.size(), 3u);
  EXPECT_THAT(e[0], ::testing::StartsWith("t.yaml:4:19: pipelines[0].s3.bucket:"));
  EXPECT_THAT(e[1], ::testing::StartsWith("t.yaml:10:17: pipelines[0].on_invalid:"));
  EXPECT_THAT(e[2], ::testing::StartsWith("t.yaml:11:22: spool.zstd_level:"));
}

TEST(ConfigErrors, CompletionNeedsARule) {
  EXPECT_THAT(
      errors(std::string(kHead) +
             "    complete_when: { marker: null, bulk_manifest: false, client_log: false }\n"),
      ElementsAre("t.yaml:10:20: pipelines[0].complete_when: no completion rule is enabled: an "
                  "export would never be picked up (set marker, bulk_manifest, client_log or "
                  "settle_seconds)"));
}

TEST(ConfigEnv, VariablesAreExpandedInValues) {
  setenv("FE_TEST_ROOT", "/srv/exports", 1);
  unsetenv("FE_TEST_UNSET");
  std::string y = kHead;
  y.replace(y.find("/data/epic"), 10, "${FE_TEST_ROOT}/epic");
  auto c = ok(y + "aws: { endpoints: { s3: \"http://127.0.0.1:${FE_TEST_UNSET:-4566}\" } }\n");
  EXPECT_EQ(c.pipelines[0].watch, "/srv/exports/epic");
  EXPECT_EQ(c.aws.endpoints.s3, "http://127.0.0.1:4566");
  EXPECT_THAT(errors(y + "log: { level: \"${FE_TEST_UNSET}\" }\n"),
              ElementsAre("t.yaml:10:15: log.level: environment variable FE_TEST_UNSET is not "
                          "set (use ${FE_TEST_UNSET:-default} for a default)"));
  // $$ is a literal dollar; the expanded value is still checked.
  EXPECT_THAT(errors(y + "log: { level: \"$${FE_TEST_ROOT}\" }\n"),
              ElementsAre(HasSubstr("got '${FE_TEST_ROOT}'")));
}

TEST(ConfigFile, UnreadableFileIsOneError) {
  auto r = fe::config::load_config("/nonexistent/fhir-edge.yaml");
  ASSERT_FALSE(r.ok());
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(fe::config::format(r.errors[0]),
            "/nonexistent/fhir-edge.yaml: cannot read: No such file or directory");
}

TEST(ConfigFile, DirectoryIsOneError) {
  auto r = fe::config::load_config("/");
  ASSERT_EQ(r.errors.size(), 1u);
  EXPECT_EQ(fe::config::format(r.errors[0]), "/: is a directory, not a configuration file");
}

TEST(ConfigFile, OversizedInputIsRefusedWithoutParsing) {
  std::string huge = std::string(kHead) + "# " + std::string(2 << 20, 'x') + "\n";
  EXPECT_THAT(errors(huge), ElementsAre("t.yaml:1:1: the file is larger than 1MiB; is this really "
                                        "the configuration?"));
}

// Damaged files (flipped bytes, truncation, deep nesting) never crash or throw: either a Config
// or at least one positioned error.
TEST(ConfigRobustness, MutatedReferenceConfigNeverCrashes) {
  std::ifstream in(std::string(FE_SOURCE_DIR) + "/config/fhir-edge.yaml");
  std::string base((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_FALSE(base.empty());
  const std::string alphabet = ":-[]{}\"'&*!|>%@`#,? \n\t\\$x0.";
  unsigned seed = 12345;
  auto rnd = [&seed](unsigned n) {
    seed = seed * 1103515245u + 12345u;
    return (seed >> 8) % n;
  };
  int rejected = 0;
  for (int i = 0; i < 400; ++i) {
    std::string m = base;
    for (int k = 0, edits = 1 + static_cast<int>(rnd(4)); k < edits; ++k)
      m[rnd(static_cast<unsigned>(m.size()))] =
          alphabet[rnd(static_cast<unsigned>(alphabet.size()))];
    if (i % 10 == 0) m.resize(rnd(static_cast<unsigned>(m.size())));
    fe::config::LoadResult r;
    ASSERT_NO_THROW(r = load_config_text(m, "m.yaml"));
    EXPECT_NE(r.ok(), !r.errors.empty());
    if (!r.ok()) ++rejected;
  }
  EXPECT_GT(rejected, 0);  // the mutations really produced broken files
  for (std::string deep : {std::string(5000, '['), std::string(5000, '{'),
                           std::string("a: ") + std::string(3000, '-')}) {
    auto r = load_config_text(deep, "d.yaml");
    EXPECT_FALSE(r.ok());
    ASSERT_FALSE(r.errors.empty());
  }
}

TEST(ConfigFile, ShippedReferenceConfigLoadsClean) {
  auto r = fe::config::load_config(std::string(FE_SOURCE_DIR) + "/config/fhir-edge.yaml");
  ASSERT_TRUE(r.ok()) << fe::config::format(r.errors);
  const auto& c = *r.config;
  ASSERT_EQ(c.pipelines.size(), 1u);
  EXPECT_EQ(c.pipelines[0].name, "epic-nightly");
  EXPECT_EQ(c.aws.region, "us-east-1");
  EXPECT_EQ(c.spool.max_bytes, 20ULL << 30);
  EXPECT_EQ(c.source, std::string(FE_SOURCE_DIR) + "/config/fhir-edge.yaml");
}

TEST(ConfigFile, ShippedDemoConfigLoadsCleanWithAndWithoutEnvironment) {
  unsetenv("FE_DEMO_DIR");
  unsetenv("FE_DEMO_HEALTHLAKE_PORT");
  auto r = fe::config::load_config(std::string(FE_SOURCE_DIR) + "/config/demo.yaml");
  ASSERT_TRUE(r.ok()) << fe::config::format(r.errors);
  EXPECT_EQ(r.config->pipelines[0].watch, "/tmp/fhir-edge-demo/incoming");
  setenv("FE_DEMO_DIR", "/tmp/other-demo", 1);
  setenv("FE_DEMO_HEALTHLAKE_PORT", "40123", 1);
  r = fe::config::load_config(std::string(FE_SOURCE_DIR) + "/config/demo.yaml");
  ASSERT_TRUE(r.ok()) << fe::config::format(r.errors);
  EXPECT_EQ(r.config->pipelines[0].watch, "/tmp/other-demo/incoming");
  EXPECT_EQ(r.config->spool.dir, "/tmp/other-demo/spool");
  EXPECT_EQ(r.config->aws.endpoints.healthlake, "http://127.0.0.1:40123");
  unsetenv("FE_DEMO_DIR");
  unsetenv("FE_DEMO_HEALTHLAKE_PORT");
}

}  // namespace

// issue 18 defect 7: the line limit (and with it peak memory) is a configured, checked value.
TEST(ConfigLoad, MaxLineBytesIsConfiguredAndChecked) {
  EXPECT_EQ(ok(kHead).pipelines[0].max_line_bytes, 64u << 20);
  EXPECT_EQ(ok(std::string(kHead) + "    max_line_bytes: 8MiB\n").pipelines[0].max_line_bytes,
            8u << 20);
  auto small = errors(std::string(kHead) + "    max_line_bytes: 1KiB\n");
  ASSERT_EQ(small.size(), 1u);
  EXPECT_THAT(small[0], HasSubstr("pipelines[0].max_line_bytes"));
  auto big = errors(std::string(kHead) + "    max_line_bytes: 2GiB\n");
  ASSERT_EQ(big.size(), 1u);
  EXPECT_THAT(big[0], HasSubstr("pipelines[0].max_line_bytes"));
}

// ---- fleet (issue 16 item 3, docs/configuration.md "fleet") ----

namespace {

TEST(ConfigFleet, AbsentIsNoFleet) {
  EXPECT_FALSE(ok(kHead).fleet.enabled());
  EXPECT_FALSE(ok(std::string(kHead) + "fleet:\n").fleet.enabled());
}

TEST(ConfigFleet, DefaultsAndValues) {
  auto f = ok(std::string(kHead) + "fleet: { name: soak, gateway_id: gw-3 }\n").fleet;
  EXPECT_TRUE(f.enabled());
  EXPECT_EQ(f.name, "soak");
  EXPECT_EQ(f.gateway_id, "gw-3");
  EXPECT_EQ(f.bucket, "landing-bucket");  // the first pipeline's s3.bucket
  EXPECT_EQ(f.prefix, "");
  EXPECT_EQ(f.lease_ttl, std::chrono::minutes(2));
  EXPECT_EQ(f.lease_skew_margin, std::chrono::seconds(30));
  EXPECT_EQ(f.poll_interval, std::chrono::seconds(10));
  f = ok(std::string(kHead) +
         "fleet: { name: soak, gateway_id: gw-3, bucket: shared-bucket, prefix: coord/, "
         "lease_ttl: 6s, lease_skew_margin: 1s, poll_interval: 500ms }\n")
          .fleet;
  EXPECT_EQ(f.bucket, "shared-bucket");
  EXPECT_EQ(f.prefix, "coord");
  EXPECT_EQ(f.lease_ttl, std::chrono::seconds(6));
  EXPECT_EQ(f.lease_skew_margin, std::chrono::seconds(1));
  EXPECT_EQ(f.poll_interval, std::chrono::milliseconds(500));
  // The host name stands in for a missing gateway_id.
  EXPECT_FALSE(ok(std::string(kHead) + "fleet: { name: soak }\n").fleet.gateway_id.empty());
}

TEST(ConfigFleet, ErrorsNameTheKey) {
  EXPECT_THAT(errors(std::string(kHead) + "fleet: { gateway_id: gw-1 }\n"),
              ElementsAre("t.yaml:10:8: fleet.name: missing required key 'name'"));
  EXPECT_THAT(errors(std::string(kHead) + "fleet: { name: Soak_1, gateway_id: gw-1 }\n"),
              ElementsAre("t.yaml:10:16: fleet.name: a fleet name is 1-63 lowercase letters, "
                          "digits and '-', got 'Soak_1'"));
  EXPECT_THAT(errors(std::string(kHead) + "fleet: { name: soak, gateway_id: \"gw/1\" }\n"),
              ElementsAre(HasSubstr("fleet.gateway_id: a gateway id is 1-63 letters")));
  EXPECT_THAT(errors(std::string(kHead) + "fleet: { name: soak, gateway_id: g, bucket: A_b }\n"),
              ElementsAre(HasSubstr("fleet.bucket: ")));
  EXPECT_THAT(
      errors(std::string(kHead) +
             "fleet: { name: soak, gateway_id: g, lease_ttl: 6s, lease_skew_margin: 3s }\n"),
      ElementsAre(HasSubstr("fleet.lease_skew_margin: lease_skew_margin must be less than half "
                            "of lease_ttl")));
  EXPECT_THAT(errors(std::string(kHead) + "fleet: { name: soak, gateway_id: g, poll_interval: "
                                          "10ms }\n"),
              ElementsAre(HasSubstr("fleet.poll_interval: must be at least 100ms")));
  EXPECT_THAT(errors(std::string(kHead) + "fleet: { name: soak, gateway_id: g, leasettl: 6s }\n"),
              ElementsAre(HasSubstr("did you mean 'lease_ttl'?")));
}

}  // namespace
