#pragma once
// The upload stage's settings: the YAML section `upload` and each pipeline's `s3` target
// (docs/configuration.md). Live (a reload applies them, also to parts in flight): the bandwidth
// cap and its schedule. Any other change is refused at a reload, naming the key.
#include <cstdint>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "common/fields.hpp"

namespace fe::upload {

// upload.bandwidth_schedule[]: a local time-of-day window with its own cap. [from, to): to < from
// wraps midnight ("22:00" to "06:00"); "00:00" to "24:00" is the whole day. Windows never overlap
// (checked), so at most one applies at any minute.
struct BandwidthWindow {
  int from_minute = 0;                 // minutes after local midnight, 0..1439 ("HH:MM")
  int to_minute = 0;                   // 1..1440 ("24:00" allowed), != from_minute
  std::optional<std::uint64_t> limit;  // bytes per second; nullopt = unlimited
  bool operator==(const BandwidthWindow&) const = default;
};

struct Settings {
  std::optional<std::uint64_t> part_size;  // nullopt = auto (smallest keeping < 10,000 parts)
  int concurrency = 4;                     // parts in flight per daemon (1..64)
  // Daemon-wide cap on the sum of all uploads, bytes per second; nullopt = unlimited. Applies
  // outside the windows of bandwidth_schedule. Both may change with a reload (SIGHUP).
  std::optional<std::uint64_t> bandwidth_limit;
  std::vector<BandwidthWindow> bandwidth_schedule;
  bool operator==(const Settings&) const = default;
};

// pipelines[].s3: where a pipeline's exports land.
struct Target {
  std::string bucket;                     // checked against the S3 bucket naming rules
  std::string prefix;                     // no leading or trailing '/', no "..", may be ""
  std::optional<std::string> kms_key_id;  // SSE-KMS key (id, ARN, alias); nullopt = bucket default
  bool archive = true;                    // also upload <export>/archive/<File>.ndjson.zst
  bool upload_rejects = true;             // also upload <export>/rejected/... and report.json
  bool operator==(const Target&) const = default;
};

// YAML names and reload behaviour (common/fields.hpp).
constexpr auto fields(const Settings*) {
  using enum settings::Reload;
  using S = Settings;
  return std::tuple{settings::field("part_size", &S::part_size, restart),
                    settings::field("concurrency", &S::concurrency, restart),
                    settings::field("bandwidth_limit", &S::bandwidth_limit, live),
                    settings::field("bandwidth_schedule", &S::bandwidth_schedule, live)};
}
static_assert(settings::described<Settings>());

constexpr auto fields(const Target*) {
  using enum settings::Reload;
  using T = Target;
  return std::tuple{settings::field("bucket", &T::bucket, restart),
                    settings::field("prefix", &T::prefix, restart),
                    settings::field("kms_key_id", &T::kms_key_id, restart),
                    settings::field("archive", &T::archive, restart),
                    settings::field("upload_rejects", &T::upload_rejects, restart)};
}
static_assert(settings::described<Target>());

}  // namespace fe::upload
