#include "watch/from_config.hpp"

namespace fe::watch {

WatchOptions watch_options(const fe::config::Pipeline& p) {
  WatchOptions o;
  o.pipeline = p.name;
  o.root = p.watch;
  o.patterns = p.patterns;
  // The stage's own settings as configured: no field is copied one by one.
  static_cast<CompleteWhen&>(o.rules) = p.complete_when;
  return o;
}

WatchOptions watch_options(const fe::config::Config& c, const fe::config::Pipeline& p) {
  WatchOptions o = watch_options(p);
  static_cast<Settings&>(o) = c.watch;
  return o;
}

}  // namespace fe::watch
