#include "service/service.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <boost/asio/post.hpp>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <system_error>

#include "service/notify.hpp"

namespace fe::service {

namespace fs = std::filesystem;

Service::Service(Options options, config::Config initial)
    : options_(std::move(options)), config_(std::move(initial)) {}

void Service::add(std::shared_ptr<Component> component) {
  components_.push_back(std::move(component));
}

namespace {

std::string ensure_dir(const fs::path& dir, const char* what) {
  std::error_code ec;
  if (!fs::exists(dir, ec)) {
    fs::create_directories(dir, ec);
    if (ec) {
      return std::string("cannot create ") + what + " '" + dir.string() + "': " + ec.message();
    }
    // The spool holds patient data: owner and group only.
    fs::permissions(dir, fs::perms::owner_all | fs::perms::group_read | fs::perms::group_exec, ec);
  }
  if (!fs::is_directory(dir, ec)) {
    return std::string(what) + " '" + dir.string() + "' is not a directory";
  }
  if (::access(dir.c_str(), W_OK | X_OK) != 0) {
    return std::string(what) + " '" + dir.string() + "' is not writable: " + std::strerror(errno);
  }
  return "";
}

}  // namespace

std::string Service::prepare_state_dirs(const config::Config& c) {
  if (auto why = ensure_dir(c.spool.dir, "spool.dir"); !why.empty()) {
    return why;
  }
  if (auto why = ensure_dir(c.journal.path.parent_path(), "the journal directory"); !why.empty()) {
    return why;
  }
  return "";
}

void Service::apply_log_level(const config::Config& c) {
  fe::log::set_level(options_.log_level.value_or(c.log.level));
  fe::log::set_format(c.log.format);
}

std::string Service::status() const {
  std::string s;
  if (stopping_) {
    s = "Stopping";
  } else {
    size_t n = config_.pipelines.size();
    s = "Running: " + std::to_string(n) + (n == 1 ? " pipeline" : " pipelines");
  }
  for (const auto& c : components_) {
    std::string line = c->status_line();
    if (!line.empty()) {
      s += "; " + line;
    }
  }
  if (!reload_note_.empty() && !stopping_) {
    s += "; " + reload_note_;
  }
  return s;
}

void Service::refresh_status() {
  std::string s = status();
  if (s == last_status_) {
    return;
  }
  last_status_ = s;
  notify_status(s);
}

int Service::run() {
  apply_log_level(config_);
  // A closed peer socket must be an error return, not a process kill.
  std::signal(SIGPIPE, SIG_IGN);
  // Catch SIGTERM/SIGHUP from here on, even while components start: they are handled once the
  // loop runs instead of killing the process halfway through start-up.
  arm_signals();
  if (auto why = prepare_state_dirs(config_); !why.empty()) {
    fe::log::error("cannot start: " + why, {{"CONFIG_FILE", options_.config_path.string()}});
    return 1;
  }
  for (const auto& c : components_) {
    try {
      c->start(config_);
    } catch (const std::exception& e) {
      fe::log::error("cannot start " + c->name() + ": " + e.what());
      return 1;
    }
  }
  watchdog_period_ = watchdog_interval();
  arm_watchdog();
  arm_status();
  fe::log::notice("fhir-edge started", {{"CONFIG_FILE", options_.config_path.string()},
                                        {"PIPELINES", std::to_string(config_.pipelines.size())}});
  last_status_ = status();
  notify("READY=1\nSTATUS=" + last_status_);
  io_.run();
  return exit_code_;
}

void Service::arm_signals() {
  signals_.add(SIGTERM);
  signals_.add(SIGINT);
  signals_.add(SIGHUP);
  signals_.async_wait(
      [this](const boost::system::error_code& ec, int signo) { on_signal(ec, signo); });
}

void Service::on_signal(const boost::system::error_code& ec, int signo) {
  if (ec) {
    return;  // cancelled at shutdown
  }
  if (signo == SIGHUP) {
    if (!stopping_) {
      reload();
    }
  } else if (stopping_) {
    // A second SIGTERM/SIGINT: the operator does not want to wait for the checkpoint.
    fe::log::warning("second stop signal: exiting without waiting for components");
    exit_code_ = 1;
    io_.stop();
    return;
  } else {
    fe::log::notice(signo == SIGINT ? "SIGINT: stopping" : "SIGTERM: stopping");
    begin_stop();
  }
  signals_.async_wait([this](const boost::system::error_code& e, int s) { on_signal(e, s); });
}

void Service::arm_watchdog() {
  if (!watchdog_period_) {
    return;
  }
  // Ping from the loop itself (not a helper thread) so a blocked loop is noticed and restarted.
  notify_watchdog();
  watchdog_.expires_after(*watchdog_period_ / 2);
  watchdog_.async_wait([this](const boost::system::error_code& ec) {
    if (!ec) {
      arm_watchdog();
    }
  });
}

void Service::arm_status() {
  status_timer_.expires_after(options_.status_interval);
  status_timer_.async_wait([this](const boost::system::error_code& ec) {
    if (ec || stopping_) {
      return;
    }
    refresh_status();
    arm_status();
  });
}

void Service::request_stop() {
  boost::asio::post(io_, [this] {
    if (!stopping_) {
      begin_stop();
    }
  });
}

void Service::request_reload() {
  boost::asio::post(io_, [this] {
    if (!stopping_) {
      reload();
    }
  });
}

void Service::reload() {
  notify_reloading();
  ++reloads_;
  fe::log::notice("reloading configuration", {{"CONFIG_FILE", options_.config_path.string()}});
  auto r = config::load_config(options_.config_path);
  for (const auto& w : r.warnings) {
    fe::log::warning("reload: " + config::format(w));
  }
  std::string refused;
  if (!r.ok()) {
    for (const auto& e : r.errors) {
      fe::log::error("reload: " + config::format(e));
    }
    refused = std::to_string(r.errors.size()) + (r.errors.size() == 1 ? " error" : " errors") +
              " in " + options_.config_path.string();
  } else {
    const config::Config& next = *r.config;
    // The journal and the spool are open for the life of the process; moving them under
    // running uploads would split an export's state in two places.
    if (next.spool.dir != config_.spool.dir) {
      refused = "spool.dir changed: restart the service to move the spool";
    } else if (next.journal.path != config_.journal.path) {
      refused = "journal.path changed: restart the service to move the journal";
    }
    if (refused.empty()) {
      std::vector<std::shared_ptr<Component>> accepted;
      for (const auto& c : components_) {
        std::string why;
        if (!c->reload(config_, next, why)) {
          refused = c->name() + " refused the new configuration: " + why;
          break;
        }
        accepted.push_back(c);
      }
      if (!refused.empty()) {
        for (auto it = accepted.rbegin(); it != accepted.rend(); ++it) {
          std::string ignored;
          (*it)->reload(next, config_, ignored);
        }
      }
    }
    if (refused.empty()) {
      config_ = next;
      apply_log_level(config_);
    }
  }
  if (refused.empty()) {
    reload_note_.clear();
    fe::log::notice("configuration reloaded",
                    {{"MESSAGE_ID", std::string(fe::log::message_id::config_reloaded)},
                     {"CONFIG_FILE", options_.config_path.string()}});
  } else {
    reload_note_ = "reload rejected (" + refused + "), previous configuration in use";
    fe::log::error("reload rejected, keeping the previous configuration: " + refused,
                   {{"CONFIG_FILE", options_.config_path.string()}});
  }
  last_status_ = status();
  notify("READY=1\nSTATUS=" + last_status_);
}

void Service::begin_stop() {
  stopping_ = true;
  status_timer_.cancel();
  last_status_ = status();
  notify("STOPPING=1\nSTATUS=" + last_status_);
  pending_stops_ = components_.size();
  auto finish = [this] {
    stop_deadline_.cancel();
    watchdog_.cancel();
    signals_.cancel();
    fe::log::notice("fhir-edge stopped");
    io_.stop();
  };
  if (pending_stops_ == 0) {
    boost::asio::post(io_, finish);
    return;
  }
  stop_deadline_.expires_after(options_.stop_timeout);
  stop_deadline_.async_wait([this](const boost::system::error_code& ec) {
    if (ec) {
      return;
    }
    fe::log::error("components did not stop within the stop timeout; exiting anyway");
    exit_code_ = 1;
    io_.stop();
  });
  for (const auto& c : components_) {
    // done() may be called from inside stop() or later; either way it runs on the loop.
    c->stop([this, finish] {
      boost::asio::post(io_, [this, finish] {
        if (pending_stops_ > 0 && --pending_stops_ == 0) {
          finish();
        }
      });
    });
  }
}

}  // namespace fe::service
