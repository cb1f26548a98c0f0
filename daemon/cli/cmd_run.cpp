#include <cstdio>

#include "cli/commands.hpp"

// Placeholder until its stage lands.
int fe::cli::cmd_run(Args) {
  std::fputs("fhir-edge: 'run' is not implemented yet\n", stderr);
  return kExitUsage;
}
