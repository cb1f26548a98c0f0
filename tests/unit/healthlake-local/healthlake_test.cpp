// HealthLake rules of healthlake-local: input checks, ClientToken idempotency, the job state
// machine (driven by explicit tick times, no sleeping), one running import per account (FIFO
// across data stores) or per data store, the per-MB run time, and a real import.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <filesystem>
#include <string>

#include "healthlake.hpp"
#include "s3_store.hpp"
#include "temp_dir.hpp"
#include "util.hpp"

namespace fs = std::filesystem;
using namespace fe::hll;

namespace {

const std::string kDs = "0123456789abcdef0123456789abcdef";
const std::string kDs2 = "fedcba9876543210fedcba9876543210";
const std::string kKms = "arn:aws:kms:us-east-1:123456789012:key/abcd-1234";
const std::string kRole = "arn:aws:iam::123456789012:role/HealthLakeImport";

std::string start_body(const std::string& ds, const std::string& token, const std::string& input,
                       const std::string& level = "structure-only",
                       const std::string& name = "job") {
  std::string s = "{\"JobName\":\"" + name + "\",\"DatastoreId\":\"" + ds +
                  "\",\"DataAccessRoleArn\":\"" + kRole + "\",\"InputDataConfig\":{\"S3Uri\":\"" +
                  input + "\"},\"JobOutputDataConfig\":{\"S3Configuration\":{\"S3Uri\":" +
                  "\"s3://results/out\",\"KmsKeyId\":\"" + kKms + "\"}},\"ValidationLevel\":\"" +
                  level + "\"";
  if (!token.empty()) s += ",\"ClientToken\":\"" + token + "\"";
  return s + "}";
}

std::string str(const std::string& json, const char* a, const char* b = nullptr) {
  simdjson::dom::parser p;
  simdjson::dom::element e = p.parse(json);
  std::string_view v = b ? std::string_view(e[a][b]) : std::string_view(e[a]);
  return std::string(v);
}

class HealthLakeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fe::test::make_temp_dir("hll-hl");
    s3_ = std::make_unique<S3Store>(dir_ / "s3");
    s3_->create_bucket("landing");
    s3_->create_bucket("results");
    HealthLakeOptions o;
    o.timing = {1.0, 1.0, 1.0};
    hl_ = std::make_unique<HealthLake>(*s3_, dir_ / "hl", o);
    hl_->add_datastore(kDs);
    hl_->add_datastore(kDs2);
  }
  void TearDown() override {
    hl_.reset();
    s3_.reset();
    fs::remove_all(dir_);
  }
  std::string status(const std::string& ds, const std::string& id, double now) {
    return str(hl_->call("DescribeFHIRImportJob",
                         "{\"DatastoreId\":\"" + ds + "\",\"JobId\":\"" + id + "\"}", now),
               "ImportJobProperties", "JobStatus");
  }
  HlError error_of(const std::string& op, const std::string& body) {
    try {
      hl_->call(op, body, 0);
    } catch (const HlError& e) {
      return e;
    }
    ADD_FAILURE() << op << " succeeded: " << body;
    return HlError(0, "", "");
  }
  fs::path dir_;
  std::unique_ptr<S3Store> s3_;
  std::unique_ptr<HealthLake> hl_;
};

TEST(JobTiming, ParsesPhasesAndUnits) {
  JobTiming t = JobTiming::parse("submitted=0.2s,queued=500ms,run=1");
  EXPECT_DOUBLE_EQ(t.submitted, 0.2);
  EXPECT_DOUBLE_EQ(t.queued, 0.5);
  EXPECT_DOUBLE_EQ(t.run, 1.0);
  EXPECT_DOUBLE_EQ(t.per_mb, 0.0);
  EXPECT_DOUBLE_EQ(JobTiming::parse("run=80s,per_mb=500ms").per_mb, 0.5);
  EXPECT_THROW(JobTiming::parse("boot=1s"), std::invalid_argument);
  EXPECT_THROW(JobTiming::parse("run=fast"), std::invalid_argument);
}

