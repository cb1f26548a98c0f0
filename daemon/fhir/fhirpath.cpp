// FHIRPath engine: lexer, recursive-descent parser to an AST, and a tree-walking evaluator over
// simdjson DOM nodes typed by the compiled R4 schema. See fhirpath.hpp for the contract.
#include "fhir/fhirpath.hpp"
#include "fhir/internal.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstring>
#include <mutex>
#include <optional>
#include <regex>
#include <set>
#include <stdexcept>
#include <tuple>
#include <unordered_map>
#include <unordered_set>

namespace fe::fhir::schema_data {
extern const char kBlob[];
extern const std::size_t kBlobSize;
}  // namespace fe::fhir::schema_data

namespace fe::fhir::fhirpath {

namespace dom = simdjson::dom;
using schema::Kind;
using schema::Prim;

namespace {
constexpr uint32_t kNoType = UINT32_MAX;

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

Item make_bool(bool v) {
  Item x;
  x.kind = Item::boolean;
  x.b = v;
  return x;
}
Item make_str(std::string v) {
  Item x;
  x.kind = Item::string;
  x.s = std::move(v);
  return x;
}
Item make_int(int64_t v) {
  Item x;
  x.kind = Item::integer;
  x.i = v;
  return x;
}

// ---- AST ---------------------------------------------------------------------------------------
}  // namespace

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
  Item lit;
  std::unique_ptr<Ast> recv;
  std::vector<std::unique_ptr<Ast>> args;
  std::shared_ptr<std::regex> re;  // matches/replaceMatches with a literal pattern
  // Independent of the focus ($this): rooted at %resource/%rootResource/%context or a literal.
  // Evaluated once per invariant evaluation and cached (dom-3 asks for
  // %resource.descendants() once per contained resource: quadratic without the cache).
  bool konst = false;
  bool uses_context = false;  // reads %context (the node): cached per node only
};

namespace {

// ---- Lexer -------------------------------------------------------------------------------------

struct Tok {
  enum T { end, ident, str, num, date, op, env, dollar } t = end;
  std::string v;
  bool quoted = false;  // `backtick` identifier
};

std::vector<Tok> lex(std::string_view s) {
  std::vector<Tok> out;
  size_t i = 0;
  auto isid = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  while (i < s.size()) {
    char c = s[i];
    if (std::isspace(static_cast<unsigned char>(c))) {
      i++;
      continue;
    }
    if (c == '/' && i + 1 < s.size() && s[i + 1] == '/') {
      while (i < s.size() && s[i] != '\n') i++;
      continue;
    }
    if (c == '/' && i + 1 < s.size() && s[i + 1] == '*') {
      size_t e = s.find("*/", i + 2);
      i = e == std::string_view::npos ? s.size() : e + 2;
      continue;
    }
    Tok t;
    if (c == '\'' || c == '`') {
      char q = c;
      std::string v;
      i++;
      while (i < s.size() && s[i] != q) {
        if (s[i] == '\\' && i + 1 < s.size()) {
          char n = s[i + 1];
          i += 2;
          switch (n) {
            case 'n':
              v += '\n';
              break;
            case 't':
              v += '\t';
              break;
            case 'r':
              v += '\r';
              break;
            case 'f':
              v += '\f';
              break;
            case 'u': {
              unsigned cp = 0;
              std::from_chars(s.data() + i, s.data() + std::min(s.size(), i + 4), cp, 16);
              i += 4;
              if (cp < 0x80) {
                v += static_cast<char>(cp);
              } else if (cp < 0x800) {
                v += static_cast<char>(0xC0 | (cp >> 6));
                v += static_cast<char>(0x80 | (cp & 0x3F));
              } else {
                v += static_cast<char>(0xE0 | (cp >> 12));
                v += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
                v += static_cast<char>(0x80 | (cp & 0x3F));
              }
              break;
            }
            default:
              v += n;  // \' \" \\ \/ \` and regex escapes kept as the character
          }
          continue;
        }
        v += s[i++];
      }
      if (i >= s.size()) throw NotEvaluated{"unterminated string"};
      i++;
      t.t = q == '`' ? Tok::ident : Tok::str;
      t.quoted = q == '`';
      t.v = std::move(v);
    } else if (c == '@') {
      size_t j = i + 1;
      while (j < s.size() && (std::isalnum(static_cast<unsigned char>(s[j])) || s[j] == '-' ||
                              s[j] == ':' || s[j] == '.' || s[j] == '+' || s[j] == 'T'))
        j++;
      t.t = Tok::date;
      t.v = std::string(s.substr(i + 1, j - i - 1));
      i = j;
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      size_t j = i;
      while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) j++;
      if (j + 1 < s.size() && s[j] == '.' && std::isdigit(static_cast<unsigned char>(s[j + 1]))) {
        j++;
        while (j < s.size() && std::isdigit(static_cast<unsigned char>(s[j]))) j++;
      }
      t.t = Tok::num;
      t.v = std::string(s.substr(i, j - i));
      i = j;
    } else if (isid(c)) {
      size_t j = i;
      while (j < s.size() && isid(s[j])) j++;
      t.t = Tok::ident;
      t.v = std::string(s.substr(i, j - i));
      i = j;
    } else if (c == '%' || c == '$') {
      size_t j = i + 1;
      if (j < s.size() && s[j] == '`') {
        size_t e = s.find('`', j + 1);
        if (e == std::string_view::npos) throw NotEvaluated{"unterminated %`name`"};
        t.v = std::string(s.substr(j + 1, e - j - 1));
        j = e + 1;
      } else {
        while (j < s.size() && (isid(s[j]) || s[j] == '-')) j++;
        t.v = std::string(s.substr(i + 1, j - i - 1));
      }
      t.t = c == '%' ? Tok::env : Tok::dollar;
      i = j;
    } else {
      static const char* kOps[] = {"<=", ">=", "!=", "!~", "(", ")", "[", "]", ".", ",", "=",
                                   "~",  "<",  ">",  "|",  "+", "-", "*", "/", "&", "{}"};
      bool found = false;
      for (const char* o : kOps) {
        size_t n = std::strlen(o);
        if (s.substr(i, n) == o) {
          t.t = Tok::op;
          t.v = o;
          i += n;
          found = true;
          break;
        }
      }
      if (!found) throw NotEvaluated{std::string("unexpected character '") + c + "'"};
    }
    out.push_back(std::move(t));
  }
  out.push_back(Tok{});
  return out;
}

