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
#include <cstring>
#include <string>
#include <string_view>
#include <thread>

#include "cli/commands.hpp"
#include "cli/parse.hpp"
#include "common/json_escape.hpp"
#include "config/config.hpp"
#include "config/units.hpp"
#include "journal/journal.hpp"

namespace fe::cli {
namespace {

constexpr const char* kRetryDescription =
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
    "and the next start continues the export.\n";
constexpr const char* kExitCodes =
    "Exit codes: 0 done, 1 refused (or not answered in time), 2 usage or configuration error.";

constexpr const char* kCompactDescription =
    "Removes finished exports (imported, import_failed, failed, superseded) that finished more\n"
    "than AGE ago (e.g. 90d, 12h, 0s) from the journal, with their files, parts, import jobs and\n"
    "events. Exports still in progress or parked are never removed. While the daemon runs the\n"
    "daemon does it (request through the journal); otherwise this command does.\n";

struct Common {
  std::string journal_path, config_path;
  double wait_s = 30;
  bool json = false;
};

// --journal/--config/--wait/--json, the same on retry and journal compact.
void add_common(CLI::App& app, Common& c) {
  add_journal_options(app, c.journal_path, c.config_path);
  app.add_option("--wait", c.wait_s, "how long to wait for the running daemon's answer")
      ->type_name("SECONDS")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  app.add_flag("--json", c.json,
               "print the outcome as one JSON document: {\"ok\", \"result\", \"applied_by\": "
               "\"daemon\" | \"command\" | null (queued)}");
}

// The outcome line, or its JSON form.
void print_outcome(bool json, bool quiet, bool ok, const std::string& result, const char* by,
                   const char* text_suffix) {
  if (json) {
    std::printf("{\"ok\":%s,\"result\":%s,\"applied_by\":%s}\n", ok ? "true" : "false",
                fe::json::quote(result).c_str(), by ? fe::json::quote(by).c_str() : "null");
  } else if (!quiet || !ok) {
    std::printf("%s%s\n", result.c_str(), text_suffix);
  }
}

// Applies (no daemon) or submits and waits for (daemon running) one request.
int run_request(const char* cmd, const std::string& path, std::string_view kind,
                std::string_view target, std::string_view args, const Common& c, bool quiet) {
  const double wait_s = c.wait_s;
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
        print_outcome(
            c.json, quiet, ok, result, "command",
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
          bool ok = r->state == "done";
          print_outcome(c.json, quiet, ok, r->result, "daemon", " (applied by the running daemon)");
          return ok ? kExitOk : kExitFailed;
        }
      }
      if (std::chrono::steady_clock::now() >= deadline) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
    }
    char queued[256];
    std::snprintf(queued, sizeof queued,
                  "request %lld is queued in the journal; the daemon has not answered within %.0f "
                  "s. It is applied when the daemon next looks (or at its next start); see "
                  "`fhir-edge status`.",
                  static_cast<long long>(id), wait_s);
    print_outcome(c.json, quiet, false, queued, nullptr, "");
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
  Verbosity verbosity;
  auto app = make_app("retry", kRetryDescription, kExitCodes, verbosity);
  app->add_option("EXPORT", name, "the export's name, as `fhir-edge status` shows it");
  app->add_flag("--reimport", reimport,
                "import again with a new ClientToken and a new job: an imported export, a failed "
                "one whose job imported resources, or one whose job vanished");
  add_common(*app, c);
  if (auto rc = parse(*app, args, verbosity)) return *rc;
  if (name.empty()) {
    std::fputs(
        "fhir-edge retry: which export? (see `fhir-edge status`)\n"
        "Run 'fhir-edge retry --help' for the options.\n",
        stderr);
    return kExitUsage;
  }
  auto path = resolve_journal_path(c.journal_path, c.config_path);
  if (path.empty()) return kExitUsage;
  return run_request("retry", path, "retry", name, reimport ? "reimport" : "", c, verbosity.quiet);
}

int cmd_journal(Args args) {
  Common c;
  std::string older_than;
  Verbosity verbosity;
  auto app = make_app("journal", "Operator actions on the journal.\n", kExitCodes, verbosity);
  app->require_subcommand(1);
  CLI::App* compact = app->add_subcommand("compact", kCompactDescription);
  compact->description(
      std::string(kCompactDescription).substr(0, std::strlen(kCompactDescription) - 1));
  compact
      ->add_option("--older-than", older_than,
                   "remove finished exports older than AGE (e.g. 90d, 12h, 0s)")
      ->type_name("AGE");
  add_common(*compact, c);
  // -q/-v after `compact`, too (and in its help).
  compact->add_flag("-q,--quiet", verbosity.quiet, "errors only: no success line, no warnings");
  compact->add_flag("-v,--verbose", verbosity.verbose,
                    "more detail: the libraries' log lines (-v info, -vv debug)");
  compact->footer(kExitCodes);
  if (auto rc = parse(*app, args, verbosity)) return *rc;
  if (older_than.empty()) {
    std::fputs(
        "fhir-edge journal compact: --older-than AGE is required\n"
        "Run 'fhir-edge journal compact --help' for the options.\n",
        stderr);
    return kExitUsage;
  }
  std::string why;
  auto age = fe::config::parse_duration(older_than, why);
  if (!age) {
    std::fprintf(stderr, "fhir-edge journal compact: --older-than %s: %s\n", older_than.c_str(),
                 why.c_str());
    return kExitUsage;
  }
  auto path = resolve_journal_path(c.journal_path, c.config_path);
  if (path.empty()) return kExitUsage;
  auto secs = std::chrono::duration_cast<std::chrono::seconds>(*age).count();
  return run_request("journal compact", path, "compact", "", std::to_string(secs), c,
                     verbosity.quiet);
}

}  // namespace fe::cli
