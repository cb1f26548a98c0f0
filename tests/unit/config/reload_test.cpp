// Reload by struct compare (config/reload.hpp, issue 14 item 3): for every section, a change to
// each key that is not live is refused naming the key as written in the YAML, and a change to a
// live key is accepted. The tables below are checked against the stages' own descriptions
// (keys()), so a key added to a Settings struct without a row here fails ReloadKeys.
#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "config/reload.hpp"

// The compile-time check every Settings header ends with (common/fields.hpp): a field left out
// of the description, or described twice, fails it.
namespace probe {
using fe::settings::field;
using fe::settings::Reload;
struct Two {
  int a = 0;
  std::string b;
};
constexpr auto fields(const Two*) {
  return std::tuple{field("a", &Two::a, Reload::restart)};  // b forgotten
}
static_assert(!fe::settings::described<Two>());
struct Twice {
  int a = 0;
  int b = 0;
};
constexpr auto fields(const Twice*) {
  return std::tuple{field("a", &Twice::a, Reload::restart), field("a", &Twice::a, Reload::live)};
}
static_assert(!fe::settings::described<Twice>());
struct Both {
  int a = 0;
  std::string b;
};
constexpr auto fields(const Both*) {
  return std::tuple{field("a", &Both::a, Reload::restart), field("b", &Both::b, Reload::live)};
}
static_assert(fe::settings::described<Both>());
}  // namespace probe

