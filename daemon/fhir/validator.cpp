// The validation engine: parses one NDJSON line with simdjson (DOM) and walks it against the
// compiled R4 schema (schema.hpp). Rules and their issue codes are listed in docs/validation.md.
#include "fhir/validator.hpp"
#include "common/json_writer.hpp"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "fhir/fhirpath.hpp"
#include "fhir/internal.hpp"

namespace fe::fhir {

using schema::Element;
using schema::Kind;
using schema::Prim;
using schema::Type;
namespace dom = simdjson::dom;

// ---- small helpers ------------------------------------------------------------------------------

std::optional<Level> parse_level(std::string_view t) {
  if (t == "minimal") return Level::minimal;
  if (t == "structure-only") return Level::structure_only;
  if (t == "strict") return Level::strict;
  return std::nullopt;
}

std::string_view to_string(Level l) {
  switch (l) {
    case Level::minimal:
      return "minimal";
    case Level::structure_only:
      return "structure-only";
    case Level::strict:
      return "strict";
  }
  return "?";
}

std::string_view to_string(Severity s) {
  switch (s) {
    case Severity::error:
      return "error";
    case Severity::warning:
      return "warning";
    case Severity::information:
      return "information";
  }
  return "?";
}

size_t Result::errors() const {
  return static_cast<size_t>(std::count_if(
      issues.begin(), issues.end(), [](const Issue& i) { return i.severity == Severity::error; }));
}
size_t Result::warnings() const {
  return static_cast<size_t>(std::count_if(issues.begin(), issues.end(), [](const Issue& i) {
    return i.severity == Severity::warning;
  }));
}

std::string shorten(std::string_view s, size_t max) {
  if (s.size() <= max) return std::string(s);
  size_t cut = max;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) cut--;  // UTF-8 boundary
  return std::string(s.substr(0, cut)) + "...";
}

std::string IssueSink::path_string(std::string_view child) const {
  std::string p;
  for (const auto& seg : path) {
    if (!p.empty()) p += '.';
    p += seg.name;
    if (seg.index >= 0) {
      p += '[';
      p += std::to_string(seg.index);
      p += ']';
    }
  }
  if (!child.empty()) {
    if (!p.empty()) p += '.';
    p += child;
  }
  return p;
}

void IssueSink::add(Severity s, std::string_view code, std::string message,
                    std::string_view child) {
  if (result.issues.size() >= max_issues) {
    result.truncated = true;
    return;
  }
  result.issues.push_back(
      Issue{s, std::string(code), result.line, path_string(child), std::move(message)});
}

void IssueSink::add_at(Severity s, std::string_view code, std::string message, std::string p) {
  if (result.issues.size() >= max_issues) {
    result.truncated = true;
    return;
  }
  result.issues.push_back(
      Issue{s, std::string(code), result.line, std::move(p), std::move(message)});
}

Scratch::Scratch() : impl_(std::make_unique<Impl>()) {}
Scratch::~Scratch() = default;
Scratch::Scratch(Scratch&&) noexcept = default;
Scratch& Scratch::operator=(Scratch&&) noexcept = default;

// ---- the structure walker -----------------------------------------------------------------------

namespace {

const char* kind_name(dom::element_type t) {
  switch (t) {
    case dom::element_type::ARRAY:
      return "an array";
    case dom::element_type::OBJECT:
      return "an object";
    case dom::element_type::INT64:
    case dom::element_type::UINT64:
    case dom::element_type::DOUBLE:
      return "a number";
    case dom::element_type::STRING:
      return "a string";
    case dom::element_type::BOOL:
      return "a boolean";
    case dom::element_type::NULL_VALUE:
      return "null";
  }
  return "?";
}

struct PathGuard {
  std::vector<PathSeg>& path;
  PathGuard(std::vector<PathSeg>& p, std::string_view name, int64_t index = -1) : path(p) {
    path.push_back(PathSeg{name, index});
  }
  ~PathGuard() { path.pop_back(); }
  PathGuard(const PathGuard&) = delete;
  PathGuard& operator=(const PathGuard&) = delete;
};

// A cross-version extension (http://hl7.org/fhir/5.0/StructureDefinition/extension-...) on _x
// carries the value in another FHIR version's terms, which the HL7 validator accepts.
bool carries_cross_version_value(dom::object obj, std::string_view name) {
  std::string key = "_" + std::string(name);
  dom::array exts;
  if (obj[key]["extension"].get(exts)) return false;
  for (dom::element x : exts) {
    std::string_view url;
    if (x["url"].get(url)) continue;
    if (url.starts_with("http://hl7.org/fhir/") &&
        url.find("/StructureDefinition/extension-") != std::string_view::npos && url.size() > 21 &&
        url[20] >= '0' && url[20] <= '9')
      return true;
  }
  return false;
}

using PropertyTypes = std::unordered_map<std::string_view, std::string_view>;

class Walker {
 public:
  Walker(const Validator::Impl& v, Scratch::Impl& sc, IssueSink& sink)
      : s_(*v.schema),
        v_(v),
        sc_(sc),
        sink_(sink),
        strict_(v.options.level == Level::strict),
        tx_(rule_types(*v.schema)) {}

