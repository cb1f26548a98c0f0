#pragma once
// Process-wide counters and gauges that any stage may update (aws/, pipeline/, ...), read by the
// metrics component (metrics/metrics.hpp) when /metrics is scraped. Header-only and free of any
// fhir-edge dependency, so every stage can use it without a link-order cycle: the one Registry
// lives in an inline function's static, which C++ guarantees is a single object per program.
//
//   fe::metrics::count("fhir_edge_aws_retries_total", {{"service", "s3"}, {"code", "SlowDown"}});
//   fe::metrics::set_gauge("fhir_edge_aws_credentials_expiry_timestamp_seconds", {}, t);
//
// Names follow the Prometheus conventions (counters end in _total); label values are any text
// (the exposition escapes them). Cardinality is bounded: a metric keeps at most kMaxSeries label
// sets; further new label sets are folded into one series whose label values are all "other", so
// a server that invents error codes cannot grow the daemon's memory.
// Thread-safe (one mutex; updates are per AWS request or rarer, never per resource).
#include <cstddef>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace fe::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

enum class Kind { counter, gauge };

struct Series {
  std::string name;
  Kind kind = Kind::counter;
  Labels labels;
  double value = 0;
};

class Registry {
 public:
  static constexpr std::size_t kMaxSeries = 64;

  static Registry& global() {
    static Registry r;
    return r;
  }

  void add(std::string_view name, Labels labels = {}, double delta = 1) {
    std::lock_guard lk(mu_);
    slot(name, Kind::counter, std::move(labels)) += delta;
  }
  void set(std::string_view name, Labels labels, double value) {
    std::lock_guard lk(mu_);
    slot(name, Kind::gauge, std::move(labels)) = value;
  }
  // Drops a series (a gauge that no longer applies, e.g. credentials that never expire).
  void remove(std::string_view name, const Labels& labels = {}) {
    std::lock_guard lk(mu_);
    auto it = families_.find(std::string(name));
    if (it == families_.end()) return;
    it->second.series.erase(labels);
    if (it->second.series.empty()) families_.erase(it);
  }
  // Every series, ordered by name then labels.
  std::vector<Series> snapshot() const {
    std::lock_guard lk(mu_);
    std::vector<Series> out;
    for (const auto& [name, fam] : families_)
      for (const auto& [labels, value] : fam.series) out.push_back({name, fam.kind, labels, value});
    return out;
  }
  // One value (0 when absent): tests and the component's own summaries.
  double value(std::string_view name, const Labels& labels = {}) const {
    std::lock_guard lk(mu_);
    auto it = families_.find(std::string(name));
    if (it == families_.end()) return 0;
    auto s = it->second.series.find(labels);
    return s == it->second.series.end() ? 0 : s->second;
  }
  // Sum over every label set of a metric.
  double total(std::string_view name) const {
    std::lock_guard lk(mu_);
    auto it = families_.find(std::string(name));
    double sum = 0;
    if (it != families_.end())
      for (const auto& [labels, v] : it->second.series) sum += v;
    return sum;
  }

 private:
  struct Family {
    Kind kind = Kind::counter;
    std::map<Labels, double> series;
  };
  double& slot(std::string_view name, Kind kind, Labels labels) {
    auto& fam = families_[std::string(name)];
    fam.kind = kind;
    auto it = fam.series.find(labels);
    if (it != fam.series.end()) return it->second;
    if (fam.series.size() >= kMaxSeries)
      for (auto& [k, v] : labels) v = "other";
    return fam.series[std::move(labels)];
  }

  mutable std::mutex mu_;
  std::map<std::string, Family, std::less<>> families_;
};

inline void count(std::string_view name, Labels labels = {}, double delta = 1) {
  Registry::global().add(name, std::move(labels), delta);
}
inline void set_gauge(std::string_view name, Labels labels, double value) {
  Registry::global().set(name, std::move(labels), value);
}

}  // namespace fe::metrics