TEST_F(HealthLakeTest, InputsAreCheckedAgainstTheApiPatterns) {
  s3_->put_bytes("landing", "in/a.ndjson", "{}\n", "");
  auto body = start_body(kDs, "tok-1", "s3://landing/in/");
  HlError e = error_of("StartFHIRImportJob", start_body(kDs, "bad token!", "s3://landing/in/"));
  EXPECT_EQ(e.type, "ValidationException");
  EXPECT_NE(e.message.find("clientToken"), std::string::npos) << e.message;
  EXPECT_EQ(
      error_of("StartFHIRImportJob", start_body(kDs, std::string(65, 'a'), "s3://landing/in/"))
          .type,
      "ValidationException");
  EXPECT_EQ(error_of("StartFHIRImportJob", start_body(kDs, "t", "http://landing/in/")).type,
            "ValidationException");
  EXPECT_EQ(
      error_of("StartFHIRImportJob", start_body(kDs, "t", "s3://landing/in/", "lenient")).type,
      "ValidationException");
  std::string bad_role = body;
  bad_role.replace(bad_role.find(kRole), kRole.size(), "arn:aws:iam::12:role/x");
  EXPECT_EQ(error_of("StartFHIRImportJob", bad_role).type, "ValidationException");
  EXPECT_EQ(error_of("StartFHIRImportJob", "{\"DatastoreId\":\"" + kDs + "\"}").type,
            "ValidationException");
  EXPECT_EQ(error_of("StartFHIRImportJob", "not json").type, "SerializationException");
  EXPECT_EQ(error_of("StartFHIRImportJob",
                     start_body("00000000000000000000000000000000", "t", "s3://landing/in/"))
                .type,
            "ResourceNotFoundException");
  EXPECT_EQ(
      error_of("ListFHIRImportJobs", "{\"DatastoreId\":\"" + kDs + "\",\"MaxResults\":0}").type,
      "ValidationException");
  EXPECT_EQ(
      error_of("ListFHIRImportJobs", "{\"DatastoreId\":\"" + kDs + "\",\"MaxResults\":501}").type,
      "ValidationException");
  EXPECT_EQ(
      error_of("DescribeFHIRImportJob", "{\"DatastoreId\":\"" + kDs + "\",\"JobId\":\"nope\"}")
          .type,
      "ResourceNotFoundException");
}

TEST_F(HealthLakeTest, ClientTokenReturnsTheSameJob) {
  s3_->put_bytes("landing", "in/a.ndjson", "{\"resourceType\":\"Patient\",\"id\":\"p\"}\n", "");
  std::string a = hl_->call("StartFHIRImportJob", start_body(kDs, "tok-1", "s3://landing/in/"), 0);
  std::string b =
      hl_->call("StartFHIRImportJob", start_body(kDs, "tok-1", "s3://landing/in/"), 0.5);
  EXPECT_EQ(str(a, "JobId"), str(b, "JobId"));
  EXPECT_EQ(str(a, "JobStatus"), "SUBMITTED");
  // Same token on another data store is a different job; no token is always a new job.
  std::string c = hl_->call("StartFHIRImportJob", start_body(kDs2, "tok-1", "s3://landing/in/"), 0);
  EXPECT_NE(str(a, "JobId"), str(c, "JobId"));
  std::string d1 = hl_->call("StartFHIRImportJob", start_body(kDs, "", "s3://landing/in/"), 0);
  std::string d2 = hl_->call("StartFHIRImportJob", start_body(kDs, "", "s3://landing/in/"), 0);
  EXPECT_NE(str(d1, "JobId"), str(d2, "JobId"));
  // Reusing a token with other parameters is refused, never silently mapped to the old job.
  HlError e = error_of("StartFHIRImportJob", start_body(kDs, "tok-1", "s3://landing/other/"));
  EXPECT_EQ(e.type, "ConflictException");
  // After the job finished, the token still names it (a retry after a crash finds it).
  hl_->tick(10);
  hl_->tick(20);
  hl_->tick(30);
  std::string again =
      hl_->call("StartFHIRImportJob", start_body(kDs, "tok-1", "s3://landing/in/"), 40);
  EXPECT_EQ(str(again, "JobId"), str(a, "JobId"));
  EXPECT_EQ(str(again, "JobStatus"), "COMPLETED");
}

