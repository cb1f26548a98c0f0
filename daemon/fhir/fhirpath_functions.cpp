// FHIRPath, part 3 of the engine: the function library (call: where, exists, resolve, memberOf,
// matches, ...) and resolution of references inside %resource. A function outside the subset
// throws NotEvaluated naming it (never a pass).
#include "fhir/fhirpath_internal.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <mutex>
#include <set>

namespace fe::fhir::fhirpath::detail {

using schema::Kind;
using schema::Prim;

Coll resolve_refs(const Coll& in, Env& env) {
  Coll out;
  for (auto& it : in) {
    std::optional<std::string> ref;
    if (it.kind == Item::string) {
      ref = it.s;
    } else if (it.kind == Item::node && it.has_el) {
      std::string_view r;
      dom::object o;
      if (it.el.get(o) == simdjson::SUCCESS && o["reference"].get(r) == simdjson::SUCCESS)
        ref = std::string(r);
      else if (it.el.get(r) == simdjson::SUCCESS)
        ref = std::string(r);
    }
    if (!ref) continue;
    if (ref->starts_with("#")) {
      dom::array contained;
      dom::element res = env.focus.resource;
      if (res["contained"].get(contained) == simdjson::SUCCESS) {
        for (dom::element c : contained) {
          std::string_view id;
          if (c["id"].get(id) == simdjson::SUCCESS && id == std::string_view(*ref).substr(1))
            out.push_back(node_item(c, true, {}, false, S().resource_type));
        }
      }
      continue;
    }
    // Bundle entries of the root resource: by fullUrl, or by Type/id.
    dom::array entries;
    if (env.focus.root["entry"].get(entries) == simdjson::SUCCESS) {
      for (dom::element e : entries) {
        std::string_view full, rt, id;
        dom::element res;
        if (e["resource"].get(res)) continue;
        bool hit = e["fullUrl"].get(full) == simdjson::SUCCESS && full == *ref;
        if (!hit && res["resourceType"].get(rt) == simdjson::SUCCESS &&
            res["id"].get(id) == simdjson::SUCCESS) {
          std::string tid = std::string(rt) + "/" + std::string(id);
          hit = *ref == tid || ref->ends_with("/" + tid);
        }
        if (hit) out.push_back(node_item(res, true, {}, false, S().resource_type));
      }
    }
  }
  return out;
}

// Strings (and primitives whose value is a string) are compared through a hash set: a union of
// a resource's references (dom-3) is linear, not quadratic. Other items compare pairwise.
Coll distinct(const Coll& c) {
  Coll out, others;
  std::unordered_set<std::string> strings;
  for (auto& x : c) {
    auto v = to_system(x);
    if (v && v->kind == Item::string) {
      if (strings.insert(v->s).second) out.push_back(x);
    } else if (!contains_item(others, x)) {
      others.push_back(x);
      out.push_back(x);
    }
  }
  return out;
}

// memberOf(url) against the value sets compiled into the binary (the R4 core's required-bound
// value sets, enumerated by tools/fhir-schema-gen, or checked by their grammar: MIME types, UCUM,
// currencies). Any other value set is "not evaluated", never a pass or a fail.
Coll member_of(const Coll& in, const std::optional<std::string>& url_arg) {
  if (in.empty() || !url_arg) return {};
  if (in.size() > 1) throw NotEvaluated{"memberOf() on more than one item"};
  std::string_view url = *url_arg;
  url = url.substr(0, url.find('|'));
  const schema::Schema& s = S();
  int32_t vi = s.find_value_set(url);
  if (vi < 0 || s.value_sets[static_cast<size_t>(vi)].mode == schema::VsMode::any)
    throw NotEvaluated{"memberOf('" + std::string(url) + "'): the value set is not loaded"};
  const schema::ValueSet& vs = s.value_sets[static_cast<size_t>(vi)];
  auto code_in = [&](std::string_view c) {
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
        break;
    }
    return false;
  };
  auto coding_in = [&](dom::element c) {
    std::string_view sys, code;
    if (c["code"].get(code) != simdjson::SUCCESS) return false;
    if (c["system"].get(sys) == simdjson::SUCCESS && !vs.systems.empty() && !vs.has_system(sys))
      return false;
    return code_in(code);
  };
  const Item& it = in[0];
  if (it.kind == Item::string) return {make_bool(code_in(it.s))};
  if (it.kind != Item::node || !it.has_el) return {};
  std::string_view str;
  if (it.el.get(str) == simdjson::SUCCESS) return {make_bool(code_in(str))};
  if (it.type == s.coding_type) return {make_bool(coding_in(it.el))};
  if (it.type == s.codeable_concept_type) {
    dom::array codings;
    bool any = false;
    if (it.el["coding"].get(codings) == simdjson::SUCCESS)
      for (dom::element c : codings) any = any || coding_in(c);
    return {make_bool(any)};
  }
  throw NotEvaluated{"memberOf() on a value that is not a code, Coding or CodeableConcept"};
}

