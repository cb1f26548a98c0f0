#include <cstdio>

#include "cli/commands.hpp"

// Placeholder until its stage lands.
int fe::cli::cmd_validate(Args) {
  std::fputs("fhir-edge: 'validate' is not implemented yet\n", stderr);
  return kExitUsage;
}