// --client-token-ttl: a token is remembered for that long after its Start, then forgotten, and
// the same Start makes a second job (AWS documents no retention; the daemon must not rely on it).
TEST_F(HealthLakeTest, ClientTokenTtlForgetsTheTokenAfterItsTime) {
  s3_->put_bytes("landing", "in/a.ndjson", "{\"resourceType\":\"Patient\",\"id\":\"p\"}\n", "");
  HealthLakeOptions o;
  o.timing = {1.0, 1.0, 1.0};
  o.client_token_ttl = 5;
  HealthLake hl(*s3_, dir_ / "hl-ttl", o);
  hl.add_datastore(kDs);
  auto body = start_body(kDs, "tok-ttl", "s3://landing/in/");
  std::string a = str(hl.call("StartFHIRImportJob", body, 0), "JobId");
  EXPECT_EQ(str(hl.call("StartFHIRImportJob", body, 4.9), "JobId"), a);  // still remembered
  std::string b = str(hl.call("StartFHIRImportJob", body, 5.0), "JobId");
  EXPECT_NE(b, a);  // forgotten: a second job for the same token
  EXPECT_EQ(str(hl.call("StartFHIRImportJob", body, 6.0), "JobId"), b);  // the new one, remembered
}

TEST_F(HealthLakeTest, StateMachineRunsOneJobPerAccountInFifoOrderAcrossDatastores) {
  s3_->put_bytes("landing", "in/a.ndjson", "{\"resourceType\":\"Patient\",\"id\":\"p\"}\n", "");
  std::string j1 =
      str(hl_->call("StartFHIRImportJob", start_body(kDs, "t1", "s3://landing/in/"), 0), "JobId");
  std::string j2 =
      str(hl_->call("StartFHIRImportJob", start_body(kDs, "t2", "s3://landing/in/"), 0.1), "JobId");
  std::string j3 = str(
      hl_->call("StartFHIRImportJob", start_body(kDs2, "t3", "s3://landing/in/"), 0.2), "JobId");
  EXPECT_EQ(status(kDs, j1, 0.5), "SUBMITTED");
  EXPECT_EQ(status(kDs, j1, 1.0), "QUEUED");
  EXPECT_EQ(status(kDs, j2, 1.1), "QUEUED");
  EXPECT_EQ(status(kDs, j1, 2.0), "IN_PROGRESS");
  EXPECT_EQ(status(kDs, j2, 2.15), "QUEUED") << "one running import per account and Region";
  EXPECT_EQ(status(kDs2, j3, 2.2), "QUEUED") << "another data store of the account waits too";
  EXPECT_EQ(status(kDs, j1, 3.0), "COMPLETED");
  EXPECT_EQ(status(kDs, j2, 3.0), "IN_PROGRESS") << "the oldest queued job starts when one ends";
  EXPECT_EQ(status(kDs2, j3, 3.5), "QUEUED") << "FIFO: submitted after j2";
  EXPECT_EQ(status(kDs, j2, 4.0), "COMPLETED");
  EXPECT_EQ(status(kDs2, j3, 4.0), "IN_PROGRESS");
  EXPECT_EQ(status(kDs2, j3, 5.0), "COMPLETED");

  // ListFHIRImportJobs: newest first, filters, NextToken.
  std::string l1 =
      hl_->call("ListFHIRImportJobs", "{\"DatastoreId\":\"" + kDs + "\",\"MaxResults\":1}", 5);
  simdjson::dom::parser p;
  simdjson::dom::element e = p.parse(l1);
  EXPECT_EQ(std::string_view(e["ImportJobPropertiesList"].at(0)["JobId"]), j2);
  std::string token{std::string_view(e["NextToken"])};
  std::string l2 = hl_->call(
      "ListFHIRImportJobs",
      "{\"DatastoreId\":\"" + kDs + "\",\"MaxResults\":1,\"NextToken\":\"" + token + "\"}", 5);
  simdjson::dom::parser p2;
  simdjson::dom::element e2 = p2.parse(l2);
  EXPECT_EQ(std::string_view(e2["ImportJobPropertiesList"].at(0)["JobId"]), j1);
  EXPECT_TRUE(e2["NextToken"].error()) << "last page has no NextToken";
  std::string l3 = hl_->call("ListFHIRImportJobs",
                             "{\"DatastoreId\":\"" + kDs + "\",\"JobStatus\":\"IN_PROGRESS\"}", 5);
  simdjson::dom::parser p3;
  EXPECT_EQ(simdjson::dom::array(p3.parse(l3)["ImportJobPropertiesList"]).size(), 0u);
}