  // obj is a resource (root, contained, Bundle.entry.resource...). The caller has pushed its path.
  void resource(dom::object obj, uint32_t type, bool in_contained) {
    const size_t base = sc_.elem_ids.size();
    const bool is_bundle = strict_ && type == tx_.bundle;
    if (is_bundle) bundles_.emplace_back();
    object(obj, type, true, in_contained);
    if (is_bundle) {
      rules::bundle(obj, bundles_.back().refs, sc_, sink_);
      bundles_.pop_back();
    }
    if (strict_ && type == tx_.value_set) rules::value_set(obj, sc_, sink_);
    // Element ids are unique within one resource (nested resources have their own scope).
    if (sc_.elem_ids.size() - base > 1) {
      std::sort(sc_.elem_ids.begin() + static_cast<std::ptrdiff_t>(base), sc_.elem_ids.end());
      for (size_t i = base + 1; i < sc_.elem_ids.size(); i++)
        if (sc_.elem_ids[i] == sc_.elem_ids[i - 1] &&
            (i + 1 == sc_.elem_ids.size() || sc_.elem_ids[i + 1] != sc_.elem_ids[i]))
          add(Severity::error, code::value,
              "duplicate element id '" + shorten(sc_.elem_ids[i]) +
                  "' (ids are unique within a resource)");
    }
    sc_.elem_ids.resize(base);
    if (s_.types[type].name == "CodeSystem") codesystem_properties(obj);
  }

  void object(dom::object obj, uint32_t type_ix, bool is_resource, bool in_contained);

 private:
  void value(dom::element val, const Element& e, uint32_t owner, bool in_contained);
  void primitive(dom::element val, const Element& e, const Type& t);
  void binding(dom::element val, const Element& e, const Type& t);
  void any_resource(dom::element val, bool in_contained);
  void underscore(dom::element val, const Element& e);
  void check_aligned(const Element& e, dom::element v, dom::element u);
  void codesystem_properties(dom::object cs);
  void concept_properties(dom::array concepts, const PropertyTypes& decl);
  void add(Severity s, std::string_view code, std::string msg, std::string_view child = {}) {
    sink_.add(s, code, std::move(msg), child);
  }

  // Type indexes the strict rule families (rules.cpp) hook on.
  struct RuleTypes {
    uint32_t bundle = UINT32_MAX, bundle_entry = UINT32_MAX, value_set = UINT32_MAX,
             reference = UINT32_MAX, attachment = UINT32_MAX;
  };
  static const RuleTypes& rule_types(const schema::Schema& s) {
    static const RuleTypes t = [&] {
      RuleTypes r;
      auto ix = [&](std::string_view n) {
        int32_t i = s.find_type(n);
        return i < 0 ? UINT32_MAX : static_cast<uint32_t>(i);
      };
      r.bundle = ix("Bundle");
      r.bundle_entry = ix("Bundle.entry");
      r.value_set = ix("ValueSet");
      r.reference = ix("Reference");
      r.attachment = ix("Attachment");
      return r;
    }();
    return t;
  }
  // A Bundle being walked at strict: the references inside its entries, resolved at its end.
  struct BundleCtx {
    std::vector<rules::BundleRef> refs;
    int64_t entry = -1;  // the entry whose resource is being walked
  };
  void strict_rules(dom::object obj, uint32_t type_ix);

