// Error parsing for both protocols (S3 REST-XML, AWS JSON 1.0) and the category the pipeline
// acts on.
#include "aws/errors.hpp"

#include <gtest/gtest.h>

using namespace fe::aws;

namespace {
ErrorResponse resp(int status, std::string_view body, std::string_view rid = {},
                   std::string_view type = {}) {
  ErrorResponse r;
  r.http_status = status;
  r.body = body;
  r.request_id = rid;
  r.amzn_error_type = type;
  return r;
}
}  // namespace

TEST(S3Errors, ParsesCodeMessageRequestId) {
  const char* body =
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<Error><Code>NoSuchUpload</Code><Message>The specified upload does not exist. The upload "
      "ID may be invalid, or the upload may have been aborted or completed.</Message>"
      "<UploadId>VXBsb2FkIElE</UploadId><RequestId>4442587FB7D0A2F9</RequestId>"
      "<HostId>abc=</HostId></Error>";
  AwsError e = parse_s3_error(resp(404, body, "HEADERID"));
  EXPECT_EQ(e.http_status, 404);
  EXPECT_EQ(e.code, "NoSuchUpload");
  EXPECT_EQ(e.request_id, "4442587FB7D0A2F9");  // the body's id wins over the header's
  EXPECT_EQ(e.category, ErrorCategory::not_found);
  EXPECT_FALSE(e.retryable());
  EXPECT_NE(e.message.find("upload does not exist"), std::string::npos);
  EXPECT_NE(e.describe().find("404 NoSuchUpload"), std::string::npos);
}

TEST(S3Errors, SignatureDoesNotMatchBodyKeepsOnlyMessage) {
  // S3 echoes StringToSign/CanonicalRequest; those are not secrets but are noise: not in message.
  const char* body =
      "<Error><Code>SignatureDoesNotMatch</Code><Message>The request signature we calculated "
      "does not match the signature you provided.</Message><AWSAccessKeyId>AKIDEXAMPLE"
      "</AWSAccessKeyId><StringToSign>AWS4-HMAC-SHA256\n...</StringToSign>"
      "<CanonicalRequest>PUT\n/...</CanonicalRequest><RequestId>R1</RequestId></Error>";
  AwsError e = parse_s3_error(resp(403, body));
  EXPECT_EQ(e.code, "SignatureDoesNotMatch");
  EXPECT_EQ(e.category, ErrorCategory::auth);
  EXPECT_EQ(e.message.find("AWS4-HMAC-SHA256"), std::string::npos);
}

TEST(S3Errors, ClassesByCodeAndStatus) {
  auto cat = [](int status, const std::string& code) {
    std::string body = "<Error><Code>" + code + "</Code><Message>m</Message></Error>";
    return parse_s3_error(resp(status, body)).category;
  };
  EXPECT_EQ(cat(503, "SlowDown"), ErrorCategory::throttling);
  EXPECT_EQ(cat(500, "InternalError"), ErrorCategory::retryable);
  EXPECT_EQ(cat(400, "RequestTimeout"), ErrorCategory::retryable);
  EXPECT_EQ(cat(403, "RequestTimeTooSkewed"), ErrorCategory::clock_skew);
  EXPECT_EQ(cat(403, "AccessDenied"), ErrorCategory::auth);
  EXPECT_EQ(cat(403, "InvalidAccessKeyId"), ErrorCategory::auth);
  EXPECT_EQ(cat(400, "ExpiredToken"), ErrorCategory::auth);
  EXPECT_EQ(cat(400, "KMS.DisabledException"), ErrorCategory::auth);
  EXPECT_EQ(cat(404, "NoSuchBucket"), ErrorCategory::not_found);
  EXPECT_EQ(cat(400, "InvalidPart"), ErrorCategory::validation);
  EXPECT_EQ(cat(412, "PreconditionFailed"), ErrorCategory::conflict);
  EXPECT_EQ(cat(409, "OperationAborted"), ErrorCategory::conflict);
  EXPECT_EQ(cat(502, "SomethingNew"), ErrorCategory::retryable);
  EXPECT_EQ(cat(501, "NotImplemented"), ErrorCategory::other);
}

TEST(S3Errors, BodilessHeadResponses) {
  AwsError e = parse_s3_error(resp(404, "", "RID"));
  EXPECT_EQ(e.code, "NotFound");
  EXPECT_EQ(e.category, ErrorCategory::not_found);
  EXPECT_EQ(e.request_id, "RID");
  EXPECT_EQ(parse_s3_error(resp(403, "")).category, ErrorCategory::auth);
  EXPECT_EQ(parse_s3_error(resp(503, "")).category, ErrorCategory::retryable);
}

