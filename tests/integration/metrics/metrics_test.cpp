// The metrics component in-process: exposition format rules, /healthz while the control loop is
// blocked and while the journal is gone or locked by another process, the listener's absence when
// metrics are off, and a clear error for a port in use. Real sockets on 127.0.0.1, a real journal,
// a real second process holding the SQLite lock.
#include <curl/curl.h>
#include <fcntl.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "journal/journal.hpp"
#include "metrics/counters.hpp"
#include "metrics/exposition.hpp"
#include "metrics/metrics.hpp"
#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace std::chrono_literals;

namespace {

struct Reply {
  long status = 0;  // 0: no connection
  std::string body;
};

size_t collect(char* p, size_t n, size_t m, void* ud) {
  static_cast<std::string*>(ud)->append(p, n * m);
  return n * m;
}

Reply get(std::uint16_t port, const std::string& path, long timeout_s = 20) {
  Reply r;
  CURL* c = curl_easy_init();
  std::string url = "http://127.0.0.1:" + std::to_string(port) + path;
  curl_easy_setopt(c, CURLOPT_URL, url.c_str());
  curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
  curl_easy_setopt(c, CURLOPT_TIMEOUT, timeout_s);
  curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
  curl_easy_setopt(c, CURLOPT_WRITEDATA, &r.body);
  if (curl_easy_perform(c) == CURLE_OK) curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &r.status);
  curl_easy_cleanup(c);
  return r;
}

// Polls until pred(reply) or the limit; returns the last reply.
template <class P>
Reply poll(std::uint16_t port, const std::string& path, P pred, std::chrono::seconds limit = 30s) {
  auto end = std::chrono::steady_clock::now() + limit;
  Reply r;
  do {
    r = get(port, path);
    if (pred(r)) return r;
    std::this_thread::sleep_for(100ms);
  } while (std::chrono::steady_clock::now() < end);
  return r;
}

fs::path temp_dir(const std::string& name) {
  return fe::test::make_temp_dir("fe-metrics-" + name);
}

fe::config::Config config_in(const fs::path& root, std::uint16_t port = 0) {
  fe::config::Config c;
  fe::config::Pipeline p;
  p.name = "unit";
  c.pipelines.push_back(p);
  c.spool.dir = root / "spool";
  c.spool.max_bytes = 123456789;
  c.journal.path = root / "journal.db";
  c.metrics.enabled = true;
  c.metrics.host = "127.0.0.1";
  c.metrics.port = port;  // 0: any free port (the config file itself requires 1-65535)
  fs::create_directories(c.spool.dir);
  return c;
}

// The control loop on a thread of its own, as Service::run would drive it.
struct Loop {
  boost::asio::io_context io{1};
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> guard =
      boost::asio::make_work_guard(io);
  std::thread thread;
  void run() {
    thread = std::thread([this] { io.run(); });
  }
  ~Loop() {
    guard.reset();
    io.stop();
    if (thread.joinable()) thread.join();
  }
};

fe::metrics::Options fast_options() {
  fe::metrics::Options o;
  o.heartbeat_interval = 50ms;
  o.stuck_after = 500ms;
  return o;
}

}  // namespace

TEST(MetricsExposition, EscapesLabelValuesAndHelpAndPrintsExactValues) {
  fe::metrics::TextWriter w;
  w.family("fhir_edge_x_total", fe::metrics::Kind::counter, "line one\nback\\slash");
  w.sample("fhir_edge_x_total", {{"code", "a\"b\\c\nd"}, {"service", "s3"}}, 12345678901234.0);
  w.sample("fhir_edge_x_total", {}, 0.25);
  EXPECT_EQ(w.text(),
            "# HELP fhir_edge_x_total line one\\nback\\\\slash\n"
            "# TYPE fhir_edge_x_total counter\n"
            "fhir_edge_x_total{code=\"a\\\"b\\\\c\\nd\",service=\"s3\"} 12345678901234\n"
            "fhir_edge_x_total 0.25\n");
  EXPECT_EQ(fe::metrics::format_value(1.0 / 0.0), "+Inf");
  EXPECT_EQ(fe::metrics::format_value(-1.0 / 0.0), "-Inf");
  EXPECT_EQ(fe::metrics::format_value(0.0 / 0.0), "NaN");
  EXPECT_EQ(fe::metrics::format_value(1764158400.123), "1764158400.123");
}

