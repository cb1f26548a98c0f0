#pragma once
// Where AWS credentials come from, and keeping them fresh.
//
// The default chain is the AWS SDKs' (botocore / aws-sdk-cpp order), with systemd credentials
// placed right after the environment (both are explicit, local deployment choices, and that way a
// host that uses them never waits for IMDS timeouts):
//   1. env        AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
//   2. systemd    $CREDENTIALS_DIRECTORY/aws_access_key_id, aws_secret_access_key and optional
//                 aws_session_token (LoadCredential=/LoadCredentialEncrypted= in the unit), or one
//                 credential `aws` in the AWS credentials-file format ([$AWS_PROFILE|default])
//   3. profile    shared files: AWS_SHARED_CREDENTIALS_FILE (~/.aws/credentials) and
//                 AWS_CONFIG_FILE (~/.aws/config, `[profile x]` sections); profile from config,
//                 else AWS_PROFILE, else "default". A profile with `role_arn` is an AssumeRole
//                 profile (below) and wins over keys in the same profile, as in botocore.
//                 Otherwise static keys in the credentials file win over credential_process,
//                 which wins over static keys in the config file (botocore).
//                 AssumeRole profiles: `role_arn` with exactly one of `source_profile` (that
//                 profile's credentials: its keys or credential_process, or, when it has no keys
//                 and a role_arn itself, its own AssumeRole: chains of any length, cycles refused;
//                 a profile may name itself when it holds keys) or `credential_source`
//                 (Environment | Ec2InstanceMetadata | EcsContainer); optional
//                 `role_session_name` (default fhir-edge-<unix time>), `external_id`,
//                 `duration_seconds` (900-43200; STS's default 3600). Each role is assumed with
//                 STS AssumeRole (SigV4-signed POST, service sts, to aws.endpoints.sts,
//                 AWS_ENDPOINT_URL_STS or sts.<region>.amazonaws.com) on every refresh.
//                 Refused with a message naming the alternative, never attempted: `mfa_serial`
//                 (a daemon cannot prompt for a code), SSO profiles (`sso_session`,
//                 `sso_start_url`: `aws sso login` needs a browser), `web_identity_token_file`
//                 in a profile (use the AWS_WEB_IDENTITY_TOKEN_FILE environment instead).
//   4. process    the profile's credential_process (IAM Roles Anywhere: aws_signing_helper)
//   5. web identity  AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (+ AWS_ROLE_SESSION_NAME): STS
//                 AssumeRoleWithWebIdentity (unsigned POST to sts.<region>.amazonaws.com or
//                 aws.endpoints.sts or AWS_ENDPOINT_URL_STS; proxy from the environment;
//                 AWS_CA_BUNDLE). Profile-based
//                 web identity (web_identity_token_file in a profile) is not supported.
//   6. container  AWS_CONTAINER_CREDENTIALS_RELATIVE_URI (http://169.254.170.2<uri>) or
//                 AWS_CONTAINER_CREDENTIALS_FULL_URI (https anywhere; http only to loopback or the
//                 ECS/EKS agent addresses), Authorization from
//                 AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or AWS_CONTAINER_AUTHORIZATION_TOKEN
//   7. imds       IMDSv2 (PUT token, GET role, GET credentials; 1 s timeouts, 1 retry), skipped
//                 when AWS_EC2_METADATA_DISABLED=true; AWS_EC2_METADATA_SERVICE_ENDPOINT overrides
//                 http://169.254.169.254 (tests use a loopback fake). No IMDSv1 fallback.
// A source that is configured but broken stops the chain with its error (as the SDKs do: a failing
// credential_process is not silently replaced by IMDS); only IMDS being absent moves on.
// A configured source (aws.credentials.source) uses that provider only, no probing.
//
// CredentialsProvider caches what the chain found and refreshes temporary credentials in the
// background 5-15 min (jittered) before they expire; while a refresh fails it keeps using the
// old ones as long as they are valid. It logs the chosen source and the access key id (masked),
// never a secret, a token, or anything a credential process prints.
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "aws/settings.hpp"  // CredentialSource
#include "aws/sigv4.hpp"     // Credentials

namespace fe::aws {

// The configured aws.credentials.source (aws/settings.hpp), used as it is: no mirror to keep.
using CredentialSourceKind = CredentialSource;
std::string_view to_string(CredentialSourceKind k);

// A source that is configured but broken (bad file, process failed, endpoint refused...).
// The message names the source and the file/URL, never a secret.
class CredentialsError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Environment access, injectable for tests. Default: ::getenv.
using EnvLookup = std::function<std::optional<std::string>(std::string_view name)>;
EnvLookup process_environment();

struct CredentialsOptions {
  CredentialSourceKind source = CredentialSourceKind::automatic;
  std::optional<std::string> profile;  // nullopt: AWS_PROFILE, else "default"
  EnvLookup env = process_environment();

