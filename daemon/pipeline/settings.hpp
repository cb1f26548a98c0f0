#pragma once
// One pipeline's settings: an entry of the YAML list `pipelines` (docs/configuration.md). It is
// composed of what each stage owns: the watch root, patterns and completion rules (watch/), the
// validation (fhir/), the S3 target (upload/), the HealthLake target and after_upload (import/),
// and on_changed (the ingest). None is live: a reload that changes any of them is refused, naming
// the key as pipelines[<name>].<key>.
#include <cstdint>
#include <filesystem>
#include <string>
#include <tuple>
#include <vector>

#include "common/fields.hpp"
#include "fhir/settings.hpp"
#include "import/settings.hpp"
#include "upload/settings.hpp"
#include "watch/settings.hpp"

namespace fe::pipeline {

// on_changed: what a new version of an export does when an earlier version of the same source
// is already spooled, uploading, uploaded, importing or imported (issue 18): `hold` takes it
// and parks it for the operator (`fhir-edge retry` releases it); `reimport` sends it on.
enum class OnChanged { hold, reimport };

struct Settings {
  std::string name;             // [A-Za-z0-9][A-Za-z0-9._-]{0,63}, unique
  std::filesystem::path watch;  // absolute, normalised, not nested in another
  std::vector<std::string> patterns = {"*.ndjson", "*.ndjson.gz", "*.ndjson.zst"};  // fnmatch, no /
  watch::CompleteWhen complete_when;
  fhir::ValidationLevel validation_level = fhir::ValidationLevel::structure_only;
  fhir::OnInvalid on_invalid = fhir::OnInvalid::reject_resource;
  OnChanged on_changed = OnChanged::hold;
  std::vector<std::filesystem::path> fhir_packages;  // absolute: package dirs or .tgz (strict)
  upload::Target s3;
  import::HealthLake healthlake;
  import::AfterUpload after_upload;
  // Longest line (resource) validated; a longer one is counted to its end without being held and
  // rejected as too-long. Peak memory is bounded by it (docs/configuration.md), never by input.
  std::uint64_t max_line_bytes = std::uint64_t{64} << 20;
  bool operator==(const Settings&) const = default;
};

// YAML names and reload behaviour (common/fields.hpp). complete_when, s3 and healthlake are
// walked into by their own descriptions.
constexpr auto fields(const Settings*) {
  using enum settings::Reload;
  using S = Settings;
  return std::tuple{settings::field("name", &S::name, restart),
                    settings::field("watch", &S::watch, restart),
                    settings::field("patterns", &S::patterns, restart),
                    settings::field("complete_when", &S::complete_when, restart),
                    settings::field("validation_level", &S::validation_level, restart),
                    settings::field("on_invalid", &S::on_invalid, restart),
                    settings::field("on_changed", &S::on_changed, restart),
                    settings::field("fhir_packages", &S::fhir_packages, restart),
                    settings::field("s3", &S::s3, restart),
                    settings::field("healthlake", &S::healthlake, restart),
                    settings::field("after_upload", &S::after_upload, restart),
                    settings::field("max_line_bytes", &S::max_line_bytes, restart)};
}
static_assert(settings::described<Settings>());

}  // namespace fe::pipeline
