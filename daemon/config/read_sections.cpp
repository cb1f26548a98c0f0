// The small sections (their stages' settings.hpp): spool, journal, watch, import, metrics, log.
#include <arpa/inet.h>

#include "config/readers.hpp"

namespace fe::config::detail {
namespace {

// metrics.listen: "HOST:PORT", "[v6]:PORT" or off.
void read_listen(Checker& c, const Item& it, Metrics& out) {
  if (c.is_null(it)) {
    out.enabled = false;
    return;
  }
  auto v = c.text(it);
  if (!v) {
    return;
  }
  if (*v == "off" || v->empty()) {
    out.enabled = false;
    return;
  }
  std::string host, port;
  std::smatch mm;
  if (std::regex_match(*v, mm, re("\\[([0-9A-Fa-f:.]+)\\]:([0-9]{1,5})"))) {
    host = mm[1].str();
    port = mm[2].str();
    in6_addr a6{};
    if (inet_pton(AF_INET6, host.c_str(), &a6) != 1) {
      host.clear();
    }
  } else if (std::regex_match(*v, mm, re("([0-9.]+|localhost):([0-9]{1,5})"))) {
    host = mm[1].str();
    port = mm[2].str();
    in_addr a4{};
    if (host != "localhost" && inet_pton(AF_INET, host.c_str(), &a4) != 1) {
      host.clear();
    }
  }
  int pn = port.empty() ? 0 : std::stoi(port);
  if (host.empty() || pn < 1 || pn > 65535) {
    c.error(it.mark, it.path,
            "expected HOST:PORT (e.g. 127.0.0.1:10464 or [::1]:10464) or off, got '" + *v + "'");
    return;
  }
  out.enabled = true;
  out.host = host;
  out.port = static_cast<std::uint16_t>(pn);
}

}  // namespace

void read_spool(Checker& c, const Item& it, Spool& out) {
  Map m(c, it.value, it.path, it.mark, {"dir", "max_bytes", "zstd_level", "keep_for"});
  if (m.ok()) {
    c.path(m, "dir", out.dir, false);
    c.size(m, "max_bytes", out.max_bytes, Bytes{64} << 20, ~Bytes{0});
    c.integer(m, "zstd_level", out.zstd_level, 1, 19);
    c.duration(m, "keep_for", out.keep_for, std::chrono::hours(24 * 3650));
  }
}

void read_journal(Checker& c, const Item& it, Journal& out) {
  Map m(c, it.value, it.path, it.mark, {"path"});
  if (m.ok()) {
    c.path(m, "path", out.path, false);
  }
}

void read_watch(Checker& c, const Item& it, Watch& out) {
  Map m(c, it.value, it.path, it.mark, {"rescan_interval", "scan_quiet"});
  if (m.ok()) {
    c.duration(m, "rescan_interval", out.rescan_interval, std::chrono::hours(24));
    c.duration_ms(m, "scan_quiet", out.scan_quiet, std::chrono::hours(1));
  }
}

void read_import(Checker& c, const Item& it, Import& out) {
  Map m(c, it.value, it.path, it.mark,
        {"poll_min", "poll_max", "min_imported_share", "batch_max_exports", "batch_max_bytes",
         "batch_max_wait"});
  if (!m.ok()) {
    return;
  }
  if (const Item* si = m.get("min_imported_share")) {
    if (auto v = c.text(*si)) {
      // "0.9" or "90%": a share of the export's resources, 0..1.
      std::string t = *v;
      double scale = 1.0;
      if (!t.empty() && t.back() == '%') {
        t.pop_back();
        scale = 100.0;
      }
      double d = -1;
      auto [p, ec] = std::from_chars(t.data(), t.data() + t.size(), d);
      if (t.empty() || ec != std::errc{} || p != t.data() + t.size()) {
        c.error(si->mark, si->path, "expected a share such as 0.9 or 90%, got '" + *v + "'");
      } else if (d / scale < 0 || d / scale > 1) {
        c.error(si->mark, si->path, "must be between 0 and 1 (0% and 100%), got '" + *v + "'");
      } else {
        out.min_imported_share = d / scale;
      }
    }
  }
  // Batching (docs/import.md "Batches"): 1 = off; at most 10,000 files per job either way.
  c.integer(m, "batch_max_exports", out.batch_max_exports, 1, 10000);
  c.size(m, "batch_max_bytes", out.batch_max_bytes, Bytes{0}, ~Bytes{0});
  c.duration(m, "batch_max_wait", out.batch_max_wait, std::chrono::hours(24));
  c.duration(m, "poll_min", out.poll_min, std::chrono::hours(1));
  c.duration(m, "poll_max", out.poll_max, std::chrono::hours(1));
  if (out.poll_min.count() < 1) {
    c.error(m.get("poll_min")->mark, m.get("poll_min")->path, "must be at least 1s");
  } else if (out.poll_max < out.poll_min) {
    const Item* at = m.get("poll_max") ? m.get("poll_max") : m.get("poll_min");
    c.error(at->mark, at->path, "poll_max must not be less than poll_min");
  }
}

void read_metrics(Checker& c, const Item& it, Metrics& out) {
  Map m(c, it.value, it.path, it.mark, {"listen"});
  if (m.ok()) {
    if (const Item* l = m.get("listen")) {
      read_listen(c, *l, out);
    }
  }
}

void read_log(Checker& c, const Item& it, Log& out) {
  Map m(c, it.value, it.path, it.mark, {"level", "format"});
  if (!m.ok()) {
    return;
  }
  if (const Item* l = m.get("level")) {
    if (auto v = c.text(*l)) {
      if (!fe::log::parse_level(*v, out.level)) {
        std::vector<std::string_view> names = {"error", "warning", "notice", "info", "debug"};
        std::string msg = "must be one of " + join(names, ", ") + ", got '" + *v + "'";
        if (auto s = suggest(*v, names); !s.empty()) {
          msg += "; did you mean '" + s + "'?";
        }
        c.error(l->mark, l->path, msg);
      }
    }
  }
  if (const Item* f = m.get("format")) {
    if (auto v = c.text(*f)) {
      if (!fe::log::parse_format(*v, out.format)) {
        std::vector<std::string_view> names = {"text", "json"};
        std::string msg = "must be one of " + join(names, ", ") + ", got '" + *v + "'";
        if (auto s = suggest(*v, names); !s.empty()) {
          msg += "; did you mean '" + s + "'?";
        }
        c.error(f->mark, f->path, msg);
      }
    }
  }
}

}  // namespace fe::config::detail
