#pragma once
// The small JSON writer every stage and tool builds JSON with (issue 14 item 5): report.json,
// OperationOutcome, HealthLake request bodies, `status --json`, healthlake-local's responses.
// It writes compact JSON (no white space) in the order the calls come, so a caller that used to
// concatenate strings gets the same bytes from the same sequence of keys and values.
//
//   json::Writer w;
//   w.begin_object().field("file", name).field("lines", 12).key("issues").begin_array();
//   for (...) w.begin_object().field("code", c).end_object();
//   w.end_array().end_object();
//   std::string out = std::move(w).str();
//
// Strings go through json_escape.hpp, so the output is always valid UTF-8 whatever bytes come
// in. Commas are placed by the writer; raw() inserts an already-serialised JSON value (a fragment
// written by another Writer, or a number formatted a particular way) as one value.
//
// Misuse (a value where a key is due, end_array() closing an object, str() on an unfinished
// document) is a programming error: it throws std::logic_error rather than emit broken JSON.
#include <concepts>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "common/json_escape.hpp"

namespace fe::json {

class Writer {
 public:
  Writer() = default;

  Writer& begin_object();
  Writer& end_object();
  Writer& begin_array();
  Writer& end_array();
  // The next member's name (inside an object only).
  Writer& key(std::string_view name);

  Writer& value(std::string_view s);
  Writer& value(const char* s) { return value(std::string_view(s)); }
  Writer& value(const std::string& s) { return value(std::string_view(s)); }
  Writer& value(bool b);
  Writer& value(std::nullptr_t) { return null(); }
  template <std::integral T>
  requires(!std::same_as<T, bool> && !std::same_as<T, char>) Writer& value(T n) {
    return raw(std::to_string(n));
  }
  // Shortest form that reads back as the same double (std::to_chars); NaN and infinities, which
  // JSON cannot hold, are written as null.
  Writer& value(double d);
  Writer& null() { return raw("null"); }
  // An already-serialised JSON value, inserted as is.
  Writer& raw(std::string_view json);
  // White space (' ', '\n', '\t', '\r' only) written before the next key, value or closing
  // bracket, after the comma the writer puts there: for files meant to be read by people too
  // (report.json puts each file and each rejected line on a line of its own).
  Writer& space(std::string_view ws);

  // key(name) then value(v).
  template <class T>
  Writer& field(std::string_view name, const T& v) {
    key(name);
    return value(v);
  }
  Writer& raw_field(std::string_view name, std::string_view json) {
    key(name);
    return raw(json);
  }

  // True once one complete top-level value has been written.
  bool complete() const { return stack_.empty() && !out_.empty(); }
  // The document; throws std::logic_error unless complete().
  const std::string& str() const&;
  std::string str() &&;

 private:
  enum class Frame : std::uint8_t { object, array };
  void before_value();
  void flush_space();
  void close(Frame f, char c);

  std::string out_;
  std::vector<Frame> stack_;
  bool first_ = true;      // nothing written yet in the innermost container
  bool have_key_ = false;  // inside an object: a key was written, its value is due
  std::string space_;      // white space due before the next token
};

}  // namespace fe::json