  const schema::Schema& s_;
  const Validator::Impl& v_;
  Scratch::Impl& sc_;
  IssueSink& sink_;
  bool saw_null_ = false;
  const bool strict_;
  const RuleTypes& tx_;
  std::vector<BundleCtx> bundles_;
};

// The strict rule families on the object just walked (its path is the current one).
void Walker::strict_rules(dom::object obj, uint32_t type_ix) {
  if (type_ix == s_.coding_type) {
    rules::coding(obj, sc_, sink_);
  } else if (type_ix == tx_.attachment) {
    rules::attachment(obj, sink_);
  } else if (type_ix == tx_.reference && !bundles_.empty()) {
    std::string_view ref;
    if (obj["reference"].get(ref) != simdjson::SUCCESS) return;
    // The innermost Bundle whose entry holds this reference.
    for (size_t i = bundles_.size(); i-- > 0;) {
      if (bundles_[i].entry < 0) continue;
      bundles_[i].refs.push_back(rules::BundleRef{static_cast<uint32_t>(bundles_[i].entry), ref,
                                                  sink_.path_string("reference")});
      break;
    }
  }
}

// CodeSystem.property declares the properties that CodeSystem.concept.property refers to by
// code ("a reference to CodeSystem.property.code", R4 base definition), with the type of their
// value. A reference needs a unique target, and a value must be of the declared type; both are
// facts of the one resource, so they belong to structure-only (the HL7 validator reports both).
// Undeclared codes are left alone: R4 lets concepts use the standard concept-properties.
void Walker::codesystem_properties(dom::object cs) {
  dom::array props;
  if (cs["property"].get(props) != simdjson::SUCCESS) return;
  PropertyTypes decl;  // code -> declared type; the first declaration wins
  int64_t i = 0;
  for (dom::element p : props) {
    std::string_view c, ty;
    if (p["code"].get(c) == simdjson::SUCCESS) {
      if (p["type"].get(ty) != simdjson::SUCCESS) ty = {};
      if (!decl.emplace(c, ty).second) {
        PathGuard g(sc_.path, "property", i);
        add(Severity::error, code::invariant,
            "property code '" + shorten(c) +
                "' is declared more than once (concept properties refer to it by code)",
            "code");
      }
    }
    i++;
  }
  dom::array concepts;
  if (!decl.empty() && cs["concept"].get(concepts) == simdjson::SUCCESS)
    concept_properties(concepts, decl);
}

void Walker::concept_properties(dom::array concepts, const PropertyTypes& decl) {
  // value[x] variant for each CodeSystem.property.type (required binding property-type).
  static constexpr std::pair<std::string_view, std::string_view> kVariant[] = {
      {"code", "valueCode"},       {"Coding", "valueCoding"},   {"string", "valueString"},
      {"integer", "valueInteger"}, {"boolean", "valueBoolean"}, {"dateTime", "valueDateTime"},
      {"decimal", "valueDecimal"}};
  int64_t ci = 0;
  for (dom::element concept_el : concepts) {
    PathGuard gc(sc_.path, "concept", ci++);
    dom::array cprops;
    if (concept_el["property"].get(cprops) == simdjson::SUCCESS) {
      int64_t pi = 0;
      for (dom::element cp : cprops) {
        PathGuard gi(sc_.path, "property", pi++);
        std::string_view c;
        dom::object cpo;
        if (cp.get(cpo) != simdjson::SUCCESS || cp["code"].get(c) != simdjson::SUCCESS) continue;
        auto it = decl.find(c);
        std::string_view declared = it == decl.end() ? std::string_view{} : it->second;
        std::string_view want;
        for (auto& [ty, key] : kVariant)
          if (ty == declared) want = key;
        if (want.empty()) continue;  // undeclared, or a type the binding check reports
        for (auto [key, val] : cpo) {
          if (!key.starts_with("value") || key == want) continue;
          std::string_view found = key.substr(5);  // spelled as in property-type if known
          for (auto& [ty, variant] : kVariant)
            if (variant == key) found = ty;
          add(Severity::error, code::invariant,
              "property '" + shorten(c) + "' is declared with type '" + std::string(declared) +
                  "', but this value is of type '" + std::string(found) + "' (use '" +
                  std::string(want) + "')",
              key);
        }
      }
    }
    dom::array nested;
    if (concept_el["concept"].get(nested) == simdjson::SUCCESS) concept_properties(nested, decl);
  }
}

void Walker::any_resource(dom::element val, bool in_contained) {
  dom::object obj;
  if (val.get(obj) != simdjson::SUCCESS) {
    add(Severity::error, code::structure,
        std::string("must be a resource (a JSON object with resourceType), found ") +
            kind_name(val.type()));
    return;
  }
  std::string_view rt;
  if (obj["resourceType"].get(rt) != simdjson::SUCCESS) {
    add(Severity::error, code::required, "a resource here needs a string 'resourceType'");
    return;
  }
  int32_t t = s_.find_resource(rt);
  if (t < 0) {
    add(Severity::error, code::not_supported,
        "unknown resourceType '" + shorten(rt) + "' (not an R4 resource)");
    return;
  }
  resource(obj, static_cast<uint32_t>(t), in_contained);
}

void Walker::object(dom::object obj, uint32_t type_ix, bool is_resource, bool in_contained) {
  const Type& t = s_.types[type_ix];
  if (obj.size() == 0) {
    add(Severity::error, code::structure, "empty object is not allowed");
    return;
  }
  const size_t seen0 = sc_.seen.size(), ch0 = sc_.choices.size();
  sc_.seen.resize(seen0 + t.count, 0);
  sc_.choices.resize(ch0 + t.choice_groups, -1);
  bool has_extension = false, has_value = false;
  bool pending_align = false, has_rt = false, has_under = false;
  std::vector<uint32_t> nulls;  // primitive arrays holding null (allocates only then)
  for (auto [key, val] : obj) {
    if (key.empty()) {
      add(Severity::error, code::structure, "empty property name");
      continue;
    }
    if (key == "resourceType") {
      if (!is_resource)
        add(Severity::error, code::structure, "unexpected 'resourceType' (this is not a resource)");
      else if (has_rt)
        add(Severity::error, code::structure,
            "duplicate key 'resourceType' (JSON keys must be unique)");
      has_rt = true;
      continue;
    }
    bool under = key[0] == '_';
    has_under |= under;
    std::string_view name = under ? key.substr(1) : key;
    if (is_resource && name == "id") {
      // Resource.id is typed string in the definitions but is a FHIR id on the wire; it takes no
      // extensions.
      std::string_view idv;
      if (under)
        add(Severity::error, code::structure, "extensions are not allowed on a resource id ('_id')",
            key);
      else if (val.get(idv) == simdjson::SUCCESS && !idv.empty() && !schema::is_id(idv))
        add(Severity::error, code::value,
            "'" + shorten(idv) + "' is not a valid resource id (1-64 of A-Z a-z 0-9 - .)", key);
      if (under) continue;
    }
    // ElementDefinition ids repeat by design (snapshot and differential list the same ids).
    if (!is_resource && !under && name == "id" && type_ix != s_.element_definition_type) {
      std::string_view idv;
      if (val.get(idv) == simdjson::SUCCESS) sc_.elem_ids.push_back(idv);
    }
    int32_t ei = s_.find(type_ix, name);
    if (ei < 0) {
      add(Severity::error, code::structure,
          "unknown element '" + shorten(key) + "' in " + std::string(t.name), key);
      continue;
    }
    const Element& e = s_.elements[static_cast<size_t>(ei)];
    // Index, not reference: nested objects grow sc_.seen (and may move it).
    const size_t fi = seen0 + (static_cast<uint32_t>(ei) - t.first);
    const uint8_t bit = under ? 2 : 1;
    if (sc_.seen[fi] & bit) {
      add(Severity::error, code::structure,
          "duplicate key '" + shorten(key) + "' (JSON keys must be unique)", key);
      continue;
    }
    const uint8_t flag = sc_.seen[fi] |= bit;
    if (e.choice >= 0) {
      int32_t& chosen = sc_.choices[ch0 + static_cast<size_t>(e.choice)];  // no recursion below
      if (chosen >= 0 && chosen != ei) {
        add(Severity::error, code::structure,
            "only one type of " + std::string(e.choice_base) + "[x] may be present (found '" +
                std::string(s_.elements[static_cast<size_t>(chosen)].name) + "' and '" +
                std::string(e.name) + "')",
            key);
      }
      chosen = ei;
      if (e.choice_base == "value") has_value = true;
    }
    if (name == "extension" && !under) has_extension = true;
    const Type& et = s_.types[e.type];
    if (under) {
      if (et.kind != Kind::primitive) {
        add(Severity::error, code::structure,
            "'" + std::string(key) + "' is only allowed for primitive elements", key);
        continue;
      }
      PathGuard g(sc_.path, key);
      underscore(val, e);
      if (e.many && (flag & 1)) pending_align = true;
      continue;
    }
    if (e.many && et.kind == Kind::primitive && (flag & 2)) pending_align = true;
    PathGuard g(sc_.path, key);
    saw_null_ = false;
    value(val, e, type_ix, in_contained);
    if (saw_null_) nulls.push_back(static_cast<uint32_t>(ei));
  }
  // Required elements (a primitive given only by its _x extension counts as present).
  for (uint32_t ri : t.required) {
    const Element& e = s_.elements[ri];
    bool present = false;
    if (e.choice >= 0)
      present = sc_.choices[ch0 + static_cast<size_t>(e.choice)] >= 0;
    else
      present = sc_.seen[seen0 + (ri - t.first)] != 0;
    if (!present) {
      std::string n = e.choice >= 0 ? std::string(e.choice_base) + "[x]" : std::string(e.name);
      add(Severity::error, code::required,
          "missing required element '" + n + "' (" + std::string(t.name) + " needs at least " +
              std::to_string(e.min) + ")",
          n);
    }
  }
  // A primitive with a required binding given only as _x (e.g. a data-absent-reason extension)
  // carries no code: the binding cannot be met.
  for (uint32_t i = 0; has_under && i < t.count; i++) {
    if (sc_.seen[seen0 + i] != 2) continue;
    const Element& e = s_.elements[t.first + i];
    if (e.vs < 0 || s_.value_sets[static_cast<size_t>(e.vs)].mode == schema::VsMode::any) continue;
    if (carries_cross_version_value(obj, e.name)) continue;
    add(Severity::error, code::code_invalid,
        "no code provided (only '_" + std::string(e.name) + "'), and a code is required from " +
            std::string(s_.value_sets[static_cast<size_t>(e.vs)].url),
        e.name);
  }
  for (uint32_t ni : nulls) {
    if (sc_.seen[seen0 + (ni - t.first)] == 3) continue;  // checked against _x below
    add(Severity::error, code::structure,
        "null in '" + std::string(s_.elements[ni].name) + "' without a matching '_" +
            std::string(s_.elements[ni].name) + "' entry",
        s_.elements[ni].name);
  }
  if (pending_align) {
    for (uint32_t i = 0; i < t.count; i++) {
      if (sc_.seen[seen0 + i] != 3) continue;
      const Element& e = s_.elements[t.first + i];
      if (!e.many) continue;
      dom::element v, u;
      std::string uname = "_" + std::string(e.name);
      if (obj[e.name].get(v) || obj[uname].get(u)) continue;
      check_aligned(e, v, u);
    }
  }
  if (type_ix == s_.extension_type && has_value == has_extension) {
    add(Severity::error, code::invariant,
        has_value
            ? "an extension must have either a value[x] or nested extensions, not both (ext-1)"
            : "an extension must have a value[x] or nested extensions (ext-1)");
  }
  if (strict_) strict_rules(obj, type_ix);
  sc_.seen.resize(seen0);
  sc_.choices.resize(ch0);
  saw_null_ = false;  // a null inside this object is not a null in the caller's array
}

// x and _x arrays: same length, and no index where both are null.
void Walker::check_aligned(const Element& e, dom::element v, dom::element u) {
  dom::array va, ua;
  if (v.get(va) || u.get(ua)) return;  // kind errors already reported
  if (va.size() != ua.size()) {
    add(Severity::error, code::structure,
        "'" + std::string(e.name) + "' has " + std::to_string(va.size()) + " items but '_" +
            std::string(e.name) + "' has " + std::to_string(ua.size()) + " (they must match)",
        e.name);
    return;
  }
  size_t i = 0;
  for (auto it1 = va.begin(), it2 = ua.begin(); it1 != va.end(); ++it1, ++it2, ++i) {
    if ((*it1).is_null() && (*it2).is_null()) {
      PathGuard g(sc_.path, e.name, static_cast<int64_t>(i));
      add(Severity::error, code::structure,
          "null in both '" + std::string(e.name) + "' and '_" + std::string(e.name) +
              "' at the same index");
    } else if ((*it1).is_null() && e.vs >= 0 &&
               s_.value_sets[static_cast<size_t>(e.vs)].mode != schema::VsMode::any) {
      PathGuard g(sc_.path, e.name, static_cast<int64_t>(i));
      add(Severity::error, code::code_invalid,
          "no code provided (only extensions), and a code is required from " +
              std::string(s_.value_sets[static_cast<size_t>(e.vs)].url));
    }
  }
}

void Walker::underscore(dom::element val, const Element& e) {
  auto one = [&](dom::element x) {
    dom::object o;
    if (x.get(o)) {
      add(Severity::error, code::structure,
          std::string("must be an object with id/extension, found ") + kind_name(x.type()));
      return;
    }
    object(o, s_.element_type, false, false);
  };
  if (e.many) {
    dom::array arr;
    if (val.get(arr)) {
      add(Severity::error, code::structure, "must be an array (like its primitive element)");
      return;
    }
    if (arr.size() == 0) {
      add(Severity::error, code::structure, "empty array is not allowed");
      return;
    }
    int64_t i = 0;
    const size_t seg = sc_.path.size() - 1;
    for (dom::element x : arr) {
      sc_.path[seg].index = i++;
      if (!x.is_null()) one(x);
    }
    sc_.path.back().index = -1;
  } else {
    if (val.is_null()) {
      add(Severity::error, code::structure, "null is not allowed here");
      return;
    }
    one(val);
  }
}

void Walker::value(dom::element val, const Element& e, uint32_t owner, bool in_contained) {
  const Type& et = s_.types[e.type];
  auto one = [&](dom::element x, bool null_ok) {
    if (x.is_null()) {
      // In a primitive array a null keeps its place for a matching _x entry.
      if (!null_ok) add(Severity::error, code::structure, "null is not allowed here");
      saw_null_ = saw_null_ || null_ok;
      return;
    }
    if (et.kind == Kind::primitive) {
      primitive(x, e, et);
    } else if (e.type == s_.resource_type) {
      bool contained = e.name == "contained";
      if (contained && in_contained) {
        add(Severity::error, code::invariant,
            "a contained resource must not contain resources (dom-2)");
        return;
      }
      if (strict_ && owner == tx_.bundle_entry && e.name == "resource" && !bundles_.empty() &&
          sc_.path.size() >= 2) {
        const int64_t saved = bundles_.back().entry;
        bundles_.back().entry = sc_.path[sc_.path.size() - 2].index;
        any_resource(x, in_contained || contained);
        bundles_.back().entry = saved;
      } else {
        any_resource(x, in_contained || contained);
      }
    } else if (et.kind == Kind::resource) {
      // An element typed by one resource (Bundle.entry.response.outcome: OperationOutcome).
      dom::object o;
      std::string_view rt;
      if (x.get(o) || o["resourceType"].get(rt)) {
        add(Severity::error, code::structure,
            "must be a " + std::string(et.name) + " resource (a JSON object with resourceType)");
        return;
      }
      if (rt != et.name) {
        add(Severity::error, code::structure,
            "resourceType '" + shorten(rt) + "' here must be '" + std::string(et.name) + "'");
        return;
      }
      object(o, e.type, true, in_contained);
    } else {
      dom::object o;
      if (x.get(o)) {
        add(Severity::error, code::structure,
            "must be a JSON object (" + std::string(et.name) + "), found " + kind_name(x.type()));
        return;
      }
      object(o, e.type, false, in_contained);
      if (e.vs >= 0) binding(x, e, et);
    }
  };
  if (e.many) {
    dom::array arr;
    if (val.get(arr)) {
      add(Severity::error, code::structure,
          "must be an array (" + std::string(e.name) + " repeats), found " + kind_name(val.type()));
      return;
    }
    if (arr.size() == 0) {
      add(Severity::error, code::structure, "empty array is not allowed");
      return;
    }
    int64_t i = 0;
    const size_t seg = sc_.path.size() - 1;  // index: recursion may reallocate the path
    for (dom::element x : arr) {
      sc_.path[seg].index = i++;
      one(x, et.kind == Kind::primitive);
    }
    sc_.path.back().index = -1;
  } else {
    if (val.is_array()) {
      add(Severity::error, code::structure,
          "must not be an array (" + std::string(e.name) + " has max cardinality 1)");
      return;
    }
    one(val, false);
  }
}

void Walker::primitive(dom::element x, const Element& e, const Type& t) {
  const Prim p = t.prim;
  const dom::element_type k = x.type();
  switch (p) {
    case Prim::boolean:
      if (k != dom::element_type::BOOL)
        add(Severity::error, code::structure,
            std::string("must be a JSON boolean, found ") + kind_name(k));
      return;
    case Prim::decimal:
      if (k != dom::element_type::INT64 && k != dom::element_type::UINT64 &&
          k != dom::element_type::DOUBLE)
        add(Severity::error, code::structure,
            std::string("must be a JSON number (decimal), found ") + kind_name(k));
      return;
    case Prim::integer:
    case Prim::unsigned_int:
    case Prim::positive_int: {
      int64_t n = 0;
      if (k == dom::element_type::INT64) {
        n = x.get_int64().value_unsafe();
      } else if (k == dom::element_type::UINT64) {
        n = INT64_MAX;
      } else {
        add(Severity::error, k == dom::element_type::DOUBLE ? code::value : code::structure,
            std::string("must be a JSON integer (") + std::string(schema::prim_name(p)) +
                "), found " +
                (k == dom::element_type::DOUBLE ? "a number with a fraction or exponent"
                                                : kind_name(k)));
        return;
      }
      int64_t lo = p == Prim::integer ? INT32_MIN : p == Prim::unsigned_int ? 0 : 1;
      if (n < lo || n > INT32_MAX)
        add(Severity::error, code::value,
            "value out of range for " + std::string(schema::prim_name(p)) + " (" +
                std::to_string(lo) + ".." + std::to_string(INT32_MAX) + ")");
      return;
    }
    default:
      break;
  }
  std::string_view sv;
  if (x.get(sv)) {
    add(Severity::error, code::structure,
        "must be a JSON string (" + std::string(schema::prim_name(p)) + "), found " + kind_name(k));
    return;
  }
  if (sv.empty()) {
    add(Severity::error, code::structure, "empty string is not allowed");
    return;
  }
  if (sv.size() > v_.options.max_string_bytes) {
    add(Severity::error, code::too_long,
        "string of " + std::to_string(sv.size()) + " bytes exceeds the limit of " +
            std::to_string(v_.options.max_string_bytes));
    return;
  }
  if (const char* msg = schema::check_lexical(p, sv)) {
    add(Severity::error, code::value, "'" + shorten(sv) + "' " + msg);
    return;
  }
  if (e.vs >= 0) binding(x, e, t);
  if (strict_ && p == Prim::uri) rules::uri_value(sv, sink_);
}

std::string describe_vs(const schema::ValueSet& vs) {
  std::string out(vs.url);
  if (vs.mode == schema::VsMode::enumerated && vs.codes.size() <= 10) {
    out += " (";
    for (size_t i = 0; i < vs.codes.size(); i++) {
      if (i) out += ", ";
      out += vs.codes[i];
    }
    out += ")";
  }
  return out;
}

bool code_ok(const schema::ValueSet& vs, std::string_view c) {
  switch (vs.mode) {
    case schema::VsMode::enumerated:
      return vs.contains(c);
    case schema::VsMode::mime:
      return schema::check_mime(c);
    case schema::VsMode::ucum:
      return schema::check_ucum(c);
    case schema::VsMode::currency:
      return schema::check_currency(c);
    case schema::VsMode::any:
      return true;
  }
  return true;
}

void Walker::binding(dom::element x, const Element& e, const Type& t) {
  const schema::ValueSet& vs = s_.value_sets[static_cast<size_t>(e.vs)];
  if (vs.mode == schema::VsMode::any) return;
  if (t.kind == Kind::primitive) {
    std::string_view c;
    if (x.get(c)) return;
    if (!code_ok(vs, c))
      add(Severity::error, code::code_invalid,
          "code '" + shorten(c) + "' is not in the required value set " + describe_vs(vs));
    return;
  }
  // Coding / CodeableConcept: a coding from the value set's systems must carry a member code.
  auto coding_ok = [&](dom::element c, bool& from_vs) {
    std::string_view sys, code;
    bool has_sys = c["system"].get(sys) == simdjson::SUCCESS;
    bool has_code = c["code"].get(code) == simdjson::SUCCESS;
    if (has_sys && !vs.systems.empty() && !vs.has_system(sys)) return false;
    from_vs = true;
    return has_code && code_ok(vs, code);
  };
  if (e.type == s_.coding_type) {
    bool from = false;
    if (!coding_ok(x, from))
      add(Severity::error, code::code_invalid,
          "coding is not in the required value set " + describe_vs(vs));
  } else if (e.type == s_.codeable_concept_type) {
    dom::array codings;
    bool any = false, from = false;
    if (x["coding"].get(codings) == simdjson::SUCCESS)
      for (dom::element c : codings)
        if (!c.is_null() && coding_ok(c, from)) any = true;
    if (!any)
      add(Severity::error, code::code_invalid,
          "no coding from the required value set " + describe_vs(vs));
  } else if (e.type == s_.quantity_type) {
    std::string_view sys, code;
    if (x["code"].get(code) == simdjson::SUCCESS &&
        (x["system"].get(sys) != simdjson::SUCCESS || vs.has_system(sys)) && !code_ok(vs, code))
      add(Severity::error, code::code_invalid,
          "unit code '" + shorten(code) + "' is not in the required value set " + describe_vs(vs));
  }
}

const char* parse_error_message(simdjson::error_code err) {
  switch (err) {
    case simdjson::UTF8_ERROR:
      return "the line is not valid UTF-8";
    case simdjson::DEPTH_ERROR:
      return "JSON nesting is deeper than the limit";
    case simdjson::CAPACITY:
      return "the line is larger than the line size limit";
    case simdjson::STRING_ERROR:
      return "invalid JSON string (bad escape or control character)";
    case simdjson::UNCLOSED_STRING:
      return "invalid JSON: unclosed string";
    case simdjson::NUMBER_ERROR:
      return "invalid JSON number";
    case simdjson::T_ATOM_ERROR:
    case simdjson::F_ATOM_ERROR:
    case simdjson::N_ATOM_ERROR:
      return "invalid JSON literal (true/false/null expected)";
    case simdjson::TAPE_ERROR:
      return "invalid JSON (structure, e.g. a missing comma, brace or bracket)";
    case simdjson::EMPTY:
      return "empty document";
    default:
      return nullptr;
  }
}

// Generic scan for the string-length limit at minimal level (the schema walk does it otherwise).
bool long_string(dom::element el, size_t limit, int depth = 0) {
  if (depth > 1000) return false;
  switch (el.type()) {
    case dom::element_type::STRING:
      return el.get_string().value_unsafe().size() > limit;
    case dom::element_type::ARRAY:
      for (dom::element x : dom::array(el.get_array().value_unsafe()))
        if (long_string(x, limit, depth + 1)) return true;
      return false;
    case dom::element_type::OBJECT:
      for (auto [k, v] : dom::object(el.get_object().value_unsafe()))
        if (k.size() > limit || long_string(v, limit, depth + 1)) return true;
      return false;
    default:
      return false;
  }
}

}  // namespace