TEST(MetricsRegistry, CapsDistinctLabelSetsPerMetric) {
  fe::metrics::Registry r;
  for (int i = 0; i < 500; ++i) r.add("fhir_edge_codes_total", {{"code", "C" + std::to_string(i)}});
  auto snap = r.snapshot();
  EXPECT_LE(snap.size(), fe::metrics::Registry::kMaxSeries + 1);
  EXPECT_EQ(r.total("fhir_edge_codes_total"), 500);  // nothing lost, only folded into "other"
  EXPECT_EQ(r.value("fhir_edge_codes_total", {{"code", "other"}}),
            500 - static_cast<double>(fe::metrics::Registry::kMaxSeries));
}

TEST(MetricsComponent, HealthzIsOkThen503WhileTheLoopIsBlockedThenOkAgain) {
  auto root = temp_dir("stuck");
  { auto j = fe::journal::Journal::open(root / "journal.db"); }
  Loop loop;
  auto m = fe::metrics::make_metrics(loop.io, fast_options());
  m->start(config_in(root));
  ASSERT_NE(m->port(), 0);
  loop.run();
  auto ok = poll(m->port(), "/healthz", [](const Reply& r) { return r.status == 200; });
  ASSERT_EQ(ok.status, 200) << ok.body;
  EXPECT_EQ(ok.body, "ok\n");

  std::atomic<bool> release{false};
  boost::asio::post(loop.io, [&] {
    while (!release) std::this_thread::sleep_for(10ms);  // a handler that never yields
  });
  auto stuck = poll(m->port(), "/healthz", [](const Reply& r) { return r.status == 503; });
  EXPECT_EQ(stuck.status, 503);
  EXPECT_NE(stuck.body.find("event loop stuck"), std::string::npos) << stuck.body;
  // /metrics still answers from the server's own thread, and says not ready.
  auto scrape = get(m->port(), "/metrics");
  EXPECT_EQ(scrape.status, 200);
  EXPECT_NE(scrape.body.find("\nfhir_edge_ready 0\n"), std::string::npos) << scrape.body;

  release = true;
  auto again = poll(m->port(), "/healthz", [](const Reply& r) { return r.status == 200; });
  EXPECT_EQ(again.status, 200) << again.body;
  bool stopped = false;
  boost::asio::post(loop.io, [&] { m->stop([&] { stopped = true; }); });
  for (int i = 0; i < 100 && !stopped; ++i) std::this_thread::sleep_for(20ms);
  EXPECT_TRUE(stopped);
  fs::remove_all(root);
}

