// The structure walker, part 1: objects and resources (validator_walker.hpp). Unknown and
// duplicate keys, required elements, one type per choice, x/_x alignment, element ids unique per
// resource, ext-1, and the strict rule families (rules.cpp) on the types they hook.
#include "fhir/validator_walker.hpp"

#include "common/json_escape.hpp"

#include <algorithm>
#include <cstring>

#include "fhir/fhirpath.hpp"

namespace fe::fhir::detail {

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

namespace {

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

}  // namespace

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

// one piece: one pass over the keys fills this object's slice of the scratch (seen, choices,
// nulls, pending alignment), which the checks after the loop read and then release.
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

}  // namespace fe::fhir::detail
