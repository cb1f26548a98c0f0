#pragma once
// Reload by struct compare (issue 14 item 3): which change of the configuration a running daemon
// can take at a SIGHUP.
//
// Contract:
//  - Every section of Config is a stage's Settings struct whose header describes each field: its
//    YAML name and whether it is live (common/fields.hpp). The descriptions are checked at compile
//    time to cover every field, so a new field cannot be left out of the comparison.
//  - first_restart_key() walks the sections in Config's order and returns the first key that
//    differs and is not live, named as in the YAML with pipelines by name
//    ("pipelines[p0].after_upload", "upload.concurrency", "import.poll_min", "pipelines" when the
//    list grows or shrinks). "" means every difference is live: the reload may apply.
//  - The live keys are: log.level, upload.bandwidth_limit, upload.bandwidth_schedule and
//    spool.keep_for (docs/configuration.md lists them; a unit test checks the list against keys()).
#include <string>
#include <vector>

#include "config/config.hpp"

namespace fe::config {

// The first changed key that needs a restart ("" = none).
std::string first_restart_key(const Config& running, const Config& next);

// "<key> changed: restart fhir-edge to apply", or "" when next can be applied to running.
std::string reload_refusal(const Config& running, const Config& next);

// Every key of c, in the order first_restart_key() compares them, as it would name them.
struct Key {
  std::string name;
  bool live = false;
};
std::vector<Key> keys(const Config& c);

}  // namespace fe::config
