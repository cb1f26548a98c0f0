// `fhir-edge status [--json] [--all] [--journal PATH | --config FILE]`: what the journal says about
// each export. Opens the journal read-only (no lock), so it works while the daemon runs.
#include <cstdio>
#include <string>
#include <string_view>

#include "cli/commands.hpp"
#include "config/config.hpp"
#include "journal/journal.hpp"
#include "journal/status.hpp"

namespace fe::cli {
namespace {

constexpr const char* kStatusUsage =
    "Usage: fhir-edge status [--json] [--active] [--export NAME] [--journal PATH | --config FILE]\n"
    "\n"
    "Shows each export in the journal: pipeline, state, files, resources valid and rejected,\n"
    "bytes spooled and uploaded, import job status and progress (resources scanned, imported,\n"
    "failed, throughput), the ValidationLevel HealthLake reports, and the last error (a FAILED\n"
    "job's reason from HealthLake).\n"
    "\n"
    "  --json          machine-readable output (one JSON document)\n"
    "  --active        hide finished exports (imported, import_failed, nothing_to_import, failed,\n"
    "                  superseded)\n"
    "  --export NAME   one export in detail: its files and recent events\n"
    "  --journal PATH  the journal database (default: journal.path of the config, else\n"
    "                  /var/lib/fhir-edge/journal.db)\n"
    "  --config FILE   read journal.path from this configuration file\n";

}  // namespace

int cmd_status(Args args) {
  bool json = false, active = false;
  std::string journal_path, config_path, export_name;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string_view a = args[i];
    auto value = [&](std::string& out) {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "fhir-edge status: %s needs a value\n\n%s", args[i], kStatusUsage);
        return false;
      }
      out = args[++i];
      return true;
    };
    if (a == "-h" || a == "--help") {
      std::fputs(kStatusUsage, stdout);
      return kExitOk;
    } else if (a == "--json") {
      json = true;
    } else if (a == "--active") {
      active = true;
    } else if (a == "--export") {
      if (!value(export_name)) return kExitUsage;
    } else if (a == "--journal") {
      if (!value(journal_path)) return kExitUsage;
    } else if (a == "--config" || a == "-c") {
      if (!value(config_path)) return kExitUsage;
    } else if (a.starts_with("--journal=")) {
      journal_path = a.substr(10);
    } else if (a.starts_with("--config=")) {
      config_path = a.substr(9);
    } else {
      std::fprintf(stderr, "fhir-edge status: unknown option '%s'\n\n%s", args[i], kStatusUsage);
      return kExitUsage;
    }
  }
  if (!journal_path.empty() && !config_path.empty()) {
    std::fputs("fhir-edge status: give --journal or --config, not both\n", stderr);
    return kExitUsage;
  }
  if (journal_path.empty()) {
    if (!config_path.empty()) {
      auto loaded = fe::config::load_config(config_path);
      if (!loaded.ok()) {
        std::fputs(fe::config::format(loaded.errors).c_str(), stderr);
        return kExitUsage;
      }
      journal_path = loaded.config->journal.path.string();
    } else {
      journal_path = fe::config::Journal{}.path.string();
    }
  }
  try {
    auto j = fe::journal::Journal::open(journal_path, {.read_only = true});
    if (!export_name.empty()) {
      auto row = j.find_export(export_name);
      if (!row) {
        std::fprintf(stderr, "fhir-edge status: no export named '%s' in %s\n", export_name.c_str(),
                     journal_path.c_str());
        return kExitFailed;
      }
      auto out = fe::journal::format_export_detail(j, *row, json);
      std::fwrite(out.data(), 1, out.size(), stdout);
      return kExitOk;
    }
    auto rows = fe::journal::read_status(j, !active);
    std::string out = json ? fe::journal::format_status_json(rows, j.schema_version())
                           : fe::journal::format_status_table(rows);
    std::fwrite(out.data(), 1, out.size(), stdout);
    return kExitOk;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fhir-edge status: %s\n", e.what());
    return kExitFailed;
  }
}

}  // namespace fe::cli
