#include <cstdio>

#include "cli/commands.hpp"

// Placeholder until its stage lands.
int fe::cli::cmd_status(Args) {
  std::fputs("fhir-edge: 'status' is not implemented yet\n", stderr);
  return kExitUsage;
}
