#include "pipeline/aws_settings.hpp"

namespace fe::pipeline {

namespace {

aws::CredentialSourceKind to_kind(config::CredentialSource s) {
  using C = config::CredentialSource;
  using K = aws::CredentialSourceKind;
  switch (s) {
    case C::automatic:
      return K::automatic;
    case C::env:
      return K::env;
    case C::profile:
      return K::profile;
    case C::process:
      return K::process;
    case C::imds:
      return K::imds;
    case C::container:
      return K::container;
    case C::systemd:
      return K::systemd;
  }
  return K::automatic;
}

}  // namespace

aws::CredentialsOptions credentials_options(const config::Config& cfg) {
  aws::CredentialsOptions co;
  co.source = to_kind(cfg.aws.credential_source);
  co.profile = cfg.aws.profile;
  co.proxy = cfg.aws.proxy;
  if (cfg.aws.ca_bundle) co.ca_bundle = cfg.aws.ca_bundle->string();
  co.sts_endpoint = cfg.aws.endpoints.sts;  // AssumeRole profiles, web identity
  co.region = cfg.aws.region;
  return co;
}

aws::ClientConfig client_config(const config::Config& cfg, const aws::CredentialsOptions& co) {
  aws::ClientConfig cc;
  cc.region =
      cfg.aws.region ? *cfg.aws.region : aws::resolve_region(co).value_or(std::string("us-east-1"));
  cc.s3_endpoint = cfg.aws.endpoints.s3;
  cc.healthlake_endpoint = cfg.aws.endpoints.healthlake;
  cc.s3_path_style = cfg.aws.s3_path_style;
  cc.http.proxy = cfg.aws.proxy;
  cc.http.no_proxy = cfg.aws.no_proxy;
  if (cfg.aws.ca_bundle) cc.http.ca_bundle = cfg.aws.ca_bundle->string();
  return cc;
}

aws::ClientsSettings clients_settings(const config::Config& cfg) {
  aws::ClientsSettings s;
  s.credentials = credentials_options(cfg);
  s.client = client_config(cfg, s.credentials);
  return s;
}

std::vector<aws::BandwidthWindow> bandwidth_windows(const config::Upload& u) {
  std::vector<aws::BandwidthWindow> out;
  for (const auto& w : u.bandwidth_schedule)
    out.push_back({w.from_minute, w.to_minute, w.limit.value_or(0)});
  return out;
}

aws::ClientsSettings daemon_clients_settings(const config::Config& cfg) {
  aws::ClientsSettings s = clients_settings(cfg);
  s.client.http.max_send_bytes_per_second = cfg.upload.bandwidth_limit.value_or(0);
  s.client.http.bandwidth_schedule = bandwidth_windows(cfg.upload);
  s.client.http.max_per_endpoint = static_cast<std::size_t>(cfg.upload.concurrency) + 4;
  return s;
}

aws::ClientsSettings doctor_clients_settings(const config::Config& cfg) {
  aws::ClientsSettings s = clients_settings(cfg);
  s.client.max_attempts = 2;
  s.client.http.connect_timeout = std::chrono::seconds(5);
  s.client.http.request_timeout = std::chrono::seconds(30);
  return s;
}

}  // namespace fe::pipeline
