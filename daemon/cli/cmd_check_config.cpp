// fhir-edge check-config --config FILE: loads and checks the configuration exactly as `run` does.
// Prints only "ok" on success (ExecStartPre and scripts rely on that); every error goes to stderr.
#include <cstdio>
#include <string>
#include <string_view>

#include "cli/commands.hpp"
#include "config/config.hpp"

namespace {
constexpr const char* kUsage =
    "Usage: fhir-edge check-config [--config FILE]\n"
    "\n"
    "Checks a configuration file: syntax, every value, and the rules across pipelines.\n"
    "Prints 'ok' and exits 0 when it is valid; otherwise prints every error as\n"
    "FILE:LINE:COLUMN: key.path: message on stderr and exits 2.\n"
    "\n"
    "  -c, --config FILE   default /etc/fhir-edge/fhir-edge.yaml\n";
}  // namespace

int fe::cli::cmd_check_config(Args args) {
  std::string path(fe::config::kDefaultConfigPath);
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
