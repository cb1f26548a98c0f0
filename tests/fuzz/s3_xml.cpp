// Fuzz target: the S3 XML reader (aws/xml.hpp) and the S3 error parser (aws/errors.hpp), fed
// response bodies directly (fast; tests/fuzz/s3_responses.cpp drives the same bodies through the
// real S3Client).
// Checked beyond "does not crash":
//  - looks_like_s3_error agrees with parse();
//  - escape() round-trips: any text escaped into element content or an attribute value parses
//    back to exactly that text (what request bodies built with escape() rely on);
//  - a parse error names a line; parse_s3_error always yields a category and bounded message.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "aws/errors.hpp"
#include "aws/xml.hpp"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "s3_xml fuzz: property violated: %s\n", what);
    std::abort();
  }
}

// Character data comes out as valid UTF-8 when it went in as valid UTF-8 (entities included).
bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    std::size_t n = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (n == 0 || i + n > s.size()) return false;
    std::uint32_t cp = n == 1 ? c : c & (0x7F >> n);
    for (std::size_t k = 1; k < n; ++k) {
      unsigned char d = static_cast<unsigned char>(s[i + k]);
      if ((d >> 6) != 2) return false;
      cp = cp << 6 | (d & 0x3F);
    }
    static constexpr std::uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
    if (cp < kMin[n] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return false;
    i += n;
  }
  return true;
}

bool tree_utf8(const fe::aws::xml::Element& e) {
  if (!valid_utf8(e.text) || !valid_utf8(e.name)) return false;
  for (const auto& [k, v] : e.attributes)
    if (!valid_utf8(k) || !valid_utf8(v)) return false;
  for (const auto& c : e.children)
    if (!tree_utf8(c)) return false;
  return true;
}

// Touches every node the way the S3 client reads documents.
size_t walk(const fe::aws::xml::Element& e, int depth) {
  check(depth <= 70, "tree deeper than the parser's limit");
  size_t n = 1 + e.text.size();
  for (const char* name : {"Code", "Message", "UploadId", "Part", "ETag", "Key", "IsTruncated"}) {
    n += e.child_text(name, "-").size();
    n += e.children_named(name).size();
    if (const auto* c = e.child(name)) check(c->name == name, "child() returned another name");
  }
  for (const auto& c : e.children) n += walk(c, depth + 1);
  return n;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view body(reinterpret_cast<const char*>(data), size);

  auto doc = fe::aws::xml::parse(body);
  if (doc.root) {
    check(doc.error.empty(), "a parsed document also has an error");
    (void)walk(*doc.root, 0);
    if (valid_utf8(body)) check(tree_utf8(*doc.root), "valid UTF-8 in, invalid UTF-8 out");
  } else {
    check(doc.error.starts_with("line "), "parse error does not name a line");
  }
  check(fe::aws::looks_like_s3_error(body) == (doc.root && doc.root->name == "Error"),
        "looks_like_s3_error disagrees with parse");

  // The same body as an error response at a few statuses (the first byte picks one).
  static const int kStatuses[] = {200, 301, 400, 403, 404, 409, 412, 429, 500, 503, 0, 418};
  fe::aws::ErrorResponse er;
  er.http_status = size ? kStatuses[data[0] % (sizeof kStatuses / sizeof kStatuses[0])] : 500;
  er.body = body;
  er.request_id = "REQ";
  er.date = "Thu, 26 Nov 2026 10:00:00 GMT";
  auto err = fe::aws::parse_s3_error(er);
  check(err.http_status == er.http_status, "status not kept");
  check(err.message.size() <= body.size() + 4096, "message not bounded");
  (void)err.describe();

  // escape() round trip on the raw bytes.
  std::string text(body);
  auto inner = fe::aws::xml::parse("<a>" + fe::aws::xml::escape(text) + "</a>");
  check(inner.root && inner.root->text == text, "escaped element text does not round-trip");
  auto attr = fe::aws::xml::parse("<a v=\"" + fe::aws::xml::escape(text) + "\"/>");
  check(attr.root && attr.root->attributes.size() == 1 && attr.root->attributes[0].second == text,
        "escaped attribute value does not round-trip");
  return 0;
}
