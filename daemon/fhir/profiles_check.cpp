// FHIR profiles, checking (profiles_internal.hpp): each resource naming a loaded profile in
// meta.profile is checked against it: cardinality, choice type restrictions, fixed[x]/pattern[x],
// required bindings, slicing with value/pattern discriminators, extension profiles, and the
// profile's invariants. A profile or version that is not loaded is a warning, never an error.
#include <archive.h>
#include <archive_entry.h>

#include <algorithm>
#include <cstring>
#include <fstream>
#include <map>
#include <set>
#include <unordered_map>

#include "fhir/fhirpath.hpp"
#include "fhir/internal.hpp"

#include "fhir/profiles_internal.hpp"

namespace fe::fhir {

namespace fs = std::filesystem;
using namespace detail;

// ---- checking -----------------------------------------------------------------------------------

namespace {

class ProfileChecker {
 public:
  ProfileChecker(const ProfileSet& set, Scratch::Impl& sc, IssueSink& sink, dom::element resource,
                 uint32_t resource_type)
      : set_(set), sc_(sc), sink_(sink), resource_(resource), resource_type_(resource_type) {}

  void check(const Profile& p, dom::object resource) {
    const std::string name = p.version.empty() ? p.url : p.url + "|" + p.version;
    invariants(*p.root, resource_, {}, false, resource_type_, name, nullptr);
    node(*p.root, resource, resource_type_, name, 0);
  }

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

  // The profile's own FHIRPath constraints on one node (`type`: its schema type; `ext`: the
  // `_name` sibling of a primitive). A failure is an `invariant` error, one the engine cannot
  // evaluate a `not-supported` warning naming it; both counted with the core invariants.
  // `skip`: constraints of the sliced element, already evaluated on this node (a slice repeats
  // them).
  void invariants(const PNode& n, dom::element v, dom::element ext, bool has_ext, uint32_t type,
                  const std::string& profile, const PNode* skip) {
    for (const PConstraint& c : n.constraints) {
      if (skip && std::any_of(skip->constraints.begin(), skip->constraints.end(),
                              [&](const PConstraint& o) { return o.key == c.key; }))
        continue;
      fhirpath::Evaluation e;
      if (type == kNoType) {
        e = {fhirpath::Outcome::not_evaluated, "the element is not in the R4 definitions"};
      } else {
        fhirpath::Focus f;
        f.node = v;
        f.ext = ext;
        f.has_ext = has_ext;
        f.type = type;
        f.resource = f.root = resource_;
        f.resource_type = f.root_type = resource_type_;
        e = fhirpath::evaluate_invariant(c.expr, f);
      }
      if (e.outcome == fhirpath::Outcome::not_evaluated) {
        sc_.inv_not_evaluated++;
        sink_.add(
            Severity::warning, code::not_supported,
            "invariant " + c.key + " of profile " + profile + " not evaluated (" + e.reason + ")");
        continue;
      }
      sc_.inv_evaluated++;
      if (e.outcome == fhirpath::Outcome::fail) {
        sc_.inv_failed++;
        sink_.add(Severity::error, code::invariant,
                  c.key + ": " + c.human + " (invariant " + c.expr.text() + ") (profile " +
                      profile + ")");
      }
    }
  }

  // Schema type of the JSON key `key` of an object of type `type` (kNoType when unknown).
  uint32_t child_type(uint32_t type, std::string_view key) const {
    if (type == kNoType) return kNoType;
    int32_t ei = set_.core->find(type, key);
    return ei < 0 ? kNoType : set_.core->elements[static_cast<size_t>(ei)].type;
  }

  // `_key` (or `_key[index]`) of a primitive: its id/extensions, for hasValue() and extension().
  bool primitive_ext(dom::object obj, uint32_t type, const Value& v, dom::element& ext) const {
    if (type == kNoType || set_.core->types[type].kind != schema::Kind::primitive) return false;
    dom::element u;
    if (obj["_" + v.key].get(u)) return false;
    if (v.index < 0) {
      ext = u;
      return !u.is_null();
    }
    dom::array ua;
    if (u.get(ua)) return false;
    int64_t i = 0;
    for (dom::element x : ua)
      if (i++ == v.index) {
        ext = x;
        return !x.is_null();
      }
    return false;
  }

