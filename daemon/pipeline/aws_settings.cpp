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

}  // namespace fe::pipeline
