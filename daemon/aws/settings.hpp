#pragma once
// The AWS layer's settings: the YAML section `aws` (docs/configuration.md). The configuration
// (config/config.hpp, as config::Aws) reads and checks them; pipeline/aws_settings.hpp turns them
// into the credential chain's and the clients' options. None of them is live: a reload that
// changes one is refused, naming the key, because the clients and the credential chain are built
// once at start.
#include <filesystem>
#include <optional>
#include <string>
#include <tuple>

#include "aws/client_config.hpp"
#include "common/fields.hpp"

namespace fe::aws {

// aws.credentials.source: which provider to use. `auto` is the AWS SDK default chain
// (env, shared files/profile, credential_process, web identity, container, IMDSv2) plus systemd
// credentials ($CREDENTIALS_DIRECTORY); any other value pins exactly that one provider.
enum class CredentialSource { automatic, env, profile, process, imds, container, systemd };

struct Endpoints {
  std::optional<std::string> s3;          // e.g. "http://127.0.0.1:4566"; nullopt = AWS default
  std::optional<std::string> healthlake;  // e.g. "http://127.0.0.1:8080" for healthlake-local
  // STS for AssumeRole profiles and web identity; nullopt = AWS_ENDPOINT_URL_STS, else
  // sts.<region>.amazonaws.com.
  std::optional<std::string> sts;
  bool operator==(const Endpoints&) const = default;
};

struct Settings {
  // nullopt: AWS_REGION, then AWS_DEFAULT_REGION, then the profile's `region`.
  std::optional<std::string> region;
  CredentialSource credential_source = CredentialSource::automatic;  // aws.credentials.source
  // nullopt: AWS_PROFILE, else "default".
  std::optional<std::string> profile;
  Endpoints endpoints;
  bool s3_path_style = false;  // path-style S3 addressing (needed by most S3 emulators)
  // Proxy URL (http://host:port); nullopt = HTTPS_PROXY / HTTP_PROXY / ALL_PROXY from the
  // environment; "" = direct connections even when the environment names a proxy.
  std::optional<std::string> proxy;
  // Hosts that bypass the proxy (curl NO_PROXY syntax: "localhost,.internal,10.0.0.0/8", "*");
  // nullopt = NO_PROXY / no_proxy from the environment; "" = none.
  std::optional<std::string> no_proxy;
  // PEM bundle replacing the system CAs (hospital TLS inspection). TLS is always verified.
  std::optional<std::filesystem::path> ca_bundle;
  // How S3 upload bodies are signed: auto (STREAMING-UNSIGNED-PAYLOAD-TRAILER with a trailing
  // CRC32C over https, SHA-256 over http), signed, unsigned-trailer (client_config.hpp).
  PayloadSigning payload_signing = PayloadSigning::automatic;
  bool operator==(const Settings&) const = default;
};

// YAML names and reload behaviour (common/fields.hpp).
constexpr auto fields(const Endpoints*) {
  using enum settings::Reload;
  return std::tuple{settings::field("s3", &Endpoints::s3, restart),
                    settings::field("healthlake", &Endpoints::healthlake, restart),
                    settings::field("sts", &Endpoints::sts, restart)};
}
static_assert(settings::described<Endpoints>());

constexpr auto fields(const Settings*) {
  using enum settings::Reload;
  using S = Settings;
  return std::tuple{settings::field("region", &S::region, restart),
                    settings::field("credentials.source", &S::credential_source, restart),
                    settings::field("profile", &S::profile, restart),
                    settings::field("endpoints", &S::endpoints, restart),
                    settings::field("s3_path_style", &S::s3_path_style, restart),
                    settings::field("proxy", &S::proxy, restart),
                    settings::field("no_proxy", &S::no_proxy, restart),
                    settings::field("ca_bundle", &S::ca_bundle, restart),
                    settings::field("payload_signing", &S::payload_signing, restart)};
}
static_assert(settings::described<Settings>());

}  // namespace fe::aws
