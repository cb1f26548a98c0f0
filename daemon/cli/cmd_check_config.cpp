// fhir-edge check-config --config FILE: loads and checks the configuration exactly as `run` does,
// then checks that every watch root is a directory this user can read (issue 17: a missing root
// was silent). Prints only "ok" on success (ExecStartPre and scripts rely on that); every error
// goes to stderr. --allow-missing-roots turns the root errors into warnings: the unit's
// ExecStartPre uses it, because `run` waits for a root that appears later (a late mount).
#include <cstdio>
#include <string>
#include <string_view>

#include "cli/commands.hpp"
#include "config/config.hpp"
#include "watch/roots.hpp"

namespace {
constexpr const char* kUsage =
    "Usage: fhir-edge check-config [--config FILE] [--allow-missing-roots]\n"
    "\n"
    "Checks a configuration file: syntax, every value, and the rules across pipelines, and\n"
    "that every pipeline's watch root is a directory this user can read.\n"
    "Prints 'ok' and exits 0 when it is valid; otherwise prints every error as\n"
    "FILE:LINE:COLUMN: key.path: message on stderr and exits 2.\n"
    "\n"
    "  -c, --config FILE       default /etc/fhir-edge/fhir-edge.yaml\n"
    "  --allow-missing-roots   a missing or unreadable watch root is a warning, not an error\n"
    "                          (the daemon waits for it; the systemd unit uses this)\n";
}  // namespace

int fe::cli::cmd_check_config(Args args) {
  std::string path(fe::config::kDefaultConfigPath);
  bool allow_missing_roots = false;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string_view a = args[i];
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      return kExitOk;
    }
    if ((a == "--config" || a == "-c") && i + 1 < args.size()) {
      path = args[++i];
    } else if (a.starts_with("--config=")) {
      path = std::string(a.substr(9));
    } else if (a == "--allow-missing-roots") {
      allow_missing_roots = true;
    } else {
      std::fprintf(stderr, "fhir-edge check-config: unexpected argument '%s'\n\n%s", args[i],
                   kUsage);
      return kExitUsage;
    }
  }
  auto r = fe::config::load_config(path);
  for (const auto& w : r.warnings) {
    std::fprintf(stderr, "warning: %s\n", fe::config::format(w).c_str());
  }
  if (r.ok()) {
    // The file is valid; now the host: roots that cannot be watched. Not in load_config(): a
    // reload must not be refused because a root is briefly gone, and `run` waits for roots.
    for (size_t i = 0; i < r.config->pipelines.size(); ++i) {
      const auto& p = r.config->pipelines[i];
      std::string why = fe::watch::root_problem(p.watch);
      if (why.empty()) continue;
      fe::config::Error e;
      e.file = path;
      e.path = "pipelines[" + std::to_string(i) + "].watch";
      e.message = "watch root " + p.watch.string() + " " + why +
                  (why == "does not exist" ? " (create it, e.g. install -d -m 2770 -o fhir-edge -g "
                                             "fhir-edge " +
                                                 p.watch.string() + ")"
                                           : "");
      if (allow_missing_roots)
        std::fprintf(stderr, "warning: %s (fhir-edge run waits for it)\n",
                     fe::config::format(e).c_str());
      else
        r.errors.push_back(std::move(e));
    }
    if (!r.errors.empty()) r.config.reset();
  }
  if (!r.ok()) {
    std::string text = fe::config::format(r.errors);
    std::fputs(text.c_str(), stderr);
    std::fprintf(stderr, "%zu error%s in %s\n", r.errors.size(), r.errors.size() == 1 ? "" : "s",
                 path.c_str());
    return kExitUsage;
  }
  std::puts("ok");
  return kExitOk;
}
