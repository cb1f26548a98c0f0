// FHIR profiles, loading (profiles_internal.hpp): FHIR NPM packages (a directory or a .tgz read
// with libarchive, every tar dialect) and the built-in US Core and R4 core sets are read, their
// StructureDefinitions with a snapshot compiled into PNode trees and their FHIRPath constraints
// compiled, once. Problems are load errors or warnings in the LoadReport, never a crash.
#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <unordered_map>

#include <functional>
#include "fhir/fhirpath.hpp"
#include "fhir/internal.hpp"

#include "fhir/profiles_internal.hpp"

namespace fe::fhir::uscore_data {
extern const char kPackage[];
extern const char kVersion[];
extern const char kBlob[];
extern const std::size_t kBlobSize;
}  // namespace fe::fhir::uscore_data
namespace fe::fhir::core_profiles_data {
extern const char kPackage[];
extern const char kVersion[];
extern const char kBlob[];
extern const std::size_t kBlobSize;
}  // namespace fe::fhir::core_profiles_data

namespace fe::fhir {

namespace dom = simdjson::dom;
namespace fs = std::filesystem;

using namespace detail;

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

// Keys of the R4 core invariant table: evaluated on every resource by the core walk
// (validator.cpp), so a profile that repeats them (every snapshot inherits dom-2..5, ext-1,
// obs-6...) is not evaluated twice.
const std::set<std::string_view>& core_invariant_keys() {
  static const std::set<std::string_view> keys = [] {
    std::set<std::string_view> k;
    for (const auto& inv : fhirpath::core_invariants().all) k.insert(inv.key);
    return k;
  }();
  return keys;
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
    dom::array cons;
    if (el["constraint"].get(cons) == simdjson::SUCCESS)
      for (dom::element c : cons) {
        std::string_view key, sev, expr, human;
        if (c["key"].get(key) || c["expression"].get(expr)) continue;
        if (c["severity"].get(sev) || sev != "error") continue;
        // ele-1: the structural walk enforces it (no empty objects, a value or an extension).
        if (key == "ele-1" || core_invariant_keys().count(key)) continue;
        if (c["human"].get(human)) human = "";
        n->constraints.push_back(
            PConstraint{std::string(key), std::string(human), fhirpath::Expression::compile(expr)});
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
                            const schema::Schema& core, LoadReport& report, bool builtin) {
  ProfileSetPtr set(new ProfileSet, destroy_profiles);
  set->core = &core;
  std::unordered_map<std::string, dom::object> vss, css;
  struct Sd {
    std::string url;
    dom::object obj;
    size_t source;
  };
  std::vector<Sd> sds;
  // Sources in order: the packages (their value sets win over the built-in ones of the same
  // url), then the built-in US Core, one trimmed resource per line of the generated blob.
  std::vector<std::string> source_names;
  std::vector<std::vector<RawFile>> sources;
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
    source_names.push_back(p.string());
    sources.push_back(std::move(files));
  }
  // The built-in sets: US Core 3.1.x and the R4 core profiles, one trimmed resource per line.
  const size_t builtin_source = sources.size();
  auto add_builtin = [&](const char* package, const char* version, std::string_view blob) {
    std::vector<RawFile> files;
    const std::string name = std::string("built-in ") + package + "#" + version;
    for (size_t pos = 0; pos < blob.size();) {
      size_t nl = blob.find('\n', pos);
      if (nl == std::string_view::npos) nl = blob.size();
      if (nl > pos) files.push_back(RawFile{name, std::string(blob.substr(pos, nl - pos))});
      pos = nl + 1;
    }
    source_names.push_back(name);
    sources.push_back(std::move(files));
  };
  if (builtin) {
    add_builtin(uscore_data::kPackage, uscore_data::kVersion,
                std::string_view(uscore_data::kBlob, uscore_data::kBlobSize));
    add_builtin(core_profiles_data::kPackage, core_profiles_data::kVersion,
                std::string_view(core_profiles_data::kBlob, core_profiles_data::kBlobSize));
    set->builtin_name = std::string("US Core ") + uscore_data::kVersion;
  }
  for (size_t si = 0; si < sources.size(); si++) {
    for (auto& f : sources[si]) {
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
        sds.push_back(Sd{std::string(url), obj, si});
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
  for (auto& sd : sds) {
    std::string err;
    PNode* root = compile_sd(*set, sd.obj, err);
    if (!err.empty()) report.warnings.push_back("profile " + sd.url + ": " + err);
    if (!root) continue;
    std::string_view type, version;
    if (sd.obj["type"].get(type)) type = "";
    if (sd.obj["version"].get(version)) version = "";
    const bool is_builtin = builtin && sd.source >= builtin_source;
    set->profiles[sd.url].push_back(Profile{sd.url, std::string(version), std::string(type),
                                            source_names[sd.source], is_builtin, root});
    report.profiles++;
    if (is_builtin) report.builtin_profiles++;
  }
  for (auto& [url, obj] : vss) expand_value_set(*set, url, vss, css);
  report.value_sets = vss.size();
  size_t not_enum = 0;
  for (auto& [url, vs] : set->value_sets) not_enum += !vs.enumerable;
  // The built-in set's own (US Core's LOINC/SNOMED/CDC race filters...) are documented in
  // docs/validation.md; the warning is for what the operator added.
  if (not_enum && !packages.empty())
    report.warnings.push_back(std::to_string(not_enum) +
                              " package value set(s) use external terminologies (SNOMED CT, LOINC, "
                              "RxNorm...) and cannot be enumerated; required bindings to them are "
                              "not checked");
  return set;
}

}  // namespace fe::fhir