// ---- Validator ----------------------------------------------------------------------------------

Validator::Validator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Validator::~Validator() = default;
const Options& Validator::options() const {
  return impl_->options;
}
Level Validator::level() const {
  return impl_->options.level;
}

std::shared_ptr<const Validator> Validator::create(const Options& options, LoadReport& report) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->schema = &schema::core();
  if (options.level == Level::strict && (options.builtin_profiles || !options.packages.empty())) {
    impl->profiles =
        load_profiles(options.packages, *impl->schema, report, options.builtin_profiles);
  } else if (options.level != Level::strict && !options.packages.empty()) {
    report.warnings.push_back("FHIR packages are only used at level strict; ignored at " +
                              std::string(to_string(options.level)));
  }
  if (!report.errors.empty()) return nullptr;
  return std::shared_ptr<const Validator>(new Validator(std::move(impl)));
}

InvariantCounts Validator::invariant_counts(const Scratch& scratch) {
  const Scratch::Impl& sc = scratch.impl();
  return InvariantCounts{sc.inv_evaluated, sc.inv_failed, sc.inv_not_evaluated};
}

std::vector<std::pair<std::string, uint64_t>> Validator::terminology_not_checked(
    const Scratch& scratch) {
  const Scratch::Impl& sc = scratch.impl();
  std::vector<std::pair<std::string, uint64_t>> out(sc.tx_not_checked.begin(),
                                                    sc.tx_not_checked.end());
  std::sort(out.begin(), out.end());
  return out;
}