std::string_view calendar_unit(std::string_view u);

// ---- Parser ------------------------------------------------------------------------------------

const std::set<std::string_view>& known_functions() {
  static const std::set<std::string_view> k = {"exists",
                                               "empty",
                                               "count",
                                               "not",
                                               "where",
                                               "all",
                                               "isDistinct",
                                               "distinct",
                                               "select",
                                               "startsWith",
                                               "endsWith",
                                               "first",
                                               "last",
                                               "tail",
                                               "single",
                                               "descendants",
                                               "children",
                                               "contains",
                                               "hasValue",
                                               "trace",
                                               "matches",
                                               "as",
                                               "is",
                                               "ofType",
                                               "toInteger",
                                               "toString",
                                               "toDecimal",
                                               "iif",
                                               "htmlChecks",
                                               "htmlchecks",
                                               "substring",
                                               "allFalse",
                                               "allTrue",
                                               "anyTrue",
                                               "anyFalse",
                                               "resolve",
                                               "combine",
                                               "intersect",
                                               "exclude",
                                               "union",
                                               "replaceMatches",
                                               "length",
                                               "upper",
                                               "lower",
                                               "memberOf",
                                               "extension",
                                               "skip",
                                               "take",
                                               "subsetOf",
                                               "supersetOf",
                                               "indexOf",
                                               "replace",
                                               "convertsToInteger",
                                               "today",
                                               "now",
                                               "lowBoundary",
                                               "highBoundary",
                                               "conformsTo"};
  return k;
}

class Parser {
 public:
  explicit Parser(std::vector<Tok> t) : t_(std::move(t)) {}
  std::unique_ptr<Ast> parse() {
    auto e = expr(0);
    if (t_[p_].t != Tok::end) throw NotEvaluated{"unexpected '" + t_[p_].v + "'"};
    return e;
  }

 private:
  std::vector<Tok> t_;
  size_t p_ = 0;

  const Tok& peek() const { return t_[p_]; }
  bool is_op(std::string_view v) const { return t_[p_].t == Tok::op && t_[p_].v == v; }
  bool is_word(std::string_view v) const {
    return t_[p_].t == Tok::ident && !t_[p_].quoted && t_[p_].v == v;
  }
  void expect(std::string_view v) {
    if (!is_op(v)) throw NotEvaluated{"expected '" + std::string(v) + "'"};
    p_++;
  }

