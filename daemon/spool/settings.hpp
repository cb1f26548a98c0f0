#pragma once
// The spool's settings: the YAML section `spool` (docs/configuration.md). Live: keep_for
// (retention reads the running configuration). Any other change is refused at a reload, naming
// the key (the service itself refuses spool.dir first: the spool is open for the process's life).
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <tuple>

#include "common/fields.hpp"

namespace fe::spool {

struct Settings {
  std::filesystem::path dir = "/var/lib/fhir-edge/spool";
  std::uint64_t max_bytes = std::uint64_t{20} << 30;  // 20GiB quota; ingest pauses when full
  int zstd_level = 1;  // 1..19; 1 halves the CPU of 3 (docs/pipeline.md "Compression level")
  std::chrono::seconds keep_for = std::chrono::hours(24 * 7);  // finished exports' retention
  bool operator==(const Settings&) const = default;
};

// YAML names and reload behaviour (common/fields.hpp).
constexpr auto fields(const Settings*) {
  using enum settings::Reload;
  using S = Settings;
  return std::tuple{settings::field("dir", &S::dir, restart),
                    settings::field("max_bytes", &S::max_bytes, restart),
                    settings::field("zstd_level", &S::zstd_level, restart),
                    settings::field("keep_for", &S::keep_for, live)};
}
static_assert(settings::described<Settings>());

}  // namespace fe::spool