TEST(MetricsComponent, HealthzIs503WhileTheJournalIsGoneOrLocked) {
  auto root = temp_dir("journal");
  { auto j = fe::journal::Journal::open(root / "journal.db"); }
  Loop loop;
  auto m = fe::metrics::make_metrics(loop.io, fast_options());
  m->start(config_in(root));
  loop.run();
  ASSERT_EQ(poll(m->port(), "/healthz", [](const Reply& r) { return r.status == 200; }).status,
            200);

  // Gone: moved away (as a careless clean-up would).
  fs::rename(root / "journal.db", root / "journal.db.away");
  auto gone = get(m->port(), "/healthz");
  EXPECT_EQ(gone.status, 503);
  EXPECT_NE(gone.body.find("journal unavailable"), std::string::npos) << gone.body;
  EXPECT_NE(gone.body.find((root / "journal.db").string()), std::string::npos) << gone.body;
  auto scrape = get(m->port(), "/metrics");
  EXPECT_NE(scrape.body.find("\nfhir_edge_journal_up 0\n"), std::string::npos) << scrape.body;
  EXPECT_EQ(scrape.body.find("fhir_edge_exports{"), std::string::npos);
  fs::rename(root / "journal.db.away", root / "journal.db");
  EXPECT_EQ(get(m->port(), "/healthz").status, 200);

  // Locked: another process holds SQLite's exclusive lock on it.
  auto script = root / "hold.py";
  std::ofstream(script) << "import sqlite3, sys\n"
                           "db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)\n"
                           "db.execute('PRAGMA locking_mode=EXCLUSIVE')\n"
                           "db.execute('BEGIN EXCLUSIVE')\n"
                           "db.execute('PRAGMA user_version')\n"
                           "print('locked', flush=True)\n"
                           "sys.stdin.read()\n";
  std::string cmd = "/usr/bin/python3 " + script.string() + " " + (root / "journal.db").string();
  FILE* holder = ::popen(cmd.c_str(), "w");
  ASSERT_NE(holder, nullptr);
  // popen("w") gives us its stdin. The holder gets the lock between two probes (each probe's
  // connection is closed after it); from then on every probe waits out SQLite's busy timeout
  // and reports the lock.
  auto locked = poll(
      m->port(), "/healthz", [](const Reply& r) { return r.status == 503; }, 60s);
  EXPECT_EQ(locked.status, 503);
  EXPECT_NE(locked.body.find("journal unavailable"), std::string::npos) << locked.body;
  EXPECT_NE(locked.body.find("locked"), std::string::npos) << locked.body;
  ::pclose(holder);  // closes its stdin: it exits and the lock goes
  auto back = poll(m->port(), "/healthz", [](const Reply& r) { return r.status == 200; });
  EXPECT_EQ(back.status, 200) << back.body;
  fs::remove_all(root);
}

TEST(MetricsComponent, OffMeansNoListener) {
  auto root = temp_dir("off");
  Loop loop;
  auto m = fe::metrics::make_metrics(loop.io, fast_options());
  auto c = config_in(root);
  c.metrics.enabled = false;
  m->start(c);
  EXPECT_EQ(m->port(), 0);
  fs::remove_all(root);
}

TEST(MetricsComponent, PortInUseIsAClearStartError) {
  int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a), 0);
  ASSERT_EQ(::listen(fd, 1), 0);
  socklen_t len = sizeof a;
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  const auto port = ntohs(a.sin_port);

  auto root = temp_dir("inuse");
  Loop loop;
  auto m = fe::metrics::make_metrics(loop.io, fast_options());
  try {
    m->start(config_in(root, port));
    FAIL() << "start() accepted a port in use";
  } catch (const std::exception& e) {
    std::string msg = e.what();
    EXPECT_NE(msg.find("127.0.0.1:" + std::to_string(port)), std::string::npos) << msg;
    EXPECT_NE(msg.find("in use"), std::string::npos) << msg;
  }
  EXPECT_EQ(m->port(), 0);
  ::close(fd);
  fs::remove_all(root);
}

