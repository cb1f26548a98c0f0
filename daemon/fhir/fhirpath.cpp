// FHIRPath, part 4 of the engine: the tree-walking evaluator (operators, navigation, the cache
// of focus-independent results), evaluate_invariant/evaluate_to_string, the generated R4
// invariant table and the checker that applies it to a resource. See fhirpath.hpp for the
// contract and fhirpath_internal.hpp for how the engine is split into files.
#include "fhir/fhirpath_internal.hpp"

#include <algorithm>
#include <cmath>
#include <stdexcept>

namespace fe::fhir::schema_data {
extern const char kBlob[];
extern const std::size_t kBlobSize;
}  // namespace fe::fhir::schema_data

namespace fe::fhir::fhirpath {

using schema::Kind;
using schema::Prim;
using namespace detail;

namespace detail {

// one piece: the dispatch over the binary operators (boolean logic, equality, comparison,
// arithmetic, membership, union), each case a few lines over the same evaluated operands.
Coll binary(const Ast& n, const Coll& focus, Env& env) {
  const std::string& o = n.name;
  if (o == "and" || o == "or" || o == "xor" || o == "implies") {
    auto l = to_bool(eval(*n.args[0], focus, env));
    if (o == "and" && l && !*l) return {make_bool(false)};
    if (o == "or" && l && *l) return {make_bool(true)};
    if (o == "implies" && l && !*l) return {make_bool(true)};
    auto r = to_bool(eval(*n.args[1], focus, env));
    if (o == "and") {
      if (r && !*r) return {make_bool(false)};
      if (l && r) return {make_bool(true)};
      return {};
    }
    if (o == "or") {
      if (r && *r) return {make_bool(true)};
      if (l && r) return {make_bool(false)};
      return {};
    }
    if (o == "xor") {
      if (!l || !r) return {};
      return {make_bool(*l != *r)};
    }
    // implies: l is true or empty here
    if (r && *r) return {make_bool(true)};
    if (l && r) return {make_bool(false)};
    return {};
  }
  if ((o == "in" || o == "contains") && n.args[o == "in" ? 1 : 0]->konst) {
    // The set side's string index, once built, answers without copying the collection again
    // (ref-1 asks `... in %rootResource.contained.id` once per Reference).
    const Ast& set_ast = *n.args[o == "in" ? 1 : 0];
    auto& sets = env.cache_for(set_ast).sets;
    auto hit = sets.find(&set_ast);
    if (hit != sets.end()) {
      Coll item = eval(*n.args[o == "in" ? 0 : 1], focus, env);
      if (item.empty()) return {};
      if (item.size() > 1) throw NotEvaluated{"'" + o + "' with more than one item"};
      auto x = to_system(item[0]);
      if (x && x->kind == Item::string) return {make_bool(hit->second.count(x->s) > 0)};
    }
  }
  Coll a = eval(*n.args[0], focus, env);
  Coll b = eval(*n.args[1], focus, env);
  if (o == "|") {
    a.insert(a.end(), b.begin(), b.end());
    return distinct(a);
  }
  if (o == "=" || o == "!=") {
    auto e = equal_colls(a, b);
    if (!e) return {};
    return {make_bool(o == "=" ? *e : !*e)};
  }
  if (o == "~" || o == "!~") {
    bool e = a.size() == b.size();
    for (size_t i = 0; e && i < a.size(); i++) {
      auto x = to_system(a[i]), y = to_system(b[i]);
      if (x && y && x->kind == Item::string && y->kind == Item::string) {
        std::string p = x->s, q = y->s;
        for (auto& c : p) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        for (auto& c : q) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        e = p == q;
      } else {
        auto r = equal_items(a[i], b[i]);
        e = r && *r;
      }
    }
    return {make_bool(o == "~" ? e : !e)};
  }
  if (o == "in" || o == "contains") {
    const Coll& item = o == "in" ? a : b;
    const Coll& set = o == "in" ? b : a;
    if (item.empty()) return {};
    if (item.size() > 1) throw NotEvaluated{"'" + o + "' with more than one item"};
    // A large focus-independent collection of strings (dom-3's references): hash it once.
    const Ast& set_ast = *n.args[o == "in" ? 1 : 0];
    auto x = to_system(item[0]);
    if (set_ast.konst && set.size() > 16 && x && x->kind == Item::string) {
      auto& sets = env.cache_for(set_ast).sets;
      auto it = sets.find(&set_ast);
      if (it == sets.end()) {
        std::unordered_set<std::string> strs;
        bool all_strings = true;
        for (auto& y : set) {
          auto v = to_system(y);
          if (!v || v->kind != Item::string) {
            all_strings = false;
            break;
          }
          strs.insert(v->s);
        }
        if (all_strings) it = sets.emplace(&set_ast, std::move(strs)).first;
      }
      if (it != sets.end()) return {make_bool(it->second.count(x->s) > 0)};
    }
    return {make_bool(contains_item(set, item[0]))};
  }
  if (o == "<" || o == ">" || o == "<=" || o == ">=") {
    if (a.empty() || b.empty()) return {};
    if (a.size() > 1 || b.size() > 1) throw NotEvaluated{"comparison of collections"};
    auto c = compare_items(a[0], b[0]);
    if (!c) return {};
    bool r = o == "<" ? *c < 0 : o == ">" ? *c > 0 : o == "<=" ? *c <= 0 : *c >= 0;
    return {make_bool(r)};
  }
  if (o == "&") {
    auto x = a.empty() ? std::string() : to_str(a).value_or("");
    auto y = b.empty() ? std::string() : to_str(b).value_or("");
    return {make_str(x + y)};
  }
  if (a.empty() || b.empty()) return {};
  if (a.size() > 1 || b.size() > 1) throw NotEvaluated{"arithmetic on collections"};
  auto x = to_system(a[0]), y = to_system(b[0]);
  if (!x || !y) return {};
  if (o == "+" && x->kind == Item::string && y->kind == Item::string)
    return {make_str(x->s + y->s)};
  if (is_number(*x) && is_number(*y)) {
    if (x->kind == Item::integer && y->kind == Item::integer && o != "/") {
      if (o == "+") return {make_int(x->i + y->i)};
      if (o == "-") return {make_int(x->i - y->i)};
      if (o == "*") return {make_int(x->i * y->i)};
      if (o == "div") return y->i == 0 ? Coll{} : Coll{make_int(x->i / y->i)};
      if (o == "mod") return y->i == 0 ? Coll{} : Coll{make_int(x->i % y->i)};
    }
    double p = num_of(*x), q = num_of(*y);
    Item r;
    r.kind = Item::decimal;
    if (o == "+")
      r.d = p + q;
    else if (o == "-")
      r.d = p - q;
    else if (o == "*")
      r.d = p * q;
    else if (o == "/") {
      if (q == 0) return {};
      r.d = p / q;
    } else
      throw NotEvaluated{"operator " + o + " on decimals"};
    return {r};
  }
  throw NotEvaluated{"operator " + o + " on these types"};
}

Coll eval_uncached(const Ast& n, const Coll& focus, Env& env);

Coll eval(const Ast& n, const Coll& focus, Env& env) {
  if (!n.konst || n.op == Ast::literal || n.op == Ast::env || n.op == Ast::empty_literal)
    return eval_uncached(n, focus, env);
  auto& colls = env.cache_for(n).colls;
  auto it = colls.find(&n);
  if (it != colls.end()) return it->second;
  Coll r = eval_uncached(n, focus, env);
  env.cache_for(n).colls.emplace(&n, r);  // (eval may have rehashed `colls`: same map)
  return r;
}

Coll eval_uncached(const Ast& n, const Coll& focus, Env& env) {
  switch (n.op) {
    case Ast::literal:
      return {n.lit};
    case Ast::empty_literal:
      return {};
    case Ast::this_:
      return focus;
    case Ast::env: {
      if (n.name == "resource") return {env.resource};
      if (n.name == "rootResource") return {env.root};
      if (n.name == "context") return {env.context};
      if (n.name == "ucum") return {make_str("http://unitsofmeasure.org")};
      if (n.name == "sct") return {make_str("http://snomed.info/sct")};
      if (n.name == "loinc") return {make_str("http://loinc.org")};
      throw NotEvaluated{"%" + n.name};
    }
    case Ast::ident: {
      // A leading type name selects the focus when it is of that type (Appointment.status).
      if (!n.name.empty() && std::isupper(static_cast<unsigned char>(n.name[0]))) {
        Coll out;
        for (auto& it : focus)
          if (it.kind == Item::node && it.type != kNoType && type_matches(it, n.name))
            out.push_back(it);
        if (!out.empty()) return out;
      }
      Coll out;
      for (auto& it : focus) navigate(it, n.name, out);
      return out;
    }
    case Ast::member: {
      Coll in = eval(*n.args[0], focus, env);
      Coll out;
      for (auto& it : in) navigate(it, n.name, out);
      return out;
    }
    case Ast::func: {
      if (n.recv) {
        Coll in = eval(*n.recv, focus, env);
        return call(n, in, env);
      }
      return call(n, focus, env);
    }
    case Ast::index: {
      Coll in = eval(*n.args[0], focus, env);
      Coll ix = eval(*n.args[1], focus, env);
      if (ix.empty() || ix[0].kind != Item::integer) return {};
      if (ix[0].i < 0 || ix[0].i >= static_cast<int64_t>(in.size())) return {};
      return {in[static_cast<size_t>(ix[0].i)]};
    }
    case Ast::unary_minus: {
      Coll in = eval(*n.args[0], focus, env);
      if (in.empty()) return {};
      auto v = to_system(in[0]);
      if (!v) return {};
      if (v->kind == Item::integer)
        v->i = -v->i;
      else if (v->kind == Item::decimal || v->kind == Item::quantity)
        v->d = -v->d;
      else
        throw NotEvaluated{"unary minus on a non-number"};
      return {*v};
    }
    case Ast::binary:
      return binary(n, focus, env);
    case Ast::type_op: {
      Coll in = eval(*n.args[0], focus, env);
      if (n.name == "is") {
        if (in.empty()) return {};
        if (in.size() > 1) throw NotEvaluated{"'is' on more than one item"};
        return {make_bool(type_matches(in[0], n.type_name))};
      }
      Coll out;
      for (auto& it : in)
        if (type_matches(it, n.type_name)) out.push_back(it);
      return out;
    }
  }
  return {};
}

Env make_env(const Focus& f) {
  Env env{f,
          node_item(f.node, f.has_node, f.ext, f.has_ext, f.type),
          node_item(f.resource, true, {}, false, f.resource_type),
          node_item(f.root, true, {}, false, f.root_type),
          {},
          nullptr};
  return env;
}

std::string render(const Coll& c) {
  std::string out = "[";
  for (size_t i = 0; i < c.size(); i++) {
    if (i) out += ", ";
    auto v = to_system(c[i]);
    if (!v) {
      out += c[i].has_el ? simdjson::to_string(c[i].el) : std::string("{}");
      continue;
    }
    switch (v->kind) {
      case Item::string:
        out += "'" + v->s + "'";
        break;
      case Item::date:
      case Item::datetime:
        out += "@" + v->s;
        break;
      case Item::time:
        out += "@T" + v->s;
        break;
      default:
        out += *to_str(Coll{*v});
    }
  }
  return out + "]";
}

}  // namespace detail

namespace {
Evaluation evaluate_cached(const Expression& expr, const Focus& focus, Cache* shared) {
  if (!expr.ok()) return {Outcome::not_evaluated, expr.error(), false};
  Env env = make_env(focus);
  env.shared = shared;
  try {
    Coll r = eval(*expr.ast, Coll{env.context}, env);
    auto b = to_bool(r);
    if (b && !*b) return {Outcome::fail, {}, false};
    return {Outcome::pass, {}, !b.has_value()};
  } catch (const NotEvaluated& ne) {
    return {Outcome::not_evaluated, ne.why, false};
  } catch (const std::exception& e) {
    return {Outcome::not_evaluated, e.what(), false};
  }
}
}  // namespace

Evaluation evaluate_invariant(const Expression& expr, const Focus& focus) {
  return evaluate_cached(expr, focus, nullptr);
}

std::string evaluate_to_string(const Expression& expr, const Focus& focus) {
  if (!expr.ok()) return "error: " + expr.error();
  Env env = make_env(focus);
  try {
    return render(eval(*expr.ast, Coll{env.context}, env));
  } catch (const NotEvaluated& ne) {
    return "error: " + ne.why;
  }
}

// ---- The generated invariant table -------------------------------------------------------------

const InvariantTable& core_invariants() {
  static const InvariantTable table = [] {
    InvariantTable t;
    const schema::Schema& s = S();
    t.on_type.resize(s.types.size());
    t.on_element.resize(s.types.size());
    std::string_view blob(schema_data::kBlob, schema_data::kBlobSize);
    size_t pos = 0;
    while (pos < blob.size()) {
      size_t nl = blob.find('\n', pos);
      if (nl == std::string_view::npos) nl = blob.size();
      std::string_view line = blob.substr(pos, nl - pos);
      pos = nl + 1;
      if (!line.starts_with("I\t")) continue;
      std::string_view f[6];
      size_t start = 0;
      for (int i = 0; i < 6; i++) {
        size_t tab = i < 5 ? line.find('\t', start) : std::string_view::npos;
        f[i] = line.substr(start,
                           tab == std::string_view::npos ? std::string_view::npos : tab - start);
        start = tab + 1;
      }
      int32_t ti = s.find_type(f[1]);
      if (ti < 0) continue;
      Invariant inv;
      inv.type_name = f[1];
      inv.element = f[2];
      inv.key = f[3];
      inv.expression = f[4];
      inv.human = f[5];
      inv.type = static_cast<uint32_t>(ti);
      inv.expr = Expression::compile(inv.expression);
      uint32_t ix = static_cast<uint32_t>(t.all.size());
      t.all.push_back(std::move(inv));
      (f[2].empty() ? t.on_type : t.on_element)[static_cast<size_t>(ti)].push_back(ix);
    }
    return t;
  }();
  return table;
}

namespace {

struct Checker {
  const InvariantTable& tab = core_invariants();
  const schema::Schema& s = S();
  Counts& counts;
  std::vector<InvariantResult>& out;
  bool include_passes;
  std::string path;
  dom::element resource, root;
  uint32_t resource_type = 0, root_type = 0;
  Cache cache;  // focus-independent results for the current %resource/%rootResource