  static std::unique_ptr<Ast> bin(std::string op, std::unique_ptr<Ast> l, std::unique_ptr<Ast> r) {
    auto n = std::make_unique<Ast>();
    n->op = Ast::binary;
    n->name = std::move(op);
    n->args.push_back(std::move(l));
    n->args.push_back(std::move(r));
    return n;
  }

  // Precedence levels, lowest first.
  std::unique_ptr<Ast> expr(int level) {
    switch (level) {
      case 0: {  // implies
        auto l = expr(1);
        while (is_word("implies")) {
          p_++;
          l = bin("implies", std::move(l), expr(1));
        }
        return l;
      }
      case 1: {  // or xor
        auto l = expr(2);
        while (is_word("or") || is_word("xor")) {
          std::string o = t_[p_++].v;
          l = bin(o, std::move(l), expr(2));
        }
        return l;
      }
      case 2: {  // and
        auto l = expr(3);
        while (is_word("and")) {
          p_++;
          l = bin("and", std::move(l), expr(3));
        }
        return l;
      }
      case 3: {  // in contains
        auto l = expr(4);
        while (is_word("in") || is_word("contains")) {
          std::string o = t_[p_++].v;
          l = bin(o, std::move(l), expr(4));
        }
        return l;
      }
      case 4: {  // = ~ != !~
        auto l = expr(5);
        while (is_op("=") || is_op("~") || is_op("!=") || is_op("!~")) {
          std::string o = t_[p_++].v;
          l = bin(o, std::move(l), expr(5));
        }
        return l;
      }
      case 5: {  // < > <= >=
        auto l = expr(6);
        while (is_op("<") || is_op(">") || is_op("<=") || is_op(">=")) {
          std::string o = t_[p_++].v;
          l = bin(o, std::move(l), expr(6));
        }
        return l;
      }
      case 6: {  // |
        auto l = expr(7);
        while (is_op("|")) {
          p_++;
          l = bin("|", std::move(l), expr(7));
        }
        return l;
      }
      case 7: {  // is as
        auto l = expr(8);
        while (is_word("is") || is_word("as")) {
          std::string o = t_[p_++].v;
          auto n = std::make_unique<Ast>();
          n->op = Ast::type_op;
          n->name = o;
          n->type_name = type_spec();
          n->args.push_back(std::move(l));
          l = std::move(n);
        }
        return l;
      }
      case 8: {  // + - &
        auto l = expr(9);
        while (is_op("+") || is_op("-") || is_op("&")) {
          std::string o = t_[p_++].v;
          l = bin(o, std::move(l), expr(9));
        }
        return l;
      }
      case 9: {  // * / div mod
        auto l = expr(10);
        while (is_op("*") || is_op("/") || is_word("div") || is_word("mod")) {
          std::string o = t_[p_++].v;
          l = bin(o, std::move(l), expr(10));
        }
        return l;
      }
      default: {  // unary
        if (is_op("-") || is_op("+")) {
          bool neg = t_[p_++].v == "-";
          auto e = expr(10);
          if (!neg) return e;
          auto n = std::make_unique<Ast>();
          n->op = Ast::unary_minus;
          n->args.push_back(std::move(e));
          return n;
        }
        return postfix();
      }
    }
  }

  std::string type_spec() {
    std::string n;
    if (peek().t != Tok::ident) throw NotEvaluated{"expected a type name"};
    n = t_[p_++].v;
    while (is_op(".") && t_[p_ + 1].t == Tok::ident) {
      p_++;
      n += "." + t_[p_++].v;
    }
    return n;
  }

