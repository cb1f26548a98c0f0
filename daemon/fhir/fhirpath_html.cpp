// FHIRPath, part 5 of the engine: htmlChecks() on Narrative.div, the rules of fhirpath.js (the
// oracle) for FHIR R4 narrative XHTML. A one-pass scanner whose only growing state is the element
// stack, bounded by kMaxXhtmlDepth.
#include "fhir/fhirpath.hpp"
#include "fhir/internal.hpp"

#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <vector>

namespace fe::fhir::fhirpath {

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

// one piece: a one-pass XHTML scanner; every branch (tags, attributes, references, text) moves
// the same cursor and element stack, which a split would have to pass around.
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
