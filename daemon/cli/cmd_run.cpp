// fhir-edge run: the daemon. Parses its options, loads the config (refusing to start on any
// error, exit 2), then builds the daemon with the composition root (app::App, daemon/app/) and
// runs it: service::Service owns signals, sd_notify and the components' lifecycle.
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "app/app.hpp"
#include "cli/commands.hpp"
#include "cli/parse.hpp"
#include "config/config.hpp"
#include "service/log.hpp"
#include "service/service.hpp"

namespace {
constexpr const char* kDescription =
    "Runs the daemon in the foreground (systemd Type=notify: READY, STATUS, WATCHDOG, RELOADING,\n"
    "STOPPING). SIGHUP reloads the configuration (an invalid one is refused and the running one\n"
    "kept); SIGTERM or SIGINT stops gracefully and exits 0. Prometheus metrics and a readiness\n"
    "probe are served at http://<metrics.listen>/metrics and /healthz (default 127.0.0.1:10464).\n";
}  // namespace

int fe::cli::cmd_run(Args args) {
  fe::service::Options opt;
  std::string config_path = opt.config_path.string(), log_level;
  Verbosity verbosity;
  auto cli = make_app("run", kDescription,
                      "-q is --log-level warning, -v --log-level debug (an explicit --log-level "
                      "wins).\nExit codes: 0 stopped by SIGTERM/SIGINT, 1 failed, 2 usage or "
                      "configuration error.",
                      verbosity);
  add_config_option(*cli, config_path);
  cli->add_option("-l,--log-level", log_level,
                  "error | warning | notice | info | debug (overrides log.level)")
      ->type_name("LEVEL")
      ->check(CLI::IsMember({"error", "warning", "notice", "info", "debug"}));
  if (auto rc = parse(*cli, args, verbosity)) return *rc;
  opt.config_path = config_path;
  if (!log_level.empty()) {
    fe::log::Level level;
    fe::log::parse_level(log_level, level);
    opt.log_level = level;
  } else if (verbosity.verbose > 0) {
    opt.log_level = fe::log::Level::debug;
  } else if (verbosity.quiet) {
    opt.log_level = fe::log::Level::warning;
  }
  if (opt.log_level) {
    fe::log::set_level(*opt.log_level);
  }

  auto loaded = fe::config::load_config(opt.config_path);
  for (const auto& w : loaded.warnings) {
    fe::log::warning(fe::config::format(w));
  }
  if (!loaded.ok()) {
    for (const auto& e : loaded.errors) {
      fe::log::error(fe::config::format(e));
    }
    fe::log::error("not starting: " + std::to_string(loaded.errors.size()) +
                   " configuration error(s) in " + opt.config_path.string());
    return kExitUsage;
  }
  // Build every component from the config (daemon/app/), then run until stopped.
  fe::app::Options app_options;
  app_options.service = opt;
  fe::app::App app(std::move(app_options), std::move(*loaded.config));
  return app.run();
}
