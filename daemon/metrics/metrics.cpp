#include "metrics/metrics.hpp"

#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "journal/journal.hpp"
#include "metrics/exposition.hpp"
#include "service/log.hpp"
#include "version.hpp"

namespace fe::metrics {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

namespace {

double unix_now() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

std::optional<std::uint64_t> directory_bytes(const std::filesystem::path& dir) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::recursive_directory_iterator it(dir, fs::directory_options::skip_permission_denied, ec);
  if (ec) return std::nullopt;
  std::uint64_t total = 0;
  for (; it != fs::recursive_directory_iterator(); it.increment(ec)) {
    if (ec) break;  // a file removed while we walk (eviction, retention): count what is left
    std::error_code fe;
    if (it->is_regular_file(fe) && !it->is_symlink(fe)) {
      auto n = it->file_size(fe);
      if (!fe) total += n;
    }
  }
  return total;
}

// ---------------------------------------------------------------------------------------------

struct MetricsComponent::Impl : std::enable_shared_from_this<MetricsComponent::Impl> {
  Impl(asio::io_context& c, Options o) : control(c), opt(std::move(o)), heartbeat(c) {}

  asio::io_context& control;
  Options opt;
  asio::steady_timer heartbeat;  // on the control loop
  double start_time = unix_now();

  mutable std::mutex mu;  // cfg, stats
  config::Config cfg;
  std::optional<pipeline::Stats> stats;
  std::atomic<std::int64_t> last_beat_ns{0};
  std::atomic<bool> running{false};

  // Journal reads are serialised (the server thread and health() callers).
  mutable std::mutex jmu;

  std::unique_ptr<asio::io_context> srv;
  std::optional<tcp::acceptor> acceptor;
  std::thread thread;
  std::atomic<std::uint16_t> bound_port{0};
  std::atomic<std::size_t> connections{0};

  static std::int64_t now_ns() {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }

  void beat() {
    last_beat_ns = now_ns();
    if (opt.pipeline_stats) {
      auto s = opt.pipeline_stats();
      std::lock_guard lk(mu);
      stats = s;
    }
  }

  void arm_heartbeat() {
    heartbeat.expires_after(opt.heartbeat_interval);
    std::weak_ptr<Impl> weak = shared_from_this();
    heartbeat.async_wait([weak](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || !self->running) return;
      self->beat();
      self->arm_heartbeat();
    });
  }

  double heartbeat_age() const { return static_cast<double>(now_ns() - last_beat_ns.load()) / 1e9; }

  // Reads the journal's rows (rows != nullptr) or just checks that it can be read; "" or the
  // reason. A fresh read-only connection each time (open runs SQLite's quick_check): it sees the
  // file as it is now (removed, replaced, unreadable, damaged, locked) and holds nothing between
  // probes, so it never keeps a removed journal alive or stands in another process's way.
  std::string probe_journal(std::vector<journal::StatusRow>* rows,
                            std::vector<journal::WaitingRow>* waiting = nullptr) const {
    std::filesystem::path path;
    {
      std::lock_guard lk(mu);
      path = cfg.journal.path;
    }
    std::lock_guard lk(jmu);
    struct stat st {};
    if (::stat(path.c_str(), &st) != 0) {
      int e = errno;
      return "journal " + path.string() + ": " + std::strerror(e);
    }
    try {
      auto j = journal::Journal::open(path, {.read_only = true});
      if (rows) {
        *rows = journal::read_status(j, true);
        if (waiting) *waiting = j.waiting_exports();
      } else {
        (void)j.schema_version();
      }
      return {};
    } catch (const std::exception& e) {
      return e.what();
    }
  }

  std::string loop_reason() const {
    if (!running) return "not running";
    const double age = heartbeat_age();
    const double limit = std::chrono::duration<double>(opt.stuck_after).count();
    if (age > limit) {
      char buf[160];
      std::snprintf(buf, sizeof buf, "event loop stuck: no heartbeat for %.1f s (limit %.1f s)",
                    age, limit);
      return buf;
    }
    return {};
  }

  std::string health() const {
    if (auto r = loop_reason(); !r.empty()) return r;
    if (auto r = probe_journal(nullptr); !r.empty()) return "journal unavailable: " + r;
    if (auto r = unwatched(); !r.empty()) return r;
    return {};
  }

