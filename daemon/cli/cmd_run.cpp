// fhir-edge run: the daemon. Parses its options, loads the config (refusing to start on any
// error, exit 2), then builds the daemon with the composition root (app::App, daemon/app/) and
// runs it: service::Service owns signals, sd_notify and the components' lifecycle.
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "app/app.hpp"
#include "cli/commands.hpp"
#include "config/config.hpp"
#include "service/log.hpp"
#include "service/service.hpp"

namespace {
constexpr const char* kUsage =
    "Usage: fhir-edge run [--config FILE] [--log-level LEVEL]\n"
    "\n"
    "Runs the daemon in the foreground (systemd Type=notify: READY, STATUS, WATCHDOG, RELOADING,\n"
    "STOPPING). SIGHUP reloads the configuration (an invalid one is refused and the running one\n"
    "kept); SIGTERM or SIGINT stops gracefully and exits 0. Prometheus metrics and a readiness\n"
    "probe are served at http://<metrics.listen>/metrics and /healthz (default 127.0.0.1:9464).\n"
    "\n"
    "  -c, --config FILE     default /etc/fhir-edge/fhir-edge.yaml\n"
    "  -l, --log-level LEVEL error | warning | notice | info | debug (overrides log.level)\n";
}  // namespace

int fe::cli::cmd_run(Args args) {
  fe::service::Options opt;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string_view a = args[i];
    auto value = [&](std::string_view name) -> const char* {
      if (a == name && i + 1 < args.size()) {
        return args[++i];
      }
      if (a.size() > name.size() + 1 && a.starts_with(name) && a[name.size()] == '=') {
        return args[i] + name.size() + 1;
      }
      return nullptr;
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return kExitOk;
    }
    if (const char* v = value("--config"); v || (v = value("-c"))) {
      opt.config_path = v;
    } else if (const char* l = value("--log-level"); l || (l = value("-l"))) {
      fe::log::Level level;
      if (!fe::log::parse_level(l, level)) {
        std::fprintf(stderr,
                     "fhir-edge run: --log-level must be error, warning, notice, info or debug, "
                     "got '%s'\n",
                     l);
        return kExitUsage;
      }
      opt.log_level = level;
    } else {
      std::fprintf(stderr, "fhir-edge run: unexpected argument '%s'\n\n%s", args[i], kUsage);
      return kExitUsage;
    }
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
