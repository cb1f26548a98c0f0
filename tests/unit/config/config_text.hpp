#pragma once
// Shared by the config unit tests (config_test.cpp, uplink_config_test.cpp): a valid pipeline
// document to build test documents on, and loading a document to its errors or its Config.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "config/config.hpp"

namespace fe::test {

// A valid pipeline body (lines 1..9 of every test document that uses it; errors name lines
// after them).
inline constexpr const char* kHead =
    "pipelines:\n"                                                         // 1
    "  - name: epic\n"                                                     // 2
    "    watch: /data/epic\n"                                              // 3
    "    s3: { bucket: landing-bucket, prefix: exports }\n"                // 4
    "    healthlake:\n"                                                    // 5
    "      datastore_id: 0123456789abcdef0123456789abcdef\n"               // 6
    "      data_access_role_arn: arn:aws:iam::123456789012:role/Import\n"  // 7
    "      output_s3_uri: s3://results-bucket/imports/\n"                  // 8
    "      output_kms_key_id: alias/healthlake\n";                         // 9

// Every error of `yaml` (file t.yaml) as FILE:LINE:COL: key.path: message.
inline std::vector<std::string> errors(const std::string& yaml) {
  auto r = fe::config::load_config_text(yaml, "t.yaml");
  std::vector<std::string> out;
  for (const auto& e : r.errors) out.push_back(fe::config::format(e));
  EXPECT_EQ(r.ok(), out.empty());
  return out;
}

// The Config of `yaml`, which must load (a failure is reported; a default Config returned).
inline fe::config::Config ok(const std::string& yaml) {
  auto r = fe::config::load_config_text(yaml, "t.yaml");
  EXPECT_TRUE(r.ok()) << fe::config::format(r.errors);
  return r.ok() ? *r.config : fe::config::Config{};
}

}  // namespace fe::test
