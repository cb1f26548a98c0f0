#include <cstdio>
#include <cstring>
#include <string_view>

#include "cli/commands.hpp"
#include "version.hpp"

namespace fe::cli {
namespace {

constexpr const char* kUsage =
    "Usage: fhir-edge <command> [options]\n"
    "\n"
    "Watches directories for FHIR R4 bulk exports (NDJSON), validates them, uploads them to\n"
    "Amazon S3 and imports them into AWS HealthLake exactly once.\n"
    "\n"
    "Commands:\n"
    "  run [--config FILE] [--log-level LEVEL]\n"
    "                               run the daemon (normally started by systemd)\n"
    "  check-config [--config FILE] check a configuration file; prints 'ok' or the errors\n"
    "  doctor [--config FILE] [--import-probe]\n"
    "                               check this host and the AWS access the config needs (one\n"
    "                               line per check, with a fix hint)\n"
    "  validate [options] PATH...   validate NDJSON/JSON files at a validation level\n"
    "  status [--json]              show exports, files and import jobs from the journal\n"
    "  retry EXPORT [--reimport]    re-drive a parked or failed export once its cause is fixed\n"
    "  journal compact --older-than AGE\n"
    "                               remove finished exports older than AGE from the journal\n"
    "\n"
    "Options:\n"
    "  -h, --help      show this help (also: fhir-edge <command> --help)\n"
    "  -V, --version   show the version\n"
    "\n"
    "FILE defaults to /etc/fhir-edge/fhir-edge.yaml.\n"
    "Exit codes: 0 ok, 1 a checked thing failed, 2 usage or configuration error.\n";

struct Command {
  std::string_view name;
  int (*fn)(Args);
};

constexpr Command kCommands[] = {
    {"run", cmd_run},         {"check-config", cmd_check_config},
    {"doctor", cmd_doctor},   {"validate", cmd_validate},
    {"status", cmd_status},   {"retry", cmd_retry},
    {"journal", cmd_journal},
};

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fputs(kUsage, stderr);
    return kExitUsage;
  }
  std::string_view first = argv[1];
  if (first == "-h" || first == "--help" || first == "help") {
    std::fputs(kUsage, stdout);
    return kExitOk;
  }
  if (first == "-V" || first == "--version" || first == "version") {
    std::printf("fhir-edge %s\n", kVersion);
    return kExitOk;
  }
  for (const auto& c : kCommands) {
    if (c.name == first) return c.fn(Args(argv + 1, static_cast<size_t>(argc - 1)));
  }
  std::fprintf(stderr, "fhir-edge: unknown command '%s'\n\n%s", argv[1], kUsage);
  return kExitUsage;
}

}  // namespace fe::cli
