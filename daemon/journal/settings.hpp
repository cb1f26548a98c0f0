#pragma once
// The journal's settings: the YAML section `journal` (docs/configuration.md). Not live: the
// journal is open for the life of the process (the service refuses a new journal.path).
#include <filesystem>
#include <tuple>

#include "common/fields.hpp"

namespace fe::journal {

struct Settings {
  std::filesystem::path path = "/var/lib/fhir-edge/journal.db";
  bool operator==(const Settings&) const = default;
};

// YAML names and reload behaviour (common/fields.hpp).
constexpr auto fields(const Settings*) {
  using enum settings::Reload;
  return std::tuple{settings::field("path", &Settings::path, restart)};
}
static_assert(settings::described<Settings>());

}  // namespace fe::journal
