// Temporary stub so the contract header links; the engine lands next.
#include "fhir/validator.hpp"

namespace fe::fhir {

std::optional<Level> parse_level(std::string_view t) {
  if (t == "minimal") return Level::minimal;
  if (t == "structure-only") return Level::structure_only;
  if (t == "strict") return Level::strict;
  return std::nullopt;
}
std::string_view to_string(Level l) {
  switch (l) {
    case Level::minimal: return "minimal";
    case Level::structure_only: return "structure-only";
    case Level::strict: return "strict";
  }
  return "?";
}

}  // namespace fe::fhir
