#pragma once
// The daemon's process shell: one Boost.Asio io_context on the control thread that owns signals,
// sd_notify and the lifecycle of the components (the pipeline plugs in here).
//
// Lifecycle (what systemd sees, Type=notify):
//   start    state directories created/verified (spool.dir, journal.path's directory), every
//            Component::start(config) called in order, then READY=1 and STATUS=.
//   running  WATCHDOG=1 from the loop itself every WATCHDOG_USEC/2 (a stuck loop stops pinging and
//            systemd restarts the service); STATUS= refreshed when a component's status changes.
//   SIGHUP   RELOADING=1 + MONOTONIC_USEC, the config file is read again; if it is invalid, or a
//            key that needs a restart changed, or a component refuses it, the old config stays
//            in force and the reason is logged; then READY=1.
//   SIGTERM/SIGINT  STOPPING=1, every Component::stop(done) is called; run() returns 0 once all
//            called done() (or 1 when stop_timeout passes first, or on a second signal).
//
// Threading: every Component method is called on the io_context thread; components post their
// own work back to it (io()).
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "service/log.hpp"

namespace fe::service {

class Component {
 public:
  virtual ~Component() = default;
  virtual std::string name() const = 0;
  // Begin work with this config. Throw std::exception for a fatal start-up error: the service
  // logs it and run() returns 1 (systemd's Restart=on-failure retries); components started
  // before it are then destroyed without stop(), so their destructors must release resources.
  virtual void start(const config::Config& config) = 0;
  // Adopt new_config. Return false (with `why`) to refuse it; the component must then be left
  // exactly as it was (the service keeps the old config and rolls back components that already
  // accepted by calling reload(new, old)).
  virtual bool reload(const config::Config& old_config, const config::Config& new_config,
                      std::string& why) = 0;
  // Finish or checkpoint in-flight work, then call done() exactly once (from the loop thread).
  virtual void stop(std::function<void()> done) = 0;
  // One short phrase for systemd's STATUS= ("3 exports queued, 1 uploading").
  virtual std::string status_line() const = 0;
};

struct Options {
  std::filesystem::path config_path{std::string(config::kDefaultConfigPath)};
  std::optional<fe::log::Level> log_level;  // --log-level: wins over log.level in the file
  std::chrono::milliseconds stop_timeout = std::chrono::seconds(25);  // < TimeoutStopSec (30s)
  std::chrono::seconds status_interval = std::chrono::seconds(5);     // STATUS= refresh period
};

class Service {
 public:
  Service(Options options, config::Config initial);
  Service(const Service&) = delete;
  Service& operator=(const Service&) = delete;

  void add(std::shared_ptr<Component> component);  // before run()
  // Runs until stopped. Returns the process exit code (0 graceful stop, 1 start-up failure or
  // stop deadline missed).
  int run();

  boost::asio::io_context& io() { return io_; }
  const config::Config& config() const { return config_; }
  void request_stop();         // as SIGTERM
  void request_reload();       // as SIGHUP
  void refresh_status();       // recompute STATUS= now (components call this on a change)
  std::string status() const;  // the current STATUS= text
  int reload_count() const { return reloads_; }

  // Creates spool.dir and journal.path's directory (0750) when missing and checks that they are
  // writable directories. Returns "" or the reason. Also used by check-config's callers.
  static std::string prepare_state_dirs(const config::Config& config);

 private:
  void on_signal(const boost::system::error_code& ec, int signo);
  void arm_signals();
  void arm_watchdog();
  void arm_status();
  void reload();
  void begin_stop();
  void apply_log_level(const config::Config& c);

  Options options_;
  config::Config config_;
  boost::asio::io_context io_{1};
  boost::asio::signal_set signals_{io_};
  boost::asio::steady_timer watchdog_{io_};
  boost::asio::steady_timer status_timer_{io_};
  boost::asio::steady_timer stop_deadline_{io_};
  std::vector<std::shared_ptr<Component>> components_;
  std::optional<std::chrono::microseconds> watchdog_period_;
  std::string last_status_;
  std::string reload_note_;  // appended to STATUS= after a refused reload
  bool stopping_ = false;
  size_t pending_stops_ = 0;
  int exit_code_ = 0;
  int reloads_ = 0;
};

}  // namespace fe::service
