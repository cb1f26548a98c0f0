// fhir-edge run: the daemon. Loads the config (refusing to start on any error, exit 2), then hands
// over to service::Service, which owns signals, sd_notify and the components.
#include <cstdio>
#include <memory>
#include <string>
#include <string_view>

#include "cli/commands.hpp"
#include "config/config.hpp"
#include "metrics/metrics.hpp"
#include "pipeline/pipeline.hpp"
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
  fe::service::Service service(opt, std::move(*loaded.config));
  // The ingest and upload pipeline (watch, validate, spool, upload; daemon/pipeline/). Its status
  // changes refresh systemd's STATUS= at once instead of at the next periodic refresh.
  fe::pipeline::Options pipeline_options;
  pipeline_options.on_change = [&service] { service.refresh_status(); };
  pipeline_options.import_poll_min = service.config().import_jobs.poll_min;
  pipeline_options.import_poll_max = service.config().import_jobs.poll_max;
  auto pipeline =
      std::make_shared<fe::pipeline::Pipeline>(service.io(), service.config(), pipeline_options);
  // /metrics and /healthz (daemon/metrics/). Added first: a metrics port that is taken stops the
  // start before the pipeline takes the journal lock. Its counters are read on the control thread
  // at each heartbeat.
  fe::metrics::Options metrics_options;
  metrics_options.pipeline_stats = [pipeline] { return pipeline->stats(); };
  service.add(fe::metrics::make_metrics(service.io(), metrics_options));
  service.add(pipeline);
  return service.run();
}
