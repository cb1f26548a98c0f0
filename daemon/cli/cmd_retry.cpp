// `fhir-edge retry EXPORT [--reimport]` and `fhir-edge journal compact --older-than AGE`:
// operator actions on the journal.
//
// The running daemon holds the journal's lock and is its only writer of state, so while it runs
// these commands never change state themselves: they insert a request row (Journal::
// submit_request, a second SQLite connection; WAL lets it write next to the daemon), and the
// daemon applies it within a few seconds (Importer: request_interval) and writes the outcome
// back, which the command waits for and prints. When no daemon runs, the command takes the lock
// and applies the request itself (the same Journal::apply_request), so the next start simply
// continues from the new state. A request the daemon has not picked up when the wait ends stays
// pending and is applied at its next start.
#include <chrono>
#include <cstdio>
#include <string>
#include <string_view>
#include <thread>

#include "cli/commands.hpp"
#include "config/config.hpp"
#include "config/units.hpp"
#include "journal/journal.hpp"

namespace fe::cli {
namespace {

constexpr const char* kRetryUsage =
    "Usage: fhir-edge retry EXPORT [--reimport] [--wait SECONDS] [--journal PATH | --config "
    "FILE]\n"
    "\n"
    "Re-drives an export after the cause of its problem is fixed:\n"
    "  parked          resumes from the state it was parked in; an import continues with the\n"
    "                  SAME ClientToken, so HealthLake never makes a second job for it\n"
    "  import_failed   starts a NEW import job with a NEW ClientToken (the objects already in S3\n"
    "                  are used; nothing is uploaded again)\n"
    "                  Refused unless --reimport when its job(s) imported resources (e.g.\n"
    "                  COMPLETED_WITH_ERRORS under import.min_imported_share, or CANCEL_FAILED):\n"
    "                  the refusal says how many and by which job\n"
    "  imported        refused unless --reimport: a new job imports every resource once more\n"
    "  parked while importing (e.g. the job vanished: ResourceNotFound): --reimport starts a\n"
    "                  NEW job with a NEW ClientToken; without it the same job is polled again\n"
    "  nothing_to_import, failed, superseded, in progress: refused, with the reason\n"
    "The command says which of these it did. While the daemon runs, the request goes through\n"
    "the journal and the daemon applies it within a few seconds; otherwise the command applies it\n"
    "and the next start continues the export.\n"
    "\n"
    "  --reimport      import again with a new ClientToken and a new job: an imported export, a\n"
    "                  failed one whose job imported resources, or one whose job vanished\n"
    "  --wait SECONDS  how long to wait for the running daemon's answer (default 30)\n"
    "  --journal PATH  the journal database (default: journal.path of the config)\n"
    "  --config FILE   read journal.path from this configuration file\n"
    "Exit status: 0 done, 1 refused (or not answered in time), 2 usage or configuration error.\n";

constexpr const char* kJournalUsage =
    "Usage: fhir-edge journal compact --older-than AGE [--wait SECONDS] [--journal PATH | --config "
    "FILE]\n"
    "\n"
    "Removes finished exports (imported, import_failed, failed, superseded) that finished more\n"
    "than AGE ago (e.g. 90d, 12h, 0s) from the journal, with their files, parts, import jobs and\n"
    "events. Exports still in progress or parked are never removed. While the daemon runs the\n"
    "daemon does it (request through the journal); otherwise this command does.\n";

struct Common {
  std::string journal_path, config_path;
  double wait_s = 30;
};

// Parses --journal/--config/--wait; returns false (after printing) on a usage error.
bool common_option(Args args, size_t& i, Common& c, const char* cmd, const char* usage,
                   bool& handled) {
  std::string_view a = args[i];
  handled = true;
  auto value = [&](std::string& out) {
    if (i + 1 >= args.size()) {
      std::fprintf(stderr, "fhir-edge %s: %s needs a value\n\n%s", cmd, args[i], usage);
      return false;
    }
    out = args[++i];
    return true;
  };
  std::string v;
  if (a == "--journal") return value(c.journal_path);
  if (a == "--config" || a == "-c") return value(c.config_path);
  if (a.starts_with("--journal=")) {
    c.journal_path = a.substr(10);
    return true;
  }
  if (a.starts_with("--config=")) {
    c.config_path = a.substr(9);
    return true;
  }
  if (a == "--wait") {
    if (!value(v)) return false;
    try {
      c.wait_s = std::stod(v);
    } catch (const std::exception&) {
      c.wait_s = -1;
    }
    if (c.wait_s < 0) {
      std::fprintf(stderr, "fhir-edge %s: --wait needs a number of seconds\n", cmd);
      return false;
    }
    return true;
  }
  handled = false;
  return true;
}

// The journal path from --journal, --config or the default; empty (after printing) on error.
std::string journal_path(const Common& c, const char* cmd) {
  if (!c.journal_path.empty() && !c.config_path.empty()) {
    std::fprintf(stderr, "fhir-edge %s: give --journal or --config, not both\n", cmd);
    return "";
  }
  if (!c.journal_path.empty()) return c.journal_path;
  if (!c.config_path.empty()) {
    auto loaded = fe::config::load_config(c.config_path);
    if (!loaded.ok()) {
      std::fputs(fe::config::format(loaded.errors).c_str(), stderr);
      return "";
    }
    return loaded.config->journal.path.string();
  }
  return fe::config::Journal{}.path.string();
}

// Applies (no daemon) or submits and waits for (daemon running) one request.
int run_request(const char* cmd, const std::string& path, std::string_view kind,
                std::string_view target, std::string_view args, double wait_s) {
  using fe::journal::Journal;
  try {
    if (!std::filesystem::exists(path)) {
      std::fprintf(stderr, "fhir-edge %s: journal %s does not exist\n", cmd, path.c_str());
      return kExitFailed;
    }
    if (!Journal::locked_by_other(path)) {
      // No daemon: take the lock ourselves (a daemon starting meanwhile waits for nothing: it
      // fails to lock and says so, and is restarted by systemd).
      try {
        auto j = Journal::open(path);
        auto id = j.add_request(kind, target, args);
        auto r = j.request(id);
        auto [ok, result] = j.apply_request(*r);
        j.finish_request(id, ok, result);
        std::printf(
            "%s%s\n", result.c_str(),
            ok ? " (no daemon running: applied to the journal; the next start continues)" : "");
        return ok ? kExitOk : kExitFailed;
      } catch (const fe::journal::Error& e) {
        // Lost the race against a daemon starting: fall through to the request path.
        if (!Journal::locked_by_other(path)) throw;
      }
    }
    auto id = Journal::submit_request(path, kind, target, args);
    auto deadline = std::chrono::steady_clock::now() +
                    std::chrono::milliseconds(static_cast<int64_t>(wait_s * 1000));
    for (;;) {
      {
        auto j = Journal::open(path, {.read_only = true});
        auto r = j.request(id);
        if (r && r->state != "pending") {
          std::printf("%s (applied by the running daemon)\n", r->result.c_str());
          return r->state == "done" ? kExitOk : kExitFailed;
        }
      }
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    std::printf(
        "request %lld is queued in the journal; the daemon has not answered within %.0f s. It is "
        "applied when the daemon next looks (or at its next start); see `fhir-edge status`.\n",
        static_cast<long long>(id), wait_s);
    return kExitFailed;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "fhir-edge %s: %s\n", cmd, e.what());
    return kExitFailed;
  }
}

}  // namespace

int cmd_retry(Args args) {
  Common c;
  std::string name;
  bool reimport = false;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string_view a = args[i];
    bool handled = false;
    if (!common_option(args, i, c, "retry", kRetryUsage, handled)) return kExitUsage;
    if (handled) continue;
    if (a == "-h" || a == "--help") {
      std::fputs(kRetryUsage, stdout);
      return kExitOk;
    } else if (a == "--reimport") {
      reimport = true;
    } else if (!a.starts_with("-") && name.empty()) {
      name = std::string(a);
    } else {
      std::fprintf(stderr, "fhir-edge retry: unexpected argument '%s'\n\n%s", args[i], kRetryUsage);
      return kExitUsage;
    }
  }
  if (name.empty()) {
    std::fprintf(stderr, "fhir-edge retry: which export? (see `fhir-edge status`)\n\n%s",
                 kRetryUsage);
    return kExitUsage;
  }
  auto path = journal_path(c, "retry");
  if (path.empty()) return kExitUsage;
  return run_request("retry", path, "retry", name, reimport ? "reimport" : "", c.wait_s);
}