TEST_F(HealthLakeTest, ImportSlotsDatastoreRunsDatastoresInParallel) {
  HealthLakeOptions o;
  o.timing = {1.0, 1.0, 1.0};
  o.import_slots = ImportSlots::datastore;
  hl_ = std::make_unique<HealthLake>(*s3_, dir_ / "hl2", o);
  hl_->add_datastore(kDs);
  hl_->add_datastore(kDs2);
  s3_->put_bytes("landing", "in/a.ndjson", "{\"resourceType\":\"Patient\",\"id\":\"p\"}\n", "");
  std::string j1 =
      str(hl_->call("StartFHIRImportJob", start_body(kDs, "t1", "s3://landing/in/"), 0), "JobId");
  std::string j2 =
      str(hl_->call("StartFHIRImportJob", start_body(kDs, "t2", "s3://landing/in/"), 0.1), "JobId");
  std::string j3 = str(
      hl_->call("StartFHIRImportJob", start_body(kDs2, "t3", "s3://landing/in/"), 0.2), "JobId");
  EXPECT_EQ(status(kDs, j1, 2.0), "IN_PROGRESS");
  EXPECT_EQ(status(kDs, j2, 2.15), "QUEUED") << "one running job per data store";
  EXPECT_EQ(status(kDs2, j3, 2.2), "IN_PROGRESS") << "other data stores run independently";
}

TEST_F(HealthLakeTest, InProgressLastsTheOverheadPlusThePerMegabyteRate) {
  HealthLakeOptions o;
  o.timing = JobTiming::parse("submitted=0,queued=0,run=10s,per_mb=2s");
  hl_ = std::make_unique<HealthLake>(*s3_, dir_ / "hl3", o);
  hl_->add_datastore(kDs);
  // 3 MB (10^6 bytes each) of valid lines: IN_PROGRESS lasts 10 + 3 x 2 = 16 s.
  const std::string line = "{\"resourceType\":\"Patient\",\"id\":\"p\"}\n";
  std::string body;
  while (body.size() + line.size() <= 3'000'000) body += line;
  body += std::string(3'000'000 - body.size() - 1, ' ') + "\n";
  ASSERT_EQ(body.size(), 3'000'000u);
  s3_->put_bytes("landing", "big/a.ndjson", body, "");
  std::string j1 =
      str(hl_->call("StartFHIRImportJob", start_body(kDs, "t1", "s3://landing/big/"), 0), "JobId");
  std::string j2 =
      str(hl_->call("StartFHIRImportJob", start_body(kDs, "t2", "s3://landing/big/"), 0), "JobId");
  EXPECT_EQ(status(kDs, j1, 0), "IN_PROGRESS");
  EXPECT_EQ(status(kDs, j1, 15.9), "IN_PROGRESS");
  EXPECT_EQ(status(kDs, j2, 15.9), "QUEUED");
  EXPECT_EQ(status(kDs, j1, 16.0), "COMPLETED");
  EXPECT_EQ(status(kDs, j2, 16.0), "IN_PROGRESS") << "the next job starts when the slot frees";
  EXPECT_EQ(status(kDs, j2, 31.9), "IN_PROGRESS");
  EXPECT_EQ(status(kDs, j2, 32.0), "COMPLETED");
}

