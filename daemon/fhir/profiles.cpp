// strict: FHIR NPM packages (a directory or .tgz with package/package.json and JSON resources).
// StructureDefinitions with a snapshot are compiled into trees of constraints once, at load;
// each resource naming a loaded profile in meta.profile is then checked against it:
// cardinality, choice type restrictions, fixed[x]/pattern[x], required bindings (value sets from
// the packages and the core), and slicing with value/pattern discriminators (extension slices
// by url, and the extension's own profile when loaded). FHIRPath invariants are not evaluated.
#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <unordered_map>

#include "fhir/internal.hpp"

namespace fe::fhir {

namespace dom = simdjson::dom;
namespace fs = std::filesystem;

namespace {

struct PNode {
  std::string id, name;  // name: last path segment ("identifier", "value[x]")
  std::string slice;
  int min = 0, max = -1, base_min = 0, base_max = -1;  // -1: *
  std::vector<std::string> types;
  std::vector<std::string> type_profiles;
  dom::element fixed, pattern;  // null element when absent
  bool has_fixed = false, has_pattern = false;
  std::string binding_vs;  // required binding (url without version), or empty
  std::vector<std::pair<std::string, std::string>> discriminators;  // (type, path)
  bool closed = false;
  bool sliced = false;
  std::vector<PNode*> slices;
  std::vector<PNode*> children;
};

struct Profile {
  std::string url, type;
  PNode* root = nullptr;
};

struct PkgValueSet {
  std::set<std::string> systems;
  std::set<std::string> codes;
  bool enumerable = true;
};

std::string last_segment(std::string_view id) {
  size_t dot = id.rfind('.');
  return std::string(dot == std::string_view::npos ? id : id.substr(dot + 1));
}

std::string strip_version(std::string_view url) {
  return std::string(url.substr(0, url.find('|')));
}

std::string upper_first(std::string s) {
  if (!s.empty()) s[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(s[0])));
  return s;
}

bool deep_equal(dom::element a, dom::element b) {
  if (a.type() != b.type()) {
    // numbers may differ in representation (1 vs 1.0)
    double x, y;
    if (a.get(x) == simdjson::SUCCESS && b.get(y) == simdjson::SUCCESS) return x == y;
    return false;
  }
  switch (a.type()) {
    case dom::element_type::OBJECT: {
      dom::object oa = a.get_object().value_unsafe(), ob = b.get_object().value_unsafe();
      if (oa.size() != ob.size()) return false;
      for (auto [k, v] : oa) {
        dom::element w;
        if (ob[k].get(w) || !deep_equal(v, w)) return false;
      }
      return true;
    }
    case dom::element_type::ARRAY: {
      dom::array xa = a.get_array().value_unsafe(), xb = b.get_array().value_unsafe();
      if (xa.size() != xb.size()) return false;
      auto it = xb.begin();
      for (dom::element v : xa) {
        if (!deep_equal(v, *it)) return false;
        ++it;
      }
      return true;
    }
    case dom::element_type::STRING:
      return a.get_string().value_unsafe() == b.get_string().value_unsafe();
    case dom::element_type::BOOL:
      return a.get_bool().value_unsafe() == b.get_bool().value_unsafe();
    case dom::element_type::NULL_VALUE:
      return true;
    default: {
      double x = 0, y = 0;
      if (a.get(x) || b.get(y)) return false;
      return x == y;
    }
  }
}

// FHIR pattern[x]: every property of the pattern is in the instance with a matching value;
// every item of a pattern array matches some item of the instance array.
bool pattern_match(dom::element pat, dom::element inst) {
  if (pat.type() == dom::element_type::OBJECT) {
    dom::object io;
    if (inst.get(io)) return false;
    for (auto [k, v] : dom::object(pat.get_object().value_unsafe())) {
      dom::element w;
      if (io[k].get(w) || !pattern_match(v, w)) return false;
    }
    return true;
  }
  if (pat.type() == dom::element_type::ARRAY) {
    dom::array ia;
    if (inst.get(ia)) return false;
    for (dom::element p : dom::array(pat.get_array().value_unsafe())) {
      bool found = false;
      for (dom::element i : ia)
        if (pattern_match(p, i)) {
          found = true;
          break;
        }
      if (!found) return false;
    }
    return true;
  }
  return deep_equal(pat, inst);
}

std::string short_json(dom::element e) {
  std::string s = simdjson::minify(e);
  return shorten(s, 120);
}

}  // namespace

