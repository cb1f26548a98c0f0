// The `upload` section (upload/settings.hpp): part size, concurrency, the bandwidth cap and its
// time-of-day schedule (windows must not overlap).
#include <cstdio>

#include "config/readers.hpp"

namespace fe::config::detail {
namespace {

// "HH:MM" (24-hour local time) -> minutes after midnight; "24:00" only when allow_24.
std::optional<int> parse_hhmm(const std::string& s, bool allow_24) {
  std::smatch m;
  if (!std::regex_match(s, m, re("([01]?[0-9]|2[0-4]):([0-5][0-9])"))) {
    return std::nullopt;
  }
  int h = std::stoi(m[1].str());
  int mi = std::stoi(m[2].str());
  if (h == 24 && (mi != 0 || !allow_24)) {
    return std::nullopt;
  }
  return h * 60 + mi;
}

std::string hhmm(int minute) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%02d:%02d", minute / 60, minute % 60);
  return buf;
}

}  // namespace

void read_upload(Checker& c, const Item& it, Upload& up) {
  Map m(c, it.value, it.path, it.mark,
        {"part_size", "concurrency", "bandwidth_limit", "bandwidth_schedule"});
  if (!m.ok()) {
    return;
  }
  if (const Item* ps = m.get("part_size"); ps && !c.is_null(*ps)) {
    if (auto v = c.text(*ps); v && *v != "auto") {
      Bytes b = 0;
      c.size(m, "part_size", b, Bytes{5} << 20, Bytes{5} << 30);
      if (b) {
        up.part_size = b;
      }
    }
  }
  c.integer(m, "concurrency", up.concurrency, 1, 64);
  if (const Item* bl = m.get("bandwidth_limit")) {
    c.rate(*bl, up.bandwidth_limit);
  }
  const Item* bs = m.get("bandwidth_schedule");
  if (!bs || c.is_null(*bs)) {
    return;
  }
  if (!bs->value.IsSequence()) {
    c.error(bs->mark, bs->path,
            std::string("expected a list of {from, to, limit} windows, got ") +
                Checker::kind(bs->value));
    return;
  }
  // Which window owns each minute of the day, to refuse overlaps (one rule per minute).
  std::vector<int> owner(1440, -1);
  for (size_t i = 0; i < bs->value.size(); ++i) {
    const YAML::Node& wn = bs->value[i];
    Item wit{YAML::Node(), wn, bs->path + "[" + std::to_string(i) + "]",
             Checker::mark_of(wn, bs->mark)};
    Map wm(c, wn, wit.path, wit.mark, {"from", "to", "limit"});
    if (!wm.ok()) {
      continue;
    }
    BandwidthWindow w;
    bool ok = true;
    for (const char* key : {"from", "to"}) {
      const Item* t = wm.get(key);
      if (!t) {
        c.missing(wm, key, "a local time such as \"22:00\"");
        ok = false;
        continue;
      }
      auto v = c.text(*t);
      if (!v) {
        ok = false;
        continue;
      }
      const bool is_to = std::string_view(key) == "to";
      auto minute = parse_hhmm(*v, is_to);
      if (!minute) {
        c.error(t->mark, t->path,
                std::string("expected a 24-hour local time HH:MM such as \"22:00\"") +
                    (is_to ? " (or \"24:00\")" : "") + ", got '" + *v + "'");
        ok = false;
        continue;
      }
      (is_to ? w.to_minute : w.from_minute) = *minute;
    }
    if (const Item* l = wm.get("limit")) {
      const size_t before = c.errors.size();
      c.rate(*l, w.limit);
      ok = ok && c.errors.size() == before;
    } else {
      c.missing(wm, "limit", "a rate such as 20MiB/s, or unlimited");
      ok = false;
    }
    if (!ok) {
      continue;
    }
    const Item* at = wm.get("to");
    if (w.from_minute == w.to_minute) {
      c.error(at->mark, at->path,
              "the window is empty (from equals to); use from: \"00:00\", to: \"24:00\" for the "
              "whole day");
      continue;
    }
    // Minutes covered: "00:00"-"24:00" is all 1440; to < from wraps midnight.
    const int len = w.to_minute > w.from_minute ? w.to_minute - w.from_minute
                                                : w.to_minute + 1440 - w.from_minute;
    int clash = -1;
    for (int k = 0; k < len && clash < 0; ++k) {
      clash = owner[(w.from_minute + k) % 1440];
    }
    if (clash < 0) {
      for (int k = 0; k < len; ++k) {
        owner[(w.from_minute + k) % 1440] = static_cast<int>(i);
      }
    } else {
      c.error(wit.mark, wit.path,
              hhmm(w.from_minute) + "-" + hhmm(w.to_minute) + " overlaps " + bs->path + "[" +
                  std::to_string(clash) + "]: windows must not overlap");
      continue;
    }
    up.bandwidth_schedule.push_back(w);
  }
}

}  // namespace fe::config::detail