// one piece: the dispatch over every FHIRPath function name of the subset, each case a few lines
// over the same receiver and arguments; split, the table of supported functions would scatter.
Coll call(const Ast& n, const Coll& in, Env& env) {
  const std::string& f = n.name;
  auto arg = [&](size_t i) -> Coll {
    if (i >= n.args.size()) throw NotEvaluated{f + "() needs more arguments"};
    return eval(*n.args[i], env.context.kind == Item::node ? Coll{env.context} : Coll{}, env);
  };
  // Arguments evaluated against the input ($this is the whole input at the call, not per item).
  auto arg_on = [&](size_t i, const Coll& focus) -> Coll {
    if (i >= n.args.size()) throw NotEvaluated{f + "() needs more arguments"};
    return eval(*n.args[i], focus, env);
  };
  (void)arg;
  if (f == "exists") {
    if (n.args.empty()) return {make_bool(!in.empty())};
    for (auto& it : in) {
      auto b = to_bool(eval_arg(*n.args[0], it, env));
      if (b && *b) return {make_bool(true)};
    }
    return {make_bool(false)};
  }
  if (f == "empty") return {make_bool(in.empty())};
  if (f == "count") return {make_int(static_cast<int64_t>(in.size()))};
  if (f == "not") {
    auto b = to_bool(in);
    if (!b) return {};
    return {make_bool(!*b)};
  }
  if (f == "hasValue") {
    if (in.size() != 1) return {make_bool(false)};
    const Item& it = in[0];
    return {make_bool(it.kind != Item::node || (is_primitive_type(it.type) && it.has_el))};
  }
  if (f == "where") {
    Coll out;
    for (auto& it : in) {
      auto b = to_bool(eval_arg(*n.args.at(0), it, env));
      if (b && *b) out.push_back(it);
    }
    return out;
  }
  if (f == "select") {
    Coll out;
    for (auto& it : in) {
      Coll r = eval_arg(*n.args.at(0), it, env);
      out.insert(out.end(), r.begin(), r.end());
    }
    return out;
  }
  if (f == "all") {
    for (auto& it : in) {
      auto b = to_bool(eval_arg(*n.args.at(0), it, env));
      if (!b || !*b) return {make_bool(false)};
    }
    return {make_bool(true)};
  }
  if (f == "allFalse" || f == "allTrue" || f == "anyTrue" || f == "anyFalse") {
    bool want = f == "allTrue" || f == "anyTrue";
    bool any = f.starts_with("any");
    for (auto& it : in) {
      auto b = to_bool(Coll{it});
      bool hit = b && *b == want;
      if (any && hit) return {make_bool(true)};
      if (!any && !hit) return {make_bool(false)};
    }
    return {make_bool(!any)};
  }
  if (f == "isDistinct") return {make_bool(distinct(in).size() == in.size())};
  if (f == "distinct") return distinct(in);
  if (f == "first") return in.empty() ? Coll{} : Coll{in.front()};
  if (f == "last") return in.empty() ? Coll{} : Coll{in.back()};
  if (f == "tail") return in.size() <= 1 ? Coll{} : Coll(in.begin() + 1, in.end());
  if (f == "single") {
    if (in.size() > 1) throw NotEvaluated{"single() on more than one item"};
    return in;
  }
  if (f == "children") {
    Coll out;
    for (auto& it : in) children_of(it, out);
    return out;
  }
  if (f == "descendants") {
    Coll out;
    for (auto& it : in) descendants_of(it, out);
    return out;
  }
  if (f == "trace") return in;
  if (f == "iif") {
    auto b = to_bool(arg_on(0, in));
    if (b && *b) return arg_on(1, in);
    if (n.args.size() > 2) return arg_on(2, in);
    return {};
  }
  if (f == "combine" || f == "union") {
    Coll r = arg_on(0, env.context.kind == Item::node ? Coll{env.context} : Coll{});
    Coll out = in;
    out.insert(out.end(), r.begin(), r.end());
    return f == "union" ? distinct(out) : out;
  }
  if (f == "intersect" || f == "exclude") {
    Coll r = arg_on(0, env.context.kind == Item::node ? Coll{env.context} : Coll{});
    Coll out;
    for (auto& x : in)
      if (contains_item(r, x) == (f == "intersect") && !(f == "intersect" && contains_item(out, x)))
        out.push_back(x);
    return out;
  }
  if (f == "is") {
    if (in.empty()) return {};
    if (in.size() > 1) throw NotEvaluated{"is() on more than one item"};
    return {make_bool(type_matches(in[0], n.type_name))};
  }
  if (f == "as" || f == "ofType") {
    if (f == "as" && in.size() > 1) {
      // fhirpath.js (and FHIR usage such as descendants().as(canonical)) filter here.
    }
    Coll out;
    for (auto& it : in)
      if (type_matches(it, n.type_name)) out.push_back(it);
    return out;
  }
  if (f == "resolve") return resolve_refs(in, env);
  if (f == "htmlChecks" || f == "htmlchecks") {
    if (in.size() != 1) return {};
    auto s = to_system(in[0]);
    if (!s || s->kind != Item::string) return {};
    return {make_bool(html_checks(s->s, false))};
  }
  if (f == "conformsTo") throw NotEvaluated{"conformsTo() needs profiles"};
  // String functions (on a single string input; empty input gives empty).
  if (f == "toInteger") {
    if (in.empty()) return {};
    auto v = to_system(in.at(0));
    if (!v) return {};
    if (v->kind == Item::integer) return {*v};
    if (v->kind == Item::boolean) return {make_int(v->b ? 1 : 0)};
    if (v->kind == Item::string) {
      std::string_view s = v->s;
      int64_t x = 0;
      const char* b = s.data() + (s.starts_with("+") ? 1 : 0);
      auto r = std::from_chars(b, s.data() + s.size(), x);
      if (r.ec == std::errc() && r.ptr == s.data() + s.size()) return {make_int(x)};
    }
    return {};
  }
  if (f == "toString") {
    auto s = to_str(in);
    if (!s) return {};
    return {make_str(*s)};
  }
  if (f == "toDecimal") {
    if (in.empty()) return {};
    auto v = to_system(in.at(0));
    if (v && is_number(*v)) {
      Item d;
      d.kind = Item::decimal;
      d.d = num_of(*v);
      return {d};
    }
    return {};
  }
  auto input_str = [&]() -> std::optional<std::string> {
    if (in.empty()) return std::nullopt;
    if (in.size() > 1) throw NotEvaluated{f + "() on more than one item"};
    auto v = to_system(in[0]);
    if (!v || v->kind != Item::string) {
      if (v && (v->kind == Item::date || v->kind == Item::datetime || v->kind == Item::time))
        return v->s;
      return std::nullopt;
    }
    return v->s;
  };
  auto str_arg = [&](size_t i) -> std::optional<std::string> {
    return to_str(arg_on(i, env.context.kind == Item::node ? Coll{env.context} : Coll{}));
  };
  if (f == "memberOf") return member_of(in, str_arg(0));
  if (f == "startsWith" || f == "endsWith" || f == "contains") {
    auto s = input_str();
    auto a = str_arg(0);
    if (!s || !a) return {};
    bool r = f == "startsWith" ? s->starts_with(*a)
             : f == "endsWith" ? s->ends_with(*a)
                               : s->find(*a) != std::string::npos;
    return {make_bool(r)};
  }
  // libstdc++'s std::regex matches recursively: a hostile multi-megabyte string could exhaust
  // the stack. Longer inputs are reported as not evaluated (no R4 invariant needs them).
  constexpr size_t kMaxRegexInput = 4096;
  if (f == "matches") {
    auto s = input_str();
    if (!s) return {};
    if (s->size() > kMaxRegexInput)
      throw NotEvaluated{"matches() on a string longer than 4096 bytes"};
    std::shared_ptr<std::regex> re = n.re;
    if (!re) {
      auto a = str_arg(0);
      if (!a) return {};
      try {
        re = std::make_shared<std::regex>(*a, std::regex::ECMAScript);
      } catch (const std::regex_error&) {
        throw NotEvaluated{"regular expression " + *a};
      }
    }
    return {make_bool(std::regex_search(*s, *re))};
  }
  if (f == "replaceMatches") {
    auto s = input_str();
    auto sub = str_arg(1);
    if (!s || !sub || !n.re) return {};
    if (s->size() > kMaxRegexInput)
      throw NotEvaluated{"replaceMatches() on a string longer than 4096 bytes"};
    return {make_str(std::regex_replace(*s, *n.re, *sub))};
  }
  if (f == "substring") {
    auto s = input_str();
    Coll a = arg_on(0, env.context.kind == Item::node ? Coll{env.context} : Coll{});
    if (!s || a.empty()) return {};
    auto st = to_system(a[0]);
    if (!st || st->kind != Item::integer) return {};
    int64_t start = st->i;
    if (start < 0 || start >= static_cast<int64_t>(s->size())) return {};
    size_t len = std::string::npos;
    if (n.args.size() > 1) {
      Coll l = arg_on(1, env.context.kind == Item::node ? Coll{env.context} : Coll{});
      auto lv = l.empty() ? std::nullopt : to_system(l[0]);
      if (lv && lv->kind == Item::integer) len = static_cast<size_t>(std::max<int64_t>(0, lv->i));
    }
    return {make_str(s->substr(static_cast<size_t>(start), len))};
  }
  if (f == "length") {
    auto s = input_str();
    if (!s) return {};
    return {make_int(static_cast<int64_t>(s->size()))};
  }
  if (f == "upper" || f == "lower") {
    auto s = input_str();
    if (!s) return {};
    for (auto& c : *s)
      c = f == "upper" ? static_cast<char>(std::toupper(static_cast<unsigned char>(c)))
                       : static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return {make_str(*s)};
  }
  throw NotEvaluated{"function " + f + "()"};
}

}  // namespace fe::fhir::fhirpath::detail