TEST(MetricsComponent, ServesTheRegistryAndRejectsOtherMethodsAndPaths) {
  auto root = temp_dir("serve");
  { auto j = fe::journal::Journal::open(root / "journal.db"); }
  Loop loop;
  auto m = fe::metrics::make_metrics(loop.io, fast_options());
  m->start(config_in(root));
  loop.run();
  fe::metrics::count("fhir_edge_aws_retries_total", {{"service", "s3"}, {"code", "Slow\"Down"}}, 3);
  auto r = get(m->port(), "/metrics");
  ASSERT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("fhir_edge_aws_retries_total{service=\"s3\",code=\"Slow\\\"Down\"} 3\n"),
            std::string::npos)
      << r.body;
  EXPECT_NE(r.body.find("fhir_edge_spool_quota_bytes 123456789\n"), std::string::npos);
  EXPECT_NE(r.body.find("fhir_edge_exports{pipeline=\"unit\",state=\"imported\"} 0\n"),
            std::string::npos);
  EXPECT_EQ(get(m->port(), "/nope").status, 404);

  // HEAD answers like GET without a body; other methods are refused.
  for (const char* method : {"HEAD", "POST"}) {
    CURL* c = curl_easy_init();
    std::string url = "http://127.0.0.1:" + std::to_string(m->port()) + "/healthz";
    std::string body;
    curl_easy_setopt(c, CURLOPT_URL, url.c_str());
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &body);
    if (std::string(method) == "HEAD") {
      curl_easy_setopt(c, CURLOPT_NOBODY, 1L);
    } else {
      curl_easy_setopt(c, CURLOPT_POSTFIELDS, "x");
    }
    long status = 0;
    ASSERT_EQ(curl_easy_perform(c), CURLE_OK) << method;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    EXPECT_EQ(status, std::string(method) == "HEAD" ? 200 : 405) << method;
    EXPECT_EQ(body, std::string(method) == "HEAD" ? "" : "only GET and HEAD\n") << method;
  }
  fs::remove_all(root);
}

TEST(MetricsComponent, ReloadRefusesANewListenAddressAndAdoptsTheRest) {
  auto root = temp_dir("reload");
  { auto j = fe::journal::Journal::open(root / "journal.db"); }
  Loop loop;
  auto m = fe::metrics::make_metrics(loop.io, fast_options());
  auto old_cfg = config_in(root);
  m->start(old_cfg);
  loop.run();
  const auto port = m->port();
  auto moved = old_cfg;
  moved.metrics.port = static_cast<std::uint16_t>(port == 65535 ? 65534 : port + 1);
  std::string why;
  EXPECT_FALSE(m->reload(old_cfg, moved, why));
  EXPECT_NE(why.find("metrics.listen"), std::string::npos) << why;
  EXPECT_EQ(m->port(), port);

  auto quota = old_cfg;
  quota.spool.max_bytes = 987654321;
  why.clear();
  EXPECT_TRUE(m->reload(old_cfg, quota, why)) << why;
  auto r = get(port, "/metrics");
  EXPECT_NE(r.body.find("fhir_edge_spool_quota_bytes 987654321\n"), std::string::npos) << r.body;
  fs::remove_all(root);
}

