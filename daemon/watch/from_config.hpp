#pragma once
// The watcher's options from the configuration: a pipeline's `pipelines[]` entry (root, patterns,
// completion rules) and the daemon-wide `watch:` section (rescan_interval, scan_quiet).
#include "config/config.hpp"
#include "watch/watcher.hpp"

namespace fe::watch {

WatchOptions watch_options(const fe::config::Pipeline& pipeline);
WatchOptions watch_options(const fe::config::Config& config, const fe::config::Pipeline& pipeline);

}  // namespace fe::watch
