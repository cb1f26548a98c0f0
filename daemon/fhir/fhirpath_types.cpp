// FHIRPath, part 2 of the engine: values. Navigation over simdjson nodes typed by the compiled R4
// schema (choice types, primitive extensions), system types and is/as, conversion of nodes to
// system values, partial-precision dates and times, UCUM quantities within one dimension, and
// equality, equivalence and ordering (a comparison the precision cannot decide is empty).
#include "fhir/fhirpath_internal.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <tuple>

namespace fe::fhir::fhirpath::detail {

using schema::Kind;
using schema::Prim;

// ---- Schema helpers ----------------------------------------------------------------------------

const schema::Schema& S() {
  return schema::core();
}

// Resolves the concrete type of a resource-typed node.
uint32_t resource_type_of(dom::element el) {
  std::string_view rt;
  if (el["resourceType"].get(rt)) return kNoType;
  int32_t t = S().find_resource(rt);
  return t < 0 ? kNoType : static_cast<uint32_t>(t);
}

Item node_item(dom::element el, bool has_el, dom::element ext, bool has_ext, uint32_t type) {
  Item x;
  x.kind = Item::node;
  x.el = el;
  x.ext = ext;
  x.has_el = has_el;
  x.has_ext = has_ext;
  x.type = type;
  if (type == S().resource_type && has_el) x.type = resource_type_of(el);
  return x;
}

bool is_primitive_type(uint32_t t) {
  return t != kNoType && S().types[t].kind == Kind::primitive;
}

// Appends the value(s) of element e (JSON name) of object obj.
void push_values(const schema::Element& e, dom::element v, bool hv, dom::element u, bool hu,
                 Coll& out);

void push_element(const schema::Element& e, dom::object obj, Coll& out) {
  dom::element v, u;
  bool hv = obj[e.name].get(v) == simdjson::SUCCESS;
  bool hu = false;
  if (is_primitive_type(e.type)) {
    std::string un = "_" + std::string(e.name);
    hu = obj[un].get(u) == simdjson::SUCCESS;
  }
  push_values(e, v, hv, u, hu, out);
}

// The value(s) of element e given its JSON value v and, for a primitive, its `_name` sibling u.
void push_values(const schema::Element& e, dom::element v, bool hv, dom::element u, bool hu,
                 Coll& out) {
  if (!hv && !hu) return;
  dom::array va, ua;
  // Both sides are read independently: `value` may be an array while `_value` is too.
  const bool va_ok = hv && v.get(va) == simdjson::SUCCESS;
  const bool ua_ok = hu && u.get(ua) == simdjson::SUCCESS;
  const bool arr = va_ok || ua_ok;
  if (!arr) {
    if (hv && v.is_null()) hv = false;
    if (hv || hu) out.push_back(node_item(v, hv, u, hu, e.type));
    return;
  }
  // Iterate (dom::array::at is linear): pair value[i] with _value[i].
  std::vector<dom::element> xs, us;
  if (va_ok)
    for (dom::element x : va) xs.push_back(x);
  if (ua_ok)
    for (dom::element x : ua) us.push_back(x);
  const size_t n = std::max(xs.size(), us.size());
  for (size_t i = 0; i < n; i++) {
    dom::element a, b;
    bool ha = i < xs.size() && !xs[i].is_null();
    bool hb = i < us.size() && !us[i].is_null();
    if (ha) a = xs[i];
    if (hb) b = us[i];
    if (ha || hb) out.push_back(node_item(a, ha, b, hb, e.type));
  }
}

void navigate(const Item& it, std::string_view name, Coll& out) {
  if (it.kind != Item::node || it.type == kNoType) return;
  const schema::Schema& s = S();
  const schema::Type& t = s.types[it.type];
  if (t.kind == Kind::primitive) {
    // A primitive's id and extensions live in its `_name` object.
    if (!it.has_ext || (name != "extension" && name != "id")) return;
    dom::object o;
    if (it.ext.get(o)) return;
    int32_t ei = s.find(s.element_type, name);
    if (ei >= 0) push_element(s.elements[static_cast<size_t>(ei)], o, out);
    return;
  }
  dom::object obj;
  if (!it.has_el || it.el.get(obj)) return;
  int32_t ei = s.find(it.type, name);
  if (ei >= 0) {
    push_element(s.elements[static_cast<size_t>(ei)], obj, out);
    return;
  }
  // A choice element by its base name (value -> valueQuantity ...).
  for (uint32_t i = t.first; i < t.first + t.count; i++) {
    const schema::Element& e = s.elements[i];
    if (e.choice_base == name) push_element(e, obj, out);
  }
}

void children_of(const Item& it, Coll& out) {
  if (it.kind != Item::node || it.type == kNoType) return;
  const schema::Schema& s = S();
  const schema::Type& t = s.types[it.type];
  if (t.kind == Kind::primitive) {
    navigate(it, "id", out);
    navigate(it, "extension", out);
    return;
  }
  dom::object obj;
  if (!it.has_el || it.el.get(obj)) return;
  for (uint32_t i = t.first; i < t.first + t.count; i++) push_element(s.elements[i], obj, out);
}

void descendants_of(const Item& it, Coll& out) {
  Coll kids;
  children_of(it, kids);
  for (auto& k : kids) {
    out.push_back(k);
    descendants_of(k, out);
  }
}

// FHIR base types for is/as/ofType.
std::string_view parent_type(std::string_view n, const schema::Type& t) {
  if (t.kind == Kind::resource) {
    if (n == "Resource") return {};
    if (n == "DomainResource" || n == "Bundle" || n == "Binary" || n == "Parameters")
      return "Resource";
    return "DomainResource";
  }
  if (t.kind == Kind::backbone) return "BackboneElement";
  if (n == "Age" || n == "Count" || n == "Distance" || n == "Duration" || n == "MoneyQuantity" ||
      n == "SimpleQuantity")
    return "Quantity";
  if (n == "code" || n == "id" || n == "markdown") return "string";
  if (n == "url" || n == "canonical" || n == "oid" || n == "uuid") return "uri";
  if (n == "unsignedInt" || n == "positiveInt") return "integer";
  if (n == "BackboneElement" || n == "Element") return n == "Element" ? "" : "Element";
  if (n == "Resource") return {};
  return "Element";
}

// System type of an item (for is/as with System names).
std::string_view system_type(const Item& it) {
  switch (it.kind) {
    case Item::boolean:
      return "Boolean";
    case Item::integer:
      return "Integer";
    case Item::decimal:
      return "Decimal";
    case Item::string:
      return "String";
    case Item::date:
      return "Date";
    case Item::datetime:
      return "DateTime";
    case Item::time:
      return "Time";
    case Item::quantity:
      return "Quantity";
    default:
      return {};
  }
}

bool type_matches(const Item& it, std::string_view want) {
  if (want.starts_with("FHIR.")) want.remove_prefix(5);
  bool system = false;
  if (want.starts_with("System.")) {
    want.remove_prefix(7);
    system = true;
  }
  if (it.kind != Item::node) return system_type(it) == want;
  if (it.type == kNoType) return false;
  const schema::Schema& s = S();
  if (s.types[it.type].kind == Kind::primitive) {
    // The value of a FHIR primitive is of a System type (FHIR R4 fhirpath.html#types): a
    // boolean `is Boolean`. fhirpath.js answers false here (see the oracle test's exceptions).
    static const std::pair<Prim, std::string_view> kSys[] = {{Prim::boolean, "Boolean"},
                                                             {Prim::integer, "Integer"},
                                                             {Prim::unsigned_int, "Integer"},
                                                             {Prim::positive_int, "Integer"},
                                                             {Prim::decimal, "Decimal"},
                                                             {Prim::date, "Date"},
                                                             {Prim::date_time, "DateTime"},
                                                             {Prim::instant, "DateTime"},
                                                             {Prim::time, "Time"}};
    Prim p = s.types[it.type].prim;
    for (auto& [k, v] : kSys)
      if (k == p && v == want) return true;
    if (want == "String" && p != Prim::boolean && p != Prim::integer && p != Prim::decimal &&
        p != Prim::unsigned_int && p != Prim::positive_int && p != Prim::date &&
        p != Prim::date_time && p != Prim::instant && p != Prim::time)
      return true;
  }
  if (system) return false;
  std::string_view n = s.types[it.type].name;
  const schema::Type* t = &s.types[it.type];
  for (int guard = 0; guard < 8 && !n.empty(); guard++) {
    if (n == want) return true;
    std::string_view p = parent_type(n, *t);
    if (p.empty()) break;
    int32_t pi = s.find_type(p);
    n = p;
    if (pi >= 0) t = &s.types[static_cast<size_t>(pi)];
  }
  return false;
}

// ---- Conversion of nodes to system values -------------------------------------------------------

// A FHIR primitive node as a system value; nullopt for complex nodes or primitives without value.
std::optional<Item> to_system(const Item& it) {
  if (it.kind != Item::node) return it;
  if (!it.has_el || it.type == kNoType) return std::nullopt;
  const schema::Type& t = S().types[it.type];
  if (t.kind != Kind::primitive) {
    if (t.name == "Quantity" || type_matches(it, "Quantity")) {
      dom::object o;
      if (it.el.get(o)) return std::nullopt;
      Item q;
      q.kind = Item::quantity;
      double d;
      if (o["value"].get(d)) {
        int64_t iv;
        if (o["value"].get(iv)) return std::nullopt;
        d = static_cast<double>(iv);
      }
      q.d = d;
      std::string_view code, unit;
      bool has_code = o["code"].get(code) == simdjson::SUCCESS;
      if (has_code)
        q.s = std::string(code);
      else if (o["unit"].get(unit) == simdjson::SUCCESS)
        q.s = std::string(unit);
      return q;
    }
    return std::nullopt;
  }
  Item x;
  switch (t.prim) {
    case Prim::boolean: {
      bool b;
      if (it.el.get(b)) return std::nullopt;
      return make_bool(b);
    }
    case Prim::integer:
    case Prim::unsigned_int:
    case Prim::positive_int: {
      int64_t v;
      if (it.el.get(v)) return std::nullopt;
      return make_int(v);
    }
    case Prim::decimal: {
      double d;
      if (it.el.get(d)) {
        int64_t v;
        if (it.el.get(v)) return std::nullopt;
        d = static_cast<double>(v);
      }
      x.kind = Item::decimal;
      x.d = d;
      return x;
    }
    default:
      break;
  }
  std::string_view sv;
  if (it.el.get(sv)) return std::nullopt;
  x.s = std::string(sv);
  x.kind = t.prim == Prim::date        ? Item::date
           : t.prim == Prim::date_time ? Item::datetime
           : t.prim == Prim::instant   ? Item::datetime
           : t.prim == Prim::time      ? Item::time
                                       : Item::string;
  return x;
}

// ---- Dates -------------------------------------------------------------------------------------

struct DT {
  int f[6] = {0, 1, 1, 0, 0, 0};  // year month day hour minute second
  double frac = 0;                // fraction of a second
  int prec = 0;                   // number of fields present (seconds include the fraction)
  bool tz = false;
  int tz_min = 0;
  bool time_only = false;
};

int64_t days_from_civil(int64_t y, unsigned m, unsigned d) {
  y -= m <= 2;
  const int64_t era = (y >= 0 ? y : y - 399) / 400;
  const unsigned yoe = static_cast<unsigned>(y - era * 400);
  const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
  const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
  return era * 146097 + static_cast<int64_t>(doe) - 719468;
}
void civil_from_days(int64_t z, int& y, int& m, int& d) {
  z += 719468;
  const int64_t era = (z >= 0 ? z : z - 146096) / 146097;
  const unsigned doe = static_cast<unsigned>(z - era * 146097);
  const unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
  const int64_t yy = static_cast<int64_t>(yoe) + era * 400;
  const unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
  const unsigned mp = (5 * doy + 2) / 153;
  d = static_cast<int>(doy - (153 * mp + 2) / 5 + 1);
  m = static_cast<int>(mp < 10 ? mp + 3 : mp - 9);
  y = static_cast<int>(yy + (m <= 2));
}

std::optional<DT> parse_dt(std::string_view v, bool time_only) {
  DT r;
  r.time_only = time_only;
  size_t p = 0;
  auto num = [&](size_t n, int& out) {
    if (p + n > v.size()) return false;
    int x = 0;
    for (size_t i = 0; i < n; i++) {
      char c = v[p + i];
      if (c < '0' || c > '9') return false;
      x = x * 10 + (c - '0');
    }
    out = x;
    p += n;
    return true;
  };
  int start = 0;
  if (time_only) {
    start = 3;
  } else {
    if (!num(4, r.f[0])) return std::nullopt;
    r.prec = 1;
    if (p < v.size() && v[p] == '-') {
      p++;
      if (!num(2, r.f[1])) return std::nullopt;
      r.prec = 2;
      if (p < v.size() && v[p] == '-') {
        p++;
        if (!num(2, r.f[2])) return std::nullopt;
        r.prec = 3;
      }
    }
    if (p < v.size() && v[p] == 'T')
      p++;
    else
      start = -1;
  }
  if (start >= 0 && p < v.size()) {
    if (!num(2, r.f[3])) return std::nullopt;
    r.prec = 4;
    if (p < v.size() && v[p] == ':') {
      p++;
      if (!num(2, r.f[4])) return std::nullopt;
      r.prec = 5;
      if (p < v.size() && v[p] == ':') {
        p++;
        if (!num(2, r.f[5])) return std::nullopt;
        r.prec = 6;
        if (p < v.size() && v[p] == '.') {
          size_t q = p + 1;
          while (q < v.size() && v[q] >= '0' && v[q] <= '9') q++;
          r.frac = std::stod("0" + std::string(v.substr(p, q - p)));
          p = q;
        }
      }
    }
  }
  if (p < v.size()) {
    if (v[p] == 'Z') {
      r.tz = true;
      p++;
    } else if (v[p] == '+' || v[p] == '-') {
      int sign = v[p] == '-' ? -1 : 1;
      p++;
      int h = 0, m = 0;
      if (!num(2, h)) return std::nullopt;
      if (p < v.size() && v[p] == ':') p++;
      num(2, m);
      r.tz = true;
      r.tz_min = sign * (h * 60 + m);
    }
  }
  if (p != v.size()) return std::nullopt;
  if (time_only) r.prec = r.prec == 0 ? 0 : r.prec;
  return r;
}

// Shifts a date-time with hours to UTC (a time zone is only meaningful with a time).
void to_utc(DT& d) {
  if (!d.tz || d.prec < 4 || d.time_only || d.tz_min == 0) return;
  int64_t days =
      days_from_civil(d.f[0], static_cast<unsigned>(d.f[1]), static_cast<unsigned>(d.f[2]));
  int64_t mins = days * 1440 + d.f[3] * 60 + d.f[4] - d.tz_min;
  int64_t dd = mins >= 0 ? mins / 1440 : (mins - 1439) / 1440;
  int64_t rem = mins - dd * 1440;
  civil_from_days(dd, d.f[0], d.f[1], d.f[2]);
  d.f[3] = static_cast<int>(rem / 60);
  d.f[4] = static_cast<int>(rem % 60);
  d.tz_min = 0;
}

// -1/0/1, or nullopt when the precision cannot decide.
std::optional<int> compare_dt(const Item& a, const Item& b) {
  bool ta = a.kind == Item::time, tb = b.kind == Item::time;
  if (ta != tb) throw NotEvaluated{"comparison of a time with a date"};
  auto x = parse_dt(a.s, ta), y = parse_dt(b.s, tb);
  if (!x || !y) throw NotEvaluated{"invalid date/time '" + a.s + "' or '" + b.s + "'"};
  to_utc(*x);
  to_utc(*y);
  int lo = ta ? 3 : 0;
  int pa = ta ? x->prec : x->prec, pb = ta ? y->prec : y->prec;
  int common = std::min(pa, pb);
  for (int i = lo; i < common; i++) {
    if (x->f[i] != y->f[i]) return x->f[i] < y->f[i] ? -1 : 1;
  }
  if (pa != pb) return std::nullopt;
  if (pa == 6 && x->frac != y->frac) return x->frac < y->frac ? -1 : 1;
  return 0;
}

// ---- Quantities --------------------------------------------------------------------------------

struct Unit {
  std::string_view code;
  std::string_view dim;
  double factor;
};
// The UCUM units the R4 invariants and examples compare (durations, mass, volume, length, ratio).
constexpr Unit kUnits[] = {
    {"ms", "s", 0.001}, {"s", "s", 1},       {"min", "s", 60},     {"h", "s", 3600},
    {"d", "s", 86400},  {"wk", "s", 604800}, {"mo", "s", 2629800}, {"a", "s", 31557600},
    {"ug", "g", 1e-6},  {"mg", "g", 1e-3},   {"g", "g", 1},        {"kg", "g", 1000},
    {"uL", "L", 1e-6},  {"mL", "L", 1e-3},   {"dL", "L", 0.1},     {"L", "L", 1},
    {"l", "L", 1},      {"mm", "m", 1e-3},   {"cm", "m", 0.01},    {"m", "m", 1},
    {"km", "m", 1000},  {"%", "%", 1},       {"1", "1", 1},
};
// Calendar-duration keywords of FHIRPath quantity literals.
std::string_view calendar_unit(std::string_view u) {
  static const std::pair<std::string_view, std::string_view> k[] = {
      {"year", "a"},     {"years", "a"},     {"month", "mo"}, {"months", "mo"}, {"week", "wk"},
      {"weeks", "wk"},   {"day", "d"},       {"days", "d"},   {"hour", "h"},    {"hours", "h"},
      {"minute", "min"}, {"minutes", "min"}, {"second", "s"}, {"seconds", "s"}};
  for (auto& [a, b] : k)
    if (a == u) return b;
  return u;
}

std::optional<int> compare_qty(const Item& a, const Item& b) {
  std::string_view ua = calendar_unit(a.s), ub = calendar_unit(b.s);
  double va = a.d, vb = b.d;
  if (ua != ub) {
    const Unit *x = nullptr, *y = nullptr;
    for (auto& u : kUnits) {
      if (u.code == ua) x = &u;
      if (u.code == ub) y = &u;
    }
    if (!x || !y || x->dim != y->dim) return std::nullopt;
    va *= x->factor;
    vb *= y->factor;
  }
  return va < vb ? -1 : va > vb ? 1 : 0;
}

// ---- Equality and ordering ----------------------------------------------------------------------

bool is_number(const Item& x) {
  return x.kind == Item::integer || x.kind == Item::decimal;
}
double num_of(const Item& x) {
  return x.kind == Item::integer ? static_cast<double>(x.i) : x.d;
}
bool is_temporal(const Item& x) {
  return x.kind == Item::date || x.kind == Item::datetime || x.kind == Item::time;
}

// Equality of two single items: true/false, or nullopt (empty) when undecidable.
std::optional<bool> equal_items(const Item& a0, const Item& b0) {
  if (a0.kind == Item::node && b0.kind == Item::node) {
    auto sa = to_system(a0), sb = to_system(b0);
    if (sa && sb && sa->kind != Item::quantity) return equal_items(*sa, *sb);
    if (!a0.has_el || !b0.has_el) return a0.has_el == b0.has_el;
    return simdjson::to_string(a0.el) == simdjson::to_string(b0.el);
  }
  auto sa = to_system(a0), sb = to_system(b0);
  if (!sa || !sb) return false;
  const Item &a = *sa, &b = *sb;
  if (is_number(a) && is_number(b)) return num_of(a) == num_of(b);
  if (is_temporal(a) && is_temporal(b)) {
    if ((a.kind == Item::time) != (b.kind == Item::time)) return false;
    auto c = compare_dt(a, b);
    if (!c) return std::nullopt;
    return *c == 0;
  }
  if (a.kind == Item::quantity && b.kind == Item::quantity) {
    auto c = compare_qty(a, b);
    if (!c) return std::nullopt;
    return *c == 0;
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case Item::boolean:
      return a.b == b.b;
    case Item::string:
      return a.s == b.s;
    default:
      return false;
  }
}

// Collection equality (=): empty when either side is empty.
std::optional<bool> equal_colls(const Coll& a, const Coll& b) {
  if (a.empty() || b.empty()) return std::nullopt;
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); i++) {
    auto e = equal_items(a[i], b[i]);
    if (!e) return std::nullopt;
    if (!*e) return false;
  }
  return true;
}