  struct Seg {
    PathStack& path;
    Seg(PathStack& p, const std::string& k, int64_t i) : path(p) { path.push_back(PathSeg{k, i}); }
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
      bool ok = true, via_slices = false;
      if (dpath != "$this") {
        size_t start = 0;
        while (ok && !via_slices && start <= dpath.size()) {
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
            if (!sliced_values_match(slice, v, dpath)) return false;
            via_slices = true;  // matched through the slice's own slices (R4 bp)
            break;
          }
          at = next;
          dom::element sub;
          if (target[seg].get(sub)) {
            // collections (coding.code): the pattern must hold for some item
            if (collection_match(v, dpath, *at)) break;
            if (!sliced_values_match(slice, v, dpath)) return false;
            via_slices = true;
            break;
          }
          target = sub;
          if (dot == std::string::npos) break;
          start = dot + 1;
        }
      }
      if (via_slices) continue;
      if (!at->has_fixed && !at->has_pattern && at->binding_vs.empty()) {
        if (!sliced_values_match(slice, v, dpath)) return false;
      } else if (at->has_fixed) {
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

  // The discriminator's value set inside a required slice of the slice (R4 bp: component sliced
  // by code.coding.code, SystolicBP fixing it in code.coding:SBPCode.code, not code.coding.code),
  // as the HL7 validator resolves it: some item along the path holds one of those values.
  bool sliced_values_match(const PNode& slice, dom::element v, const std::string& dpath) {
    std::vector<const PNode*> cur{&slice};
    size_t start = 0;
    while (start <= dpath.size()) {
      size_t dot = dpath.find('.', start);
      std::string seg =
          dpath.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
      std::vector<const PNode*> next;
      for (const PNode* n : cur)
        for (const PNode* c : n->children)
          if (c->name == seg) {
            next.push_back(c);
            for (const PNode* sl : c->slices)
              if (sl->min > 0) next.push_back(sl);
          }
      cur.swap(next);
      if (dot == std::string::npos) break;
      start = dot + 1;
    }
    for (const PNode* n : cur)
      if ((n->has_fixed || n->has_pattern) && collection_match(v, dpath, *n)) return true;
    return false;
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

  void node(const PNode& n, dom::object obj, uint32_t type, const std::string& profile, int depth) {
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
        const uint32_t ct = child_type(type, v.key);
        if (!c->constraints.empty()) {
          dom::element ext;
          bool has_ext = primitive_ext(obj, ct, v, ext);
          invariants(*c, v.v, ext, has_ext, ct, profile, nullptr);
        }
        dom::object sub;
        if (v.v.get(sub) == simdjson::SUCCESS) {
          node(*c, sub, ct, profile, depth + 1);
          // An extension (slice) with its own loaded profile: check it too.
          if (c->types.size() == 1 && c->types[0] == "Extension" && c->slices.empty())
            for (const auto& tp : c->type_profiles)
              if (const Profile* ep = set_.find(tp)) extension(*ep, v.v, sub, ct, depth);
        }
      }
      if (!c->slices.empty()) slicing(*c, vals, obj, type, profile, depth);
    }
  }

  void extension(const Profile& ep, dom::element v, dom::object sub, uint32_t type, int depth) {
    invariants(*ep.root, v, {}, false, type, ep.url, nullptr);
    node(*ep.root, sub, type, ep.url, depth + 1);
  }

  void slicing(const PNode& sliced, const std::vector<Value>& vals, dom::object obj, uint32_t type,
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
        const uint32_t ct = child_type(type, vals[i].key);
        if (!slice.constraints.empty()) {
          dom::element ext;
          bool has_ext = primitive_ext(obj, ct, vals[i], ext);
          invariants(slice, vals[i].v, ext, has_ext, ct, profile, &sliced);
        }
        dom::object sub;
        if (vals[i].v.get(sub) == simdjson::SUCCESS) {
          node(slice, sub, ct, profile, depth + 1);
          for (const auto& tp : slice.type_profiles)
            if (const Profile* ep = set_.find(tp)) extension(*ep, vals[i].v, sub, ct, depth);
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

  static constexpr uint32_t kNoType = UINT32_MAX;
  const ProfileSet& set_;
  Scratch::Impl& sc_;
  IssueSink& sink_;
  dom::element resource_;
  uint32_t resource_type_;
};

}  // namespace

void check_profiles(const ProfileSet& set, const schema::Schema& core, dom::element root,
                    dom::object resource, std::string_view resource_type, Scratch::Impl& sc,
                    IssueSink& sink) {
  dom::array profiles;
  if (resource["meta"]["profile"].get(profiles)) return;
  const int32_t rt = core.find_resource(resource_type);
  ProfileChecker checker(set, sc, sink, root, rt < 0 ? UINT32_MAX : static_cast<uint32_t>(rt));
  for (dom::element p : profiles) {
    std::string_view url;
    if (p.get(url)) continue;
    const std::string key = strip_version(url);
    const size_t bar = url.find('|');
    const std::string_view version = bar == std::string_view::npos ? "" : url.substr(bar + 1);
    const Profile* prof = set.find(key, version);
    if (!prof) {
      // Never an error: HealthLake may well have this guide or version (it validates US Core
      // 3.1.1 by default and supports 4.0.0, 5.0.1, 6.1.0 and 7.0.0), so rejecting here could
      // drop data it accepts. A warning naming it, so it is never passed in silence.
      std::string msg;
      if (set.profiles.count(key)) {
        msg = "profile " + shorten(key, 200) + " version " + shorten(version, 40) +
              " is not loaded (loaded: " + set.versions(key) +
              "); validated against R4 only: add that version's package with fhir_packages";
      } else if (!set.builtin_name.empty() && key.starts_with("http://hl7.org/fhir/us/core/")) {
        msg = "profile " + shorten(url, 200) + " is not in the built-in " + set.builtin_name +
              " (HealthLake's default US Core 3.1.1 has the same profiles); it comes from another "
              "US Core version (HealthLake also supports 4.0.0, 5.0.1, 6.1.0, 7.0.0): add that "
              "package with fhir_packages; validated against R4 only";
      } else {
        msg = "profile " + shorten(url, 200) +
              " is not loaded (not built in, not in fhir_packages); validated against R4 only";
      }
      sink.add(Severity::warning, code::not_supported, std::move(msg), "meta.profile");
      continue;
    }
    if (prof->type != resource_type) {
      sink.add(Severity::error, code::structure,
               "profile " + key + " is for " + prof->type + ", not " + std::string(resource_type),
               "meta.profile");
      continue;
    }
    checker.check(*prof, resource);
  }
}

}  // namespace fe::fhir