namespace {

using fe::config::first_restart_key;
using fe::config::load_config_text;

// Every key written out, one per line, so that a change is a one-line edit.
constexpr const char* kBase =
    "aws:\n"
    "  region: us-east-1\n"
    "  credentials:\n"
    "    source: auto\n"
    "  profile: default\n"
    "  endpoints:\n"
    "    s3: http://127.0.0.1:4566\n"
    "    healthlake: http://127.0.0.1:8080\n"
    "    sts: http://127.0.0.1:8090\n"
    "  s3_path_style: false\n"
    "  proxy: http://proxy.example:3128\n"
    "  no_proxy: localhost\n"
    "  ca_bundle: /etc/ssl/ca.pem\n"
    "pipelines:\n"
    "  - name: p0\n"
    "    watch: /data/p0\n"
    "    patterns: [\"*.ndjson\"]\n"
    "    complete_when:\n"
    "      marker: .done\n"
    "      bulk_manifest: true\n"
    "      client_log: true\n"
    "      settle_seconds: 0\n"
    "    validation_level: structure-only\n"
    "    on_invalid: reject-resource\n"
    "    on_changed: hold\n"
    "    fhir_packages: []\n"
    "    max_line_bytes: 64MiB\n"
    "    s3:\n"
    "      bucket: landing-bucket\n"
    "      prefix: exports\n"
    "      kms_key_id: alias/landing\n"
    "      archive: true\n"
    "      upload_rejects: true\n"
    "    healthlake:\n"
    "      datastore_id: 0123456789abcdef0123456789abcdef\n"
    "      data_access_role_arn: arn:aws:iam::123456789012:role/Import\n"
    "      output_s3_uri: s3://results-bucket/imports/\n"
    "      output_kms_key_id: alias/healthlake\n"
    "      max_outstanding_starts: 1\n"
    "      accept_statuses: [COMPLETED, COMPLETED_WITH_ERRORS]\n"
    "    after_upload: keep\n"
    "spool:\n"
    "  dir: /var/lib/fe/spool\n"
    "  max_bytes: 20GiB\n"
    "  zstd_level: 3\n"
    "  keep_for: 7d\n"
    "journal:\n"
    "  path: /var/lib/fe/journal.db\n"
    "upload:\n"
    "  part_size: auto\n"
    "  concurrency: 4\n"
    "  bandwidth_limit: unlimited\n"
    "  bandwidth_schedule: []\n"
    "import:\n"
    "  poll_min: 15s\n"
    "  poll_max: 60s\n"
    "  min_imported_share: 0\n"
    "  batch_max_exports: 100\n"
    "  batch_max_bytes: 50GiB\n"
    "  batch_max_wait: 0s\n"
    "watch:\n"
    "  rescan_interval: 60s\n"
    "  scan_quiet: 5s\n"
    "metrics:\n"
    "  listen: 127.0.0.1:10464\n"
    "log:\n"
    "  level: info\n"
    "  format: text\n"
    "fleet:\n"
    "  name: soak\n"
    "  gateway_id: gw-3\n"
    "  bucket: fleet-bucket\n"
    "  prefix: coord\n"
    "  lease_ttl: 2m\n"
    "  lease_skew_margin: 30s\n"
    "  poll_interval: 10s\n";

fe::config::Config load(const std::string& yaml) {
  auto r = load_config_text(yaml, "t.yaml");
  EXPECT_TRUE(r.ok()) << fe::config::format(r.errors) << yaml;
  return r.ok() ? *r.config : fe::config::Config{};
}

// kBase with the (unique) line `from` replaced by `to`.
std::string edit(const std::string& from, const std::string& to) {
  std::string y = kBase;
  const auto at = y.find(from + "\n");
  EXPECT_NE(at, std::string::npos) << from;
  EXPECT_EQ(y.find(from + "\n", at + 1), std::string::npos) << from << " is not unique";
  if (at != std::string::npos) y.replace(at, from.size(), to);
  return y;
}

struct Change {
  std::string from, to;  // one line of kBase and its new text
  std::string key;       // what the refusal names ("" = live: accepted)
};

// Each change on its own against kBase: refused naming its key, or accepted when live.
void check(const std::vector<Change>& changes) {
  const auto base = load(kBase);
  for (const auto& ch : changes) {
    const auto next = load(edit(ch.from, ch.to));
    EXPECT_NE(base, next) << ch.from << " -> " << ch.to << " changed nothing";
    EXPECT_EQ(first_restart_key(base, next), ch.key) << ch.from << " -> " << ch.to;
    if (!ch.key.empty()) {
      EXPECT_EQ(fe::config::reload_refusal(base, next),
                ch.key + " changed: restart fhir-edge to apply");
    } else {
      EXPECT_EQ(fe::config::reload_refusal(base, next), "");
    }
  }
}

std::vector<Change> aws_changes() {
  return {{"  region: us-east-1", "  region: eu-west-1", "aws.region"},
          {"    source: auto", "    source: env", "aws.credentials.source"},
          {"  profile: default", "  profile: other", "aws.profile"},
          {"    s3: http://127.0.0.1:4566", "    s3: http://127.0.0.1:4567", "aws.endpoints.s3"},
          {"    healthlake: http://127.0.0.1:8080", "    healthlake: http://127.0.0.1:8081",
           "aws.endpoints.healthlake"},
          {"    sts: http://127.0.0.1:8090", "    sts: http://127.0.0.1:8091", "aws.endpoints.sts"},
          {"  s3_path_style: false", "  s3_path_style: true", "aws.s3_path_style"},
          {"  proxy: http://proxy.example:3128", "  proxy: \"\"", "aws.proxy"},
          {"  no_proxy: localhost", "  no_proxy: \"*\"", "aws.no_proxy"},
          {"  ca_bundle: /etc/ssl/ca.pem", "  ca_bundle: /etc/ssl/other.pem", "aws.ca_bundle"}};
}

std::vector<Change> pipeline_changes() {
  const std::string p = "pipelines[p0].";
  return {
      {"  - name: p0", "  - name: p1", p + "name"},
      {"    watch: /data/p0", "    watch: /data/p9", p + "watch"},
      {"    patterns: [\"*.ndjson\"]", "    patterns: [\"*.json\"]", p + "patterns"},
      {"      marker: .done", "      marker: DONE", p + "complete_when.marker"},
      {"      bulk_manifest: true", "      bulk_manifest: false",
       p + "complete_when.bulk_manifest"},
      {"      client_log: true", "      client_log: false", p + "complete_when.client_log"},
      {"      settle_seconds: 0", "      settle_seconds: 30s", p + "complete_when.settle_seconds"},
      {"    validation_level: structure-only", "    validation_level: minimal",
       p + "validation_level"},
      {"    on_invalid: reject-resource", "    on_invalid: reject-file", p + "on_invalid"},
      {"    on_changed: hold", "    on_changed: reimport", p + "on_changed"},
      {"    fhir_packages: []", "    fhir_packages: [/opt/pkg]", p + "fhir_packages"},
      {"    max_line_bytes: 64MiB", "    max_line_bytes: 8MiB", p + "max_line_bytes"},
      {"      bucket: landing-bucket", "      bucket: other-bucket", p + "s3.bucket"},
      {"      prefix: exports", "      prefix: other", p + "s3.prefix"},
      {"      kms_key_id: alias/landing", "      kms_key_id: alias/other", p + "s3.kms_key_id"},
      {"      archive: true", "      archive: false", p + "s3.archive"},
      {"      upload_rejects: true", "      upload_rejects: false", p + "s3.upload_rejects"},
      {"      datastore_id: 0123456789abcdef0123456789abcdef",
       "      datastore_id: 0123456789abcdef0123456789abcdee", p + "healthlake.datastore_id"},
      {"      data_access_role_arn: arn:aws:iam::123456789012:role/Import",
       "      data_access_role_arn: arn:aws:iam::123456789012:role/Other",
       p + "healthlake.data_access_role_arn"},
      {"      output_s3_uri: s3://results-bucket/imports/",
       "      output_s3_uri: s3://results-bucket/other/", p + "healthlake.output_s3_uri"},
      {"      output_kms_key_id: alias/healthlake", "      output_kms_key_id: alias/other",
       p + "healthlake.output_kms_key_id"},
      {"      max_outstanding_starts: 1", "      max_outstanding_starts: 2",
       p + "healthlake.max_outstanding_starts"},
      {"      accept_statuses: [COMPLETED, COMPLETED_WITH_ERRORS]",
       "      accept_statuses: [COMPLETED]", p + "healthlake.accept_statuses"},
      {"    after_upload: keep", "    after_upload: delete", p + "after_upload"}};
}

std::vector<Change> spool_changes() {
  return {{"  dir: /var/lib/fe/spool", "  dir: /var/lib/fe/spool2", "spool.dir"},
          {"  max_bytes: 20GiB", "  max_bytes: 30GiB", "spool.max_bytes"},
          {"  zstd_level: 3", "  zstd_level: 9", "spool.zstd_level"},
          {"  keep_for: 7d", "  keep_for: 1d", ""}};
}

std::vector<Change> journal_changes() {
  return {{"  path: /var/lib/fe/journal.db", "  path: /var/lib/fe/j2.db", "journal.path"}};
}

std::vector<Change> upload_changes() {
  return {{"  part_size: auto", "  part_size: 16MiB", "upload.part_size"},
          {"  concurrency: 4", "  concurrency: 8", "upload.concurrency"},
          {"  bandwidth_limit: unlimited", "  bandwidth_limit: 2MiB/s", ""},
          {"  bandwidth_schedule: []",
           "  bandwidth_schedule: [ { from: \"22:00\", to: \"06:00\", limit: 1MiB/s } ]", ""}};
}

std::vector<Change> import_changes() {
  return {{"  poll_min: 15s", "  poll_min: 2s", "import.poll_min"},
          {"  poll_max: 60s", "  poll_max: 90s", "import.poll_max"},
          {"  min_imported_share: 0", "  min_imported_share: 90%", "import.min_imported_share"},
          {"  batch_max_exports: 100", "  batch_max_exports: 1", "import.batch_max_exports"},
          {"  batch_max_bytes: 50GiB", "  batch_max_bytes: 1GiB", "import.batch_max_bytes"},
          {"  batch_max_wait: 0s", "  batch_max_wait: 10m", "import.batch_max_wait"}};
}

std::vector<Change> watch_changes() {
  return {{"  rescan_interval: 60s", "  rescan_interval: 10s", "watch.rescan_interval"},
          {"  scan_quiet: 5s", "  scan_quiet: 500ms", "watch.scan_quiet"}};
}

std::vector<Change> metrics_changes() {
  return {{"  listen: 127.0.0.1:10464", "  listen: 127.0.0.1:9465", "metrics.listen"},
          {"  listen: 127.0.0.1:10464", "  listen: \"[::1]:10464\"", "metrics.listen"},
          {"  listen: 127.0.0.1:10464", "  listen: off", "metrics.listen"}};
}

std::vector<Change> log_changes() {
  return {{"  level: info", "  level: debug", ""}, {"  format: text", "  format: json", ""}};
}

std::vector<Change> fleet_changes() {
  return {{"  name: soak", "  name: other", "fleet.name"},
          {"  gateway_id: gw-3", "  gateway_id: gw-4", "fleet.gateway_id"},
          {"  bucket: fleet-bucket", "  bucket: other-bucket", "fleet.bucket"},
          {"  prefix: coord", "  prefix: other", "fleet.prefix"},
          {"  lease_ttl: 2m", "  lease_ttl: 3m", "fleet.lease_ttl"},
          {"  lease_skew_margin: 30s", "  lease_skew_margin: 20s", "fleet.lease_skew_margin"},
          {"  poll_interval: 10s", "  poll_interval: 1s", "fleet.poll_interval"}};
}

TEST(ReloadAws, EachKeyNeedsARestart) {
  check(aws_changes());
}

TEST(ReloadPipelines, EachKeyNeedsARestartNamedByPipeline) {
  const std::string p = "pipelines[p0].";
  check(pipeline_changes());
  // move:/a to move:/b is a change of the same key.
  const auto a = load(edit("    after_upload: keep", "    after_upload: move:/archive/a"));
  const auto b = load(edit("    after_upload: keep", "    after_upload: move:/archive/b"));
  EXPECT_EQ(first_restart_key(a, b), p + "after_upload");
}

TEST(ReloadPipelines, AddingOrRemovingAPipelineNeedsARestart) {
  std::string two = kBase;
  const std::string second =
      "  - name: p1\n"
      "    watch: /data/p1\n"
      "    s3: { bucket: landing-bucket }\n"
      "    healthlake: { datastore_id: 0123456789abcdef0123456789abcdef, data_access_role_arn: "
      "\"arn:aws:iam::123456789012:role/Import\", output_s3_uri: \"s3://results-bucket/\", "
      "output_kms_key_id: alias/healthlake }\n";
  two.insert(two.find("spool:\n"), second);
  EXPECT_EQ(first_restart_key(load(kBase), load(two)), "pipelines");
  EXPECT_EQ(first_restart_key(load(two), load(kBase)), "pipelines");
}

TEST(ReloadSpool, KeepForIsLiveTheRestNeedARestart) {
  check(spool_changes());
}

TEST(ReloadJournal, PathNeedsARestart) {
  check(journal_changes());
}

TEST(ReloadUpload, BandwidthIsLiveTheRestNeedARestart) {
  check(upload_changes());
}

TEST(ReloadImport, EachKeyNeedsARestart) {
  check(import_changes());
}

TEST(ReloadWatch, EachKeyNeedsARestart) {
  check(watch_changes());
}

TEST(ReloadMetrics, ListenNeedsARestart) {
  check(metrics_changes());
}

TEST(ReloadLog, LevelAndFormatAreLive) {
  check(log_changes());
}

TEST(ReloadFleet, EachKeyNeedsARestart) {
  check(fleet_changes());
}

TEST(ReloadAll, ManyChangesNameTheFirstInSectionOrder) {
  std::string y = edit("  concurrency: 4", "  concurrency: 8");
  y.replace(y.find("poll_min: 15s"), 13, "poll_min: 2s");
  y.replace(y.find("level: info"), 11, "level: debug");
  EXPECT_EQ(first_restart_key(load(kBase), load(y)), "upload.concurrency");
  // The file it was loaded from is not a key.
  auto a = load(kBase), b = a;
  b.source = "/elsewhere.yaml";
  EXPECT_EQ(first_restart_key(a, b), "");
}

// The tables above against the stages' descriptions: every key that is not live has a row.
TEST(ReloadKeys, EveryKeyThatIsNotLiveHasATestAndEveryLiveKeyIsDocumented) {
  const auto base = load(kBase);
  std::set<std::string> restart, live;
  for (const auto& k : fe::config::keys(base)) (k.live ? live : restart).insert(k.name);
  EXPECT_EQ(live, (std::set<std::string>{"log.format", "log.level", "spool.keep_for",
                                         "upload.bandwidth_limit", "upload.bandwidth_schedule"}));
  // The docs list exactly these as live (docs/configuration.md, "Reloading").
  std::ifstream in(std::string(FE_SOURCE_DIR) + "/docs/configuration.md");
  std::stringstream doc;
  doc << in.rdbuf();
  const std::string text = doc.str();
  const auto at = text.find("Live keys (a reload applies them):");
  ASSERT_NE(at, std::string::npos);
  const std::string line = text.substr(at, text.find('\n', at) - at);
  std::set<std::string> documented;
  for (auto p = line.find('`'); p != std::string::npos; p = line.find('`', p + 1)) {
    const auto e = line.find('`', p + 1);
    documented.insert(line.substr(p + 1, e - p - 1));
    p = e;
  }
  EXPECT_EQ(documented, live);

  std::set<std::string> tested = {"pipelines"};  // AddingOrRemovingAPipelineNeedsARestart
  for (const auto& table :
       {aws_changes(), pipeline_changes(), spool_changes(), journal_changes(), upload_changes(),
        import_changes(), watch_changes(), metrics_changes(), log_changes(), fleet_changes()})
    for (const auto& ch : table)
      if (!ch.key.empty()) tested.insert(ch.key);
  EXPECT_EQ(tested, restart);
}

}  // namespace