  std::unique_ptr<Ast> call_or_ident(std::unique_ptr<Ast> recv) {
    const Tok& t = peek();
    if (t.t != Tok::ident) throw NotEvaluated{"expected a name after '.'"};
    std::string name = t.v;
    p_++;
    if (is_op("(")) {
      p_++;
      auto n = std::make_unique<Ast>();
      n->op = Ast::func;
      n->name = name;
      n->recv = std::move(recv);
      if (!known_functions().count(name)) throw NotEvaluated{"function " + name + "()"};
      if (name == "is" || name == "as" || name == "ofType") {
        n->type_name = type_spec();
      } else if (!is_op(")")) {
        n->args.push_back(expr(0));
        while (is_op(",")) {
          p_++;
          n->args.push_back(expr(0));
        }
      }
      expect(")");
      if ((name == "matches" || name == "replaceMatches") && !n->args.empty() &&
          n->args[0]->op == Ast::literal && n->args[0]->lit.kind == Item::string) {
        try {
          n->re = std::make_shared<std::regex>(n->args[0]->lit.s, std::regex::ECMAScript);
        } catch (const std::regex_error&) {
          throw NotEvaluated{"regular expression " + n->args[0]->lit.s};
        }
      }
      return n;
    }
    auto n = std::make_unique<Ast>();
    n->op = recv ? Ast::member : Ast::ident;
    n->name = name;
    if (recv) n->args.push_back(std::move(recv));
    return n;
  }

  std::unique_ptr<Ast> term() {
    const Tok& t = peek();
    auto n = std::make_unique<Ast>();
    switch (t.t) {
      case Tok::str:
        n->op = Ast::literal;
        n->lit = make_str(t.v);
        p_++;
        return n;
      case Tok::num: {
        n->op = Ast::literal;
        if (t.v.find('.') != std::string::npos) {
          n->lit.kind = Item::decimal;
          n->lit.d = std::stod(t.v);
        } else {
          n->lit = make_int(std::stoll(t.v));
        }
        p_++;
        // A quantity literal: 4 'mg' or 4 days
        if (peek().t == Tok::str ||
            (peek().t == Tok::ident && calendar_unit(peek().v) != peek().v)) {
          n->lit.d = n->lit.kind == Item::integer ? static_cast<double>(n->lit.i) : n->lit.d;
          n->lit.kind = Item::quantity;
          n->lit.s = t_[p_++].v;
        }
        return n;
      }
      case Tok::date:
        n->op = Ast::literal;
        n->lit.kind = t.v.starts_with("T")                 ? Item::time
                      : t.v.find('T') != std::string::npos ? Item::datetime
                                                           : Item::date;
        n->lit.s = t.v.starts_with("T") ? t.v.substr(1) : t.v;
        if (n->lit.kind == Item::datetime && n->lit.s.back() == 'T') n->lit.s.pop_back();
        p_++;
        return n;
      case Tok::env:
        n->op = Ast::env;
        n->name = t.v;
        p_++;
        return n;
      case Tok::dollar:
        if (t.v != "this") throw NotEvaluated{"$" + t.v};
        n->op = Ast::this_;
        p_++;
        return n;
      case Tok::op:
        if (t.v == "(") {
          p_++;
          auto e = expr(0);
          expect(")");
          return e;
        }
        if (t.v == "{}") {
          n->op = Ast::empty_literal;
          p_++;
          return n;
        }
        break;
      case Tok::ident:
        if (!t.quoted && (t.v == "true" || t.v == "false")) {
          n->op = Ast::literal;
          n->lit = make_bool(t.v == "true");
          p_++;
          return n;
        }
        return call_or_ident(nullptr);
      default:
        break;
    }
    throw NotEvaluated{"unexpected '" + t.v + "'"};
  }

  std::unique_ptr<Ast> postfix() {
    auto e = term();
    while (true) {
      if (is_op(".")) {
        p_++;
        e = call_or_ident(std::move(e));
      } else if (is_op("[")) {
        p_++;
        auto n = std::make_unique<Ast>();
        n->op = Ast::index;
        n->args.push_back(std::move(e));
        n->args.push_back(expr(0));
        expect("]");
        e = std::move(n);
      } else {
        return e;
      }
    }
  }
};

}  // namespace

namespace {
bool mark_const(Ast& n) {
  bool args = true;
  for (auto& a : n.args) {
    args = mark_const(*a) && args;
    n.uses_context = n.uses_context || a->uses_context;
  }
  const bool recv = n.recv ? mark_const(*n.recv) : false;
  if (n.recv) n.uses_context = n.uses_context || n.recv->uses_context;
  if (n.op == Ast::env && n.name == "context") n.uses_context = true;
  switch (n.op) {
    case Ast::literal:
    case Ast::empty_literal:
    case Ast::env:
      n.konst = true;
      break;
    case Ast::ident:
    case Ast::this_:
      n.konst = false;
      break;
    case Ast::func:
      // Arguments are evaluated on the receiver's items (or on %context): fixed by the receiver.
      n.konst = n.recv && recv;
      break;
    default:  // member, index, unary_minus, binary, type_op: their operands
      n.konst = args;
      break;
  }
  return n.konst;
}
}  // namespace