void check_invariants(dom::element obj, uint32_t type, std::string_view type_name,
                      Scratch::Impl& sc, IssueSink& sink);

Result Validator::validate_line(std::string_view line, uint64_t line_no) const {
  Scratch s;
  return validate_line(line, line_no, s);
}

Result Validator::validate_line(std::string_view line, uint64_t line_no, Scratch& scratch) const {
  const Options& opt = impl_->options;
  Scratch::Impl& sc = scratch.impl();
  Result r;
  r.line = line_no;
  sc.path.clear();
  IssueSink sink{r, sc.path, std::max<size_t>(opt.max_issues, 1)};
  if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
  if (std::all_of(line.begin(), line.end(),
                  [](char c) { return c == ' ' || c == '\t' || c == '\r'; })) {
    r.blank = true;
    r.issues.push_back(Issue{Severity::warning, std::string(code::informational), line_no, "",
                             "blank line (no resource)"});
    return r;
  }
  if (line.size() > opt.max_line_bytes) {
    sink.add(Severity::error, code::too_long,
             "line of " + std::to_string(line.size()) + " bytes exceeds the line size limit of " +
                 std::to_string(opt.max_line_bytes) + " bytes");
    return r;
  }
  if (sc.max_capacity != opt.max_line_bytes || sc.max_depth != opt.max_depth) {
    sc.parser = dom::parser(opt.max_line_bytes + 1);
    if (sc.parser.allocate(std::min<size_t>(opt.max_line_bytes + 1, 1 << 16), opt.max_depth)) {
      sink.add(Severity::error, code::too_costly, "cannot allocate the JSON parser");
      return r;
    }
    sc.max_capacity = opt.max_line_bytes;
    sc.max_depth = opt.max_depth;
  }
  // simdjson reads up to SIMDJSON_PADDING bytes past the end: parse a padded copy.
  sc.buf.resize(line.size() + simdjson::SIMDJSON_PADDING);
  std::memcpy(sc.buf.data(), line.data(), line.size());
  dom::element root;
  auto err = sc.parser.parse(sc.buf.data(), line.size(), false).get(root);
  if (err) {
    const char* m = parse_error_message(err);
    std::string_view c = err == simdjson::UTF8_ERROR    ? code::invalid
                         : err == simdjson::DEPTH_ERROR ? code::too_costly
                         : err == simdjson::CAPACITY    ? code::too_long
                                                        : code::invalid;
    if (err == simdjson::DEPTH_ERROR)
      sink.add(Severity::error, c,
               "JSON nesting is deeper than the limit of " + std::to_string(opt.max_depth));
    else
      sink.add(Severity::error, c,
               m ? m : std::string("invalid JSON: ") + simdjson::error_message(err));
    // A line that is not valid JSON never becomes a resource. If the shrink-to-fit matters
    // after a huge line, the parser keeps its capacity (bounded by max_line_bytes).
    return r;
  }
  dom::object obj;
  if (root.get(obj)) {
    sink.add(Severity::error, code::structure,
             std::string("a line must be one JSON object (a resource), found ") +
                 kind_name(root.type()));
    return r;
  }
  std::string_view rt;
  auto rt_err = obj["resourceType"].get(rt);
  if (rt_err) {
    sink.add(Severity::error, code::required,
             rt_err == simdjson::NO_SUCH_FIELD ? "missing 'resourceType'"
                                               : "'resourceType' must be a string");
    return r;
  }
  std::string_view id;
  if (obj["id"].get(id) == simdjson::SUCCESS) r.id = std::string(id.substr(0, 256));
  r.resource_type = std::string(rt.substr(0, 128));
  const schema::Schema& s = *impl_->schema;
  int32_t t = s.find_resource(rt);
  if (t < 0) {
    sink.add(Severity::error, code::not_supported,
             "unknown resourceType '" + shorten(rt) + "' (not an R4 resource)");
    return r;
  }
  sc.path.push_back(PathSeg{s.types[static_cast<size_t>(t)].name, -1});
  if (opt.level == Level::minimal) {
    dom::element idv;
    if (obj["id"].get(idv) == simdjson::SUCCESS) {
      if (!idv.is_string())
        sink.add(Severity::error, code::structure, "'id' must be a JSON string", "id");
      else if (!schema::is_id(id))
        sink.add(Severity::error, code::value,
                 "'" + shorten(id) + "' is not a valid id (1-64 of A-Z a-z 0-9 - .)", "id");
    }
    if (line.size() > opt.max_string_bytes && long_string(root, opt.max_string_bytes))
      sink.add(Severity::error, code::too_long,
               "a string exceeds the limit of " + std::to_string(opt.max_string_bytes) + " bytes");
    sc.path.clear();
    return r;
  }
  sc.seen.clear();
  sc.choices.clear();
  sc.elem_ids.clear();
  Walker w(*impl_, sc, sink);
  w.resource(obj, static_cast<uint32_t>(t), false);
  if (opt.level == Level::strict) {
    check_invariants(root, static_cast<uint32_t>(t), s.types[static_cast<size_t>(t)].name, sc,
                     sink);
    dom::array profiles;
    if (obj["meta"]["profile"].get(profiles) == simdjson::SUCCESS) {
      if (impl_->profiles) {
        check_profiles(*impl_->profiles, s, root, obj, rt, sc, sink);
      } else {
        for (dom::element p : profiles) {
          std::string_view url;
          if (p.get(url)) continue;
          sink.add(Severity::warning, code::not_supported,
                   "profile " + shorten(url, 200) +
                       " is not loaded (no FHIR package given); validated against R4 only",
                   "meta.profile");
        }
      }
    }
  }
  sc.path.clear();
  return r;
}

