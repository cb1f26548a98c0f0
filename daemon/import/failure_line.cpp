#include "import/failure_line.hpp"

#include <charconv>

namespace fe::import {
namespace {

std::int64_t leading_number(std::string_view s) {
  std::int64_t v = 0;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  return ec == std::errc() && p != s.data() && v > 0 ? v : 0;
}

constexpr std::string_view kIssueLine =
    "http://hl7.org/fhir/StructureDefinition/operationoutcome-issue-line";

}  // namespace

std::int64_t failure_import_line(simdjson::dom::element issue, std::string_view diagnostics) {
  simdjson::dom::array arr;
  if (!issue["extension"].get_array().get(arr))
    for (auto ext : arr) {
      std::string_view url;
      std::int64_t v = 0;
      if (!ext["url"].get_string().get(url) && url == kIssueLine &&
          !ext["valueInteger"].get_int64().get(v) && v > 0)
        return v;
    }
  if (!issue["location"].get_array().get(arr))
    for (auto loc : arr) {
      std::string_view l;
      if (!loc.get_string().get(l) && l.starts_with("Line "))
        if (auto v = leading_number(l.substr(5))) return v;
    }
  // "<object>:N: message": the object part holds no space (a URI or a file name).
  auto sp = diagnostics.find(' ');
  auto head = diagnostics.substr(0, sp);  // "<object>:N:"
  if (head.size() > 2 && head.back() == ':') {
    head.remove_suffix(1);
    auto colon = head.rfind(':');
    if (colon != std::string_view::npos) return leading_number(head.substr(colon + 1));
  }
  return 0;
}

std::string_view strip_object_position(std::string_view diagnostics, std::int64_t import_line) {
  std::string tail = ":" + std::to_string(import_line) + ": ";
  auto at = diagnostics.find(tail);
  if (at == std::string_view::npos) return diagnostics;
  if (diagnostics.substr(0, at).find(' ') != std::string_view::npos) return diagnostics;
  return diagnostics.substr(at + tail.size());
}

std::string source_position_reason(std::string_view source_name, std::int64_t source_line,
                                   std::int64_t import_line, std::string_view message) {
  std::string r(source_name);
  r += ':';
  r += std::to_string(source_line);
  r += ": ";
  r += message;
  r += " (import object line ";
  r += std::to_string(import_line);
  r += ')';
  return r;
}

}  // namespace fe::import
