#pragma once
// FHIR profiles (strict), private to daemon/fhir: the compiled form of a StructureDefinition
// (a tree of PNode constraints), the loaded ProfileSet, and helpers both halves use. See
// profiles.cpp for the contract; profiles_load.cpp compiles packages into a ProfileSet once, at
// load; profiles_check.cpp checks each resource naming a loaded profile in meta.profile.
#include <simdjson.h>

#include <memory>
#include <set>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fhir/fhirpath.hpp"
#include "fhir/internal.hpp"

namespace fe::fhir {

namespace dom = simdjson::dom;

namespace detail {

// An error-severity FHIRPath constraint of a profile element, compiled once at load.
struct PConstraint {
  std::string key, human;
  fhirpath::Expression expr;
};

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
  std::vector<PConstraint> constraints;
};

struct Profile {
  std::string url, version, type;
  std::string source;    // "built-in hl7.fhir.us.core#3.1.0" or the package path
  bool builtin = false;  // a built-in set (US Core 3.1.0 also answers |3.1.1)
  PNode* root = nullptr;
};

struct PkgValueSet {
  std::set<std::string> systems;
  std::set<std::string> codes;
  bool enumerable = true;
};

// The last segment of an element id ("Patient.identifier:mrn" → "identifier:mrn").
std::string last_segment(std::string_view id);
// "url|version" → "url".
std::string strip_version(std::string_view url);
// The built-in US Core 3.1.0 also answers 3.1.1.
bool builtin_answers(std::string_view builtin_version, std::string_view wanted);
std::string upper_first(std::string s);
// JSON equality (fixed[x]) and pattern matching (pattern[x]).
bool deep_equal(simdjson::dom::element a, simdjson::dom::element b);
bool pattern_match(simdjson::dom::element pat, simdjson::dom::element inst);
std::string short_json(simdjson::dom::element e);

}  // namespace detail

using detail::builtin_answers;
using detail::PConstraint;
using detail::PkgValueSet;
using detail::PNode;
using detail::Profile;

class ProfileSet {
 public:
  std::vector<std::unique_ptr<dom::parser>> docs;  // keep the parsed definitions alive
  std::vector<std::unique_ptr<PNode>> nodes;
  // by url (without version): every loaded version, in load order (built-in first)
  std::unordered_map<std::string, std::vector<Profile>> profiles;
  std::unordered_map<std::string, PkgValueSet> value_sets;  // package value sets by url
  const schema::Schema* core = nullptr;
  std::string builtin_name;  // "US Core 3.1.0" when the built-in set is loaded, else empty

  // `url` without a version: the built-in profile when it defines it (HealthLake's default
  // guide), else the first loaded package's. With a version: exactly that version (the built-in
  // 3.1.0 also answers 3.1.1). nullptr when not loaded.
  const Profile* find(const std::string& url, std::string_view version = {}) const {
    auto it = profiles.find(url);
    if (it == profiles.end()) return nullptr;
    if (version.empty()) {
      for (const Profile& p : it->second)
        if (p.builtin) return &p;
      return &it->second.front();
    }
    for (const Profile& p : it->second)
      if (p.version == version) return &p;
    for (const Profile& p : it->second)
      if (p.builtin && builtin_answers(p.version, version)) return &p;
    return nullptr;
  }
  // "3.1.0 (built-in US Core; also answers 3.1.1), 6.1.0" for messages.
  std::string versions(const std::string& url) const {
    std::string out;
    auto it = profiles.find(url);
    if (it == profiles.end()) return out;
    for (const Profile& p : it->second) {
      if (!out.empty()) out += ", ";
      out += p.version.empty() ? "(no version)" : p.version;
      if (p.builtin)
        out += " (built in" + std::string(p.version == "3.1.0" ? "; also answers 3.1.1" : "") + ")";
    }
    return out;
  }
};

}  // namespace fe::fhir
