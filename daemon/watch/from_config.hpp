#pragma once
// The watcher's options from a pipeline's configuration (config/fhir-edge.yaml `pipelines[]`).
#include "config/config.hpp"
#include "watch/watcher.hpp"

namespace fe::watch {

WatchOptions watch_options(const fe::config::Pipeline& pipeline);

}  // namespace fe::watch