  void run(const Invariant& inv, const Item& it) {
    Focus f;
    f.node = it.el;
    f.has_node = it.has_el;
    f.ext = it.ext;
    f.has_ext = it.has_ext;
    f.type = it.type;
    f.resource = resource;
    f.root = root;
    f.resource_type = resource_type;
    f.root_type = root_type;
    Evaluation e = evaluate_cached(inv.expr, f, &cache);
    if (e.outcome == Outcome::not_evaluated)
      counts.not_evaluated++;
    else
      counts.evaluated++;
    if (e.outcome == Outcome::fail) counts.failed++;
    if (e.outcome != Outcome::pass || include_passes) {
      InvariantResult r{&inv, path, e.outcome, std::move(e.reason), {}, e.undecided};
      std::string_view sv;
      if (it.has_el && it.el.get(sv) == simdjson::SUCCESS) r.node_text = std::string(sv);
      out.push_back(std::move(r));
    }
  }

  void visit(const Item& it, bool nested = false, bool contained = false) {
    if (it.type == kNoType) return;
    const schema::Type& t = s.types[it.type];
    if (t.kind == Kind::resource && it.has_el) {
      dom::object o;
      if (it.el.get(o)) return;
      // A nested resource (contained, Bundle.entry.resource) is its own %resource; a contained
      // resource keeps its container as %rootResource.
      auto saved = std::make_tuple(resource, root, resource_type, root_type);
      Cache outer;  // the nested resource has its own %resource (and maybe %rootResource)
      if (nested) std::swap(cache, outer);
      if (nested) {
        resource = it.el;
        resource_type = it.type;
        if (!contained) {
          root = it.el;
          root_type = it.type;
        }
      }
      for (uint32_t ix : tab.on_type[it.type]) run(tab.all[ix], it);
      object_children(it, t);
      std::tie(resource, root, resource_type, root_type) = saved;
      if (nested) std::swap(cache, outer);
      return;
    }
    for (uint32_t ix : tab.on_type[it.type]) run(tab.all[ix], it);
    if (t.kind == Kind::primitive) return;
    object_children(it, t);
  }

