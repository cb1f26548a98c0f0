#pragma once
// JSON string escaping shared by every stage that writes JSON by hand (reports, OperationOutcome,
// HealthLake request bodies, status --json, the emulator). Header-only: it has no dependencies,
// so any stage or tool can include it without linking anything.
//
// Escapes '"', '\\', the short forms \b \f \n \r \t, and every other control character as \u00XX.
// Bytes >= 0x80 pass through unchanged: callers hand in UTF-8 (validated where it came from), and
// JSON allows it as is.
#include <cstdio>
#include <string>
#include <string_view>

namespace fe::json {

inline void append_escaped(std::string& out, std::string_view s) {
  for (unsigned char c : s) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        if (c < 0x20) {
          char b[8];
          std::snprintf(b, sizeof b, "\\u%04x", c);
          out += b;
        } else {
          out += static_cast<char>(c);
        }
    }
  }
}

// The escaped contents, without surrounding quotes.
inline std::string escape(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  append_escaped(out, s);
  return out;
}

// A complete JSON string literal: quotes and escaped contents.
inline std::string quote(std::string_view s) {
  std::string out;
  out.reserve(s.size() + 2);
  out += '"';
  append_escaped(out, s);
  out += '"';
  return out;
}

}  // namespace fe::json
