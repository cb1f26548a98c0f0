#include "pipeline/aws_settings.hpp"

#include <tuple>

namespace fe::pipeline {

// The one translation of the config's `aws:` section into the AWS layer's options (the two have
// other shapes: a resolved region, the HTTP options). Every key is passed on below: one added to
// aws::Settings or aws::Endpoints (aws/settings.hpp, described for the config reader in
// common/fields.hpp) fails here until it is passed on and counted.
static_assert(std::tuple_size_v<decltype(fields(static_cast<const aws::Settings*>(nullptr)))> == 9,
              "a key was added to aws::Settings: pass it on in credentials_options/client_config");
static_assert(std::tuple_size_v<decltype(fields(static_cast<const aws::Endpoints*>(nullptr)))> == 3,
              "a key was added to aws::Endpoints: pass it on in client_config");

aws::CredentialsOptions credentials_options(const config::Config& cfg) {
  aws::CredentialsOptions co;
  co.source = cfg.aws.credential_source;  // the aws stage's own type
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
  cc.payload_signing = cfg.aws.payload_signing;
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
  for (const auto& w : u.bandwidth_schedule) {
    // Structured bindings name every field of both window types: a field added to either one
    // stops this from compiling until it is translated here.
    const auto& [from_minute, to_minute, limit] = w;
    aws::BandwidthWindow window{from_minute, to_minute, limit.value_or(0)};
    [[maybe_unused]] const auto& [from, to, bytes_per_second] = window;
    out.push_back(window);
  }
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