TEST_F(HealthLakeTest, ImportValidatesCountsAndWritesOutputs) {
  const std::string good1 = "{\"resourceType\":\"Patient\",\"id\":\"p1\",\"gender\":\"male\"}";
  const std::string good2 =
      "{\"resourceType\":\"Patient\",\"id\":\"p2\",\"birthDate\":\"1980-02-03\"}";
  const std::string bad1 = "{\"resourceType\":\"Patient\",\"id\":\"p3\",\"birthDate\":\"soon\"}";
  const std::string bad2 = "{\"resourceType\":\"Nope\"}";
  s3_->put_bytes("landing", "in/Patient.ndjson", good1 + "\n" + bad1 + "\n\n" + good2 + "\n", "");
  s3_->put_bytes("landing", "in/sub/Other.ndjson", bad2 + "\n", "");
  s3_->put_bytes("landing", "elsewhere.ndjson", good1 + "\n", "");
  std::string id =
      str(hl_->call("StartFHIRImportJob", start_body(kDs, "t1", "s3://landing/in/"), 0), "JobId");
  hl_->tick(1);
  hl_->tick(2);
  std::string d = hl_->call("DescribeFHIRImportJob",
                            "{\"DatastoreId\":\"" + kDs + "\",\"JobId\":\"" + id + "\"}", 3);
  simdjson::dom::parser p;
  simdjson::dom::element props = p.parse(d)["ImportJobProperties"];
  EXPECT_EQ(std::string_view(props["JobStatus"]), "COMPLETED_WITH_ERRORS");
  simdjson::dom::element rep = props["JobProgressReport"];
  EXPECT_EQ(int64_t(rep["TotalNumberOfScannedFiles"]), 2);
  EXPECT_EQ(int64_t(rep["TotalNumberOfResourcesScanned"]), 4) << "the blank line is not a resource";
  EXPECT_EQ(int64_t(rep["TotalNumberOfResourcesImported"]), 2);
  EXPECT_EQ(int64_t(rep["TotalNumberOfResourcesWithCustomerError"]), 2);
  EXPECT_EQ(int64_t(rep["TotalNumberOfImportedFiles"]), 1);

  std::string base = "out/" + kDs + "-FHIR_IMPORT-" + id + "/";
  const ObjectInfo* man = s3_->find_object("results", base + "manifest.json");
  ASSERT_NE(man, nullptr);
  simdjson::dom::parser mp;
  simdjson::dom::element m = mp.parse(read_file(man->data));
  EXPECT_EQ(int64_t(m["numberOfResourcesScanned"]), 4);
  EXPECT_EQ(int64_t(m["numberOfResourcesImportedSuccessfully"]), 2);
  EXPECT_EQ(int64_t(m["numberOfResourcesWithCustomerError"]), 2);
  EXPECT_EQ(std::string_view(m["failureOutput"]["failureOutputS3Uri"]),
            "s3://results/" + base + "FAILURE/");
  EXPECT_EQ(std::string_view(m["outputDataConfig"]["encryptionKeyID"]), kKms);
  const ObjectInfo* fail = s3_->find_object("results", base + "FAILURE/Patient.ndjson");
  ASSERT_NE(fail, nullptr);
  std::string outcome = read_file(fail->data);
  EXPECT_NE(outcome.find("OperationOutcome"), std::string::npos);
  EXPECT_EQ(std::count(outcome.begin(), outcome.end(), '\n'), 1);
  EXPECT_NE(s3_->find_object("results", base + "FAILURE/sub/Other.ndjson"), nullptr);
  EXPECT_NE(s3_->find_object("results", base + "SUCCESS/Patient.ndjson"), nullptr);

  EXPECT_EQ(hl_->imports_of(kDs, "Patient/p1"), 1u);
  EXPECT_EQ(hl_->imports_of(kDs, "Patient/p3"), 0u);
  // A second import of the same data is visible as a duplicate, and survives a restart.
  std::string id2 =
      str(hl_->call("StartFHIRImportJob", start_body(kDs, "t2", "s3://landing/in/"), 10), "JobId");
  hl_->tick(11);
  hl_->tick(12);
  hl_->tick(13);
  EXPECT_EQ(status(kDs, id2, 14), "COMPLETED_WITH_ERRORS");
  EXPECT_EQ(hl_->imports_of(kDs, "Patient/p1"), 2u);
  HealthLake reopened(*s3_, dir_ / "hl", {});
  reopened.add_datastore(kDs);
  EXPECT_EQ(reopened.imports_of(kDs, "Patient/p2"), 2u);
}

