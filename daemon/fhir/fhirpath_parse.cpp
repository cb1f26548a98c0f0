// FHIRPath, part 1 of the engine: the lexer and the recursive-descent parser that turn an
// expression into the AST once (Expression::compile), rejecting functions outside the subset with
// a reason (fhirpath.hpp's contract: such an expression is never a pass), and mark_const, which
// marks the focus-independent sub-expressions the evaluator caches.
#include "fhir/fhirpath_internal.hpp"

#include <charconv>
#include <set>

namespace fe::fhir::fhirpath::detail {

using schema::Kind;
using schema::Prim;

// ---- Lexer -------------------------------------------------------------------------------------

struct Tok {
  enum T { end, ident, str, num, date, op, env, dollar } t = end;
  std::string v;
  bool quoted = false;  // `backtick` identifier
};

// one piece: a lexer is one loop over the text with one branch per token kind (identifiers,
// strings, numbers, dates and times, operators); the branches share the cursor.
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

}  // namespace fe::fhir::fhirpath::detail

namespace fe::fhir::fhirpath {

using namespace detail;

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

}  // namespace fe::fhir::fhirpath