  // "watch root not watched: pipeline p: /path does not exist; ..." or "".
  std::string unwatched() const {
    std::lock_guard lk(mu);
    if (!stats || stats->unwatched_roots.empty()) return {};
    std::string r = "watch root not watched: ";
    for (size_t i = 0; i < stats->unwatched_roots.size(); ++i)
      r += (i ? "; " : "") + stats->unwatched_roots[i];
    return r;
  }

  std::string scrape() const {
    Snapshot s;
    s.version = fe::kVersion;
    s.start_time_seconds = start_time;
    s.heartbeat_age_seconds = heartbeat_age();
    std::filesystem::path spool_dir;
    {
      std::lock_guard lk(mu);
      for (const auto& p : cfg.pipelines) s.pipelines.push_back(p.name);
      s.spool_quota_bytes = cfg.spool.max_bytes;
      spool_dir = cfg.spool.dir;
      s.stats = stats;
    }
    std::string why = probe_journal(&s.rows, &s.waiting);
    s.journal_up = why.empty();
    if (!s.journal_up) {
      s.rows.clear();
      s.waiting.clear();
    }
    s.ready =
        s.journal_up && loop_reason().empty() && (!s.stats || s.stats->unwatched_roots.empty());
    s.spool_bytes = directory_bytes(spool_dir);
    s.registry = Registry::global().snapshot();
    s.now_seconds =
        std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
    s.process = read_process_stats();
    return render(s);
  }

  // ---- HTTP ----
  http::response<http::string_body> handle(const http::request<http::string_body>& req) const {
    http::response<http::string_body> res;
    res.version(req.version());
    res.keep_alive(req.keep_alive());
    res.set(http::field::server, std::string("fhir-edge/") + fe::kVersion);
    res.set(http::field::cache_control, "no-store");
    auto target = std::string_view(req.target().data(), req.target().size());
    target = target.substr(0, target.find('?'));
    auto text = [&](http::status code, std::string body, const char* type) {
      res.result(code);
      res.set(http::field::content_type, type);
      res.body() = std::move(body);
    };
    if (req.method() != http::verb::get && req.method() != http::verb::head) {
      text(http::status::method_not_allowed, "only GET and HEAD\n", "text/plain; charset=utf-8");
      res.set(http::field::allow, "GET, HEAD");
    } else if (target == "/metrics") {
      text(http::status::ok, scrape(), "text/plain; version=0.0.4; charset=utf-8");
    } else if (target == "/healthz") {
      auto reason = health();
      if (reason.empty()) {
        text(http::status::ok, "ok\n", "text/plain; charset=utf-8");
      } else {
        text(http::status::service_unavailable, reason + "\n", "text/plain; charset=utf-8");
      }
    } else if (target == "/") {
      text(http::status::ok, "fhir-edge: /metrics (Prometheus), /healthz (readiness)\n",
           "text/plain; charset=utf-8");
    } else {
      text(http::status::not_found, "not found; try /metrics or /healthz\n",
           "text/plain; charset=utf-8");
    }
    res.prepare_payload();
    if (req.method() == http::verb::head) {
      auto len = res.body().size();
      res.body().clear();
      res.content_length(len);
    }
    return res;
  }

  struct Session : std::enable_shared_from_this<Session> {
    Session(Impl* i, tcp::socket s) : impl(i), stream(std::move(s)) {}
    ~Session() { --impl->connections; }
    Impl* impl;  // outlives every session: the server io_context is destroyed first
    beast::tcp_stream stream;
    beast::flat_buffer buffer{8192};
    std::optional<http::request_parser<http::string_body>> parser;
    http::response<http::string_body> res;