  std::chrono::milliseconds imds_timeout{1000};  // per HTTP call (connect + transfer)
  int imds_attempts = 2;                         // the SDKs' default: 1 retry
  std::chrono::milliseconds container_timeout{2000};
  std::chrono::seconds process_timeout{60};

  // Background refresh: at expiration - uniform(refresh_min, refresh_max) (at most half the
  // remaining lifetime for short-lived credentials); after a failed refresh try again after
  // retry_interval (sooner when the current credentials would expire first).
  std::chrono::seconds refresh_min{5 * 60};
  std::chrono::seconds refresh_max{15 * 60};
  std::chrono::seconds retry_interval{30};
  std::uint64_t seed = 0;  // jitter seed; 0 = random

  // Only for STS (web identity), the one source on the public internet (config aws.proxy and
  // aws.ca_bundle). Unset: HTTPS_PROXY/NO_PROXY and AWS_CA_BUNDLE from the environment; an empty
  // proxy disables proxying. Metadata endpoints never use a proxy.
  std::optional<std::string> proxy;
  std::optional<std::string> ca_bundle;
  // STS (web identity, AssumeRole profiles): the endpoint (aws.endpoints.sts; unset:
  // AWS_ENDPOINT_URL_STS, else sts.<region>.amazonaws.com) and the Region (aws.region; unset:
  // AWS_REGION, AWS_DEFAULT_REGION, the profile's `region`, else the global endpoint).
  std::optional<std::string> sts_endpoint;
  std::optional<std::string> region;
};

// ---- building blocks (exposed for tests) ----

// AWS shared config/credentials file syntax: `[section]`, `key = value`, full-line comments
// (# or ;), trailing comments after whitespace, indented continuation lines (sub-properties).
struct IniFile {
  std::map<std::string, std::map<std::string, std::string>> sections;
};
// Throws CredentialsError "file:line: ..." on lines that are neither.
IniFile parse_ini(std::string_view text, std::string_view file_name);

struct Profile {
  std::map<std::string, std::string> credentials_file;  // from [name] in the credentials file
  std::map<std::string, std::string> config_file;       // from [profile name] / [default]
  std::string credentials_path, config_path;
  bool found() const { return !credentials_file.empty() || !config_file.empty(); }
  std::optional<std::string> get(const std::string& key) const;  // credentials file first
};
// Reads both files (missing files are fine; unreadable/broken ones throw).
Profile load_profile(const std::string& name, const EnvLookup& env);
std::string profile_name(const CredentialsOptions& opts);

// Splits a credential_process command line like a POSIX shell's word splitting (botocore uses
// shlex.split): whitespace separates words; '...' is literal; "..." allows \" \\ \$ \`; a
// backslash outside quotes escapes the next character. No expansion; the program is run directly
// (no shell). Throws CredentialsError on an unterminated quote or an empty command.
std::vector<std::string> split_command_line(std::string_view command);

// credential_process output: {"Version":1,"AccessKeyId","SecretAccessKey","SessionToken",
// "Expiration":"ISO-8601"}. Errors never quote the output.
Credentials parse_process_output(std::string_view json, std::string_view source);
// "2026-11-26T10:00:00Z", fractional seconds and +hh:mm offsets accepted.
std::optional<std::chrono::system_clock::time_point> parse_iso8601(std::string_view s);

// Each source: nullopt = not configured here (the chain moves on); throws CredentialsError when
// configured but failing.
std::optional<Credentials> credentials_from_env(const EnvLookup& env);
std::optional<Credentials> credentials_from_profile(const CredentialsOptions& opts);
std::optional<Credentials> credentials_from_process(const std::string& command,
                                                    std::chrono::seconds timeout,
                                                    const std::string& source);
std::optional<Credentials> credentials_from_web_identity(const CredentialsOptions& opts);
std::optional<Credentials> credentials_from_container(const CredentialsOptions& opts);
std::optional<Credentials> credentials_from_imds(const CredentialsOptions& opts);
std::optional<Credentials> credentials_from_systemd(const EnvLookup& env);

// ---- AssumeRole profiles (credentials_assume_role.cpp) ----

// One role to assume, from the profile that names it.
struct RoleStep {
  std::string profile;   // the profile holding role_arn
  std::string file;      // the file it is in (for errors)
  std::string role_arn;  // arn:aws:iam::<account>:role/<name>
  std::string session_name;
  std::optional<std::string> external_id;  // never logged or shown
  std::optional<int> duration_seconds;     // nullopt: STS's default (3600)
};
// How an AssumeRole profile gets its credentials: first a base (a profile's own keys or
// credential_process, or a credential_source), then each role in order, each assumed with the
// credentials of the step before.
struct RolePlan {
  std::string base_profile;       // when credential_source is empty
  std::string credential_source;  // "Environment" | "Ec2InstanceMetadata" | "EcsContainer" | ""
  std::vector<RoleStep> roles;    // innermost first; roles.back() is the requested profile's
};
// nullopt when the profile has no role_arn. Reads the files only (no network). Throws
// CredentialsError naming the profile and file on: both or neither of source_profile and
// credential_source, an unknown credential_source, a source_profile that does not exist or has
// no credentials, a cycle (the chain is printed), mfa_serial, an SSO profile anywhere in the
// chain, a bad duration_seconds / role_session_name / external_id / role_arn.
std::optional<RolePlan> plan_assume_role(const std::string& profile, const EnvLookup& env);
// STS AssumeRole with `caller`'s credentials; the result carries its Expiration. Throws
// CredentialsError with STS's error code and message (which never hold a secret).
Credentials assume_role(const Credentials& caller, const RoleStep& role,
                        const CredentialsOptions& opts, const std::optional<std::string>& region);
// The whole plan: base credentials, then every role. Source: "assume role <arn> (profile p, via
// <base>)".
std::optional<Credentials> credentials_from_assume_role(const CredentialsOptions& opts,
                                                        const std::string& profile);
// Throws CredentialsError when the profile is an SSO (IAM Identity Center) profile; the message
// says a daemon cannot use SSO and names the alternatives.
void refuse_sso_profile(const std::string& name, const Profile& p);
// The profile's own static keys or credential_process, ignoring role_arn; nullopt when it has
// neither.
std::optional<Credentials> profile_own_credentials(const std::string& name, const Profile& p,
                                                   const CredentialsOptions& opts);

// Runs the chain (or the single configured source) once. Throws CredentialsError listing every
// source tried and why it gave nothing.
Credentials resolve_credentials(const CredentialsOptions& opts);

// Region: AWS_REGION, AWS_DEFAULT_REGION, then the profile's `region`; nullopt when none.
std::optional<std::string> resolve_region(const CredentialsOptions& opts);

// "AKIA****MPLE": for logs.
std::string mask_key_id(std::string_view access_key_id);

// ---- the provider the daemon uses ----
class CredentialsProvider {
 public:
  explicit CredentialsProvider(CredentialsOptions opts);
  ~CredentialsProvider();  // stops the refresh thread
  CredentialsProvider(const CredentialsProvider&) = delete;
  CredentialsProvider& operator=(const CredentialsProvider&) = delete;

