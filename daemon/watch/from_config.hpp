#pragma once
// The watcher's options from the configuration: a pipeline's `pipelines[]` entry (root, patterns,
// completion rules) and the daemon-wide `watch:` section (rescan_interval, scan_quiet). The
// completion rules and the section are the watch stage's own types (watch/settings.hpp), which
// CompletionRules and WatchOptions extend, so they are assigned whole: a field added to either
// reaches the watcher without a line here.
#include "config/config.hpp"
#include "watch/watcher.hpp"

namespace fe::watch {

WatchOptions watch_options(const fe::config::Pipeline& pipeline);
WatchOptions watch_options(const fe::config::Config& config, const fe::config::Pipeline& pipeline);

}  // namespace fe::watch
