#pragma once
// Prometheus text exposition format 0.0.4 (what /metrics serves and `promtool check metrics`
// reads): one "# HELP" and one "# TYPE" line per metric family, then its samples. Label values are
// escaped (\\, \", \n), HELP text too (\\, \n); values are printed exactly (integers without an
// exponent, +Inf/-Inf/NaN spelled as Prometheus wants).
#include <string>
#include <string_view>

#include "metrics/counters.hpp"

namespace fe::metrics {

std::string escape_label_value(std::string_view v);
std::string escape_help(std::string_view v);
std::string format_value(double v);

class TextWriter {
 public:
  // Starts a family; every sample that follows must use `name` (or name + a histogram suffix).
  void family(std::string_view name, Kind kind, std::string_view help);
  void sample(std::string_view name, const Labels& labels, double value);
  void sample(std::string_view name, double value) { sample(name, {}, value); }
  const std::string& text() const { return out_; }

 private:
  std::string out_;
};

}  // namespace fe::metrics