class ProfileSet {
 public:
  std::vector<std::unique_ptr<dom::parser>> docs;  // keep the parsed definitions alive
  std::vector<std::unique_ptr<PNode>> nodes;
  std::unordered_map<std::string, Profile> profiles;        // by url
  std::unordered_map<std::string, PkgValueSet> value_sets;  // package value sets by url
  const schema::Schema* core = nullptr;
};

void destroy_profiles(ProfileSet* p) {
  delete p;
}

namespace {

// ---- loading ------------------------------------------------------------------------------------

struct RawFile {
  std::string name;
  std::string content;
};

// A package .tgz through libarchive: every tar dialect npm and GNU/BSD tar write (ustar, GNU
// long names ('L' records), pax extended headers, sparse entries...), so a resource whose path is
// over 100 characters is read like any other (the hand-written ustar reader skipped it in
// silence). Streamed entry by entry; only the .json entries are kept, bounded in total.
bool read_tgz(const fs::path& path, std::vector<RawFile>& out, std::string& err) {
  constexpr size_t kMaxTotal = size_t{512} << 20;
  struct archive* a = archive_read_new();
  archive_read_support_filter_all(a);
  archive_read_support_format_tar(a);
  archive_read_support_format_gnutar(a);
  std::unique_ptr<struct archive, int (*)(struct archive*)> guard(a, archive_read_free);
  if (archive_read_open_filename(a, path.c_str(), 1 << 16) != ARCHIVE_OK) {
    err = path.string() + ": cannot read package: " + archive_error_string(a);
    return false;
  }
  size_t total = 0;
  struct archive_entry* e = nullptr;
  int rc;
  while ((rc = archive_read_next_header(a, &e)) == ARCHIVE_OK || rc == ARCHIVE_WARN) {
    const char* pn = archive_entry_pathname_utf8(e);
    if (!pn) pn = archive_entry_pathname(e);
    std::string name = pn ? pn : "";
    if (archive_entry_filetype(e) != AE_IFREG || !name.ends_with(".json")) {
      archive_read_data_skip(a);
      continue;
    }
    auto size = archive_entry_size_is_set(e) ? static_cast<size_t>(archive_entry_size(e)) : 0;
    if (total + size > kMaxTotal) {
      err = path.string() + ": package larger than 512 MiB uncompressed";
      return false;
    }
    std::string content;
    content.reserve(size);
    char buf[1 << 16];
    la_ssize_t n;
    while ((n = archive_read_data(a, buf, sizeof buf)) > 0) {
      content.append(buf, static_cast<size_t>(n));
      if (total + content.size() > kMaxTotal) {
        err = path.string() + ": package larger than 512 MiB uncompressed";
        return false;
      }
    }
    if (n < 0) {
      err = path.string() + ": " + name + ": " + archive_error_string(a);
      return false;
    }
    total += content.size();
    out.push_back(RawFile{std::move(name), std::move(content)});
  }
  if (rc != ARCHIVE_EOF) {
    err = path.string() + ": not a valid package archive (" +
          (archive_error_string(a) ? archive_error_string(a) : "?") + ")";
    return false;
  }
  return true;
}

bool read_dir(const fs::path& dir, std::vector<RawFile>& out, std::string& err) {
  fs::path root = fs::exists(dir / "package" / "package.json") ? dir / "package" : dir;
  if (!fs::exists(root / "package.json")) {
    err = dir.string() + ": not a FHIR package (no package/package.json or package.json)";
    return false;
  }
  std::error_code ec;
  for (auto& e : fs::directory_iterator(root, ec)) {
    if (!e.is_regular_file() || e.path().extension() != ".json") continue;
    std::ifstream in(e.path(), std::ios::binary);
    std::string content((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    out.push_back(RawFile{e.path().string(), std::move(content)});
  }
  if (ec) {
    err = root.string() + ": " + ec.message();
    return false;
  }
  return true;
}

int parse_max(std::string_view m) {
  if (m == "*") return -1;
  int v = 0;
  for (char c : m) v = v * 10 + (c - '0');
  return v;
}

PNode* compile_sd(ProfileSet& set, dom::object sd, std::string& err) {
  dom::array elements;
  if (sd["snapshot"]["element"].get(elements)) return nullptr;
  std::unordered_map<std::string, PNode*> by_id;
  PNode* root = nullptr;
  for (dom::element el : elements) {
    std::string_view id, path;
    if (el["id"].get(id) && el["path"].get(id)) continue;
    if (el["path"].get(path)) path = id;
    auto node = std::make_unique<PNode>();
    PNode* n = node.get();
    set.nodes.push_back(std::move(node));
    n->id = std::string(id);
    std::string last = last_segment(id);
    size_t colon = last.find(':');
    n->name = colon == std::string::npos ? last : last.substr(0, colon);
    std::string_view slice;
    if (el["sliceName"].get(slice) == simdjson::SUCCESS) n->slice = std::string(slice);
    int64_t mn = 0;
    if (el["min"].get(mn) == simdjson::SUCCESS) n->min = static_cast<int>(mn);
    std::string_view mx;
    if (el["max"].get(mx) == simdjson::SUCCESS) n->max = parse_max(mx);
    if (el["base"]["min"].get(mn) == simdjson::SUCCESS) n->base_min = static_cast<int>(mn);
    if (el["base"]["max"].get(mx) == simdjson::SUCCESS) n->base_max = parse_max(mx);
    dom::array types;
    if (el["type"].get(types) == simdjson::SUCCESS) {
      for (dom::element t : types) {
        std::string_view code;
        if (t["code"].get(code) == simdjson::SUCCESS) n->types.emplace_back(code);
        dom::array profs;
        if (t["profile"].get(profs) == simdjson::SUCCESS)
          for (dom::element p : profs) {
            std::string_view u;
            if (p.get(u) == simdjson::SUCCESS) n->type_profiles.push_back(strip_version(u));
          }
      }
    }
    for (auto [k, v] : dom::object(el.get_object().value_unsafe())) {
      if (k.starts_with("fixed")) {
        n->fixed = v;
        n->has_fixed = true;
      } else if (k.starts_with("pattern")) {
        n->pattern = v;
        n->has_pattern = true;
      }
    }
    std::string_view strength, vs;
    if (el["binding"]["strength"].get(strength) == simdjson::SUCCESS && strength == "required" &&
        el["binding"]["valueSet"].get(vs) == simdjson::SUCCESS)
      n->binding_vs = strip_version(vs);
    dom::object slicing;
    if (el["slicing"].get(slicing) == simdjson::SUCCESS) {
      n->sliced = true;
      std::string_view rules;
      n->closed = slicing["rules"].get(rules) == simdjson::SUCCESS && rules == "closed";
      dom::array ds;
      if (slicing["discriminator"].get(ds) == simdjson::SUCCESS)
        for (dom::element d : ds) {
          std::string_view ty, p;
          if (d["type"].get(ty) == simdjson::SUCCESS && d["path"].get(p) == simdjson::SUCCESS)
            n->discriminators.emplace_back(std::string(ty), std::string(p));
        }
    }
    by_id[n->id] = n;
    if (!root) {
      root = n;
      continue;
    }
    // Parent: a slice hangs off its sliced element; any other element off the id before the
    // last '.'.
    if (colon != std::string::npos && last.find('.') == std::string::npos &&
        n->id.size() > last.size()) {
      std::string base = n->id.substr(0, n->id.size() - (last.size() - colon));
      auto it = by_id.find(base);
      if (it != by_id.end() && !n->slice.empty()) {
        it->second->slices.push_back(n);
        continue;
      }
    }
    size_t dot = n->id.rfind('.');
    if (dot == std::string::npos) continue;
    auto it = by_id.find(n->id.substr(0, dot));
    if (it == by_id.end()) {
      err = "element " + n->id + " has no parent in the snapshot";
      continue;
    }
    it->second->children.push_back(n);
  }
  return root;
}

void expand_value_set(ProfileSet& set, const std::string& url,
                      const std::unordered_map<std::string, dom::object>& vss,
                      const std::unordered_map<std::string, dom::object>& css, int depth = 0) {
  if (set.value_sets.count(url) || depth > 8) return;
  PkgValueSet& out = set.value_sets[url];
  auto it = vss.find(url);
  if (it == vss.end()) {
    out.enumerable = false;
    return;
  }
  std::function<void(dom::array)> add_all = [&](dom::array concepts) {
    for (dom::element c : concepts) {
      std::string_view code;
      if (c["code"].get(code) == simdjson::SUCCESS) out.codes.emplace(code);
      dom::array sub;
      if (c["concept"].get(sub) == simdjson::SUCCESS) add_all(sub);
    }
  };
  dom::array includes;
  if (it->second["compose"]["include"].get(includes)) {
    out.enumerable = false;
    return;
  }
  for (dom::element inc : includes) {
    dom::array imports;
    if (inc["valueSet"].get(imports) == simdjson::SUCCESS) {
      for (dom::element i : imports) {
        std::string_view u;
        if (i.get(u)) continue;
        std::string su = strip_version(u);
        int32_t core_ix = set.core->find_value_set(su);
        if (core_ix >= 0 &&
            set.core->value_sets[static_cast<size_t>(core_ix)].mode == schema::VsMode::enumerated) {
          const auto& cv = set.core->value_sets[static_cast<size_t>(core_ix)];
          for (auto s : cv.systems) out.systems.emplace(s);
          for (auto c : cv.codes) out.codes.emplace(c);
          continue;
        }
        expand_value_set(set, su, vss, css, depth + 1);
        const PkgValueSet& sub = set.value_sets[su];
        if (!sub.enumerable) out.enumerable = false;
        out.systems.insert(sub.systems.begin(), sub.systems.end());
        out.codes.insert(sub.codes.begin(), sub.codes.end());
      }
    }
    std::string_view system;
    if (inc["system"].get(system)) continue;
    out.systems.emplace(system);
    dom::array concepts, filters;
    if (inc["concept"].get(concepts) == simdjson::SUCCESS) {
      for (dom::element c : concepts) {
        std::string_view code;
        if (c["code"].get(code) == simdjson::SUCCESS) out.codes.emplace(code);
      }
      continue;
    }
    if (inc["filter"].get(filters) == simdjson::SUCCESS) {
      out.enumerable = false;  // SNOMED/LOINC filters need a terminology server
      continue;
    }
    auto cs = css.find(std::string(system));
    dom::array all;
    std::string_view content;
    if (cs != css.end() && cs->second["concept"].get(all) == simdjson::SUCCESS &&
        (cs->second["content"].get(content) || content == "complete")) {
      add_all(all);
    } else {
      out.enumerable = false;  // whole external code system (RxNorm, NUCC, CPT...)
    }
  }
}

}  // namespace

ProfileSetPtr load_profiles(const std::vector<std::filesystem::path>& packages,
                            const schema::Schema& core, LoadReport& report) {
  ProfileSetPtr set(new ProfileSet, destroy_profiles);
  set->core = &core;
  std::unordered_map<std::string, dom::object> vss, css;
  std::vector<std::pair<std::string, dom::object>> sds;
  for (const auto& p : packages) {
    std::vector<RawFile> files;
    std::string err;
    bool ok = fs::is_directory(p) ? read_dir(p, files, err)
              : fs::exists(p)     ? read_tgz(p, files, err)
                                  : (err = p.string() + ": no such file or directory", false);
    if (!ok) {
      report.errors.push_back(err);
      continue;
    }
    for (auto& f : files) {
      auto parser = std::make_unique<dom::parser>();
      dom::element doc;
      if (auto e = parser->parse(f.content).get(doc)) {
        report.errors.push_back(f.name + ": invalid JSON: " + simdjson::error_message(e));
        continue;
      }
      dom::object obj;
      std::string_view rt, url;
      if (doc.get(obj) || obj["resourceType"].get(rt)) continue;  // package.json, .index.json
      if (obj["url"].get(url)) continue;
      if (rt == "StructureDefinition") {
        if (obj["snapshot"].error()) {
          report.warnings.push_back(f.name + ": StructureDefinition " + std::string(url) +
                                    " has no snapshot; skipped");
          continue;
        }
        sds.emplace_back(std::string(url), obj);
      } else if (rt == "ValueSet") {
        vss.emplace(std::string(url), obj);
      } else if (rt == "CodeSystem") {
        css.emplace(std::string(url), obj);
      } else {
        continue;
      }
      set->docs.push_back(std::move(parser));
    }
  }
  for (auto& [url, obj] : sds) {
    std::string err;
    PNode* root = compile_sd(*set, obj, err);
    if (!err.empty()) report.warnings.push_back("profile " + url + ": " + err);
    if (!root) continue;
    std::string_view type;
    if (obj["type"].get(type)) type = "";
    set->profiles[url] = Profile{url, std::string(type), root};
  }
  for (auto& [url, obj] : vss) expand_value_set(*set, url, vss, css);
  report.profiles = set->profiles.size();
  report.value_sets = vss.size();
  size_t not_enum = 0;
  for (auto& [url, vs] : set->value_sets) not_enum += !vs.enumerable;
  if (not_enum)
    report.warnings.push_back(std::to_string(not_enum) +
                              " package value set(s) use external terminologies (SNOMED CT, LOINC, "
                              "RxNorm...) and cannot be enumerated; required bindings to them are "
                              "not checked");
  return set;
}

// ---- checking -----------------------------------------------------------------------------------

namespace {

class ProfileChecker {
 public:
  ProfileChecker(const ProfileSet& set, Scratch::Impl& sc, IssueSink& sink)
      : set_(set), sc_(sc), sink_(sink) {}

  void check(const Profile& p, dom::object resource) { node(*p.root, resource, p.url, 0); }

 private:
  struct Value {
    dom::element v;
    std::string key;  // the JSON key it came from (for the path and choice types)
    int64_t index;
  };

  // Values of `child` in `obj`: arrays flattened; for value[x], whichever variant is present.
  std::vector<Value> values(dom::object obj, const PNode& child) {
    std::vector<Value> out;
    auto take = [&](std::string_view key, dom::element v) {
      dom::array arr;
      if (v.get(arr) == simdjson::SUCCESS) {
        int64_t i = 0;
        for (dom::element x : arr) out.push_back(Value{x, std::string(key), i++});
      } else {
        out.push_back(Value{v, std::string(key), -1});
      }
    };
    if (child.name.ends_with("[x]")) {
      std::string base = child.name.substr(0, child.name.size() - 3);
      for (auto [k, v] : obj)
        if (k.size() > base.size() && k.starts_with(base) &&
            std::isupper(static_cast<unsigned char>(k[base.size()])))
          take(k, v);
    } else {
      dom::element v;
      if (obj[child.name].get(v) == simdjson::SUCCESS) take(child.name, v);
    }
    return out;
  }

  void add(std::string_view code, std::string msg, const std::string& profile) {
    sink_.add(Severity::error, code, std::move(msg) + " (profile " + profile + ")");
  }

  struct Seg {
    std::vector<PathSeg>& path;
    Seg(std::vector<PathSeg>& p, const std::string& k, int64_t i) : path(p) {
      path.push_back(PathSeg{k, i});
    }
    ~Seg() { path.pop_back(); }
  };

  bool matches_discriminators(const PNode& slice, const PNode& sliced, const Value& val) {
    dom::element v = val.v;
    for (const auto& [type, dpath] : sliced.discriminators) {
      if (type == "type" && dpath == "$this" && sliced.name.ends_with("[x]")) {
        // Type slices of a choice (value[x]:valueCode): the JSON key names the type.
        std::string t = val.key.substr(sliced.name.size() - 3);
        bool ok = false;
        for (const auto& ty : slice.types) ok |= upper_first(ty) == t;
        if (!ok) return false;
        continue;
      }
      if (type != "value" && type != "pattern") return false;  // profile/exists: unsupported
      // Find the constraint at dpath inside the slice (or on the slice itself for $this).
      const PNode* at = &slice;
      dom::element target = v;
      bool ok = true;
      if (dpath != "$this") {
        size_t start = 0;
        while (ok && start <= dpath.size()) {
          size_t dot = dpath.find('.', start);
          std::string seg =
              dpath.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
          const PNode* next = nullptr;
          for (const PNode* c : at->children)
            if (c->name == seg) next = c;
          if (!next) {
            // Extension slices name their url through the extension's profile.
            if (seg == "url" && !slice.type_profiles.empty() && dot == std::string::npos) {
              std::string_view url;
              return target["url"].get(url) == simdjson::SUCCESS && url == slice.type_profiles[0];
            }
            return false;
          }
          at = next;
          dom::element sub;
          if (target[seg].get(sub)) {
            // collections (coding.code): the pattern must hold for some item
            return collection_match(v, dpath, *at);
          }
          target = sub;
          if (dot == std::string::npos) break;
          start = dot + 1;
        }
      }
      if (at->has_fixed) {
        if (!deep_equal(at->fixed, target) && !collection_match(v, dpath, *at)) return false;
      } else if (at->has_pattern) {
        if (!pattern_match(at->pattern, target) && !collection_match(v, dpath, *at)) return false;
      } else if (!at->binding_vs.empty()) {
        return false;  // binding discriminators need terminology; treat as not matching
      } else {
        return false;
      }
    }
    return !sliced.discriminators.empty();
  }

  // Discriminator paths through arrays (category.coding.code): true when any item matches.
  bool collection_match(dom::element v, const std::string& dpath, const PNode& at) {
    std::vector<dom::element> cur{v};
    size_t start = 0;
    while (start <= dpath.size()) {
      size_t dot = dpath.find('.', start);
      std::string seg =
          dpath.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      std::vector<dom::element> next;
      for (dom::element c : cur) {
        dom::element sub;
        if (c[seg].get(sub)) continue;
        dom::array arr;
        if (sub.get(arr) == simdjson::SUCCESS)
          for (dom::element x : arr) next.push_back(x);
        else
          next.push_back(sub);
      }
      cur.swap(next);
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    for (dom::element c : cur) {
      if (at.has_fixed && deep_equal(at.fixed, c)) return true;
      if (at.has_pattern && pattern_match(at.pattern, c)) return true;
    }
    return false;
  }

  void binding(const PNode& n, dom::element v, const std::string& profile) {
    if (n.binding_vs.empty()) return;
    const schema::Schema& core = *set_.core;
    auto in_set = [&](std::string_view system, std::string_view code, bool has_system) -> int {
      // 1 yes, 0 no, -1 unknown (not enumerable)
      auto it = set_.value_sets.find(n.binding_vs);
      if (it != set_.value_sets.end()) {
        if (!it->second.enumerable) return -1;
        if (has_system && !it->second.systems.empty() &&
            !it->second.systems.count(std::string(system)))
          return 0;
        return it->second.codes.count(std::string(code)) ? 1 : 0;
      }
      int32_t ci = core.find_value_set(n.binding_vs);
      if (ci < 0) return -1;
      const auto& cv = core.value_sets[static_cast<size_t>(ci)];
      if (cv.mode != schema::VsMode::enumerated) return -1;
      if (has_system && !cv.has_system(system)) return 0;
      return cv.contains(code) ? 1 : 0;
    };
    std::string_view code, system;
    if (v.get(code) == simdjson::SUCCESS) {
      if (in_set({}, code, false) == 0)
        add(code::code_invalid,
            "code '" + shorten(code) + "' is not in the required value set " + n.binding_vs,
            profile);
      return;
    }
    std::vector<dom::element> codings;
    dom::array arr;
    if (v["coding"].get(arr) == simdjson::SUCCESS) {
      for (dom::element c : arr) codings.push_back(c);
    } else if (v["code"].error() == simdjson::SUCCESS) {
      codings.push_back(v);
    } else if (n.types.size() == 1 && n.types[0] == "CodeableConcept") {
      add(code::code_invalid,
          "no coding, and one from the required value set " + n.binding_vs + " is needed", profile);
      return;
    }
    bool any = false, unknown = false;
    for (dom::element c : codings) {
      bool has_sys = c["system"].get(system) == simdjson::SUCCESS;
      if (c["code"].get(code)) continue;
      int r = in_set(system, code, has_sys);
      if (r == 1) any = true;
      if (r < 0) unknown = true;
    }
    if (!any && !unknown)
      add(code::code_invalid, "no coding from the required value set " + n.binding_vs, profile);
  }

  void node(const PNode& n, dom::object obj, const std::string& profile, int depth) {
    if (depth > 64) return;
    for (const PNode* c : n.children) {
      std::vector<Value> vals = values(obj, *c);
      const int count = static_cast<int>(vals.size());
      const bool tighter_min = c->min > c->base_min;
      const bool tighter_max = c->max >= 0 && (c->base_max < 0 || c->max < c->base_max);
      if (tighter_min && count < c->min) {
        sink_.add(Severity::error, code::required,
                  "missing '" + c->name + "': the profile requires at least " +
                      std::to_string(c->min) + " (profile " + profile + ")",
                  c->name);
      }
      if (tighter_max && count > c->max) {
        sink_.add(Severity::error, code::structure,
                  "'" + c->name + "' has " + std::to_string(count) +
                      " value(s); the profile allows at most " + std::to_string(c->max) +
                      " (profile " + profile + ")",
                  c->name);
      }
      for (const Value& v : vals) {
        Seg seg(sc_.path, v.key, v.index);
        // Choice restricted by the profile: the variant's type must be allowed.
        if (c->name.ends_with("[x]") && !c->types.empty()) {
          std::string t = v.key.substr(c->name.size() - 3);
          bool allowed = false;
          for (const auto& ty : c->types) allowed |= upper_first(ty) == t;
          if (!allowed) {
            add(code::structure, "type " + t + " is not allowed for " + c->name, profile);
            continue;
          }
        }
        if (c->has_fixed && !deep_equal(c->fixed, v.v))
          add(code::value, "value must be exactly " + short_json(c->fixed), profile);
        if (c->has_pattern && !pattern_match(c->pattern, v.v))
          add(code::value, "value must match the pattern " + short_json(c->pattern), profile);
        binding(*c, v.v, profile);
        dom::object sub;
        if (v.v.get(sub) == simdjson::SUCCESS) {
          node(*c, sub, profile, depth + 1);
          // An extension (slice) with its own loaded profile: check it too.
          if (c->types.size() == 1 && c->types[0] == "Extension" && c->slices.empty())
            for (const auto& tp : c->type_profiles) {
              auto it = set_.profiles.find(tp);
              if (it != set_.profiles.end()) node(*it->second.root, sub, tp, depth + 1);
            }
        }
      }
      if (!c->slices.empty()) slicing(*c, vals, obj, profile, depth);
    }
  }

  void slicing(const PNode& sliced, const std::vector<Value>& vals, dom::object,
               const std::string& profile, int depth) {
    bool supported = !sliced.discriminators.empty();
    for (const auto& d : sliced.discriminators)
      supported &= d.first == "value" || d.first == "pattern" ||
                   (d.first == "type" && d.second == "$this" && sliced.name.ends_with("[x]"));
    if (!supported) return;  // type/profile/exists discriminators: not evaluated
    std::vector<int> assigned(vals.size(), -1);
    for (size_t s = 0; s < sliced.slices.size(); s++) {
      const PNode& slice = *sliced.slices[s];
      int count = 0;
      for (size_t i = 0; i < vals.size(); i++) {
        if (assigned[i] >= 0 || !matches_discriminators(slice, sliced, vals[i])) continue;
        assigned[i] = static_cast<int>(s);
        count++;
        Seg seg(sc_.path, vals[i].key, vals[i].index);
        if (slice.has_fixed && !deep_equal(slice.fixed, vals[i].v))
          add(code::value,
              "slice '" + slice.slice + "': value must be exactly " + short_json(slice.fixed),
              profile);
        if (slice.has_pattern && !pattern_match(slice.pattern, vals[i].v))
          add(code::value,
              "slice '" + slice.slice + "': value must match " + short_json(slice.pattern),
              profile);
        binding(slice, vals[i].v, profile);
        dom::object sub;
        if (vals[i].v.get(sub) == simdjson::SUCCESS) {
          node(slice, sub, profile, depth + 1);
          for (const auto& tp : slice.type_profiles) {
            auto it = set_.profiles.find(tp);
            if (it != set_.profiles.end()) node(*it->second.root, sub, tp, depth + 1);
          }
        }
      }
      if (count < slice.min)
        sink_.add(Severity::error, code::required,
                  "missing required slice '" + slice.slice + "' of " + sliced.name + " (at least " +
                      std::to_string(slice.min) + ", found " + std::to_string(count) +
                      ") (profile " + profile + ")",
                  sliced.name);
      if (slice.max >= 0 && count > slice.max)
        sink_.add(Severity::error, code::structure,
                  "slice '" + slice.slice + "' of " + sliced.name + " allows at most " +
                      std::to_string(slice.max) + ", found " + std::to_string(count) +
                      " (profile " + profile + ")",
                  sliced.name);
    }
    if (sliced.closed)
      for (size_t i = 0; i < vals.size(); i++)
        if (assigned[i] < 0) {
          Seg seg(sc_.path, vals[i].key, vals[i].index);
          add(code::structure, "value matches no slice of closed slicing on " + sliced.name,
              profile);
        }
  }

  const ProfileSet& set_;
  Scratch::Impl& sc_;
  IssueSink& sink_;
};

}  // namespace

void check_profiles(const ProfileSet& set, const schema::Schema&, dom::object resource,
                    std::string_view resource_type, Scratch::Impl& sc, IssueSink& sink) {
  dom::array profiles;
  if (resource["meta"]["profile"].get(profiles)) return;
  ProfileChecker checker(set, sc, sink);
  for (dom::element p : profiles) {
    std::string_view url;
    if (p.get(url)) continue;
    std::string key = strip_version(url);
    auto it = set.profiles.find(key);
    if (it == set.profiles.end()) {
      sink.add(Severity::warning, code::not_supported,
               "profile " + shorten(url, 200) +
                   " is not in the loaded packages; validated against R4 only",
               "meta.profile");
      continue;
    }
    if (it->second.type != resource_type) {
      sink.add(
          Severity::error, code::structure,
          "profile " + key + " is for " + it->second.type + ", not " + std::string(resource_type),
          "meta.profile");
      continue;
    }
    checker.check(it->second, resource);
  }
}

}  // namespace fe::fhir
