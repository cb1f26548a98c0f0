// The shipped IAM policies (docs/iam-policy.json for the daemon, docs/iam-data-access-role-*.json
// for HealthLake's data-access role) parse, and the daemon's policy grants exactly the actions
// the code calls: the operations are read from the clients' sources (the names they sign and log,
// S3Client::make_call("Op" and HealthLakeClient::post("Op"), so a new call without a policy
// update fails here.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <fstream>
#include <map>
#include <regex>
#include <set>
#include <sstream>
#include <string>

namespace {

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Every operation name a source passes as the first argument of `call` ("make_call", "post").
std::set<std::string> operations(const std::string& file, const std::string& call) {
  std::string text = slurp(std::string(FE_SOURCE_DIR) + "/" + file);
  std::set<std::string> ops;
  std::regex re(call + "\\(\"([A-Za-z0-9]+)\"");
  for (auto it = std::sregex_iterator(text.begin(), text.end(), re); it != std::sregex_iterator();
       ++it)
    ops.insert((*it)[1]);
  return ops;
}

struct Policy {
  std::set<std::string> actions;                 // every allowed action
  std::map<std::string, std::string> resources;  // action -> resources (joined), for messages
  std::string principal_services;
};

Policy load(const std::string& name) {
  Policy p;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  std::string text = slurp(std::string(FE_SOURCE_DIR) + "/docs/" + name);
  auto err = parser.parse(text).get(doc);
  EXPECT_FALSE(err) << name << " is not valid JSON: " << simdjson::error_message(err);
  if (err) return p;
  std::string_view version;
  EXPECT_FALSE(doc["Version"].get(version));
  EXPECT_EQ(version, "2012-10-17") << name;
  simdjson::dom::array statements;
  EXPECT_FALSE(doc["Statement"].get(statements)) << name << " has no Statement array";
  for (auto s : statements) {
    std::string_view effect;
    EXPECT_FALSE(s["Effect"].get(effect));
    EXPECT_EQ(effect, "Allow") << name;
    auto strings = [](simdjson::dom::element e) {
      std::vector<std::string> out;
      std::string_view v;
      simdjson::dom::array a;
      if (!e.get(v)) out.emplace_back(v);
      if (!e.get(a))
        for (auto x : a)
          if (!x.get(v)) out.emplace_back(v);
      return out;
    };
    simdjson::dom::element action, resource, principal;
    EXPECT_FALSE(s["Action"].get(action)) << name;
    std::string res;
    if (!s["Resource"].get(resource))
      for (const auto& r : strings(resource)) res += r + " ";
    for (const auto& a : strings(action)) {
      EXPECT_EQ(a.find('*'), std::string::npos) << name << ": wildcard action " << a;
      p.actions.insert(a);
      p.resources[a] += res;
    }
    if (!s["Principal"]["Service"].get(principal))
      for (const auto& v : strings(principal)) p.principal_services += v + " ";
    if (!s["Resource"].get(resource)) {
      for (const auto& r : strings(resource)) EXPECT_NE(r, "*") << name << ": Resource *";
    }
  }
  return p;
}

// The IAM action that authorises each S3 operation (Service Authorization Reference for S3).
const std::map<std::string, std::string> kS3Action = {
    {"PutObject", "s3:PutObject"},
    {"CreateMultipartUpload", "s3:PutObject"},
    {"UploadPart", "s3:PutObject"},
    {"CompleteMultipartUpload", "s3:PutObject"},
    {"AbortMultipartUpload", "s3:AbortMultipartUpload"},
    {"DeleteObject", "s3:DeleteObject"},
    {"ListParts", "s3:ListMultipartUploadParts"},
    {"HeadObject", "s3:GetObject"},
    {"GetObject", "s3:GetObject"},
    // an import batch's copies (docs/import.md, Batches): PutObject on the copy under
    // <prefix>/batches/, GetObject on the source, both under the prefix
    {"CopyObject", "s3:PutObject"},
    {"ListObjectsV2", "s3:ListBucket"},
    {"ListMultipartUploads", "s3:ListBucketMultipartUploads"},
};

std::set<std::string> actions_the_code_needs() {
  std::set<std::string> need;
  auto s3 = operations("daemon/aws/s3.cpp", "make_call");
  EXPECT_GE(s3.size(), 10u) << "the S3 operation names were not found in daemon/aws/s3.cpp";
  for (const auto& op : s3) {
    auto it = kS3Action.find(op);
    EXPECT_NE(it, kS3Action.end())
        << "S3 operation " << op << " has no IAM action here: add it, and to docs/iam-policy.json";
    if (it != kS3Action.end()) need.insert(it->second);
  }
  auto hl = operations("daemon/aws/healthlake.cpp", "post");
  EXPECT_GE(hl.size(), 4u) << "the HealthLake operation names were not found";
  for (const auto& op : hl) need.insert("healthlake:" + op);
  // StartFHIRImportJob passes the data-access role; SSE-KMS uploads (and reads of KMS-encrypted
  // objects) need the key.
  if (hl.count("StartFHIRImportJob")) need.insert("iam:PassRole");
  need.insert("kms:GenerateDataKey");
  need.insert("kms:Decrypt");
  return need;
}

TEST(IamPolicy, DaemonPolicyGrantsExactlyTheActionsTheCodeCalls) {
  Policy p = load("iam-policy.json");
  auto need = actions_the_code_needs();
  for (const auto& a : need) EXPECT_TRUE(p.actions.count(a)) << "docs/iam-policy.json lacks " << a;
  for (const auto& a : p.actions)
    EXPECT_TRUE(need.count(a)) << "docs/iam-policy.json grants " << a
                               << ", which the code never needs (least privilege)";
  // Scoped: object actions under a prefix, PassRole on one role.
  EXPECT_NE(p.resources["s3:PutObject"].find("/exports/*"), std::string::npos);
  EXPECT_NE(p.resources["iam:PassRole"].find(":role/"), std::string::npos);
  for (const char* a : {"healthlake:StartFHIRImportJob", "healthlake:DescribeFHIRDatastore",
                        "healthlake:ListFHIRImportJobs", "healthlake:DescribeFHIRImportJob",
                        "s3:ListBucketMultipartUploads", "s3:AbortMultipartUpload"})
    EXPECT_TRUE(need.count(a)) << a << " was expected among the code's calls";
}

TEST(IamPolicy, DataAccessRoleReadsTheInputWritesTheOutputAndTrustsHealthLake) {
  Policy role = load("iam-data-access-role-policy.json");
  for (const char* a : {"s3:GetObject", "s3:ListBucket", "s3:PutObject", "kms:Decrypt",
                        "kms:GenerateDataKey", "kms:DescribeKey"})
    EXPECT_TRUE(role.actions.count(a)) << "data-access role policy lacks " << a;
  // It reads what the daemon writes, and writes where the daemon reads the results.
  Policy daemon = load("iam-policy.json");
  EXPECT_NE(role.resources["s3:GetObject"].find("arn:aws:s3:::hospital-fhir-landing/exports/*"),
            std::string::npos);
  EXPECT_NE(daemon.resources["s3:PutObject"].find("arn:aws:s3:::hospital-fhir-landing/exports/*"),
            std::string::npos);
  EXPECT_NE(role.resources["s3:PutObject"].find("arn:aws:s3:::hospital-fhir-results/imports/*"),
            std::string::npos);
  EXPECT_NE(daemon.resources["s3:GetObject"].find("arn:aws:s3:::hospital-fhir-results/imports/*"),
            std::string::npos);
  Policy trust = load("iam-data-access-role-trust.json");
  EXPECT_TRUE(trust.actions.count("sts:AssumeRole"));
  EXPECT_NE(trust.principal_services.find("healthlake.amazonaws.com"), std::string::npos);
  // The role the daemon may pass is the role these files describe.
  EXPECT_NE(
      daemon.resources["iam:PassRole"].find("arn:aws:iam::123456789012:role/HealthLakeImport"),
      std::string::npos);
}

}  // namespace