Expression Expression::compile(std::string_view text) {
  Expression e;
  e.text_ = std::string(text);
  try {
    auto toks = lex(text);
    std::unique_ptr<Ast> ast(Parser(std::move(toks)).parse());
    mark_const(*ast);
    e.ast = std::shared_ptr<const Ast>(std::move(ast));
  } catch (const NotEvaluated& ne) {
    e.error_ = ne.why;
  }
  return e;
}

namespace {

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

// ---- Evaluator ---------------------------------------------------------------------------------

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

Coll eval_arg(const Ast& n, const Item& item, Env& env) {
  return eval(n, Coll{item}, env);
}

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

}  // namespace

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

// ---- htmlChecks --------------------------------------------------------------------------------

namespace {
bool xml_space(char c) {
  return c == ' ' || c == '\n' || c == '\t' || c == '\r';
}
// A UTF-8 byte sequence that XML allows: no C0 controls but tab/LF/CR, no U+FFFE/U+FFFF.
bool bad_xml_byte(std::string_view t, size_t i) {
  unsigned char c = static_cast<unsigned char>(t[i]);
  if (c < 0x20) return !(c == '\t' || c == '\n' || c == '\r');
  if (c == 0xEF && i + 2 < t.size() && static_cast<unsigned char>(t[i + 1]) == 0xBF &&
      (static_cast<unsigned char>(t[i + 2]) == 0xBE ||
       static_cast<unsigned char>(t[i + 2]) == 0xBF))
    return true;
  return false;
}
bool xml_code_point(uint32_t cp) {
  return cp == 9 || cp == 10 || cp == 13 || (cp >= 0x20 && cp < 0xD800) ||
         (cp > 0xDFFF && cp < 0xFFFE) || (cp >= 0x10000 && cp <= 0x10FFFF);
}
// Returns the index after a valid character/entity reference at t[i] == '&', or npos.
size_t scan_char_ref(std::string_view t, size_t i) {
  size_t j = i + 1;
  if (j < t.size() && t[j] == '#') {
    j++;
    uint64_t cp = 0;
    size_t d0;
    if (j < t.size() && t[j] == 'x') {
      d0 = ++j;
      while (j < t.size() && std::isxdigit(static_cast<unsigned char>(t[j]))) {
        char c = t[j];
        cp = cp * 16 + static_cast<uint64_t>(std::isdigit(static_cast<unsigned char>(c))
                                                 ? c - '0'
                                                 : (std::tolower(c) - 'a' + 10));
        if (cp > 0x10FFFF) return std::string_view::npos;
        j++;
      }
    } else {
      d0 = j;
      while (j < t.size() && std::isdigit(static_cast<unsigned char>(t[j]))) {
        cp = cp * 10 + static_cast<uint64_t>(t[j] - '0');
        if (cp > 0x10FFFF) return std::string_view::npos;
        j++;
      }
    }
    if (j == d0 || !xml_code_point(static_cast<uint32_t>(cp))) return std::string_view::npos;
  } else {
    size_t n0 = j;
    while (j < t.size() && std::isalpha(static_cast<unsigned char>(t[j]))) j++;
    std::string_view name = t.substr(n0, j - n0);
    if (!(name == "amp" || name == "lt" || name == "gt" || name == "quot" || name == "apos"))
      return std::string_view::npos;
  }
  return j < t.size() && t[j] == ';' ? j + 1 : std::string_view::npos;
}
bool allowed_element(std::string_view n) {
  static const std::set<std::string_view> k = {
      "p",     "br",   "div",   "h1",      "h2",       "h3",     "h4",         "h5",  "h6",
      "a",     "span", "b",     "em",      "i",        "strong", "small",      "big", "tt",
      "dfn",   "q",    "var",   "abbr",    "acronym",  "cite",   "blockquote", "hr",  "address",
      "bdo",   "kbd",  "sub",   "sup",     "ul",       "ol",     "li",         "dl",  "dt",
      "dd",    "pre",  "table", "caption", "colgroup", "col",    "thead",      "tr",  "tfoot",
      "tbody", "th",   "td",    "code",    "samp",     "img"};
  return k.count(n) > 0;
}
bool allowed_attr(std::string_view el, std::string_view a) {
  static const std::set<std::string_view> k = {
      "title",    "style", "class",   "id",    "lang",    "dir",    "accesskey",
      "tabindex", "xmlns", "span",    "align", "valign",  "char",   "charoff",
      "abbr",     "axis",  "headers", "scope", "rowspan", "colspan"};
  static const std::set<std::string> ke = {"a.href",
                                           "a.name",
                                           "img.src",
                                           "img.border",
                                           "img.alt",
                                           "img.longdesc",
                                           "img.height",
                                           "img.width",
                                           "blockquote.cite",
                                           "q.cite",
                                           "table.summary",
                                           "table.width",
                                           "table.border",
                                           "table.frame",
                                           "table.rules",
                                           "table.cellspacing",
                                           "table.cellpadding",
                                           "col.width",
                                           "colgroup.width",
                                           "th.width",
                                           "td.width",
                                           "td.nowrap"};
  return k.count(a) > 0 || ke.count(std::string(el) + "." + std::string(a)) > 0;
}
}  // namespace

