#include "common/s3_names.hpp"

#include "common/json_escape.hpp"

namespace fe::s3 {

namespace {

bool lower_or_digit(char c) {
  return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

// Four dot-separated runs of digits ("192.168.5.4"): "formatted as an IP address".
bool ip_address_form(std::string_view s) {
  int groups = 0;
  std::size_t i = 0;
  while (true) {
    std::size_t start = i;
    while (i < s.size() && s[i] >= '0' && s[i] <= '9') ++i;
    if (i == start) return false;
    ++groups;
    if (i == s.size()) return groups == 4;
    if (s[i] != '.') return false;
    ++i;
  }
}

bool valid_utf8(std::string_view s) {
  for (std::size_t i = 0; i < s.size(); ++i) {
    if (static_cast<unsigned char>(s[i]) < 0x80) continue;
    std::size_t len = json::utf8_sequence(s, i);
    if (len == 0) return false;
    i += len - 1;
  }
  return true;
}

}  // namespace

std::string bucket_name_error(std::string_view b) {
  if (b.size() < 3 || b.size() > 63) return "S3 bucket names are 3 to 63 characters long";
  for (char c : b)
    if (!lower_or_digit(c) && c != '.' && c != '-')
      return "S3 bucket names use only lowercase letters, digits, '.' and '-'";
  if (!lower_or_digit(b.front()) || !lower_or_digit(b.back()))
    return "S3 bucket names begin and end with a lowercase letter or a digit";
  if (b.find("..") != std::string_view::npos) return "S3 bucket names have no two adjacent periods";
  if (ip_address_form(b)) return "S3 bucket names are not formatted as IP addresses";
  for (std::string_view p : {"xn--", "sthree-", "amzn-s3-demo-"})
    if (b.starts_with(p)) return "S3 bucket names do not start with '" + std::string(p) + "'";
  for (std::string_view s : {"-s3alias", "--ol-s3", ".mrap", "--x-s3"})
    if (b.ends_with(s)) return "S3 bucket names do not end with '" + std::string(s) + "'";
  return {};
}

std::string safe_key_error(std::string_view key) {
  if (key.empty()) return "empty object key";
  if (key.size() > kMaxKeyBytes) return "object key longer than 1024 bytes";
  for (unsigned char c : key)
    if (c < 0x20 || c == 0x7f) return "object key contains a control character";
  if (!valid_utf8(key)) return "object key is not valid UTF-8";
  if (key.front() == '/') return "object key starts with '/'";
  std::size_t start = 0;
  for (;;) {
    auto end = key.find('/', start);
    auto seg =
        key.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (seg == "." || seg == "..") return "object key has a '.' or '..' segment";
    if (seg.empty() && end != std::string_view::npos) return "object key has an empty segment";
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return {};
}

}  // namespace fe::s3
