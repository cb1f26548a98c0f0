// `fhir-edge <command> ...`: the command table. Each command parses its own arguments with the
// shared CLI11 setup (cli/parse.hpp); this level only dispatches and prints the generated help
// (one line per command) and the version.
#include <cstdio>
#include <cstring>
#include <string_view>

#include "cli/commands.hpp"
#include "cli/parse.hpp"
#include "version.hpp"

namespace fe::cli {
namespace {

struct Command {
  std::string_view name;
  int (*fn)(Args);
  const char* summary;
};

constexpr Command kCommands[] = {
    {"run", cmd_run, "run the daemon (normally started by systemd)"},
    {"check-config", cmd_check_config, "check a configuration file; prints 'ok' or the errors"},
    {"doctor", cmd_doctor,
     "check this host and the AWS access the config needs (one line per check, with a fix "
     "hint)"},
    {"validate", cmd_validate, "validate NDJSON/JSON files at a validation level"},
    {"status", cmd_status, "show exports, files and import jobs from the journal"},
    {"retry", cmd_retry, "re-drive a parked or failed export once its cause is fixed"},
    {"journal", cmd_journal,
     "journal compact --older-than AGE: remove finished exports older than AGE"},
};

void top_level(CLI::App& app, bool& version) {
  app.set_help_flag("-h,--help", "show this help (also: fhir-edge <command> --help)");
  app.add_flag("-V,--version", version, "show the version");
  for (const auto& c : kCommands) app.add_subcommand(std::string(c.name), c.summary);
  app.footer(
      "Every command takes -h/--help, -q/--quiet, -v/--verbose, and options as --opt VALUE or\n"
      "--opt=VALUE; the commands that print data take --json.\n"
      "FILE defaults to /etc/fhir-edge/fhir-edge.yaml.\n"
      "Exit codes: 0 ok, 1 a checked thing failed, 2 usage or configuration error.");
}

}  // namespace

int main(int argc, char** argv) {
  bool version = false;
  CLI::App app(
      "Watches directories for FHIR R4 bulk exports (NDJSON), validates them, uploads them to\n"
      "Amazon S3 and imports them into AWS HealthLake exactly once.\n",
      "fhir-edge");
  top_level(app, version);
  std::string_view first = argc > 1 ? argv[1] : "";
  for (const auto& c : kCommands) {
    if (c.name == first) return c.fn(Args(argv + 1, static_cast<size_t>(argc - 1)));
  }
  if (first == "help") {
    std::fputs(app.help().c_str(), stdout);
    return kExitOk;
  }
  if (first == "version") version = true;
  if (argc < 2) {
    std::fputs(app.help().c_str(), stderr);
    return kExitUsage;
  }
  if (!version) {
    if (!first.starts_with("-")) {
      std::fprintf(stderr, "fhir-edge: unknown command '%s'\n\n%s", argv[1], app.help().c_str());
      return kExitUsage;
    }
    Verbosity unused;
    if (auto rc = parse(app, Args(argv, static_cast<size_t>(argc)), unused)) return *rc;
  }
  if (version) {
    std::printf("fhir-edge %s\n", kVersion);
    return kExitOk;
  }
  std::fputs(app.help().c_str(), stderr);
  return kExitUsage;
}

}  // namespace fe::cli
