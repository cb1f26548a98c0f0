#pragma once
// Numbers in JSON that AWS writes (HealthLake's JobProgressReport, an import's manifest.json): a
// count may come as 12 or 12.0 and a size as 3 or 3.5, so both readers accept either form. A
// missing key or a value that is not a number reads as 0 (the callers' "not reported").
// Header-only; the includer links simdjson.
#include <simdjson.h>

#include <cstdint>

namespace fe::json {

inline int64_t number_i64(simdjson::dom::element o, const char* key) {
  int64_t v = 0;
  if (!o[key].get_int64().get(v)) return v;
  double d = 0;
  return o[key].get_double().get(d) ? 0 : static_cast<int64_t>(d);
}

inline double number_f64(simdjson::dom::element o, const char* key) {
  double d = 0;
  if (!o[key].get_double().get(d)) return d;
  int64_t v = 0;
  return o[key].get_int64().get(v) ? 0 : static_cast<double>(v);
}

}  // namespace fe::json