TEST(S3Errors, GarbageBodyIsBoundedAndSanitised) {
  std::string junk = "<html>\x1b[31mproxy error\n" + std::string(5000, 'x');
  AwsError e = parse_s3_error(resp(502, junk));
  EXPECT_EQ(e.category, ErrorCategory::retryable);
  EXPECT_LT(e.message.size(), 600u);
  EXPECT_EQ(e.message.find('\x1b'), std::string::npos);
  EXPECT_EQ(e.message.find('\n'), std::string::npos);
}

TEST(S3Errors, ErrorInsideA200) {
  EXPECT_TRUE(
      looks_like_s3_error("<?xml version=\"1.0\"?>\n<Error><Code>InternalError</Code>"
                          "<Message>We encountered an internal error.</Message></Error>"));
  EXPECT_FALSE(looks_like_s3_error(
      "<CompleteMultipartUploadResult><ETag>\"x\"</ETag></CompleteMultipartUploadResult>"));
  EXPECT_FALSE(looks_like_s3_error(""));
}

TEST(JsonErrors, TypeWithNamespaceAndUri) {
  const char* body =
      R"({"__type":"com.amazonaws.healthlake#ValidationException:http://internal.amazon.com/coral/com.amazon.coral.validate/","message":"1 validation error detected: Value 'x' at 'datastoreId' failed to satisfy constraint"})";
  AwsError e = parse_json_error(resp(400, body, "req-1"));
  EXPECT_EQ(e.code, "ValidationException");
  EXPECT_EQ(e.category, ErrorCategory::validation);
  EXPECT_EQ(e.request_id, "req-1");
  EXPECT_NE(e.message.find("validation error"), std::string::npos);
}

TEST(JsonErrors, HeaderTypeWinsAndCapitalMessage) {
  AwsError e = parse_json_error(resp(400, R"({"Message":"Rate exceeded"})", "r",
                                     "ThrottlingException:http://internal.amazon.com/"));
  EXPECT_EQ(e.code, "ThrottlingException");
  EXPECT_EQ(e.category, ErrorCategory::throttling);
  EXPECT_TRUE(e.retryable());
  EXPECT_EQ(e.message, "Rate exceeded");
}

TEST(JsonErrors, Categories) {
  auto cat = [](int status, const std::string& type, const std::string& msg = "m") {
    std::string body = R"({"__type":")" + type + R"(","message":")" + msg + "\"}";
    return parse_json_error(resp(status, body)).category;
  };
  EXPECT_EQ(cat(500, "InternalServerException"), ErrorCategory::retryable);
  EXPECT_EQ(cat(409, "ConflictException"), ErrorCategory::conflict);
  EXPECT_EQ(cat(404, "ResourceNotFoundException"), ErrorCategory::not_found);
  EXPECT_EQ(cat(403, "AccessDeniedException"), ErrorCategory::auth);
  EXPECT_EQ(cat(400, "TooManyRequestsException"), ErrorCategory::throttling);
  EXPECT_EQ(cat(400, "InvalidSignatureException",
                "Signature expired: 20260101T000000Z is now earlier than 20260101T000500Z"),
            ErrorCategory::clock_skew);
  EXPECT_EQ(cat(400, "InvalidSignatureException", "The request signature we calculated..."),
            ErrorCategory::auth);
  EXPECT_EQ(cat(429, "Unknown"), ErrorCategory::throttling);
}

TEST(JsonErrors, EmptyOrBrokenBody) {
  AwsError e = parse_json_error(resp(503, ""));
  EXPECT_EQ(e.code, "ServiceUnavailable");
  EXPECT_EQ(e.category, ErrorCategory::retryable);
  AwsError g = parse_json_error(resp(400, "{not json"));
  EXPECT_EQ(g.category, ErrorCategory::validation);
  EXPECT_NE(g.message.find("unparsable"), std::string::npos);
}

TEST(NormalizeType, Forms) {
  EXPECT_EQ(normalize_error_type("com.amazonaws.healthlake#ConflictException"),
            "ConflictException");
  EXPECT_EQ(normalize_error_type("ConflictException:http://x/y"), "ConflictException");
  EXPECT_EQ(normalize_error_type("aws.protocoltests#Foo:http://a:b"), "Foo");
  EXPECT_EQ(normalize_error_type("Plain"), "Plain");
}

TEST(TransportErrors, RetryableAndDescribed) {
  AwsError t = transport_error(TransportFailure::timeout, "Operation timed out after 30000 ms");
  EXPECT_TRUE(t.retryable());
  EXPECT_EQ(t.http_status, 0);
  EXPECT_NE(t.describe().find("timeout"), std::string::npos);
  AwsError c = transport_error(TransportFailure::connection, "Connection refused");
  EXPECT_EQ(c.category, ErrorCategory::retryable);
}