// The R4 error-severity FHIRPath invariants (fhirpath.hpp) on the parsed resource: a failure is an
// error naming the invariant, a not-evaluated one a warning naming it and why (never a pass).
void check_invariants(dom::element obj, uint32_t type, std::string_view type_name,
                      Scratch::Impl& sc, IssueSink& sink) {
  fhirpath::Counts counts;
  std::vector<fhirpath::InvariantResult> results;
  fhirpath::check_resource(obj, type, type_name, counts, results);
  sc.inv_evaluated += counts.evaluated;
  sc.inv_failed += counts.failed;
  sc.inv_not_evaluated += counts.not_evaluated;
  for (const auto& r : results) {
    Issue is;
    is.line = sink.result.line;
    is.path = r.path;
    is.code = std::string(code::invariant);
    if (r.outcome == fhirpath::Outcome::fail && (r.inv->key == "txt-1" || r.inv->key == "txt-2") &&
        fhirpath::html_checks_structure_only(r.node_text)) {
      // Well-formed, allowed XHTML with only whitespace: R4 says SHALL have content, but the
      // official R4 examples ship such narratives and HealthLake accepts them (a warning).
      is.severity = Severity::warning;
      is.message = std::string(r.inv->key) + ": " + std::string(r.inv->human) +
                   " (the narrative is whitespace only; reported as a warning)";
    } else if (r.outcome == fhirpath::Outcome::fail &&
               (r.inv->key == "txt-1" || r.inv->key == "txt-2")) {
      // Name what is wrong in the XHTML, not the long invariant expression.
      is.severity = Severity::error;
      std::string why = fhirpath::html_problem(r.node_text);
      is.message = std::string(r.inv->key) + ": " + std::string(r.inv->human) +
                   (why.empty() ? std::string() : " (" + why + ")");
    } else if (r.outcome == fhirpath::Outcome::fail) {
      is.severity = Severity::error;
      is.message = std::string(r.inv->key) + ": " + std::string(r.inv->human) + " (invariant " +
                   std::string(r.inv->expression) + ")";
    } else {
      is.severity = Severity::warning;
      is.code = std::string(code::not_supported);
      is.message = "invariant " + std::string(r.inv->key) + " not evaluated (" + r.reason + ")";
    }
    if (sink.result.issues.size() >= sink.max_issues) {
      sink.result.truncated = true;
      break;
    }
    sink.result.issues.push_back(std::move(is));
  }
}

