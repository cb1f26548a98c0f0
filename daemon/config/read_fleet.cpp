// The `fleet` section (fleet/settings.hpp, docs/configuration.md "fleet"): gateways that share one
// HealthLake import slot through S3. The bucket default (the first pipeline's s3.bucket) is filled
// in by config.cpp once the pipelines are read.
#include <unistd.h>

#include "common/s3_names.hpp"
#include "config/readers.hpp"

namespace fe::config::detail {
namespace {

// A fleet name is part of every fleet object's key and of the batch jobs' JobName.
std::string check_fleet_name(const std::string& s) {
  if (!matches(s, "[a-z0-9-]{1,63}"))
    return "a fleet name is 1-63 lowercase letters, digits and '-', got '" + s + "'";
  return "";
}

// A gateway id is part of S3 keys (the batch copies, the member pointers).
std::string check_gateway_id(const std::string& s) {
  if (!matches(s, "[A-Za-z0-9][A-Za-z0-9._-]{0,62}"))
    return "a gateway id is 1-63 letters, digits, '.', '_' and '-' (starting with a letter or "
           "digit), got '" +
           s + "'";
  return "";
}

}  // namespace

void read_fleet(Checker& c, const Item& it, Fleet& out) {
  if (c.is_null(it)) return;  // `fleet:` with nothing under it: no fleet
  Map m(c, it.value, it.path, it.mark,
        {"name", "gateway_id", "bucket", "prefix", "lease_ttl", "lease_skew_margin",
         "poll_interval"});
  if (!m.ok()) return;
  if (!c.string(m, "name", out.name, true, check_fleet_name)) out.name.clear();
  if (!m.get("gateway_id")) {
    char host[256] = {};
    if (::gethostname(host, sizeof host - 1) == 0) out.gateway_id = host;
    if (auto why = check_gateway_id(out.gateway_id); !why.empty())
      c.error(m.mark(), Checker::child(m.path(), "gateway_id"),
              "the host name '" + out.gateway_id +
                  "' cannot be the default gateway id: set fleet.gateway_id (" + why + ")");
  } else {
    c.string(m, "gateway_id", out.gateway_id, true, check_gateway_id);
  }
  c.string(m, "bucket", out.bucket, false, s3::bucket_name_error);
  if (c.string(m, "prefix", out.prefix, false,
               [](const std::string& s) { return check_key_part(s, true); })) {
    while (!out.prefix.empty() && out.prefix.back() == '/') out.prefix.pop_back();
    if (!out.prefix.empty() && out.prefix.front() == '/')
      c.error(m.get("prefix")->mark, m.get("prefix")->path,
              "an S3 key prefix does not start with '/'");
  }
  c.duration_ms(m, "lease_ttl", out.lease_ttl, std::chrono::hours(1));
  c.duration_ms(m, "lease_skew_margin", out.lease_skew_margin, std::chrono::minutes(30));
  c.duration_ms(m, "poll_interval", out.poll_interval, std::chrono::hours(1));
  if (out.lease_ttl < std::chrono::seconds(1)) {
    const Item* at = m.get("lease_ttl");
    c.error(at->mark, at->path, "must be at least 1s");
  } else if (out.lease_skew_margin * 2 >= out.lease_ttl) {
    // The holder gives up at ttl - margin and renews every ttl/3: margin must leave it time.
    const Item* at = m.get("lease_skew_margin") ? m.get("lease_skew_margin") : m.get("lease_ttl");
    c.error(at->mark, at->path,
            "lease_skew_margin must be less than half of lease_ttl (the holder stops trusting "
            "its lease at lease_ttl - lease_skew_margin and renews every lease_ttl/3)");
  }
  if (out.poll_interval < std::chrono::milliseconds(100)) {
    const Item* at = m.get("poll_interval");
    c.error(at->mark, at->path, "must be at least 100ms");
  }
}

}  // namespace fe::config::detail
