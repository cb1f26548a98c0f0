#pragma once
// A tiny, strict-enough XML reader for S3 responses (errors, InitiateMultipartUploadResult,
// ListPartsResult, ListBucketResult, CompleteMultipartUploadResult). S3 sends small, flat,
// namespace-prefixed-free documents; this parses them into a tree. Not a general XML parser:
// no DTDs (a DOCTYPE is rejected, so no entity expansion attacks), namespaces kept as written in
// attributes and ignored in names' matching. Depth is limited; input size is the caller's
// response limit.
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fe::aws::xml {

struct Element {
  std::string name;  // local name (prefix stripped)
  std::string text;  // concatenated, entity-decoded character data directly inside
  std::vector<std::pair<std::string, std::string>> attributes;
  std::vector<Element> children;

  // First child with this local name; nullptr when absent.
  const Element* child(std::string_view name) const;
  // Text of the first child with this name, or `fallback`.
  std::string child_text(std::string_view name, std::string_view fallback = {}) const;
  // All children with this name, in document order.
  std::vector<const Element*> children_named(std::string_view name) const;
};

struct ParseResult {
  std::optional<Element> root;
  std::string error;  // "line 3: unexpected end of input" when !root
};

ParseResult parse(std::string_view document);

// Text escaped for element content or attribute values: & < > " '. (Used to build request
// bodies and, in healthlake-local, response documents.)
std::string escape(std::string_view text);

}  // namespace fe::aws::xml