int cmd_journal(Args args) {
  Common c;
  std::string action, older_than;
  for (size_t i = 1; i < args.size(); ++i) {
    std::string_view a = args[i];
    bool handled = false;
    if (!common_option(args, i, c, "journal", kJournalUsage, handled)) return kExitUsage;
    if (handled) continue;
    if (a == "-h" || a == "--help") {
      std::fputs(kJournalUsage, stdout);
      return kExitOk;
    } else if (a == "--older-than") {
      if (i + 1 >= args.size()) {
        std::fprintf(stderr, "fhir-edge journal: --older-than needs a value\n\n%s", kJournalUsage);
        return kExitUsage;
      }
      older_than = args[++i];
    } else if (a.starts_with("--older-than=")) {
      older_than = a.substr(13);
    } else if (!a.starts_with("-") && action.empty()) {
      action = std::string(a);
    } else {
      std::fprintf(stderr, "fhir-edge journal: unexpected argument '%s'\n\n%s", args[i],
                   kJournalUsage);
      return kExitUsage;
    }
  }
  if (action != "compact") {
    std::fprintf(stderr, "fhir-edge journal: %s\n\n%s",
                 action.empty() ? "which action? (compact)" : "unknown action", kJournalUsage);
    return kExitUsage;
  }
  if (older_than.empty()) {
    std::fprintf(stderr, "fhir-edge journal compact: --older-than AGE is required\n\n%s",
                 kJournalUsage);
    return kExitUsage;
  }
  std::string why;
  auto age = fe::config::parse_duration(older_than, why);
  if (!age) {
    std::fprintf(stderr, "fhir-edge journal compact: --older-than %s: %s\n", older_than.c_str(),
                 why.c_str());
    return kExitUsage;
  }
  auto path = journal_path(c, "journal");
  if (path.empty()) return kExitUsage;
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(*age).count();
  return run_request("journal compact", path, "compact", "", std::to_string(secs), c.wait_s);
}

}  // namespace fe::cli
