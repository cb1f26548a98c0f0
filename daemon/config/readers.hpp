#pragma once
// The per-section readers of load_config() (internal to daemon/config). Each reads one YAML
// section into its stage's Settings (<stage>/settings.hpp), reporting every problem through the
// checker and leaving a field at its default when its value is absent or wrong. Checks across
// sections (nested watch roots, spool inside a root, ...) are config.cpp's.
#include "config/checker.hpp"

namespace fe::config::detail {

// Positions kept for checks that compare pipelines with each other.
struct PipelineMarks {
  YAML::Mark name, watch, after_upload;
  bool watch_ok = false, after_ok = false;
};

void read_aws(Checker& c, const YAML::Node& n, YAML::Mark at, Aws& aws);  // read_aws.cpp
void read_pipeline(Checker& c, const Item& it, Pipeline& p,
                   PipelineMarks& marks);                  // read_pipeline.cpp
void read_upload(Checker& c, const Item& it, Upload& up);  // read_upload.cpp
// read_sections.cpp
void read_spool(Checker& c, const Item& it, Spool& out);
void read_journal(Checker& c, const Item& it, Journal& out);
void read_watch(Checker& c, const Item& it, Watch& out);
void read_import(Checker& c, const Item& it, Import& out);
void read_metrics(Checker& c, const Item& it, Metrics& out);  // metrics (the mapping)
void read_log(Checker& c, const Item& it, Log& out);
void read_fleet(Checker& c, const Item& it, Fleet& out);  // read_fleet.cpp

}  // namespace fe::config::detail
