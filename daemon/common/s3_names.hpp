#pragma once
// S3's naming rules, spelled once (issue 14 item 5) for the config checker, the S3 client and
// healthlake-local.
//
// Bucket names: the general purpose bucket naming rules of the Amazon S3 User Guide
// ("General purpose bucket naming rules"): 3 to 63 characters of a-z 0-9 . -, beginning and ending
// with a letter or digit, no two adjacent periods, not formatted as an IP address, none of the
// reserved prefixes (xn--, sthree-, amzn-s3-demo-) or suffixes (-s3alias, --ol-s3, .mrap, --x-s3).
//
// Object keys: S3 itself takes any 1 to 1024 bytes of UTF-8 (kMaxKeyBytes; healthlake-local
// enforces that much). The keys this daemon writes are held to more (safe_key_error): no control
// characters, no leading '/', no empty, "." or ".." segment, so a key never means a different path
// to a tool that maps keys to files (DESIGN, S3 layout: "object keys sanitised").
#include <cstddef>
#include <string>
#include <string_view>

namespace fe::s3 {

inline constexpr std::size_t kMaxKeyBytes = 1024;

// "" when `name` is a valid general purpose bucket name, else the rule it breaks, as a sentence
// for an operator ("S3 bucket names are 3 to 63 characters long").
std::string bucket_name_error(std::string_view name);
inline bool valid_bucket_name(std::string_view name) {
  return bucket_name_error(name).empty();
}

// "" when `key` is a key this daemon may write, else why not ("object key has a '..' segment").
std::string safe_key_error(std::string_view key);

}  // namespace fe::s3