TEST_F(HealthLakeTest, MissingInputFailsTheJob) {
  std::string id = str(
      hl_->call("StartFHIRImportJob", start_body(kDs, "t1", "s3://landing/empty/"), 0), "JobId");
  hl_->tick(1);
  hl_->tick(2);
  std::string d = hl_->call("DescribeFHIRImportJob",
                            "{\"DatastoreId\":\"" + kDs + "\",\"JobId\":\"" + id + "\"}", 3);
  EXPECT_EQ(str(d, "ImportJobProperties", "JobStatus"), "FAILED");
  EXPECT_NE(str(d, "ImportJobProperties", "Message").find("No input files"), std::string::npos);
}

TEST_F(HealthLakeTest, DescribeDatastore) {
  std::string d = hl_->call("DescribeFHIRDatastore", "{\"DatastoreId\":\"" + kDs + "\"}", 0);
  EXPECT_EQ(str(d, "DatastoreProperties", "DatastoreStatus"), "ACTIVE");
  EXPECT_EQ(str(d, "DatastoreProperties", "DatastoreArn"),
            "arn:aws:healthlake:us-east-1:123456789012:datastore/fhir/" + kDs);
  EXPECT_EQ(error_of("DescribeFHIRDatastore", "{\"DatastoreId\":\"abc\"}").type,
            "ResourceNotFoundException");
}

}  // namespace

// --report-validation-level: Describe and List answer another ValidationLevel than the job was
// started with (as a proxy rewriting the answers would); the import still runs at the level
// asked. "none" leaves the field out.
TEST_F(HealthLakeTest, ReportValidationLevelRewritesDescribeAndList) {
  s3_->put_bytes("landing", "in/a.ndjson", "{\"resourceType\":\"Patient\",\"id\":\"p\"}\n", "");
  for (std::string reported : {"minimal", "none"}) {
    SCOPED_TRACE(reported);
    HealthLakeOptions o;
    o.timing = {1.0, 1.0, 1.0};
    o.report_validation_level = reported;
    HealthLake hl(*s3_, dir_ / ("hl-level-" + reported), o);
    hl.add_datastore(kDs);
    std::string id = str(
        hl.call("StartFHIRImportJob", start_body(kDs, "t-level", "s3://landing/in/", "strict"), 0),
        "JobId");
    std::string d = hl.call("DescribeFHIRImportJob",
                            "{\"DatastoreId\":\"" + kDs + "\",\"JobId\":\"" + id + "\"}", 0.5);
    std::string l = hl.call("ListFHIRImportJobs", "{\"DatastoreId\":\"" + kDs + "\"}", 0.5);
    simdjson::dom::parser p1, p2;
    simdjson::dom::element de = p1.parse(d), le = p2.parse(l);
    std::string_view dv, lv;
    auto derr = de["ImportJobProperties"]["ValidationLevel"].get(dv);
    auto lerr = le["ImportJobPropertiesList"].at(0)["ValidationLevel"].get(lv);
    if (reported == "none") {
      EXPECT_EQ(derr, simdjson::NO_SUCH_FIELD) << d;
      EXPECT_EQ(lerr, simdjson::NO_SUCH_FIELD) << l;
    } else {
      ASSERT_EQ(derr, simdjson::SUCCESS) << d;
      ASSERT_EQ(lerr, simdjson::SUCCESS) << l;
      EXPECT_EQ(dv, reported);
      EXPECT_EQ(lv, reported);
    }
    // The job itself runs at the level it was started with.
    for (double t : {1.5, 2.5, 3.5, 10.0}) hl.tick(t);
    ASSERT_NE(hl.job(id), nullptr);
    EXPECT_EQ(hl.job(id)->validation_level, "strict");
    EXPECT_EQ(hl.job(id)->status, "COMPLETED");
  }
}
