#include "watch/from_config.hpp"

namespace fe::watch {

WatchOptions watch_options(const fe::config::Pipeline& p) {
  WatchOptions o;
  o.pipeline = p.name;
  o.root = p.watch;
  o.patterns = p.patterns;
  o.rules.marker = p.complete_when.marker;
  o.rules.bulk_manifest = p.complete_when.bulk_manifest;
  o.rules.client_log = p.complete_when.client_log;
  o.rules.settle = p.complete_when.settle;
  return o;
}

WatchOptions watch_options(const fe::config::Config& c, const fe::config::Pipeline& p) {
  WatchOptions o = watch_options(p);
  o.rescan_interval = std::chrono::duration_cast<std::chrono::seconds>(c.watch.rescan_interval);
  o.scan_quiet = c.watch.scan_quiet;
  return o;
}

}  // namespace fe::watch