std::optional<int> compare_items(const Item& a0, const Item& b0) {
  auto sa = to_system(a0), sb = to_system(b0);
  if (!sa || !sb) throw NotEvaluated{"comparison of values that are not ordered"};
  Item a = *sa, b = *sb;
  if (is_number(a) && is_number(b)) {
    double x = num_of(a), y = num_of(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.kind == Item::quantity && is_number(b)) {
    b.d = num_of(b);
    b.kind = Item::quantity;
    b.s = a.s;
  } else if (b.kind == Item::quantity && is_number(a)) {
    a.d = num_of(a);
    a.kind = Item::quantity;
    a.s = b.s;
  }
  if (a.kind == Item::quantity && b.kind == Item::quantity) return compare_qty(a, b);
  if (is_temporal(a) && is_temporal(b)) return compare_dt(a, b);
  if (a.kind == Item::string && b.kind == Item::string) {
    int c = a.s.compare(b.s);
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  throw NotEvaluated{"comparison of " + std::string(system_type(a)) + " with " +
                     std::string(system_type(b))};
}

// Singleton evaluation to a boolean: nullopt for empty.
std::optional<bool> to_bool(const Coll& c) {
  if (c.empty()) return std::nullopt;
  if (c.size() > 1) throw NotEvaluated{"a collection of more than one item used as a boolean"};
  auto v = to_system(c[0]);
  if (v && v->kind == Item::boolean) return v->b;
  return true;  // a single non-boolean item is true (singleton evaluation of collections)
}

std::optional<std::string> to_str(const Coll& c) {
  if (c.empty()) return std::nullopt;
  if (c.size() > 1) throw NotEvaluated{"a collection of more than one item used as a string"};
  auto v = to_system(c[0]);
  if (!v) return std::nullopt;
  switch (v->kind) {
    case Item::string:
    case Item::date:
    case Item::datetime:
    case Item::time:
      return v->s;
    case Item::boolean:
      return std::string(v->b ? "true" : "false");
    case Item::integer:
      return std::to_string(v->i);
    case Item::decimal: {
      char buf[64];
      auto r = std::to_chars(buf, buf + sizeof buf, v->d);
      return std::string(buf, r.ptr);
    }
    case Item::quantity: {
      char buf[64];
      auto r = std::to_chars(buf, buf + sizeof buf, v->d);
      return std::string(buf, r.ptr) + " '" + v->s + "'";
    }
    default:
      return std::nullopt;
  }
}

bool contains_item(const Coll& c, const Item& x) {
  for (auto& y : c) {
    auto e = equal_items(y, x);
    if (e && *e) return true;
  }
  return false;
}

}  // namespace fe::fhir::fhirpath::detail