bool html_checks_impl(std::string_view t, bool fragment, bool ignore_content, std::string* why);
// Narrative nesting is bounded (the element stack is the only memory that grows with the input).
constexpr size_t kMaxXhtmlDepth = 256;

// The rules of fhirpath.js's htmlChecks() (the oracle), which implement FHIR R4 narrative rules
// (https://hl7.org/fhir/R4/narrative.html#xhtml): one root div, the allowed elements and
// attributes only, no processing instructions/CDATA/DTD, well-formed, and some non-whitespace
// content (text or an image).
bool html_checks_structure_only(std::string_view t) {
  return html_checks_impl(t, false, true, nullptr);
}

std::string html_problem(std::string_view t) {
  std::string why;
  if (html_checks_impl(t, false, false, &why)) return {};
  return why;
}

bool html_checks(std::string_view t, bool fragment) {
  return html_checks_impl(t, fragment, false, nullptr);
}

bool html_checks_impl(std::string_view t, bool fragment, bool ignore_content, std::string* why) {
  auto fail = [why](std::string m) {
    if (why) *why = std::move(m);
    return false;
  };
  std::vector<std::string_view> stack;
  std::vector<std::string_view> attrs;
  bool root_seen = false, content = false;
  size_t i = 0, len = t.size();
  constexpr size_t npos = std::string_view::npos;
  while (i < len) {
    if (t[i] != '<') {
      if (!fragment && stack.empty()) {
        while (i < len && t[i] != '<') {
          if (!xml_space(t[i])) return fail("text outside the root <div>");
          i++;
        }
        continue;
      }
      while (i < len) {
        unsigned char c = static_cast<unsigned char>(t[i]);
        if (c > ' ') {
          if (c == '<') break;
          if (c == '&') {
            size_t nx = scan_char_ref(t, i);
            if (nx == npos)
              return fail("invalid entity or character reference '" + shorten(t.substr(i, 12)) +
                          "' (XHTML has only &amp; &lt; &gt; &quot; &apos; and numeric ones)");
            content = true;
            i = nx;
            continue;
          }
          if (c == ']' && t.substr(i, 3) == "]]>") return fail("']]>' in text");
          if (bad_xml_byte(t, i)) return fail("a character XML does not allow");
          content = true;
        } else if (!xml_space(static_cast<char>(c))) {
          return fail("a control character XML does not allow");
        }
        i++;
      }
      continue;
    }
    char c1 = i + 1 < len ? t[i + 1] : 0;
    if (c1 == '?') return fail("a processing instruction is not allowed");
    if (c1 == '!') {
      if (t.substr(i, 4) == "<!--") {
        if (!fragment && stack.empty()) return fail("a comment outside the root <div>");
        size_t end = t.find("-->", i + 4);
        if (end == npos) return fail("an unterminated comment");
        size_t dd = t.find("--", i + 4);
        if (dd < end) return fail("'--' inside a comment");
        for (size_t k = i + 4; k < end; k++)
          if (bad_xml_byte(t, k)) return fail("a character XML does not allow");
        i = end + 3;
        continue;
      }
      return fail("CDATA sections and DOCTYPE declarations are not allowed");
    }
    if (c1 == '/') {
      size_t j = i + 2, n0 = j;
      while (j < len && !xml_space(t[j]) && t[j] != '>') j++;
      std::string_view name = t.substr(n0, j - n0);
      while (j < len && xml_space(t[j])) j++;
      if (j >= len || t[j] != '>') return fail("a malformed end tag");
      if (stack.empty() || stack.back() != name)
        return fail("end tag </" + shorten(name) + "> does not match the open element" +
                    (stack.empty() ? std::string() : " <" + std::string(stack.back()) + ">"));
      stack.pop_back();
      i = j + 1;
      continue;
    }
    size_t j = i + 1, n0 = j;
    while (j < len && !xml_space(t[j]) && t[j] != '/' && t[j] != '>') j++;
    if (j == n0) return fail("a '<' that starts no element (write &lt;)");
    std::string_view name = t.substr(n0, j - n0);
    if (!allowed_element(name))
      return fail("element '" + shorten(name) + "' is not allowed in a FHIR narrative");
    if (stack.size() >= kMaxXhtmlDepth) return fail("elements nested deeper than 256");
    if (!fragment && stack.empty()) {
      if (root_seen || name != "div") return fail("the narrative must be a single root <div>");
      root_seen = true;
    }
    attrs.clear();
    bool self_closing = false;
    for (;;) {
      size_t ws = j;
      while (j < len && xml_space(t[j])) j++;
      if (j >= len) return fail("an unterminated start tag <" + shorten(name) + ">");
      char c = t[j];
      if (c == '>') {
        j++;
        break;
      }
      if (c == '/') {
        j++;
        if (j >= len || t[j] != '>') return fail("a malformed start tag <" + shorten(name) + ">");
        j++;
        self_closing = true;
        break;
      }
      if (j == ws) return fail("attributes of <" + shorten(name) + "> are not separated");
      size_t a0 = j;
      while (j < len && !xml_space(t[j]) && t[j] != '=' && t[j] != '/' && t[j] != '>') j++;
      if (j == a0) return fail("a malformed attribute on <" + shorten(name) + ">");
      std::string_view an = t.substr(a0, j - a0);
      if (!allowed_attr(name, an))
        return fail("attribute '" + shorten(an) + "' on <" + shorten(name) +
                    "> is not allowed in a FHIR narrative");
      if (std::find(attrs.begin(), attrs.end(), an) != attrs.end())
        return fail("attribute '" + shorten(an) + "' repeated on <" + shorten(name) + ">");
      attrs.push_back(an);
      while (j < len && xml_space(t[j])) j++;
      if (j >= len || t[j] != '=') return fail("attribute '" + shorten(an) + "' has no value");
      j++;
      while (j < len && xml_space(t[j])) j++;
      char q = j < len ? t[j] : 0;
      if (q != '"' && q != '\'') return fail("attribute '" + shorten(an) + "' is not quoted");
      size_t v0 = ++j;
      for (;;) {
        if (j >= len) return fail("an unterminated attribute value");
        char cc = t[j];
        if (cc == q) break;
        if (cc == '<') return fail("'<' in an attribute value");
        if (cc == '&') {
          size_t nx = scan_char_ref(t, j);
          if (nx == npos)
            return fail("invalid entity or character reference '" + shorten(t.substr(j, 12)) +
                        "' in an attribute value");
          j = nx;
          continue;
        }
        if (bad_xml_byte(t, j)) return fail("a character XML does not allow");
        j++;
      }
      std::string_view av = t.substr(v0, j - v0);
      if (an == "xmlns" && av != "http://www.w3.org/1999/xhtml")
        return fail("xmlns must be http://www.w3.org/1999/xhtml");
      // Active content: a javascript:/vbscript: link runs code (the HL7 validator refuses it).
      if (an == "href" || an == "src") {
        std::string scheme;
        for (char ch : av.substr(0, av.find(':')))
          if (!xml_space(ch))
            scheme += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
        if (av.find(':') != std::string_view::npos &&
            (scheme == "javascript" || scheme == "vbscript"))
          return fail(std::string(an) + " with the active scheme '" + scheme + ":' is not allowed");
      }
      j++;
    }
    if (name == "img" && std::find(attrs.begin(), attrs.end(), "src") != attrs.end())
      content = true;
    if (!self_closing) stack.push_back(name);
    i = j;
  }
  if (!stack.empty()) return fail("element <" + std::string(stack.back()) + "> is not closed");
  if (!fragment && !root_seen) return fail("no root <div>");
  return content || ignore_content || fail("the narrative has no content (only whitespace)");
}

}  // namespace fe::fhir::fhirpath
