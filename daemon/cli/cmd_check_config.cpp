#include <cstdio>

#include "cli/commands.hpp"

// Placeholder until its stage lands.
int fe::cli::cmd_check_config(Args) {
  std::fputs("fhir-edge: 'check_config' is not implemented yet\n", stderr);
  return kExitUsage;
}
