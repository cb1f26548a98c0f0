// fhir-edge: FHIR R4 bulk-export edge uploader. The command table lives in cli/.
#include "cli/commands.hpp"

int main(int argc, char** argv) {
  return fe::cli::main(argc, argv);
}
