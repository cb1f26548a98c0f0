// common/s3_names: the general purpose bucket naming rules as the Amazon S3 User Guide lists them
// ("General purpose bucket naming rules"), one case per rule, and the daemon's object-key rules.
#include "common/s3_names.hpp"

#include <gtest/gtest.h>

#include <string>

using fe::s3::bucket_name_error;
using fe::s3::safe_key_error;
using fe::s3::valid_bucket_name;

TEST(S3Names, ValidBucketNames) {
  // The guide's examples of valid names, and edge lengths.
  for (const char* ok :
       {"docexamplebucket1", "log-delivery-march-2020", "my-hosted-content",
        "docexamplewebsite.com", "www.docexamplewebsite.com", "my.example.s3.bucket", "abc",
        "a.b-c", "123", "1.2.3", "hospital-fhir-landing"})
    EXPECT_EQ(bucket_name_error(ok), "") << ok;
  EXPECT_TRUE(valid_bucket_name(std::string(63, 'a')));
}

TEST(S3Names, EachBucketRule) {
  // 3 to 63 characters.
  EXPECT_EQ(bucket_name_error("ab"), "S3 bucket names are 3 to 63 characters long");
  EXPECT_FALSE(valid_bucket_name(std::string(64, 'a')));
  // Only lowercase letters, numbers, periods and hyphens (the guide's invalid examples).
  EXPECT_EQ(bucket_name_error("doc_example_bucket"),
            "S3 bucket names use only lowercase letters, digits, '.' and '-'");
  EXPECT_FALSE(valid_bucket_name("DocExampleBucket"));
  EXPECT_FALSE(valid_bucket_name("a b c"));
  // Begin and end with a letter or number.
  EXPECT_EQ(bucket_name_error("doc-example-bucket-"),
            "S3 bucket names begin and end with a lowercase letter or a digit");
  EXPECT_FALSE(valid_bucket_name("-start"));
  EXPECT_FALSE(valid_bucket_name(".start"));
  EXPECT_FALSE(valid_bucket_name("end."));
  // No two adjacent periods.
  EXPECT_EQ(bucket_name_error("a..b"), "S3 bucket names have no two adjacent periods");
  // Not formatted as an IP address.
  EXPECT_EQ(bucket_name_error("192.168.5.4"), "S3 bucket names are not formatted as IP addresses");
  // Reserved prefixes and suffixes.
  EXPECT_EQ(bucket_name_error("xn--bucket"), "S3 bucket names do not start with 'xn--'");
  EXPECT_FALSE(valid_bucket_name("sthree-bucket"));
  EXPECT_FALSE(valid_bucket_name("sthree-configurator"));
  EXPECT_FALSE(valid_bucket_name("amzn-s3-demo-bucket"));
  EXPECT_EQ(bucket_name_error("bucket-s3alias"), "S3 bucket names do not end with '-s3alias'");
  EXPECT_FALSE(valid_bucket_name("bucket--ol-s3"));
  EXPECT_FALSE(valid_bucket_name("bucket.mrap"));
  EXPECT_FALSE(valid_bucket_name("bucket--x-s3"));
}

TEST(S3Names, SafeKeys) {
  EXPECT_EQ(safe_key_error("exports/2026-11-26/import/Patient.ndjson"), "");
  EXPECT_EQ(safe_key_error("a b/ü+~!'()*.ndjson"), "");
  EXPECT_EQ(safe_key_error(std::string(fe::s3::kMaxKeyBytes, 'k')), "");
  EXPECT_EQ(safe_key_error(std::string(1025, 'k')), "object key longer than 1024 bytes");
  EXPECT_EQ(safe_key_error(""), "empty object key");
  EXPECT_EQ(safe_key_error("a/../b"), "object key has a '.' or '..' segment");
  EXPECT_NE(safe_key_error(".."), "");
  EXPECT_NE(safe_key_error("a/./b"), "");
  EXPECT_EQ(safe_key_error("/abs"), "object key starts with '/'");
  EXPECT_EQ(safe_key_error("a//b"), "object key has an empty segment");
  EXPECT_EQ(safe_key_error("a\nb"), "object key contains a control character");
  EXPECT_NE(safe_key_error("a\x7f"), "");
  EXPECT_EQ(safe_key_error("\xc3"), "object key is not valid UTF-8");  // truncated
  EXPECT_NE(safe_key_error("\xc0\xaf"), "");                           // overlong
  EXPECT_NE(safe_key_error("\xed\xa0\x80"), "");                       // surrogate
}
