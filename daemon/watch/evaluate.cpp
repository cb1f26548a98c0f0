// The watcher's readiness decision for one export candidate (see watcher.hpp): list it, wait
// for writers to close, apply the completion rules (bulk manifest, marker, client log, settle),
// hold files found by a scan for scan_quiet, drop colliding and unusable names with a reason,
// and hand the export on once per distinct file set.
#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "service/log.hpp"
#include "watch/manifest.hpp"
#include "watch/watcher.hpp"
#include "watch/watcher_internal.hpp"

namespace fe::watch {

namespace fs = std::filesystem;
using namespace detail;

namespace {

// What completes an export under the enabled rules, for a person ("manifest.json naming every
// file, the marker .done or log.ndjson recording export_complete").
std::string rules_wanted(const CompletionRules& r) {
  std::vector<std::string> parts;
  if (r.bulk_manifest) parts.push_back(r.manifest_name + " naming every file");
  if (!r.marker.empty()) parts.push_back("the marker " + r.marker);
  if (r.client_log) parts.push_back(r.client_log_name + " recording export_complete");
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i)
    out += (i == 0 ? "" : i + 1 == parts.size() ? " or " : ", ") + parts[i];
  return out.empty() ? "none enabled" : out;
}

}  // namespace

// one piece: the readiness decision is one ordered sequence of gates (listing, open writers,
// completion rules, settle, scan_quiet, name collisions), each returning pending() with its
// reason, over the listing's maps (seen, data, others, unusable) that a split would pass around.
void Watcher::evaluate(const std::string& key) {
  auto it = exports_.find(key);
  if (it == exports_.end()) return;
  Tracked& t = *it->second;
  const auto now = Clock::now();
  const auto& rules = opt_.rules;

  ReadyExport ready;
  ready.path = t.path;
  ready.single_file = t.single_file;
  std::map<std::string, FileIdentity> seen;  // every entry whose change restarts the settle clock
  std::map<std::string, FileIdentity> data;  // candidate data files
  std::set<std::string> others;  // regular files that are neither metadata nor data candidates
  std::map<std::string, std::string> unusable;  // entries skipped while listing, with the reason

  if (t.single_file) {
    Kind k = kind_of(t.path);
    if (k != Kind::regular) {
      if (k != Kind::missing) report_skip(t.path, kind_name(k));
      remove_export(key);
      return;
    }
    auto id = identity_of(t.path);
    if (!id) return;
    seen[key] = *id;
    data[key] = *id;
    ready.name = stem_of(key);
    ready.rule = "file";
  } else {
    ready.name = key;
    Kind k = kind_of(t.path);
    if (k != Kind::directory) {
      if (k != Kind::missing) report_skip(t.path, kind_name(k));
      remove_export(key);
      return;
    }
    std::error_code ec;
    for (const auto& e : fs::directory_iterator(t.path, ec)) {
      std::string name = e.path().filename().string();
      bool metadata = name == rules.manifest_name || name == rules.client_log_name ||
                      (!rules.marker.empty() && name == rules.marker);
      Kind ek = kind_of(e.path());
      if (ek == Kind::directory) {
        // Nested files are not taken (their names would collide in the flat spool and S3
        // layout): the export is parked by the pipeline, saying so. An empty one is harmless.
        size_t entries = 0;
        std::error_code dec;
        for (auto it = fs::recursive_directory_iterator(e.path(), dec);
             !dec && it != fs::recursive_directory_iterator() && entries < 10000; it.increment(dec))
          if (!it->is_directory(dec)) ++entries;
        if (entries) ready.nested.push_back(name + "/ (" + std::to_string(entries) + " entries)");
        continue;
      }
      if (!metadata && is_temporary_name(name)) continue;
      if (!metadata && matches(name)) {
        if (auto why = name_problem(name); !why.empty()) {
          report_skip(e.path(), "unusable name (" + why + ")");
          unusable[name] = "unusable name (" + why + ")";
          continue;
        }
      }
      if (ek != Kind::regular) {
        if (ek != Kind::missing) {
          report_skip(e.path(), kind_name(ek));
          unusable[name] = kind_name(ek);
        }
        continue;
      }
      auto id = identity_of(e.path());
      if (!id) continue;
      seen[name] = *id;
      if (!metadata && matches(name))
        data[name] = *id;
      else if (!metadata && name_problem(name).empty())
        others.insert(name);
    }
  }

  if (seen != t.snapshot) {
    t.snapshot = seen;
    t.last_change = now;
  }
  if (!t.open_for_write.empty()) {
    // Only regular files that still exist count: a writer that deleted its file is gone, and a
    // FIFO, socket or symlink created under the name (IN_CREATE, never a close) is skipped, not
    // waited for (it would hold the export forever, "open for writing").
    std::string open;
    for (auto n = t.open_for_write.begin(); n != t.open_for_write.end();) {
      if (!t.single_file && kind_of(t.path / *n) != Kind::regular) {
        n = t.open_for_write.erase(n);
        continue;
      }
      if (open.empty()) open = *n;
      ++n;
    }
    if (!open.empty()) {
      // A writer that never closes (or truncate(1) by path, which modifies without opening, so
      // no close ever comes) would keep the export waiting silently: say so once, loudly.
      if (!t.open_since) t.open_since = now;
      auto waited = std::chrono::duration_cast<std::chrono::seconds>(now - *t.open_since);
      if (opt_.open_warn_after.count() > 0 && waited >= opt_.open_warn_after) {
        std::string why = "file open for writing for " + std::to_string(waited.count()) +
                          " s without a close: " + open;
        if (!t.open_warned) {
          t.open_warned = true;
          fe::log::warning(
              "export waiting: " + why +
                  " (taken once the writer closes it; truncate(1) by path never closes: move the "
                  "file out and back in, or restart fhir-edge)",
              {{"PIPELINE", opt_.pipeline},
               {"EXPORT_ID", ready.name},
               {"FHIR_FILE", (t.single_file ? t.path : t.path / open).string()}});
        }
        return pending(key, ready.name, "open_file", why);
      }
      return pending(key, ready.name, "open_file", "file open for writing: " + open);
    }
  }
  t.open_since.reset();
  t.open_warned = false;

  bool complete = false;
  std::string waiting_for = "waiting for a completion rule (" + rules_wanted(rules) + ")";
  std::string waiting_rule = enabled_rules();
  if (t.single_file) {
    complete = true;
  } else {
    if (rules.bulk_manifest && seen.count(rules.manifest_name)) {
      auto m = parse_bulk_manifest(t.path / rules.manifest_name);
      if (!m.manifest) {
        waiting_for = "bulk manifest " + rules.manifest_name + " is malformed: " + m.error;
        waiting_rule = "bulk_manifest";
        if (m.error != t.manifest_error) {
          t.manifest_error = m.error;
          fe::log::warning("malformed bulk-data manifest: " + m.error,
                           {{"PIPELINE", opt_.pipeline}, {"EXPORT_ID", ready.name}});
        }
      } else {
        t.manifest_error.clear();
        std::string missing;
        std::map<std::string, FileIdentity> named;
        for (const auto& f : m.manifest->files) {
          auto s = seen.find(f);
          if (s == seen.end()) {
            if (missing.empty()) missing = f;
          } else {
            named[f] = s->second;
          }
        }
        if (missing.empty()) {
          complete = true;
          ready.rule = "bulk_manifest";
          for (const auto& [n, id] : data)
            if (!named.count(n)) unusable[n] = "not named by the bulk manifest";
          for (const auto& [n, id] : named) others.erase(n);
          data = std::move(named);
        } else {
          // Another rule may still hold; keep looking.
          waiting_for = "manifest names " + missing + ", which is not there yet";
          waiting_rule = "bulk_manifest";
        }
      }
    }
    if (!complete && !rules.marker.empty() && seen.count(rules.marker)) {
      complete = true;
      ready.rule = "marker";
    }
    if (!complete && rules.client_log && seen.count(rules.client_log_name) &&
        client_log_complete(t.path / rules.client_log_name)) {
      complete = true;
      ready.rule = "client_log";
    }
    if (!complete && rules.settle.count() == 0)
      return pending(key, ready.name, waiting_rule, waiting_for);
  }
  if (rules.settle.count() > 0 && (!complete || t.single_file)) {
    auto due = t.last_change + rules.settle;
    if (now < due) {
      schedule_settle(key, due);
      return pending(key, ready.name, "settle",
                     "settling: no change for " + std::to_string(rules.settle.count()) +
                         " s (settle_seconds)");
    }
    if (!complete) ready.rule = "settle";
    complete = true;
  }
  if (data.empty()) return pending(key, ready.name, "no_data", "no data files");

  // Files whose writer state is unknown (found by a scan) must stay unchanged for scan_quiet.
  {
    std::string unsure;
    Clock::time_point due{};
    for (const auto& [name, id] : data) {
      if (t.known.count(name)) continue;
      auto u = t.unverified.find(name);
      if (u == t.unverified.end() || !(u->second.first == id)) {
        t.unverified[name] = {id, now};
        u = t.unverified.find(name);
      }
      if (now - u->second.second >= opt_.scan_quiet) {
        t.known.insert(name);
        t.unverified.erase(u);
        continue;
      }
      if (unsure.empty()) unsure = name;
      due = std::max(due, u->second.second + opt_.scan_quiet);
    }
    if (!unsure.empty()) {
      schedule_settle(key, due);
      return pending(key, ready.name, "scan_quiet",
                     "file found by a scan, waiting for it to stay unchanged (it may "
                     "still be open for writing): " +
                         unsure);
    }
  }

  // A compressed file and a plain one with the same plain name would both be the import object
  // <name>.ndjson: the plain one is taken, the compressed one skipped, saying so.
  for (auto d = data.begin(); d != data.end();) {
    std::string plain = plain_name(d->first);
    if (plain != d->first && data.count(plain)) {
      unusable[d->first] = "same import name as " + plain;
      d = data.erase(d);
    } else {
      ++d;
    }
  }
  if (!t.single_file) {
    std::string pats;
    for (const auto& p : opt_.patterns) pats += (pats.empty() ? "" : ", ") + p;
    for (const auto& n : others)
      if (!unusable.count(n)) unusable[n] = "does not match patterns (" + pats + ")";
    for (const auto& [n, why] : unusable) {
      ready.skipped.push_back({t.path / n, why});
      report_skip(t.path / n, why);  // logged once per file and reason
    }
  }
  for (const auto& [name, id] : data)
    ready.files.push_back({name, t.single_file ? t.path : t.path / name, id});
  if (!t.single_file) {
    for (const auto& meta : {rules.manifest_name, rules.client_log_name})
      if (seen.count(meta)) ready.metadata.push_back(t.path / meta);
  }
  auto same = [](const std::vector<TakenFile>& a, const std::vector<TakenFile>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i].name != b[i].name || !(a[i].identity == b[i].identity)) return false;
    return true;
  };
  not_waiting(key);
  if (t.reported && same(*t.reported, ready.files)) return;
  t.reported = ready.files;
  fe::log::info(
      "export ready (" + ready.rule + ", " + std::to_string(ready.files.size()) + " files)",
      {{"PIPELINE", opt_.pipeline}, {"EXPORT_ID", ready.name}});
  if (on_ready_) on_ready_(ready);
}

}  // namespace fe::watch
