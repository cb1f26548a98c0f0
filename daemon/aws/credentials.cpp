// The credential chain and the caching, self-refreshing provider (sources are in
// credentials_sources.cpp).
#include "aws/credentials.hpp"

#include <random>

#include "metrics/counters.hpp"
#include "service/log.hpp"

namespace fe::aws {

std::string_view to_string(CredentialSourceKind k) {
  switch (k) {
    case CredentialSourceKind::automatic:
      return "auto";
    case CredentialSourceKind::env:
      return "env";
    case CredentialSourceKind::profile:
      return "profile";
    case CredentialSourceKind::process:
      return "process";
    case CredentialSourceKind::container:
      return "container";
    case CredentialSourceKind::imds:
      return "imds";
    case CredentialSourceKind::systemd:
      return "systemd";
  }
  return "auto";
}

namespace {

// /metrics: when the credentials in use expire (no series for long-term keys, which never do),
// and how refreshes went. The daemon runs one provider; the latest update wins.
constexpr std::string_view kExpiryGauge = "fhir_edge_aws_credentials_expiry_timestamp_seconds";
void publish_expiry(const Credentials& c) {
  if (!c.expiration) {
    fe::metrics::Registry::global().remove(kExpiryGauge);
    return;
  }
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(c.expiration->time_since_epoch());
  fe::metrics::set_gauge(kExpiryGauge, {}, static_cast<double>(ms.count()) / 1000.0);
}
void count_refresh(bool ok) {
  fe::metrics::count("fhir_edge_aws_credential_refreshes_total",
                     {{"result", ok ? "success" : "failure"}});
}

std::optional<Credentials> only_process(const CredentialsOptions& opts) {
  // source: process = the profile's credential_process, nothing else from the profile.
  const std::string name = profile_name(opts);
  Profile p = load_profile(name, opts.env);
  auto cmd = p.get("credential_process");
  if (!cmd || cmd->empty())
    throw CredentialsError(
        "profile " + name + " has no credential_process (looked in " +
        (p.config_path.empty() ? "no config file" : p.config_path) + " and " +
        (p.credentials_path.empty() ? "no credentials file" : p.credentials_path) + ")");
  return credentials_from_process(*cmd, opts.process_timeout, "profile " + name);
}

}  // namespace

Credentials resolve_credentials(const CredentialsOptions& opts) {
  using K = CredentialSourceKind;
  if (opts.source != K::automatic) {
    std::optional<Credentials> c;
    switch (opts.source) {
      case K::env:
        c = credentials_from_env(opts.env);
        if (!c) throw CredentialsError("environment: AWS_ACCESS_KEY_ID is not set");
        break;
      case K::systemd:
        c = credentials_from_systemd(opts.env);
        if (!c)
          throw CredentialsError(
              "systemd credentials: $CREDENTIALS_DIRECTORY/aws_access_key_id not found (is "
              "LoadCredential= set in the unit?)");
        break;
      case K::profile:
        c = credentials_from_profile(opts);
        if (!c)
          throw CredentialsError("profile " + profile_name(opts) +
                                 ": not found or has no credentials");
        break;
      case K::process:
        c = only_process(opts);
        break;
      case K::container:
        c = credentials_from_container(opts);
        if (!c)
          throw CredentialsError(
              "container credentials: neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI nor "
              "AWS_CONTAINER_CREDENTIALS_FULL_URI is set");
        break;
      case K::imds:
        c = credentials_from_imds(opts);
        if (!c) throw CredentialsError("IMDS: disabled by AWS_EC2_METADATA_DISABLED");
        break;
      case K::automatic:
        break;
    }
    return *c;
  }

  // The default chain. A configured-but-broken source throws (stops the chain) like the SDKs;
  // IMDS being unreachable is the normal "not on EC2" case and ends the chain with a summary.
  std::vector<std::string> tried;
  if (auto c = credentials_from_env(opts.env)) return *c;
  tried.push_back("environment: AWS_ACCESS_KEY_ID not set");
  if (auto c = credentials_from_systemd(opts.env)) return *c;
  tried.push_back("systemd: no aws_access_key_id in $CREDENTIALS_DIRECTORY");
  if (auto c = credentials_from_profile(opts)) return *c;
  tried.push_back("profile " + profile_name(opts) + ": not found or no credentials");
  if (auto c = credentials_from_web_identity(opts)) return *c;
  tried.push_back("web identity: AWS_WEB_IDENTITY_TOKEN_FILE/AWS_ROLE_ARN not set");
  if (auto c = credentials_from_container(opts)) return *c;
  tried.push_back("container: AWS_CONTAINER_CREDENTIALS_*_URI not set");
  try {
    if (auto c = credentials_from_imds(opts)) return *c;
    tried.push_back("IMDS: disabled (AWS_EC2_METADATA_DISABLED)");
  } catch (const CredentialsError& e) {
    tried.push_back(e.what());
  }
  std::string msg = "no AWS credentials found; tried ";
  for (std::size_t i = 0; i < tried.size(); ++i) msg += (i ? "; " : "") + tried[i];
  throw CredentialsError(msg);
}

// ---------------------------------------------------------------------------------------------
// Provider

namespace {
std::string describe_expiry(const Credentials& c) {
  if (!c.expiration) return "never";
  return amz_date(*c.expiration);
}
}  // namespace

CredentialsProvider::CredentialsProvider(CredentialsOptions opts)
    : opts_(std::move(opts)), rng_state_(opts_.seed ? opts_.seed : std::random_device{}()) {
  if (opts_.refresh_max < opts_.refresh_min) opts_.refresh_max = opts_.refresh_min;
}

CredentialsProvider::~CredentialsProvider() {
  stop();
}

void CredentialsProvider::start() {
  Credentials c;
  try {
    c = resolve_credentials(opts_);
  } catch (const std::exception& e) {
    // Remembered so current() explains and get() backs off; the caller decides whether to exit.
    std::lock_guard lk(mu_);
    last_error_ = e.what();
    planned_ = std::chrono::system_clock::now() + opts_.retry_interval;
    ++failures_;
    count_refresh(false);
    throw;
  }
  {
    std::lock_guard lk(mu_);
    creds_ = c;
    planned_ = plan_refresh(c);
    ++refreshes_;
  }
  publish_expiry(c);
  count_refresh(true);
  log::info("AWS credentials loaded", {{"AWS_CREDENTIALS_SOURCE", c.source},
                                       {"AWS_ACCESS_KEY_ID", mask_key_id(c.access_key_id)},
                                       {"AWS_CREDENTIALS_EXPIRE", describe_expiry(c)}});
  std::lock_guard lk(mu_);
  if (!thread_.joinable() && !stopping_) thread_ = std::thread([this] { run(); });
}

void CredentialsProvider::stop() {
  {
    std::lock_guard lk(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
}

std::chrono::system_clock::time_point CredentialsProvider::plan_refresh(const Credentials& c) {
  using namespace std::chrono;
  if (!c.expiration) return system_clock::time_point::max();
  std::mt19937_64 rng(rng_state_);
  rng_state_ = rng();
  const auto lo = duration_cast<milliseconds>(opts_.refresh_min).count();
  const auto hi = duration_cast<milliseconds>(opts_.refresh_max).count();
  auto lead = milliseconds(std::uniform_int_distribution<long long>(lo, hi)(rng));
  const auto remaining = duration_cast<milliseconds>(*c.expiration - system_clock::now());
  // Short-lived credentials (shorter than the window): refresh at half their remaining life.
  if (lead > remaining / 2) lead = std::max(milliseconds(0), remaining / 2);
  return *c.expiration - lead;
}

void CredentialsProvider::run() {
  std::unique_lock lk(mu_);
  while (!stopping_) {
    const auto at = planned_;
    if (at == std::chrono::system_clock::time_point::max()) {
      cv_.wait(lk, [&] { return stopping_ || planned_ != at; });
      continue;
    }
    if (std::chrono::system_clock::now() < at) {
      cv_.wait_until(lk, at, [&] { return stopping_ || planned_ != at; });
      continue;
    }
    lk.unlock();
    refresh_now();
    lk.lock();
  }
}

bool CredentialsProvider::refresh_now() {
  std::lock_guard serial(refresh_mu_);
  Credentials fresh;
  std::string error;
  try {
    fresh = resolve_credentials(opts_);
  } catch (const std::exception& e) {
    error = e.what();  // CredentialsError messages never carry secrets
  }
  std::unique_lock lk(mu_);
  if (!error.empty()) {
    ++failures_;
    count_refresh(false);
    last_error_ = error;
    using namespace std::chrono;
    auto now = system_clock::now();
    auto next = now + opts_.retry_interval;
    // Try again sooner than retry_interval when the current credentials expire first.
    if (creds_ && creds_->expiration && *creds_->expiration > now) {
      auto half = now + (*creds_->expiration - now) / 2;
      if (half < next) next = std::max(half, now + seconds(1));
    }
    planned_ = next;
    const bool still_valid = creds_ && (!creds_->expiration || *creds_->expiration > now);
    lk.unlock();
    cv_.notify_all();
    log::warning(still_valid ? "AWS credentials refresh failed; keeping the current ones"
                             : "AWS credentials refresh failed and the current ones have expired",
                 {{"ERROR", error}});
    return false;
  }
  const bool changed_source = !creds_ || creds_->source != fresh.source;
  creds_ = fresh;
  planned_ = plan_refresh(fresh);
  ++refreshes_;
  last_error_.clear();
  lk.unlock();
  publish_expiry(fresh);
  count_refresh(true);
  cv_.notify_all();
  (changed_source ? log::info : log::debug)(
      "AWS credentials refreshed", {{"AWS_CREDENTIALS_SOURCE", fresh.source},
                                    {"AWS_ACCESS_KEY_ID", mask_key_id(fresh.access_key_id)},
                                    {"AWS_CREDENTIALS_EXPIRE", describe_expiry(fresh)}});
  return true;
}

Credentials CredentialsProvider::current() const {
  std::lock_guard lk(mu_);
  if (!creds_)
    throw CredentialsError(last_error_.empty() ? "no AWS credentials (provider not started)"
                                               : last_error_);
  if (creds_->expiration && *creds_->expiration <= std::chrono::system_clock::now())
    throw CredentialsError("AWS credentials from " + creds_->source + " expired at " +
                           amz_date(*creds_->expiration) +
                           (last_error_.empty() ? "" : "; refresh failed: " + last_error_));
  return *creds_;
}

std::chrono::seconds CredentialsProvider::remaining_lifetime() const {
  std::lock_guard lk(mu_);
  if (!creds_) return std::chrono::seconds(0);
  if (!creds_->expiration) return std::chrono::seconds::max();
  auto left = std::chrono::duration_cast<std::chrono::seconds>(*creds_->expiration -
                                                               std::chrono::system_clock::now());
  return std::max(left, std::chrono::seconds(0));
}

std::optional<Credentials> CredentialsProvider::get(std::chrono::seconds min_lifetime,
                                                    bool force_refresh) {
  bool need = force_refresh;
  if (!force_refresh) {
    std::lock_guard lk(mu_);
    const auto now = std::chrono::system_clock::now();
    // After a failed refresh, wait for the retry schedule instead of re-running the chain (and
    // its timeouts) on every call from the event loop.
    const bool backing_off = !last_error_.empty() && now < planned_;
    if (!creds_) {
      need = !backing_off;
    } else if (creds_->expiration && *creds_->expiration - now < min_lifetime) {
      // Too short-lived for this request (a long part upload): refresh first.
      need = !backing_off;
    }
  }
  if (need) refresh_now();
  std::lock_guard lk(mu_);
  if (!creds_) return std::nullopt;
  if (creds_->expiration && *creds_->expiration <= std::chrono::system_clock::now())
    return std::nullopt;
  return creds_;
}

std::function<std::optional<Credentials>(std::chrono::seconds, bool)>
CredentialsProvider::as_function() {
  return [this](std::chrono::seconds min_lifetime, bool force) { return get(min_lifetime, force); };
}

std::string CredentialsProvider::source() const {
  std::lock_guard lk(mu_);
  return creds_ ? creds_->source : std::string();
}

int CredentialsProvider::refresh_count() const {
  std::lock_guard lk(mu_);
  return refreshes_;
}

int CredentialsProvider::refresh_failures() const {
  std::lock_guard lk(mu_);
  return failures_;
}

}  // namespace fe::aws