  // Resolves once (blocking; throws CredentialsError when nothing is found) and starts the
  // background refresh thread when the credentials expire.
  void start();
  void stop();

  // Cached credentials; throws CredentialsError when there are none or they have expired and
  // could not be refreshed.
  Credentials current() const;
  // The form aws-http's AwsCaller takes (CredentialsFn): credentials valid for at least
  // `min_lifetime`, refreshing synchronously first when the cached ones are too short-lived or
  // `force_refresh` (the server said they expired). nullopt when none can be had.
  std::optional<Credentials> get(std::chrono::seconds min_lifetime, bool force_refresh);
  std::function<std::optional<Credentials>(std::chrono::seconds, bool)> as_function();

  // Time left before the cached credentials expire; seconds::max() for long-term keys, zero
  // when expired/none. Check before signing a long request (a large part on a slow link).
  std::chrono::seconds remaining_lifetime() const;
  std::string source() const;  // e.g. "credential_process (profile default)"
  // Synchronous refresh now; false (and the old credentials kept) when it failed.
  bool refresh_now();
  // Counters for tests and metrics.
  int refresh_count() const;
  int refresh_failures() const;

 private:
  void run();
  std::chrono::system_clock::time_point plan_refresh(const Credentials& c);  // under mu_

  CredentialsOptions opts_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::optional<Credentials> creds_;
  std::string last_error_;  // of the latest failed refresh; empty after a success
  int refreshes_ = 0;
  int failures_ = 0;
  bool stopping_ = false;
  // When the background thread refreshes next (max: never, long-term keys).
  std::chrono::system_clock::time_point planned_ = std::chrono::system_clock::time_point::max();
  std::uint64_t rng_state_;
  std::thread thread_;
  std::mutex refresh_mu_;  // serialises refreshes (thread vs get(force_refresh))
};

}  // namespace fe::aws
