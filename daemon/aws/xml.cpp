#include "aws/xml.hpp"

#include <cctype>
#include <cstdint>

namespace fe::aws::xml {

const Element* Element::child(std::string_view n) const {
  for (const auto& c : children)
    if (c.name == n) return &c;
  return nullptr;
}

std::string Element::child_text(std::string_view n, std::string_view fallback) const {
  const Element* c = child(n);
  return c ? c->text : std::string(fallback);
}

std::vector<const Element*> Element::children_named(std::string_view n) const {
  std::vector<const Element*> out;
  for (const auto& c : children)
    if (c.name == n) out.push_back(&c);
  return out;
}

namespace {

constexpr int kMaxDepth = 64;

struct Parser {
  std::string_view s;
  std::size_t pos = 0;
  std::string error;

  int line() const {
    int l = 1;
    for (std::size_t i = 0; i < pos && i < s.size(); ++i)
      if (s[i] == '\n') ++l;
    return l;
  }
  bool fail(std::string msg) {
    if (error.empty()) error = "line " + std::to_string(line()) + ": " + msg;
    return false;
  }
  bool starts(std::string_view p) const { return s.substr(pos, p.size()) == p; }
  void skip_ws() {
    while (pos < s.size() && (s[pos] == ' ' || s[pos] == '\t' || s[pos] == '\r' || s[pos] == '\n'))
      ++pos;
  }
  static bool name_char(char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' ||
           c == ':' || static_cast<unsigned char>(c) >= 0x80;
  }
  std::string read_name() {
    std::size_t b = pos;
    while (pos < s.size() && name_char(s[pos])) ++pos;
    return std::string(s.substr(b, pos - b));
  }
  static std::string local(std::string n) {
    auto c = n.find(':');
    return c == std::string::npos ? n : n.substr(c + 1);
  }
  static void put_utf8(std::string& out, std::uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(static_cast<char>(cp));
    } else if (cp < 0x800) {
      out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  bool decode(std::string_view raw, std::string& out) {
    for (std::size_t i = 0; i < raw.size(); ++i) {
      if (raw[i] != '&') {
        out.push_back(raw[i]);
        continue;
      }
      auto semi = raw.find(';', i);
      if (semi == std::string_view::npos || semi - i > 12) return fail("unterminated entity");
      auto ent = raw.substr(i + 1, semi - i - 1);
      if (ent == "amp")
        out.push_back('&');
      else if (ent == "lt")
        out.push_back('<');
      else if (ent == "gt")
        out.push_back('>');
      else if (ent == "quot")
        out.push_back('"');
      else if (ent == "apos")
        out.push_back('\'');
      else if (ent.size() > 1 && ent[0] == '#') {
        std::uint32_t cp = 0;
        bool hexa = ent[1] == 'x' || ent[1] == 'X';
        auto digits = ent.substr(hexa ? 2 : 1);
        if (digits.empty()) return fail("bad character reference");
        for (char c : digits) {
          int v = hexa ? (std::isxdigit(static_cast<unsigned char>(c))
                              ? (std::isdigit(static_cast<unsigned char>(c))
                                     ? c - '0'
                                     : (std::tolower(static_cast<unsigned char>(c)) - 'a' + 10))
                              : -1)
                       : (std::isdigit(static_cast<unsigned char>(c)) ? c - '0' : -1);
          if (v < 0) return fail("bad character reference");
          cp = cp * (hexa ? 16 : 10) + static_cast<std::uint32_t>(v);
          if (cp > 0x10FFFF) return fail("character reference out of range");
        }
        // XML 1.0 forbids references to NUL and to UTF-16 surrogates; put_utf8 would turn a
        // surrogate into invalid UTF-8 that later ends up in logs and journal rows.
        if (cp == 0 || (cp >= 0xD800 && cp <= 0xDFFF))
          return fail("character reference to a non-character");
        put_utf8(out, cp);
      } else {
        return fail("unknown entity &" + std::string(ent) + ";");
      }
      i = semi;
    }
    return true;
  }
  // Skips <?...?>, <!--...-->; rejects DOCTYPE.
  bool skip_misc() {
    for (;;) {
      skip_ws();
      if (starts("<?")) {
        auto e = s.find("?>", pos);
        if (e == std::string_view::npos) return fail("unterminated processing instruction");
        pos = e + 2;
      } else if (starts("<!--")) {
        auto e = s.find("-->", pos);
        if (e == std::string_view::npos) return fail("unterminated comment");
        pos = e + 3;
      } else if (starts("<!")) {
        if (!starts("<![CDATA[")) return fail("DOCTYPE/declarations are not accepted");
        return true;
      } else {
        return true;
      }
    }
  }
  bool element(Element& el, int depth) {
    if (depth > kMaxDepth) return fail("nesting deeper than 64");
    if (pos >= s.size() || s[pos] != '<') return fail("expected '<'");
    ++pos;
    std::string qname = read_name();
    if (qname.empty()) return fail("expected an element name");
    el.name = local(qname);
    for (;;) {
      skip_ws();
      if (pos >= s.size()) return fail("unexpected end of input in <" + qname + ">");
      if (starts("/>")) {
        pos += 2;
        return true;
      }
      if (s[pos] == '>') {
        ++pos;
        break;
      }
      std::string an = read_name();
      if (an.empty()) return fail("bad attribute in <" + qname + ">");
      skip_ws();
      if (pos >= s.size() || s[pos] != '=') return fail("expected '=' after attribute " + an);
      ++pos;
      skip_ws();
      if (pos >= s.size() || (s[pos] != '"' && s[pos] != '\'')) return fail("expected quote");
      char q = s[pos++];
      auto e = s.find(q, pos);
      if (e == std::string_view::npos) return fail("unterminated attribute value");
      std::string v;
      if (!decode(s.substr(pos, e - pos), v)) return false;
      el.attributes.emplace_back(std::move(an), std::move(v));
      pos = e + 1;
    }
    // Content.
    for (;;) {
      if (pos >= s.size()) return fail("unexpected end of input inside <" + qname + ">");
      if (starts("</")) {
        pos += 2;
        std::string close = read_name();
        if (close != qname) return fail("</" + close + "> does not close <" + qname + ">");
        skip_ws();
        if (pos >= s.size() || s[pos] != '>') return fail("expected '>'");
        ++pos;
        return true;
      }
      if (starts("<!--")) {
        auto e = s.find("-->", pos);
        if (e == std::string_view::npos) return fail("unterminated comment");
        pos = e + 3;
      } else if (starts("<![CDATA[")) {
        auto e = s.find("]]>", pos);
        if (e == std::string_view::npos) return fail("unterminated CDATA");
        el.text.append(s.substr(pos + 9, e - pos - 9));
        pos = e + 3;
      } else if (starts("<?")) {
        auto e = s.find("?>", pos);
        if (e == std::string_view::npos) return fail("unterminated processing instruction");
        pos = e + 2;
      } else if (s[pos] == '<') {
        el.children.emplace_back();
        if (!element(el.children.back(), depth + 1)) return false;
      } else {
        auto e = s.find('<', pos);
        if (e == std::string_view::npos) e = s.size();
        if (!decode(s.substr(pos, e - pos), el.text)) return false;
        pos = e;
      }
    }
  }
};

// Whitespace-only text of container elements is layout; leaf text is kept verbatim.
void strip_layout(Element& e) {
  if (e.children.empty()) return;
  bool blank = true;
  for (char c : e.text)
    if (!(c == ' ' || c == '\t' || c == '\r' || c == '\n')) blank = false;
  if (blank) e.text.clear();
  for (auto& c : e.children) strip_layout(c);
}

}  // namespace

ParseResult parse(std::string_view document) {
  Parser p;
  p.s = document;
  ParseResult r;
  // A UTF-8 BOM is allowed before the declaration.
  if (p.starts("\xEF\xBB\xBF")) p.pos = 3;
  if (!p.skip_misc()) {
    r.error = p.error;
    return r;
  }
  Element root;
  if (!p.element(root, 0)) {
    r.error = p.error;
    return r;
  }
  p.skip_misc();
  p.skip_ws();
  if (p.error.empty() && p.pos != document.size()) {
    p.fail("content after the root element");
    r.error = p.error;
    return r;
  }
  if (!p.error.empty()) {
    r.error = p.error;
    return r;
  }
  strip_layout(root);
  r.root = std::move(root);
  return r;
}

std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

}  // namespace fe::aws::xml
