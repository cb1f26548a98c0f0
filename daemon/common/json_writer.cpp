#include "common/json_writer.hpp"

#include <charconv>
#include <cmath>
#include <stdexcept>

namespace fe::json {

void Writer::flush_space() {
  out_ += space_;
  space_.clear();
}

void Writer::before_value() {
  if (stack_.empty()) {
    if (!out_.empty()) throw std::logic_error("json::Writer: a second top-level value");
    return flush_space();
  }
  if (stack_.back() == Frame::object) {
    if (!have_key_) throw std::logic_error("json::Writer: a value inside an object needs a key");
    have_key_ = false;
    return flush_space();
  }
  if (!first_) out_ += ',';
  first_ = false;
  flush_space();
}

Writer& Writer::space(std::string_view ws) {
  if (ws.find_first_not_of(" \n\t\r") != std::string_view::npos)
    throw std::logic_error("json::Writer: space() takes white space only");
  space_ += ws;
  return *this;
}

Writer& Writer::key(std::string_view name) {
  if (stack_.empty() || stack_.back() != Frame::object || have_key_)
    throw std::logic_error("json::Writer: key() outside an object or twice in a row");
  if (!first_) out_ += ',';
  first_ = false;
  flush_space();
  out_ += '"';
  append_escaped(out_, name);
  out_ += "\":";
  have_key_ = true;
  return *this;
}

Writer& Writer::begin_object() {
  before_value();
  out_ += '{';
  stack_.push_back(Frame::object);
  first_ = true;
  return *this;
}

Writer& Writer::begin_array() {
  before_value();
  out_ += '[';
  stack_.push_back(Frame::array);
  first_ = true;
  return *this;
}

void Writer::close(Frame f, char c) {
  if (stack_.empty() || stack_.back() != f || have_key_)
    throw std::logic_error("json::Writer: unbalanced end_object()/end_array()");
  stack_.pop_back();
  flush_space();
  out_ += c;
  first_ = false;  // the closed container is a value of its parent
}

Writer& Writer::end_object() {
  close(Frame::object, '}');
  return *this;
}

Writer& Writer::end_array() {
  close(Frame::array, ']');
  return *this;
}

Writer& Writer::value(std::string_view s) {
  before_value();
  out_ += '"';
  append_escaped(out_, s);
  out_ += '"';
  return *this;
}

Writer& Writer::value(bool b) {
  return raw(b ? "true" : "false");
}

Writer& Writer::value(double d) {
  if (!std::isfinite(d)) return null();
  char buf[32];
  auto r = std::to_chars(buf, buf + sizeof buf, d);
  return raw(std::string_view(buf, static_cast<std::size_t>(r.ptr - buf)));
}

Writer& Writer::raw(std::string_view json) {
  before_value();
  out_ += json;
  return *this;
}

const std::string& Writer::str() const& {
  if (!complete()) throw std::logic_error("json::Writer: the document is not finished");
  return out_;
}

std::string Writer::str() && {
  if (!complete()) throw std::logic_error("json::Writer: the document is not finished");
  return std::move(out_);
}

}  // namespace fe::json
