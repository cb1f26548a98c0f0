#pragma once
// The validator's structure walker (private to daemon/fhir): walks one parsed resource against
// the compiled R4 schema and reports every issue to the sink, with the JSON path. Split in two:
//   validator_walker.cpp  objects and resources: keys, cardinality, choice types, _x alignment,
//                         the strict rule families (rules.cpp) hooked on their types
//   validator_values.cpp  values: JSON kinds, primitives' lexical forms, value set bindings
// validator.cpp parses each line and runs a Walker over it (see validator.hpp for the contract).
#include "fhir/validator.hpp"

#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fhir/internal.hpp"

namespace fe::fhir::detail {

using schema::Element;
using schema::Kind;
using schema::Prim;
using schema::Type;
namespace dom = simdjson::dom;

// "an array", "a string", ... for messages.
const char* kind_name(dom::element_type t);

struct PathGuard {
  PathStack& path;
  PathGuard(PathStack& p, std::string_view name, int64_t index = -1) : path(p) {
    path.push_back(PathSeg{name, index});
  }
  ~PathGuard() { path.pop_back(); }
  PathGuard(const PathGuard&) = delete;
  PathGuard& operator=(const PathGuard&) = delete;
};

// A cross-version extension (http://hl7.org/fhir/5.0/StructureDefinition/extension-...) on _x

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

}  // namespace fe::fhir::detail