    void read() {
      parser.emplace();
      parser->header_limit(8192);
      parser->body_limit(4096);
      stream.expires_after(impl->opt.io_timeout);
      http::async_read(
          stream, buffer, *parser,
          [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
    }
    void on_read(beast::error_code ec) {
      if (ec) return close();
      res = impl->handle(parser->get());
      stream.expires_after(impl->opt.io_timeout);
      http::async_write(stream, res,
                        [self = shared_from_this()](beast::error_code ec, std::size_t) {
                          if (ec || !self->res.keep_alive()) return self->close();
                          self->read();
                        });
    }
    void close() {
      beast::error_code ignored;
      stream.socket().shutdown(tcp::socket::shutdown_both, ignored);
      stream.socket().close(ignored);
    }
  };

  void accept() {
    acceptor->async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor->is_open()) return;
      if (!ec) {
        if (connections.load() >= opt.max_connections) {
          beast::error_code ignored;
          socket.close(ignored);  // over the limit: memory stays bounded
        } else {
          ++connections;
          std::make_shared<Session>(this, std::move(socket))->read();
        }
      }
      accept();
    });
  }

  void listen(const config::Metrics& m) {
    const std::string where =
        (m.host.find(':') != std::string::npos ? "[" + m.host + "]" : m.host) + ":" +
        std::to_string(m.port);
    srv = std::make_unique<asio::io_context>(1);
    boost::system::error_code ec;
    tcp::endpoint ep;
    auto addr = asio::ip::make_address(m.host, ec);
    if (!ec) {
      ep = tcp::endpoint(addr, m.port);
    } else {
      tcp::resolver resolver(*srv);
      auto results = resolver.resolve(m.host, std::to_string(m.port), ec);
      if (ec || results.empty())
        throw std::runtime_error("metrics.listen " + where + ": cannot resolve " + m.host + ": " +
                                 ec.message());
      ep = results.begin()->endpoint();
    }
    acceptor.emplace(*srv);
    auto fail = [&](const char* what) {
      std::string msg = "metrics.listen " + where + ": cannot " + what + ": " + ec.message();
      if (ec == asio::error::address_in_use)
        msg +=
            " (another process listens there, perhaps a second fhir-edge; set metrics.listen "
            "to a free port, or off)";
      acceptor.reset();
      srv.reset();
      throw std::runtime_error(msg);
    };
    acceptor->open(ep.protocol(), ec);
    if (ec) fail("open a socket");
    acceptor->set_option(asio::socket_base::reuse_address(true), ec);
    acceptor->bind(ep, ec);
    if (ec) fail("bind");
    acceptor->listen(asio::socket_base::max_listen_connections, ec);
    if (ec) fail("listen");
    bound_port = acceptor->local_endpoint(ec).port();
    accept();
    thread = std::thread([this] {
      auto guard = asio::make_work_guard(*srv);
      srv->run();
    });
    fe::log::info("metrics listening",
                  {{"METRICS_LISTEN", where}, {"METRICS_PORT", std::to_string(bound_port.load())}});
  }

  void shutdown() {
    running = false;
    heartbeat.cancel();
    if (srv) {
      asio::post(*srv, [this] {
        beast::error_code ignored;
        if (acceptor) acceptor->close(ignored);
        srv->stop();
      });
    }
    if (thread.joinable()) thread.join();
    acceptor.reset();
    srv.reset();  // destroys pending handlers, and with them the sessions
    bound_port = 0;
  }
};

MetricsComponent::MetricsComponent(asio::io_context& control, Options options)
    : impl_(std::make_shared<Impl>(control, std::move(options))) {}

MetricsComponent::~MetricsComponent() {
  impl_->shutdown();
}

void MetricsComponent::start(const config::Config& config) {
  {
    std::lock_guard lk(impl_->mu);
    impl_->cfg = config;
  }
  if (!config.metrics.enabled) {
    fe::log::info("metrics off (metrics.listen: off): no /metrics or /healthz listener");
    return;
  }
  impl_->listen(config.metrics);
  impl_->running = true;
  impl_->last_beat_ns = Impl::now_ns();  // the loop has not run yet: not stuck
  impl_->arm_heartbeat();
}

bool MetricsComponent::reload(const config::Config& old_config, const config::Config& new_config,
                              std::string& why) {
  const auto& a = old_config.metrics;
  const auto& b = new_config.metrics;
  if (a.enabled != b.enabled || (a.enabled && (a.host != b.host || a.port != b.port))) {
    why = "metrics.listen changed; restart fhir-edge to apply";
    return false;
  }
  std::lock_guard lk(impl_->mu);
  impl_->cfg = new_config;
  return true;
}

void MetricsComponent::stop(std::function<void()> done) {
  impl_->shutdown();
  asio::post(impl_->control, std::move(done));
}

std::uint16_t MetricsComponent::port() const {
  return impl_->bound_port;
}

std::string MetricsComponent::health() const {
  return impl_->health();
}

std::shared_ptr<MetricsComponent> make_metrics(asio::io_context& control, Options options) {
  return std::make_shared<MetricsComponent>(control, std::move(options));
}

}  // namespace fe::metrics