TEST(MetricsRender, AggregatesJournalRowsPerPipelineAndJobStatus) {
  using fe::journal::ExportState;
  fe::metrics::Snapshot s;
  s.version = "9.9.9";
  s.journal_up = true;
  s.pipelines = {"a", "idle"};
  auto row = [](std::string pipeline, ExportState st, int64_t valid, std::optional<int64_t> fin,
                std::optional<std::string> job) {
    fe::journal::StatusRow r;
    r.row.pipeline = std::move(pipeline);
    r.row.state = st;
    r.row.files = 2;
    r.row.resources_valid = valid;
    r.row.resources_rejected = 1;
    r.row.finished_at = fin;
    r.row.bytes_source = 1000;
    r.row.created_at = 1'700'000'000'000;
    if (job) {
      fe::journal::ImportJobRow j;
      j.status = *job;
      r.job = j;
    }
    return r;
  };
  s.rows.push_back(row("a", ExportState::imported, 10, 1'700'000'000'500, "COMPLETED"));
  s.rows.push_back(row("a", ExportState::imported, 5, 1'700'000'100'250, "COMPLETED"));
  s.rows.push_back(row("a", ExportState::importing, 7, std::nullopt, ""));
  s.rows.push_back(row("gone", ExportState::parked, 1, std::nullopt, "SOMETHING_NEW"));
  auto newer = row("a", ExportState::uploading, 1, std::nullopt, std::nullopt);
  newer.row.created_at = 1'700'000'050'000;
  s.rows.push_back(newer);
  s.now_seconds = 1'700'000'200;
  s.process = fe::metrics::ProcessStats{1.5, 4096, 8192, 1'699'999'000, 7, 1024};
  auto text = fe::metrics::render(s);
  auto has = [&](const std::string& line) {
    EXPECT_NE(text.find("\n" + line + "\n"), std::string::npos) << line << "\n" << text;
  };
  has("fhir_edge_exports{pipeline=\"a\",state=\"imported\"} 2");
  has("fhir_edge_exports{pipeline=\"a\",state=\"importing\"} 1");
  // Pending = not terminal: the importing one (created at ...000) and the uploading one.
  has("fhir_edge_oldest_pending_export_age_seconds{pipeline=\"a\"} 200");
  has("fhir_edge_oldest_pending_export_age_seconds{pipeline=\"idle\"} 0");
  has("fhir_edge_oldest_pending_export_age_seconds{pipeline=\"gone\"} 200");  // parked waits
  has("fhir_edge_backlog_bytes{pipeline=\"a\"} 2000");
  has("fhir_edge_backlog_bytes{pipeline=\"idle\"} 0");
  has("process_cpu_seconds_total 1.5");
  has("process_resident_memory_bytes 4096");
  has("process_open_fds 7");
  has("process_max_fds 1024");
  has("fhir_edge_exports{pipeline=\"idle\",state=\"imported\"} 0");
  has("fhir_edge_exports{pipeline=\"gone\",state=\"parked\"} 1");  // no longer configured
  has("fhir_edge_export_resources{pipeline=\"a\",result=\"valid\"} 23");
  has("fhir_edge_export_resources{pipeline=\"a\",result=\"rejected\"} 4");
  has("fhir_edge_export_files{pipeline=\"a\"} 8");
  has("fhir_edge_import_jobs{status=\"COMPLETED\"} 2");
  has("fhir_edge_import_jobs{status=\"STARTING\"} 1");  // the uploading one has no job
  has("fhir_edge_import_jobs{status=\"SOMETHING_NEW\"} 1");
  has("fhir_edge_import_jobs{status=\"FAILED\"} 0");
  has("fhir_edge_last_successful_import_timestamp_seconds{pipeline=\"a\"} 1700000100.25");
  // Present at 0 before a pipeline's first import, so a "no import for 24 h" alert can fire.
  has("fhir_edge_last_successful_import_timestamp_seconds{pipeline=\"idle\"} 0");
  has("fhir_edge_build_info{version=\"9.9.9\"} 1");
  // Every family once, HELP before TYPE before its samples.
  std::set<std::string> seen;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("# TYPE ", 0) == 0) {
      auto name = line.substr(7, line.find(' ', 7) - 7);
      EXPECT_TRUE(seen.insert(name).second) << "family twice: " << name;
    }
  }
}

TEST(MetricsProcess, ReadsThisProcessFromProc) {
  auto before = fe::metrics::read_process_stats();
  ASSERT_TRUE(before.has_value());
  EXPECT_GT(before->resident_memory_bytes, 1 << 20);
  EXPECT_GE(before->virtual_memory_bytes, before->resident_memory_bytes);
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_LE(before->start_time_seconds, now + 1);
  EXPECT_GT(before->start_time_seconds, now - 24 * 3600);
  rlimit rl{};
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &rl), 0);
  EXPECT_EQ(before->max_fds, static_cast<double>(rl.rlim_cur));
  // Three more descriptors are counted as three more.
  int fds[3];
  for (int& fd : fds) fd = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
  auto during = fe::metrics::read_process_stats();
  for (int fd : fds) ::close(fd);
  ASSERT_TRUE(during.has_value());
  EXPECT_EQ(during->open_fds, before->open_fds + 3);
  EXPECT_GE(during->cpu_seconds, before->cpu_seconds);
}

