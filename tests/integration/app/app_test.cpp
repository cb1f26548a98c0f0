// daemon/app (issue 14 item 2): the composition root builds the daemon from a config and runs it;
// an export goes taken → uploaded (the hub's `uploaded` event) → imported against
// healthlake-local; stopping leaves no thread of it running. And aws::Clients: doctor and the
// daemon get the same AWS settings from one translation of the config.
#include <gtest/gtest.h>

#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include "app/app.hpp"
#include "aws/clients.hpp"
#include "config/config.hpp"
#include "healthlake_local.hpp"
#include "journal/journal.hpp"
#include "pipeline/aws_settings.hpp"
#include "temp_dir.hpp"

namespace {
namespace fs = std::filesystem;
using fe::journal::ExportState;

const char* kDatastore = "0123456789abcdef0123456789abcdef";

std::string config_yaml(const fe::test::TempDir& dir, const std::string& endpoint) {
  return "aws:\n  region: us-east-1\n  credentials: { source: env }\n"
         "  endpoints: { s3: " +
         endpoint + ", healthlake: " + endpoint +
         " }\n  s3_path_style: true\n"
         "pipelines:\n  - name: app\n    watch: " +
         (dir / "watch").string() +
         "\n    complete_when: { marker: .done, bulk_manifest: false, client_log: false, "
         "settle_seconds: 0 }\n"
         "    validation_level: structure-only\n"
         "    s3: { bucket: fhir-landing, prefix: exports }\n"
         "    healthlake:\n      datastore_id: " +
         kDatastore +
         "\n      data_access_role_arn: arn:aws:iam::123456789012:role/HealthLakeImport\n"
         "      output_s3_uri: s3://fhir-results/imports/\n"
         "      output_kms_key_id: "
         "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab\n"
         "spool: { dir: " +
         (dir / "spool").string() + " }\njournal: { path: " + (dir / "journal.db").string() +
         " }\nimport: { poll_min: 1s, poll_max: 1s }\nmetrics: { listen: off }\n";
}

fe::config::Config load(const fe::test::TempDir& dir, const std::string& yaml) {
  auto path = dir.write("fhir-edge.yaml", yaml);
  auto r = fe::config::load_config(path);
  if (!r.ok()) throw std::runtime_error(fe::config::format(r.errors));
  return *r.config;
}

std::size_t threads() {
  std::size_t n = 0;
  for (const auto& e : fs::directory_iterator("/proc/self/task")) {
    (void)e;
    ++n;
  }
  return n;
}

std::optional<ExportState> export_state(const fs::path& journal_path) {
  fe::journal::OpenOptions ro;
  ro.read_only = true;
  auto j = fe::journal::Journal::open(journal_path, ro);
  auto rows = j.exports(true);
  if (rows.size() != 1) return std::nullopt;
  return rows[0].state;
}

TEST(App, BuildsFromConfigAndAnExportGoesTakenToImportedThroughTheHub) {
  fe::test::HealthLakeLocalOptions hopt;
  hopt.buckets = {"fhir-landing", "fhir-results"};
  fe::test::HealthLakeLocal hll(hopt);
  ::setenv("AWS_ACCESS_KEY_ID", hll.access_key().c_str(), 1);
  ::setenv("AWS_SECRET_ACCESS_KEY", hll.secret_key().c_str(), 1);
  ::unsetenv("AWS_SESSION_TOKEN");
  fe::test::TempDir dir("fe-app");
  fs::create_directories(dir / "watch");
  auto cfg = load(dir, config_yaml(dir, hll.endpoint()));
  dir.write("watch/e1/Patient.ndjson",
            "{\"resourceType\":\"Patient\",\"id\":\"p1\"}\n"
            "{\"resourceType\":\"Patient\",\"id\":\"p2\"}\n");
  dir.write("watch/e1/.done", "");

  const std::size_t before = threads();
  {
    fe::app::Options opt;
    opt.service.config_path = dir / "fhir-edge.yaml";
    opt.stages.scan_quiet = std::chrono::milliseconds(200);
    fe::app::App app(std::move(opt), cfg);
    // The root gave the daemon the clients it built, with the daemon's settings.
    EXPECT_EQ(app.clients().settings().client.s3_endpoint, hll.endpoint());
    EXPECT_EQ(app.clients().settings().client.http.max_per_endpoint,
              static_cast<std::size_t>(cfg.upload.concurrency) + 4);

    std::vector<std::int64_t> uploaded;
    std::optional<ExportState> state_at_uploaded;
    app.events().on(fe::ExportEvent::uploaded, [&](std::int64_t id) {
      uploaded.push_back(id);
      state_at_uploaded = export_state(dir / "journal.db");
    });
    // Watch the journal from the control thread; stop once the export is imported (or a
    // deadline passed: the test then fails below with the state it reached).
    auto& io = app.service().io();
    boost::asio::steady_timer poll(io);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    std::optional<ExportState> last;
    std::function<void()> check = [&] {
      last = export_state(dir / "journal.db");
      if (last == ExportState::imported || std::chrono::steady_clock::now() > deadline) {
        app.service().request_stop();
        return;
      }
      poll.expires_after(std::chrono::milliseconds(100));
      poll.async_wait([&](const boost::system::error_code& ec) {
        if (!ec) check();
      });
    };
    poll.expires_after(std::chrono::milliseconds(100));
    poll.async_wait([&](const boost::system::error_code& ec) {
      if (!ec) check();
    });

    EXPECT_EQ(app.run(), 0);
    ASSERT_TRUE(last.has_value());
    EXPECT_EQ(*last, ExportState::imported) << fe::journal::to_string(*last);
    ASSERT_EQ(uploaded.size(), 1u);
    // Emitted once the journal said `uploaded`; the importer (subscribed first) has already
    // taken it when this later handler runs.
    ASSERT_TRUE(state_at_uploaded.has_value());
    EXPECT_TRUE(*state_at_uploaded == ExportState::uploaded ||
                *state_at_uploaded == ExportState::import_starting)
        << fe::journal::to_string(*state_at_uploaded);
    EXPECT_EQ(app.pipeline().stats().exports_taken, 1u);
    EXPECT_EQ(app.pipeline().stats().exports_uploaded, 1u);
    // Stopped: the worker pools, the part reader and the credential refresh are gone.
    EXPECT_EQ(threads(), before);
  }
  EXPECT_EQ(threads(), before);
  auto imported = hll.imported_resources(kDatastore);
  EXPECT_EQ(imported["Patient/p1"], 1u);
  EXPECT_EQ(imported["Patient/p2"], 1u);
}

// A start that fails half-way (the pools and the clients exist, then a FHIR package cannot be
// loaded) leaves nothing running either.
TEST(App, AFailedStartLeavesNothingRunning) {
  fe::test::TempDir dir("fe-app");
  fs::create_directories(dir / "watch");
  std::string yaml = config_yaml(dir, "http://127.0.0.1:9");
  const std::string level = "    validation_level: structure-only\n";
  yaml.replace(yaml.find(level), level.size(),
               "    validation_level: strict\n    fhir_packages: [" +
                   dir.write("broken.tgz", "not a package") + "]\n");
  auto cfg = load(dir, yaml);
  const std::size_t before = threads();
  {
    fe::app::Options opt;
    opt.service.config_path = dir / "fhir-edge.yaml";
    fe::app::App app(std::move(opt), cfg);
    EXPECT_EQ(app.run(), 1);
  }
  EXPECT_EQ(threads(), before);
}

// doctor and the daemon talk to AWS the same way: one translation of the config
// (pipeline::clients_settings), each adding only what is its own.
TEST(AwsClients, DoctorAndDaemonGetTheSameSettings) {
  fe::test::TempDir dir("fe-app");
  fs::create_directories(dir / "watch");
  std::string yaml = config_yaml(dir, "http://127.0.0.1:4566");
  yaml.replace(yaml.find("  s3_path_style"), 0,
               "  proxy: http://proxy.example:3128\n  no_proxy: localhost\n  ca_bundle: " +
                   dir.write("ca.pem", "-----BEGIN CERTIFICATE-----\n") + "\n");
  yaml += "upload: { concurrency: 6, bandwidth_limit: 1MiB }\n";
  auto cfg = load(dir, yaml);
  const auto daemon = fe::pipeline::daemon_clients_settings(cfg);
  const auto doctor = fe::pipeline::doctor_clients_settings(cfg);
  for (const auto* s : {&daemon, &doctor}) {
    EXPECT_EQ(s->credentials.source, fe::aws::CredentialSourceKind::env);
    // aws.proxy and aws.ca_bundle reach the credential chain (STS) as well as the clients; the
    // daemon used to leave them out of the chain while doctor set them.
    EXPECT_EQ(s->credentials.proxy, std::optional<std::string>("http://proxy.example:3128"));
    EXPECT_EQ(s->credentials.ca_bundle, std::optional<std::string>((dir / "ca.pem").string()));
    EXPECT_EQ(s->client.region, "us-east-1");
    EXPECT_EQ(s->client.s3_endpoint, std::optional<std::string>("http://127.0.0.1:4566"));
    EXPECT_EQ(s->client.healthlake_endpoint, std::optional<std::string>("http://127.0.0.1:4566"));
    EXPECT_TRUE(s->client.s3_path_style);
    EXPECT_EQ(s->client.http.proxy, std::optional<std::string>("http://proxy.example:3128"));
    EXPECT_EQ(s->client.http.no_proxy, std::optional<std::string>("localhost"));
    EXPECT_EQ(s->client.http.ca_bundle, std::optional<std::string>((dir / "ca.pem").string()));
  }
  // What is each one's own.
  EXPECT_EQ(daemon.client.http.max_send_bytes_per_second, 1u << 20);
  EXPECT_EQ(daemon.client.http.max_per_endpoint, 10u);
  EXPECT_EQ(daemon.client.max_attempts, fe::aws::ClientConfig{}.max_attempts);
  EXPECT_EQ(doctor.client.http.max_send_bytes_per_second, 0u);
  EXPECT_EQ(doctor.client.max_attempts, 2);
  EXPECT_EQ(doctor.client.http.connect_timeout, std::chrono::seconds(5));
}

}  // namespace
