#pragma once
// The FHIRPath engine's private vocabulary, shared by its files (not part of the stage's API; see
// fhirpath.hpp for the contract):
//   fhirpath_parse.cpp     lexer and recursive-descent parser to the AST (Expression::compile)
//   fhirpath_types.cpp     schema navigation, system types, dates, quantities, equality/ordering
//   fhirpath_functions.cpp the function library (call) and %resource reference resolution
//   fhirpath.cpp           the evaluator (operators, caching), the invariant table and checker
//   fhirpath_html.cpp      htmlChecks() on narrative XHTML
#include "fhir/fhirpath.hpp"
#include "fhir/internal.hpp"

#include <cstdint>
#include <optional>
#include <regex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

namespace fe::fhir::fhirpath {

namespace dom = simdjson::dom;

namespace detail {
inline constexpr uint32_t kNoType = UINT32_MAX;

// Raised when an expression cannot be evaluated (not a FHIRPath "false").
struct NotEvaluated {
  std::string why;
};

// ---- Values ------------------------------------------------------------------------------------

struct Item {
  enum Kind : uint8_t { node, boolean, integer, decimal, string, date, datetime, time, quantity };
  Kind kind = node;
  bool b = false;
  int64_t i = 0;
  double d = 0;
  std::string s;  // string text, date/time text, quantity unit
  dom::element el, ext;
  bool has_el = false, has_ext = false;
  uint32_t type = kNoType;
};
using Coll = std::vector<Item>;

inline Item make_bool(bool v) {
  Item x;
  x.kind = Item::boolean;
  x.b = v;
  return x;
}
inline Item make_str(std::string v) {
  Item x;
  x.kind = Item::string;
  x.s = std::move(v);
  return x;
}
inline Item make_int(int64_t v) {
  Item x;
  x.kind = Item::integer;
  x.i = v;
  return x;
}
}  // namespace detail

struct Ast {
  enum Op : uint8_t {
    literal,
    empty_literal,
    ident,   // navigation from the focus (name)
    member,  // args[0].name
    func,    // name(args...), receiver in recv (may be null: focus)
    this_,   // $this
    env,     // %name
    index,   // args[0][args[1]]
    unary_minus,
    binary,   // name is the operator
    type_op,  // is / as with type_name
  };
  Op op = literal;
  std::string name;
  std::string type_name;
  detail::Item lit;
  std::unique_ptr<Ast> recv;
  std::vector<std::unique_ptr<Ast>> args;
  std::shared_ptr<std::regex> re;  // matches/replaceMatches with a literal pattern
  // Independent of the focus ($this): rooted at %resource/%rootResource/%context or a literal.
  // Evaluated once per invariant evaluation and cached (dom-3 asks for
  // %resource.descendants() once per contained resource: quadratic without the cache).
  bool konst = false;
  bool uses_context = false;  // reads %context (the node): cached per node only
};

namespace detail {

// Results of focus-independent sub-expressions (Ast::konst), and the string values of such a
// collection used as the right side of `in`.
struct Cache {
  std::unordered_map<const Ast*, Coll> colls;
  std::unordered_map<const Ast*, std::unordered_set<std::string>> sets;
};

struct Env {
  const Focus& focus;
  Item context, resource, root;
  Cache local;              // this one evaluation
  Cache* shared = nullptr;  // every evaluation with the same %resource/%rootResource (Checker)
  // %resource/%rootResource-rooted results hold for every node of the resource (ref-1 asks for
  // %rootResource.contained.id once per Reference); %context-rooted ones only for this node.
  Cache& cache_for(const Ast& n) { return n.uses_context || !shared ? local : *shared; }
};

Coll eval(const Ast& n, const Coll& focus, Env& env);

inline Coll eval_arg(const Ast& n, const Item& item, Env& env) {
  return eval(n, Coll{item}, env);
}

// fhirpath_types.cpp
const schema::Schema& S();
uint32_t resource_type_of(dom::element el);
Item node_item(dom::element el, bool has_el, dom::element ext, bool has_ext, uint32_t type);
bool is_primitive_type(uint32_t t);
void navigate(const Item& it, std::string_view name, Coll& out);
void children_of(const Item& it, Coll& out);
void descendants_of(const Item& it, Coll& out);
std::string_view system_type(const Item& it);
bool type_matches(const Item& it, std::string_view want);
std::optional<Item> to_system(const Item& it);
std::optional<int> compare_dt(const Item& a, const Item& b);
std::optional<int> compare_qty(const Item& a, const Item& b);
bool is_number(const Item& x);
double num_of(const Item& x);
bool is_temporal(const Item& x);
std::optional<bool> equal_items(const Item& a0, const Item& b0);
std::optional<bool> equal_colls(const Coll& a, const Coll& b);
std::optional<int> compare_items(const Item& a0, const Item& b0);
std::optional<bool> to_bool(const Coll& c);
std::optional<std::string> to_str(const Coll& c);
bool contains_item(const Coll& c, const Item& x);
// The UCUM code of a calendar duration keyword ("year" → "a"); u itself when it is not one.
std::string_view calendar_unit(std::string_view u);

// fhirpath.cpp
// Appends the value(s) of element e (JSON name) of object obj.
void push_values(const schema::Element& e, dom::element v, bool hv, dom::element u, bool hu,
                 Coll& out);

// fhirpath_functions.cpp
Coll call(const Ast& n, const Coll& in, Env& env);
Coll distinct(const Coll& c);

}  // namespace detail
}  // namespace fe::fhir::fhirpath