// Issue 17 items 3 and 7: the pipeline counters carry the pipeline (every configured one, at 0
// before its first event) while the spool and journal counters stay process-wide; the exports
// waiting for completion and the running import jobs' progress are shown per pipeline.
TEST(MetricsRender, PipelineCountersWaitingExportsAndImportProgress) {
  using fe::journal::ExportState;
  fe::metrics::Snapshot s;
  s.version = "9.9.9";
  s.journal_up = true;
  s.pipelines = {"epic", "lab"};
  s.now_seconds = 1'700'000'200;
  fe::pipeline::Stats st;
  st.add("epic", &fe::pipeline::Counters::exports_taken, 3);
  st.add("epic", &fe::pipeline::Counters::part_bytes_sent, 4096);
  st.add("epic", &fe::pipeline::Counters::resources_valid, 40);
  st.add("epic", &fe::pipeline::Counters::resources_rejected, 2);
  st.add("lab", &fe::pipeline::Counters::exports_taken);
  st.journal_errors = 5;
  st.evicted_bytes = 77;
  EXPECT_EQ(st.exports_taken, 4u);  // the total the status line and the tests read
  s.stats = st;
  // Two exports of epic wait (the older since 1'700'000'000.000), none of lab.
  s.waiting.push_back({"epic", "a", "/in/a", "marker", "no .done", 1'700'000'000'000, 0});
  s.waiting.push_back({"epic", "b", "/in/b", "open_file", "open", 1'700'000'100'000, 0});
  // An importing export of lab whose job reported progress; a finished one does not count.
  fe::journal::StatusRow running;
  running.row.pipeline = "lab";
  running.row.state = ExportState::importing;
  fe::journal::ImportJobRow job;
  job.status = "IN_PROGRESS";
  job.progress_json = R"({"TotalNumberOfResourcesScanned":100,"TotalNumberOfResourcesImported":90,)"
                      R"("TotalNumberOfResourcesWithCustomerError":4,"Throughput":2.5})";
  running.jobs = {job};
  running.job = job;
  s.rows.push_back(running);
  fe::journal::StatusRow done = running;
  done.row.state = ExportState::imported;
  done.jobs[0].status = done.job->status = "COMPLETED";
  s.rows.push_back(done);
  auto text = fe::metrics::render(s);
  auto has = [&](const std::string& line) {
    EXPECT_NE(text.find("\n" + line + "\n"), std::string::npos) << line << "\n" << text;
  };
  has("fhir_edge_exports_taken_total{pipeline=\"epic\"} 3");
  has("fhir_edge_exports_taken_total{pipeline=\"lab\"} 1");
  has("fhir_edge_uploaded_bytes_total{pipeline=\"epic\"} 4096");
  has("fhir_edge_uploaded_bytes_total{pipeline=\"lab\"} 0");
  has("fhir_edge_resources_validated_total{pipeline=\"epic\",result=\"valid\"} 40");
  has("fhir_edge_resources_validated_total{pipeline=\"epic\",result=\"rejected\"} 2");
  has("fhir_edge_exports_parked_total{pipeline=\"lab\"} 0");
  has("fhir_edge_journal_write_errors_total 5");
  has("fhir_edge_spool_evicted_bytes_total 77");
  EXPECT_EQ(text.find("\nfhir_edge_exports_taken_total "), std::string::npos) << text;
  has("fhir_edge_exports_waiting{pipeline=\"epic\"} 2");
  has("fhir_edge_exports_waiting{pipeline=\"lab\"} 0");
  has("fhir_edge_oldest_waiting_export_age_seconds{pipeline=\"epic\"} 200");
  has("fhir_edge_oldest_waiting_export_age_seconds{pipeline=\"lab\"} 0");
  has("fhir_edge_import_progress_resources{pipeline=\"lab\",count=\"scanned\"} 100");
  has("fhir_edge_import_progress_resources{pipeline=\"lab\",count=\"imported\"} 90");
  has("fhir_edge_import_progress_resources{pipeline=\"lab\",count=\"failed\"} 4");
  has("fhir_edge_import_progress_resources{pipeline=\"epic\",count=\"scanned\"} 0");
}
