// The structure walker, part 2: values (validator_walker.hpp). The JSON kind each element
// type needs, primitives' lexical forms and limits, nested resources, and value set bindings
// (required ones are errors; extensible/preferred ones at strict are warnings).
#include "fhir/validator_walker.hpp"

#include "common/json_escape.hpp"

#include <algorithm>
#include <cstring>

#include "fhir/fhirpath.hpp"

namespace fe::fhir::detail {

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

}  // namespace fe::fhir::detail
