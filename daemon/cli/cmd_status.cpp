// `fhir-edge status [--json] [--active] [--export NAME] [--journal PATH | --config FILE]`: what the
// journal says about each export. Opens the journal read-only (no lock), so it works while the
// daemon runs.
#include <cstdio>
#include <string>
#include <string_view>

#include "cli/commands.hpp"
#include "cli/parse.hpp"
#include "config/config.hpp"
#include "journal/journal.hpp"
#include "journal/status.hpp"

namespace fe::cli {
namespace {

constexpr const char* kDescription =
    "Shows each export in the journal: pipeline, state, files, resources valid and rejected,\n"
    "bytes spooled and uploaded, import job status and progress (resources scanned, imported,\n"
    "failed, throughput), the ValidationLevel HealthLake reports, and the last error (a FAILED\n"
    "job's reason from HealthLake). Then the exports the watcher has seen that wait for their\n"
    "completion rule: which rule, what is missing, and since when.\n";

}  // namespace

int cmd_status(Args args) {
  bool json = false, active = false;
  std::string journal_path, config_path, export_name;
  Verbosity verbosity;
  auto app = make_app("status", kDescription,
                      "Exit codes: 0 shown, 1 the journal could not be read or no such export, 2 "
                      "usage or configuration error.",
                      verbosity);
  app->add_flag("--json", json, "machine-readable output (one JSON document)");
  app->add_flag("--active", active,
                "hide finished exports (imported, import_failed, nothing_to_import, failed, "
                "superseded)");
  app->add_option("--export", export_name, "one export in detail: its files and recent events")
      ->type_name("NAME");
  add_journal_options(*app, journal_path, config_path);
  if (auto rc = parse(*app, args, verbosity)) return *rc;
  journal_path = resolve_journal_path(journal_path, config_path);
  if (journal_path.empty()) return kExitUsage;
  // The journal and its WAL files: a member of group fhir-edge reads them (0640, the unit's
  // UMask=0027); anyone else gets the file, its mode and the group to join, not EACCES.
  for (const std::string& f : {journal_path, journal_path + "-wal", journal_path + "-shm"}) {
    if (std::string why = read_access_problem(f, "journal"); !why.empty()) {
      std::fprintf(stderr, "fhir-edge status: %s\n", why.c_str());
      return kExitFailed;
    }
  }
  try {
    auto j = fe::journal::Journal::open(journal_path, {.read_only = true});
    if (!export_name.empty()) {
      auto row = j.find_export(export_name);
      if (!row) {
        // Seen by the watcher but not complete yet: say what it waits for.
        for (const auto& w : j.waiting_exports()) {
          if (w.name != export_name) continue;
          auto out = fe::journal::format_waiting_detail(w, json, fe::journal::now_ms());
          std::fwrite(out.data(), 1, out.size(), stdout);
          return kExitOk;
        }
        std::fprintf(stderr, "fhir-edge status: no export named '%s' in %s\n", export_name.c_str(),
                     journal_path.c_str());
        return kExitFailed;
      }
      auto out = fe::journal::format_export_detail(j, *row, json);
      std::fwrite(out.data(), 1, out.size(), stdout);
      return kExitOk;
    }
    auto rows = fe::journal::read_status(j, !active);
    auto waiting = j.waiting_exports();
    std::string out = json ? fe::journal::format_status_json(rows, j.schema_version(), waiting)
                           : fe::journal::format_status_table(rows) +
                                 fe::journal::format_waiting_table(waiting, fe::journal::now_ms());
    std::fwrite(out.data(), 1, out.size(), stdout);
    return kExitOk;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fhir-edge status: %s\n", e.what());
    return kExitFailed;
  }
}

}  // namespace fe::cli