// ---- Output forms -------------------------------------------------------------------------------

std::string to_operation_outcome(const Result& result, std::string_view file) {
  json::Writer w;
  w.begin_object().field("resourceType", "OperationOutcome").key("issue").begin_array();
  for (const Issue& i : result.issues) {
    std::string diag;
    if (!file.empty()) {
      diag += file;
      diag += ':';
      diag += std::to_string(i.line);
      diag += ": ";
    }
    if (!result.resource_type.empty()) {
      diag += result.resource_type;
      if (!result.id.empty()) {
        diag += '/';
        diag += result.id;
      }
      diag += ": ";
    }
    diag += i.message;
    w.begin_object().key("extension").begin_array().begin_object();
    w.field("url", "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line");
    w.field("valueInteger", std::min<uint64_t>(i.line, INT32_MAX));
    w.end_object().end_array();
    w.field("severity", to_string(i.severity)).field("code", i.code).field("diagnostics", diag);
    w.key("location").begin_array().value("Line " + std::to_string(i.line)).end_array();
    if (!i.path.empty()) w.key("expression").begin_array().value(i.path).end_array();
    w.end_object();
  }
  w.end_array().end_object();
  return std::move(w).str();
}

std::string to_text(const Result& result, std::string_view file) {
  std::string out;
  for (const Issue& i : result.issues) {
    out += file;
    out += ':';
    out += std::to_string(i.line);
    out += ": ";
    out += to_string(i.severity);
    out += ' ';
    if (!i.path.empty()) {
      out += i.path;
      out += ": ";
    }
    out += i.message;
    out += '\n';
  }
  if (result.truncated) {
    out += file;
    out += ':';
    out += std::to_string(result.line);
    out += ": information: more issues in this resource were not reported\n";
  }
  return out;
}

}  // namespace fe::fhir
