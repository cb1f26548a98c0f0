#pragma once
// A fuzz input as the reply of tests/support's loopback server (LoopbackServer), which the
// response fuzz targets run so that they drive the real S3Client / HealthLakeClient (libcurl,
// AwsCaller, signing, error typing, body parsing) with fuzzed status, headers and bodies, with no
// mock in between.
#include <boost/beast/core/string.hpp>
#include <cctype>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "loopback_server.hpp"

namespace fe::fuzz {

// Splits a fuzz input into a canned response:
//   byte 0: operation (the caller's choice), byte 1: status (index into `statuses`),
//   then "Name: value" lines up to the first empty line, then the body.
// Header names are reduced to token characters and values lose CR/LF so the response stays one
// well-formed HTTP message; framing headers (Content-Length except on HEAD, Transfer-Encoding,
// Connection) and Location are dropped: the fuzzer tests our parsing, not curl's framing, and
// nothing may point the client anywhere but loopback.
inline fe::test::Reply split_input(std::string_view in, const std::vector<unsigned>& statuses,
                                   bool head) {
  fe::test::Reply r;
  r.status = static_cast<int>(
      statuses[in.size() > 1 ? static_cast<unsigned char>(in[1]) % statuses.size() : 0]);
  in = in.size() > 2 ? in.substr(2) : std::string_view{};
  while (!in.empty()) {
    auto nl = in.find('\n');
    std::string_view line = in.substr(0, nl);
    in = nl == std::string_view::npos ? std::string_view{} : in.substr(nl + 1);
    if (line.empty()) break;
    auto colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) continue;
    std::string name, value;
    for (char c : line.substr(0, colon))
      if (std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_') name.push_back(c);
    for (char c : line.substr(colon + 1))
      if (c != '\r' && c != '\n' && c != '\0') value.push_back(c);
    if (name.empty()) continue;
    for (const char* drop : {"content-length", "transfer-encoding", "connection", "location",
                             "trailer", "upgrade", "keep-alive"})
      if (boost::beast::iequals(name, drop) &&
          !(head && name.size() == 14 && boost::beast::iequals(name, "content-length")))
        name.clear();
    if (head && boost::beast::iequals(name, "content-length") &&
        (value.empty() || value.size() > 18 ||
         value.find_first_not_of("0123456789 ") != std::string::npos))
      name.clear();  // curl rejects a bad length before our code runs
    if (!name.empty()) r.headers.emplace_back(std::move(name), std::move(value));
  }
  r.body = std::string(in);
  return r;
}

}  // namespace fe::fuzz
