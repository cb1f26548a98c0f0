#pragma once
// The daemon's configuration: one typed struct for the whole YAML file (config/fhir-edge.yaml is
// the commented reference, docs/configuration.md describes every key).
//
// Contract for other stages:
//  - load_config() returns either a fully checked Config or the complete list of errors (never
//    just the first one). A Config you are handed is valid: every enum is known, every path is
//    absolute, every size/duration is already converted, every AWS identifier matches AWS's own
//    pattern. Stages map it onto their own option structs; they do not re-parse YAML.
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

#include "service/log.hpp"

namespace fe::config {

using Bytes = std::uint64_t;
using Seconds = std::chrono::seconds;

// aws.credentials.source: which provider to use. `auto` is the AWS SDK default chain
// (env, shared files/profile, credential_process, web identity, container, IMDSv2) plus systemd
// credentials ($CREDENTIALS_DIRECTORY); any other value pins exactly that one provider.
enum class CredentialSource { automatic, env, profile, process, imds, container, systemd };

// validation_level: also the value sent to HealthLake as StartFHIRImportJob.ValidationLevel.
enum class ValidationLevel { strict, structure_only, minimal };

// on_invalid: what an invalid resource does to its file/export.
enum class OnInvalid { reject_resource, reject_file, fail_export };

// on_changed: what a new version of an export does when an earlier version of the same source
// is already spooled, uploading, uploaded, importing or imported (issue 18): `hold` takes it
// and parks it for the operator (`fhir-edge retry` releases it); `reimport` sends it on.
enum class OnChanged { hold, reimport };

// after_upload: what happens to the source files once the import is accepted.
enum class AfterUploadKind { keep, remove, move };

struct AwsEndpoints {
  std::optional<std::string> s3;          // e.g. "http://127.0.0.1:4566"; nullopt = AWS default
  std::optional<std::string> healthlake;  // e.g. "http://127.0.0.1:8080" for healthlake-local
};

struct Aws {
  // nullopt: AWS_REGION, then AWS_DEFAULT_REGION, then the profile's `region`.
  std::optional<std::string> region;
  CredentialSource credential_source = CredentialSource::automatic;  // aws.credentials.source
  // nullopt: AWS_PROFILE, else "default".
  std::optional<std::string> profile;
  AwsEndpoints endpoints;
  bool s3_path_style = false;  // path-style S3 addressing (needed by most S3 emulators)
  // Proxy URL (http://host:port); nullopt = HTTPS_PROXY / HTTP_PROXY / ALL_PROXY from the
  // environment; "" = direct connections even when the environment names a proxy.
  std::optional<std::string> proxy;
  // Hosts that bypass the proxy (curl NO_PROXY syntax: "localhost,.internal,10.0.0.0/8", "*");
  // nullopt = NO_PROXY / no_proxy from the environment; "" = none.
  std::optional<std::string> no_proxy;
  // PEM bundle replacing the system CAs (hospital TLS inspection). TLS is always verified.
  std::optional<std::filesystem::path> ca_bundle;
};

struct CompleteWhen {
  std::string marker = ".done";  // a file with this name in the export dir; "" = rule disabled
  bool bulk_manifest = true;     // a FHIR Bulk Data manifest names all of its output files
  bool client_log = true;        // a bulk-data client's log records the export as finished
  Seconds settle = Seconds{0};   // settle_seconds: quiet period with no writers; 0 = disabled
};

struct S3Target {
  std::string bucket;                     // checked against the S3 bucket naming rules
  std::string prefix;                     // no leading or trailing '/', no "..", may be ""
  std::optional<std::string> kms_key_id;  // SSE-KMS key (id, ARN, alias); nullopt = bucket default
  bool archive = true;                    // also upload <export>/archive/<File>.ndjson.zst
  bool upload_rejects = true;             // also upload <export>/rejected/... and report.json
};

struct HealthLake {
  std::string datastore_id;          // 32 characters [A-Za-z0-9]
  std::string data_access_role_arn;  // arn:aws(-part)?:iam::<12 digits>:role/<name>
  std::string output_s3_uri;         // s3://bucket[/prefix], where HealthLake writes results
  std::string output_kms_key_id;     // required by StartFHIRImportJob (S3Configuration.KmsKeyId)
  int max_outstanding_starts = 1;    // import jobs in flight for this pipeline (1..10)
  // Terminal statuses that count as "imported" (subset of COMPLETED, COMPLETED_WITH_ERRORS).
  std::vector<std::string> accept_statuses = {"COMPLETED", "COMPLETED_WITH_ERRORS"};
};

struct AfterUpload {
  AfterUploadKind kind = AfterUploadKind::keep;
  std::filesystem::path move_to;  // absolute, only for kind == move ("move:/path")
};

struct Pipeline {
  std::string name;             // [A-Za-z0-9][A-Za-z0-9._-]{0,63}, unique
  std::filesystem::path watch;  // absolute, normalised, not nested in another
  std::vector<std::string> patterns = {"*.ndjson", "*.ndjson.gz", "*.ndjson.zst"};  // fnmatch, no /
  CompleteWhen complete_when;
  ValidationLevel validation_level = ValidationLevel::structure_only;
  OnInvalid on_invalid = OnInvalid::reject_resource;
  OnChanged on_changed = OnChanged::hold;
  std::vector<std::filesystem::path> fhir_packages;  // absolute: package dirs or .tgz (strict)
  S3Target s3;
  HealthLake healthlake;
  AfterUpload after_upload;
  // Longest line (resource) validated; a longer one is counted to its end without being held and
  // rejected as too-long. Peak memory is bounded by it (docs/configuration.md), never by input.
  Bytes max_line_bytes = Bytes{64} << 20;
};

struct Spool {
  std::filesystem::path dir = "/var/lib/fhir-edge/spool";
  Bytes max_bytes = Bytes{20} << 30;              // 20GiB quota; ingest pauses when full
  int zstd_level = 3;                             // 1..19
  Seconds keep_for = std::chrono::hours(24 * 7);  // retention of finished exports' spool
};

struct Journal {
  std::filesystem::path path = "/var/lib/fhir-edge/journal.db";
};

// upload.bandwidth_schedule[]: a local time-of-day window with its own cap. [from, to): to < from
// wraps midnight ("22:00" to "06:00"); "00:00" to "24:00" is the whole day. Windows never overlap
// (checked), so at most one applies at any minute.
struct BandwidthWindow {
  int from_minute = 0;         // minutes after local midnight, 0..1439 ("HH:MM")
  int to_minute = 0;           // 1..1440 ("24:00" allowed), != from_minute
  std::optional<Bytes> limit;  // bytes per second; nullopt = unlimited ("unlimited", off, null)
};

struct Upload {
  std::optional<Bytes> part_size;  // nullopt = auto (smallest size keeping files < 10,000 parts)
  int concurrency = 4;             // parts in flight per daemon (1..64)
  // Daemon-wide cap on the sum of all uploads, bytes per second; nullopt = unlimited. Applies
  // outside the windows of bandwidth_schedule. Both may change with a reload (SIGHUP).
  std::optional<Bytes> bandwidth_limit;
  std::vector<BandwidthWindow> bandwidth_schedule;
};

// The watcher's safety nets beside inotify (DESIGN: watch stage).
struct Watch {
  // Full rescan of every watched directory this often; 0 = only at start and after an inotify
  // queue overflow (not advised: inotify misses changes made on NFS/SMB servers).
  Seconds rescan_interval{60};
  // A file found by a scan (not seen being written through inotify) is taken only after it stayed
  // unchanged (size, mtime, inode) this long.
  std::chrono::milliseconds scan_quiet{5000};
};

// How the import stage follows HealthLake jobs (DESIGN: "Poll Describe every 15-60 s with jitter").
struct Import {
  Seconds poll_min{15};  // DescribeFHIRImportJob interval, jittered between the two (>= 1s)
  Seconds poll_max{60};
  // An import job whose status is accepted (accept_statuses) but that imported fewer than this
  // share of the export's resources (imported / max(scanned, valid)) is not `imported`: the
  // export ends import_failed, the source is kept and status says why. An import that imported
  // nothing is never `imported`, whatever this says. 0..1 ("0.9" or "90%"); 0 = any share > 0.
  double min_imported_share = 0.0;
};

struct Metrics {
  bool enabled = true;             // false when listen is "off" or null
  std::string host = "127.0.0.1";  // IPv4/IPv6 literal or "localhost" (IPv6 without brackets)
  std::uint16_t port = 9464;
};

struct Log {
  fe::log::Level level = fe::log::Level::info;
};

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
  std::filesystem::path source;  // the file it was loaded from
};

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
