#pragma once
// The daemon's configuration: one typed struct for the whole YAML file (config/fhir-edge.yaml is
// the commented reference, docs/configuration.md describes every key).
//
// Contract for other stages:
//  - The sections are the stages' own Settings structs (aws/settings.hpp, upload/settings.hpp,
//    ...), each with a defaulted operator== and a description naming its keys and the live ones;
//    config/reload.hpp compares two Configs with them.
//  - load_config() returns either a fully checked Config or the complete list of errors (never
//    just the first one). A Config you are handed is valid: every enum is known, every path is
//    absolute, every size/duration is already converted, every AWS identifier matches AWS's own
//    pattern. Stages take their Settings from it; they do not re-parse YAML.
//  - Defaults below are the documented defaults (the same as in config/fhir-edge.yaml).
//  - Optional AWS values are std::optional: nullopt means "not configured, use the SDK-style
//    default" (environment, shared config file, built-in endpoint).
//  - String values may use ${VAR} / ${VAR:-default} environment expansion (and $$ for a literal
//    '$'); expansion happens before checking, so the checks see the final values.
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "aws/settings.hpp"
#include "common/fields.hpp"
#include "fhir/settings.hpp"
#include "fleet/settings.hpp"
#include "import/settings.hpp"
#include "journal/settings.hpp"
#include "metrics/settings.hpp"
#include "pipeline/settings.hpp"
#include "service/log.hpp"
#include "service/settings.hpp"
#include "spool/settings.hpp"
#include "upload/settings.hpp"
#include "watch/settings.hpp"

namespace fe::config {

using Bytes = std::uint64_t;
using Seconds = std::chrono::seconds;

// Each stage declares its own settings in its public header (<stage>/settings.hpp), with the YAML
// name of every field and whether a reload may change it; Config composes them. The names below
// are the configuration's names for them, kept so that callers read as before.
using CredentialSource = aws::CredentialSource;
using AwsEndpoints = aws::Endpoints;
using Aws = aws::Settings;
using ValidationLevel = fhir::ValidationLevel;
using OnInvalid = fhir::OnInvalid;
using OnChanged = pipeline::OnChanged;
using AfterUploadKind = import::AfterUploadKind;
using AfterUpload = import::AfterUpload;
using CompleteWhen = watch::CompleteWhen;
using S3Target = upload::Target;
using HealthLake = import::HealthLake;
using Pipeline = pipeline::Settings;
using Spool = spool::Settings;
using Journal = journal::Settings;
using BandwidthWindow = upload::BandwidthWindow;
using Upload = upload::Settings;
using Watch = watch::Settings;
using Import = import::Settings;
using Metrics = metrics::Settings;
using Log = log::Settings;
using Fleet = fleet::Settings;

struct Config {
  Aws aws;
  std::vector<Pipeline> pipelines;  // at least one
  Spool spool;
  Journal journal;
  Upload upload;
  Import import_jobs;  // YAML key "import"
  Watch watch;
  Metrics metrics;
  Log log;
  Fleet fleet;                   // absent (name "") = no fleet
  std::filesystem::path source;  // the file it was loaded from (not a key: never compared)
  bool operator==(const Config&) const = default;
};

// YAML names and reload behaviour of the sections (common/fields.hpp; config/reload.hpp walks
// them). `pipelines` is walked entry by entry, named by pipeline name.
constexpr auto fields(const Config*) {
  using enum settings::Reload;
  using C = Config;
  return std::tuple{settings::field("aws", &C::aws, restart),
                    settings::field("pipelines", &C::pipelines, restart),
                    settings::field("spool", &C::spool, restart),
                    settings::field("journal", &C::journal, restart),
                    settings::field("upload", &C::upload, restart),
                    settings::field("import", &C::import_jobs, restart),
                    settings::field("watch", &C::watch, restart),
                    settings::field("metrics", &C::metrics, restart),
                    settings::field("log", &C::log, restart),
                    settings::field("fleet", &C::fleet, restart),
                    settings::field("", &C::source, live)};
}
static_assert(settings::described<Config>());

// One problem in a config file. line/column are 1-based (0 when unknown, e.g. file unreadable).
struct Error {
  std::string file;
  int line = 0;
  int column = 0;
  std::string path;  // key path, e.g. "pipelines[1].healthlake.datastore_id" ("" = whole file)
  std::string message;
};

// "FILE:LINE:COL: path: message" (parts that are unknown are left out).
std::string format(const Error& e);
std::string format(const std::vector<Error>& errors);  // one per line, each ending in '\n'

// Either a Config or every error found (expected-like).
struct LoadResult {
  std::optional<Config> config;
  std::vector<Error> errors;
  // Not fatal, but the operator should know (e.g. the file is readable by all users). The caller
  // reports them (log line, check-config output); load_config() itself prints nothing.
  std::vector<Error> warnings;
  bool ok() const { return config.has_value(); }
};

// Reads, expands ${VAR}, parses and checks a file. Never throws. Like ssh with its own files, it
// refuses a file that users other than its owner could change (writable by group or others, or
// owned by neither root nor the effective user) and warns about one readable by all users: the
// file decides where health data goes and may hold ARNs, KMS key ids and ${VAR} references.
LoadResult load_config(const std::filesystem::path& path);
// Same for text already in memory; `name` is used as FILE in the messages.
LoadResult load_config_text(std::string_view yaml, std::string_view name);

// Names as written in YAML (and sent to HealthLake for the validation level).
std::string_view to_string(CredentialSource s);
std::string_view to_string(ValidationLevel v);  // "strict" | "structure-only" | "minimal"
std::string_view to_string(OnChanged o);        // "hold" | "reimport"
std::string_view to_string(OnInvalid o);        // "reject-resource" | ...
std::string to_string(const AfterUpload& a);    // "keep" | "delete" | "move:/path"

inline constexpr std::string_view kDefaultConfigPath = "/etc/fhir-edge/fhir-edge.yaml";

}  // namespace fe::config
