#pragma once
// The fleet's settings: the YAML section `fleet` (docs/configuration.md "fleet", docs/scale.md).
// Gateways that name the same fleet share one HealthLake import slot through small objects in one
// bucket (<prefix>/fleet/<name>/: lease.json, ready.json, batches/), written with S3 conditional
// writes. An absent section (name "") is no fleet: nothing changes. None is live: the lease and
// the fleet's timers are set up at start, so a reload that changes a key is refused naming it.
#include <chrono>
#include <string>
#include <tuple>

#include "common/fields.hpp"

namespace fe::fleet {

struct Settings {
  std::string name;        // [a-z0-9-]{1,63}; "" = no fleet
  std::string gateway_id;  // unique in the fleet; the reader defaults it to the host name
  std::string bucket;      // the reader defaults it to pipelines[0].s3.bucket
  std::string prefix;      // fleet objects live under <prefix>/fleet/<name>/
  std::chrono::milliseconds lease_ttl{std::chrono::minutes(2)};           // LeaseOptions::ttl
  std::chrono::milliseconds lease_skew_margin{std::chrono::seconds(30)};  // ::skew_margin
  // How often a gateway re-reads the fleet's objects (holder: ready.json; members: the batch
  // records of their exports).
  std::chrono::milliseconds poll_interval{std::chrono::seconds(10)};
  bool enabled() const { return !name.empty(); }
  bool operator==(const Settings&) const = default;
};

// YAML names and reload behaviour (common/fields.hpp).
constexpr auto fields(const Settings*) {
  using enum settings::Reload;
  using S = Settings;
  return std::tuple{settings::field("name", &S::name, restart),
                    settings::field("gateway_id", &S::gateway_id, restart),
                    settings::field("bucket", &S::bucket, restart),
                    settings::field("prefix", &S::prefix, restart),
                    settings::field("lease_ttl", &S::lease_ttl, restart),
                    settings::field("lease_skew_margin", &S::lease_skew_margin, restart),
                    settings::field("poll_interval", &S::poll_interval, restart)};
}
static_assert(settings::described<Settings>());

}  // namespace fe::fleet
