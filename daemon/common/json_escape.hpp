#pragma once
// JSON string escaping shared by every stage that writes JSON by hand (reports, OperationOutcome,
// HealthLake request bodies, status --json, the emulator). Header-only: it has no dependencies,
// so any stage or tool can include it without linking anything.
//
// Escapes '"', '\\', the short forms \b \f \n \r \t, and every other control character as \u00XX.
// Well-formed UTF-8 (RFC 3629: no overlong forms, no surrogates, at most U+10FFFF) passes through
// unchanged. Every byte that is not part of a well-formed sequence becomes U+FFFD (the replacement
// character): file names, HealthLake messages and S3 keys are not guaranteed to be UTF-8, and one
// stray Latin-1 byte would otherwise make a whole report or `status --json` invalid JSON (RFC 8259
// requires UTF-8). The output is therefore always valid UTF-8 and a valid JSON string body.
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>

namespace fe::json {

// Length of the well-formed UTF-8 sequence starting at s[i] (2-4), or 0 when the bytes there are
// not one. (ASCII is handled by the caller.)
inline size_t utf8_sequence(std::string_view s, size_t i) {
  auto b = [&](size_t k) { return static_cast<unsigned char>(s[i + k]); };
  const unsigned char c = b(0);
  size_t len = (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
  if (len == 0 || i + len > s.size()) return 0;
  uint32_t cp = c & (0x7fu >> len);
  for (size_t k = 1; k < len; ++k) {
    if ((b(k) & 0xc0) != 0x80) return 0;
    cp = (cp << 6) | (b(k) & 0x3fu);
  }
  static constexpr uint32_t kMin[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kMin[len] || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return 0;
  return len;
}

inline void append_escaped(std::string& out, std::string_view s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 0x80) {
      if (size_t len = utf8_sequence(s, i)) {
        out.append(s.substr(i, len));
        i += len - 1;
      } else {
        out += "\xEF\xBF\xBD";  // U+FFFD for this byte
      }
      continue;
    }
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
