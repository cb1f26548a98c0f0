// fhir-edge check-config --config FILE: loads and checks the configuration exactly as `run` does,
// then checks that every watch root is a directory this user can read (issue 17: a missing root
// was silent). Prints only "ok" on success (ExecStartPre and scripts rely on that); every error
// goes to stderr. --allow-missing-roots turns the root errors into warnings: the unit's
// ExecStartPre uses it, because `run` waits for a root that appears later (a late mount).
// --json prints the outcome as one document instead; -q prints nothing on success.
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "cli/commands.hpp"
#include "cli/parse.hpp"
#include "common/json_escape.hpp"
#include "config/config.hpp"
#include "watch/roots.hpp"

namespace {
constexpr const char* kDescription =
    "Checks a configuration file: syntax, every value, and the rules across pipelines, and\n"
    "that every pipeline's watch root is a directory this user can read.\n"
    "Prints 'ok' and exits 0 when it is valid; otherwise prints every error as\n"
    "FILE:LINE:COLUMN: key.path: message on stderr and exits 2.\n";

// --json: {"ok":bool,"file":...,"errors":[{"file","line","column","path","message"}],
// "warnings":[...]} on stdout, whatever the outcome (the exit code is the same as without).
std::string error_json(const fe::config::Error& e) {
  return "{\"file\":" + fe::json::quote(e.file) + ",\"line\":" + std::to_string(e.line) +
         ",\"column\":" + std::to_string(e.column) + ",\"path\":" + fe::json::quote(e.path) +
         ",\"message\":" + fe::json::quote(e.message) + "}";
}
}  // namespace

int fe::cli::cmd_check_config(Args args) {
  std::string path(fe::config::kDefaultConfigPath);
  bool allow_missing_roots = false, json = false;
  Verbosity verbosity;
  auto app = make_app("check-config", kDescription,
                      "Exit codes: 0 valid, 2 an error (or a usage error).", verbosity);
  add_config_option(*app, path);
  app->add_flag("--allow-missing-roots", allow_missing_roots,
                "a missing or unreadable watch root is a warning, not an error (the daemon "
                "waits for it; the systemd unit uses this)");
  app->add_flag("--json", json, "print the outcome as one JSON document on stdout");
  if (auto rc = parse(*app, args, verbosity)) return *rc;

  auto r = fe::config::load_config(path);
  if (!r.ok()) {
    // A group member or a plain admin who may not read it: say what to do, not just EACCES.
    if (std::string why = read_access_problem(path, "configuration"); !why.empty()) {
      r.errors.clear();
      r.errors.push_back(fe::config::Error{path, 0, 0, "", why});
    }
  }
  std::vector<fe::config::Error> warnings = r.warnings;
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
      if (allow_missing_roots) {
        e.message += " (fhir-edge run waits for it)";
        warnings.push_back(std::move(e));
      } else {
        r.errors.push_back(std::move(e));
      }
    }
    if (!r.errors.empty()) r.config.reset();
  }
  if (json) {
    std::string out = "{\"ok\":" + std::string(r.ok() ? "true" : "false") +
                      ",\"file\":" + fe::json::quote(path) + ",\"errors\":[";
    for (size_t i = 0; i < r.errors.size(); ++i) out += (i ? "," : "") + error_json(r.errors[i]);
    out += "],\"warnings\":[";
    for (size_t i = 0; i < warnings.size(); ++i) out += (i ? "," : "") + error_json(warnings[i]);
    out += "]}\n";
    std::fputs(out.c_str(), stdout);
    return r.ok() ? kExitOk : kExitUsage;
  }
  if (!verbosity.quiet) {
    for (const auto& w : warnings)
      std::fprintf(stderr, "warning: %s\n", fe::config::format(w).c_str());
  }
  if (!r.ok()) {
    std::string text = fe::config::format(r.errors);
    std::fputs(text.c_str(), stderr);
    std::fprintf(stderr, "%zu error%s in %s\n", r.errors.size(), r.errors.size() == 1 ? "" : "s",
                 path.c_str());
    return kExitUsage;
  }
  if (!verbosity.quiet) std::puts("ok");
  return kExitOk;
}