  void object_children(const Item& it, const schema::Type& t) {
    dom::object obj;
    if (!it.has_el || it.el.get(obj)) return;
    const std::vector<uint32_t>& on_el = tab.on_element[it.type];
    // `_name` siblings are looked up only when the object has any (most have none).
    bool any_under = false;
    for (auto [key, val] : obj) any_under |= !key.empty() && key[0] == '_';
    Coll items;
    for (auto [key, val] : obj) {
      if (key.empty() || key == "resourceType") continue;
      bool under = key[0] == '_';
      std::string_view name = under ? key.substr(1) : key;
      int32_t ei = s.find(it.type, name);
      if (ei < 0) continue;
      const schema::Element& e = s.elements[static_cast<size_t>(ei)];
      if (under && obj[name].error() == simdjson::SUCCESS) continue;  // visited with its value
      if (under && !is_primitive_type(e.type)) continue;
      items.clear();
      if (under) {
        push_values(e, {}, false, val, true, items);
      } else {
        dom::element u;
        bool hu = any_under && is_primitive_type(e.type) &&
                  obj["_" + std::string(name)].get(u) == simdjson::SUCCESS;
        push_values(e, val, true, u, hu, items);
      }
      const size_t base = path.size();
      bool many = val.is_array();
      for (size_t i = 0; i < items.size(); i++) {
        path.resize(base);
        path += '.';
        path += name;
        if (many) path += "[" + std::to_string(i) + "]";
        for (uint32_t ix : on_el) {
          const Invariant& inv = tab.all[ix];
          std::string_view en = inv.element;
          bool match =
              en == name || (en.ends_with("[x]") && en.substr(0, en.size() - 3) == e.choice_base &&
                             !e.choice_base.empty());
          if (match) run(inv, items[i]);
        }
        visit(items[i], true, name == "contained");
      }
      path.resize(base);
    }
    (void)t;
  }
};

}  // namespace

void check_resource(dom::element resource, uint32_t type, std::string_view type_name,
                    Counts& counts, std::vector<InvariantResult>& out, bool include_passes) {
  Checker c{core_invariants(), S(),  counts, out, include_passes, std::string(type_name), resource,
            resource,          type, type,   {}};
  c.visit(node_item(resource, true, {}, false, type));
}

}  // namespace fe::fhir::fhirpath
