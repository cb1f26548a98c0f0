// The S3 and HealthLake clients against healthlake-local (tools/healthlake-local), the strict
// local endpoint that verifies every SigV4 signature and payload hash: 100 MiB multipart upload
// read back byte-identical, ListParts resume after dropping the client, wrong secret, injected
// faults retried, and the import-job calls.
#include <gtest/gtest.h>

#include <boost/asio.hpp>
#include <set>

#include "aws/healthlake.hpp"
#include "aws/s3.hpp"
#include "healthlake_local.hpp"
#include "upload_driver.hpp"

namespace {

using namespace fe::aws;
using fe::test::HealthLakeLocal;
using fe::test::HealthLakeLocalOptions;
using fe::test::PartUploader;

constexpr const char* kBucket = "fhir-landing";

template <class Pred>
void run_until(boost::asio::io_context& io, Pred done, int seconds = 240) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(seconds);
  io.restart();
  while (!done()) {
    ASSERT_LT(std::chrono::steady_clock::now(), deadline) << "test hung";
    io.run_one_for(std::chrono::milliseconds(50));
  }
}

struct Client {
  Client(const HealthLakeLocal& hll, std::string secret = {}, std::string faults_note = {},
         PayloadSigning signing = PayloadSigning::automatic)
      : engine(io),
        caller(engine, config(hll, signing), static_credentials(creds(hll, secret))),
        s3(caller),
        hl(caller) {
    (void)faults_note;
  }
  static ClientConfig config(const HealthLakeLocal& hll,
                             PayloadSigning signing = PayloadSigning::automatic) {
    ClientConfig cfg;
    cfg.payload_signing = signing;
    cfg.region = hll.region();
    cfg.s3_endpoint = hll.endpoint();
    cfg.healthlake_endpoint = hll.endpoint();
    return cfg;
  }
  static Credentials creds(const HealthLakeLocal& hll, const std::string& secret) {
    Credentials c;
    c.access_key_id = hll.access_key();
    c.secret_access_key = secret.empty() ? hll.secret_key() : secret;
    c.session_token = hll.session_token();
    return c;
  }
  template <class R, class F>
  R wait(F start) {
    std::optional<R> out;
    start([&](R r) { out = std::move(r); });
    run_until(io, [&] { return out.has_value(); });
    return std::move(*out);
  }
  boost::asio::io_context io;
  HttpEngine engine;
  AwsCaller caller;
  S3Client s3;
  HealthLakeClient hl;
};

std::unique_ptr<HealthLakeLocal> start_emulator(HealthLakeLocalOptions opt = {}) {
  opt.buckets = {kBucket, "fhir-results"};
  try {
    return std::make_unique<HealthLakeLocal>(opt);
  } catch (const std::exception& e) {
    ADD_FAILURE() << "healthlake-local did not start: " << e.what();
    return nullptr;
  }
}

std::string read_back_sha256(Client& c, const std::string& key, std::uint64_t* bytes) {
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr);
  auto r = c.wait<S3Result<GetObjectResult>>([&](auto done) {
    c.s3.get_object({kBucket, key, std::nullopt,
                     [&](std::string_view chunk) {
                       EVP_DigestUpdate(ctx, chunk.data(), chunk.size());
                       return true;
                     }},
                    done);
  });
  unsigned char md[32];
  unsigned len = 0;
  EVP_DigestFinal_ex(ctx, md, &len);
  EVP_MD_CTX_free(ctx);
  EXPECT_TRUE(r.ok()) << r.describe();
  if (bytes) *bytes = r.ok() ? r.value->bytes : 0;
  return hex(md, len);
}

TEST(Emulator, Multipart100MiBReadBackIdentical) {
  auto hll = start_emulator();
  if (!hll) return;
  Client c(*hll);
  const std::uint64_t size = 100ull << 20, part = 8ull << 20, seed = 100;
  const std::string key = "exports/big/import/Observation.ndjson";
  auto created = c.wait<S3Result<CreateMultipartResult>>([&](auto done) {
    c.s3.create_multipart_upload({kBucket, key, "application/fhir+ndjson", {}}, done);
  });
  ASSERT_TRUE(created.ok()) << created.describe();
  PartUploader up(c.s3, kBucket, key, created.value->upload_id, seed, size, part);
  std::vector<int> all;
  for (int i = 1; i <= up.part_count(); ++i) all.push_back(i);
  bool finished = false;
  up.start(all, 4, [&](PartUploader::Outcome&) { finished = true; });
  run_until(c.io, [&] { return finished; });
  ASSERT_FALSE(up.outcome().error) << *up.outcome().error;
  auto done = c.wait<S3Result<CompleteMultipartResult>>([&](auto d) {
    c.s3.complete_multipart_upload(
        {kBucket, key, created.value->upload_id, up.outcome().parts, true}, d);
  });
  ASSERT_TRUE(done.ok()) << done.describe();

  auto head =
      c.wait<S3Result<HeadObjectResult>>([&](auto d) { c.s3.head_object(kBucket, key, d); });
  ASSERT_TRUE(head.ok()) << head.describe();
  EXPECT_EQ(head.value->size, size);
  // The emulator's composite checksum equals the one we derive from our part CRCs: this is
  // how a Complete with an unknown outcome is settled.
  EXPECT_EQ(head.value->checksum_crc32c, composite_crc32c(up.outcome().crcs));

  std::uint64_t bytes = 0;
  EXPECT_EQ(read_back_sha256(c, key, &bytes), fe::test::sha256_of_generated(seed, size));
  EXPECT_EQ(bytes, size);

  // A second Complete of the same upload cannot overwrite: typed for the settle path.
  auto again = c.wait<S3Result<CompleteMultipartResult>>([&](auto d) {
    c.s3.complete_multipart_upload(
        {kBucket, key, created.value->upload_id, up.outcome().parts, true}, d);
  });
  ASSERT_FALSE(again.ok());
  EXPECT_TRUE(again.error->category == ErrorCategory::not_found ||
              again.error->category == ErrorCategory::conflict)
      << again.describe();
}

TEST(Emulator, ListPartsResumeAfterDroppingTheClient) {
  HealthLakeLocalOptions opt;
  opt.min_part_size = 1 << 20;
  auto hll = start_emulator(opt);
  if (!hll) return;
  const std::uint64_t size = 12ull << 20, part = 1ull << 20, seed = 7;
  const std::string key = "exports/resume/import/Patient.ndjson";
  std::string upload_id;
  std::set<int> finished_before_drop;
  {
    Client a(*hll);
    auto created = a.wait<S3Result<CreateMultipartResult>>([&](auto done) {
      a.s3.create_multipart_upload({kBucket, key, "", {}}, done);
    });
    ASSERT_TRUE(created.ok()) << created.describe();
    upload_id = created.value->upload_id;
    PartUploader up(a.s3, kBucket, key, upload_id, seed, size, part);
    std::vector<int> all;
    for (int i = 1; i <= up.part_count(); ++i) all.push_back(i);
    up.start(all, 3, nullptr, [&](int n) { finished_before_drop.insert(n); });
    run_until(a.io, [&] { return finished_before_drop.size() >= 5; });
    // Client A goes away here with parts still in flight (a crash as far as S3 knows).
  }
  ASSERT_GE(finished_before_drop.size(), 5u);

  Client b(*hll);
  auto listed = b.wait<S3Result<std::vector<PartInfo>>>(
      [&](auto done) { b.s3.list_all_parts(kBucket, key, upload_id, done); });
  ASSERT_TRUE(listed.ok()) << listed.describe();
  std::set<int> have;
  std::vector<CompletedPart> parts;
  for (auto& p : *listed.value) {
    // Every part S3 has is whole and carries the checksum of our bytes for that range.
    std::uint64_t begin = static_cast<std::uint64_t>(p.part_number - 1) * part;
    auto d = fe::test::digest_range(seed, begin, std::min(size, begin + part));
    EXPECT_EQ(p.checksum_crc32c, crc32c_base64(d.crc)) << "part " << p.part_number;
    EXPECT_EQ(p.size, std::min(size, begin + part) - begin);
    have.insert(p.part_number);
  }
  for (int n : finished_before_drop) EXPECT_TRUE(have.count(n)) << "part " << n << " lost";
  EXPECT_LT(have.size(), 12u);

  PartUploader up(b.s3, kBucket, key, upload_id, seed, size, part);
  std::vector<int> missing;
  for (int i = 1; i <= up.part_count(); ++i)
    if (!have.count(i)) missing.push_back(i);
  bool done = false;
  up.start(missing, 3, [&](PartUploader::Outcome&) { done = true; });
  run_until(b.io, [&] { return done; });
  ASSERT_FALSE(up.outcome().error) << *up.outcome().error;
  for (auto& p : *listed.value)
    up.outcome().parts[p.part_number - 1] = {p.part_number, p.etag, p.checksum_crc32c};
  auto completed = b.wait<S3Result<CompleteMultipartResult>>([&](auto d) {
    b.s3.complete_multipart_upload({kBucket, key, upload_id, up.outcome().parts, true}, d);
  });
  ASSERT_TRUE(completed.ok()) << completed.describe();
  std::uint64_t bytes = 0;
  EXPECT_EQ(read_back_sha256(b, key, &bytes), fe::test::sha256_of_generated(seed, size));
  EXPECT_EQ(bytes, size);
}

TEST(Emulator, WrongSecretGivesSignatureDoesNotMatch) {
  auto hll = start_emulator();
  if (!hll) return;
  Client c(*hll, "not-the-right-secret-key-0000000000000000");
  auto r = c.wait<S3Result<PutObjectResult>>([&](auto done) {
    PutObjectRequest req;
    req.bucket = kBucket;
    req.key = "exports/x.ndjson";
    req.body = BodySource::from_view("{}\n");
    req.crc32c = crc32c("{}\n");
    c.s3.put_object(std::move(req), done);
  });
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.error->code, "SignatureDoesNotMatch") << r.describe();
  EXPECT_EQ(r.error->category, ErrorCategory::auth);
  EXPECT_EQ(r.attempts, 1);
  EXPECT_NE(
      r.describe().find("S3 PutObject fhir-landing/exports/x.ndjson: 403 SignatureDoesNotMatch"),
      std::string::npos)
      << r.describe();
  EXPECT_EQ(r.describe().find("not-the-right-secret"), std::string::npos);

  auto h = c.wait<HlResult<DatastoreProperties>>(
      [&](auto done) { c.hl.describe_datastore(hll->datastore(), done); });
  ASSERT_FALSE(h.ok());
  EXPECT_EQ(h.error->category, ErrorCategory::auth) << h.describe();
  EXPECT_EQ(h.attempts, 1);
}

TEST(Emulator, InjectedFaultsAreRetried) {
  HealthLakeLocalOptions opt;
  opt.faults = "PutObject:SlowDown=@1,PutObject:500=@2,StartFHIRImportJob:ThrottlingException=@1";
  auto hll = start_emulator(opt);
  if (!hll) return;
  Client c(*hll);
  const std::string line = R"({"resourceType":"Patient","id":"p1","name":[{"family":"Retry"}]})"
                           "\n";
  auto put = c.wait<S3Result<PutObjectResult>>([&](auto done) {
    PutObjectRequest req;
    req.bucket = kBucket;
    req.key = "exports/faults/import/Patient.ndjson";
    req.body = BodySource::from_view(line);
    req.crc32c = crc32c(line);
    c.s3.put_object(std::move(req), done);
  });
  ASSERT_TRUE(put.ok()) << put.describe();
  EXPECT_EQ(put.attempts, 3);
  StartImportRequest start;
  start.job_name = "faults";
  start.input_s3_uri = std::string("s3://") + kBucket + "/exports/faults/import/";
  start.output_s3_uri = "s3://fhir-results/imports/";
  start.output_kms_key_id = "arn:aws:kms:us-east-1:123456789012:key/k";
  start.datastore_id = hll->datastore();
  start.data_access_role_arn = "arn:aws:iam::123456789012:role/HealthLakeImport";
  start.client_token = "faults-1";
  auto job = c.wait<HlResult<StartImportResult>>([&](auto d) { c.hl.start_import_job(start, d); });
  ASSERT_TRUE(job.ok()) << job.describe();
  EXPECT_EQ(job.attempts, 2);
}

TEST(Emulator, ImportJobStartDescribeListIdempotent) {
  auto hll = start_emulator();
  if (!hll) return;
  Client c(*hll);
  const std::string ndjson =
      R"({"resourceType":"Patient","id":"p1","name":[{"family":"Import","given":["Ann \"Q\""]}]})"
      "\n"
      R"({"resourceType":"Patient","id":"p2","gender":"female"})"
      "\n";
  auto put = c.wait<S3Result<PutObjectResult>>([&](auto done) {
    PutObjectRequest req;
    req.bucket = kBucket;
    req.key = "exports/e1/import/Patient.ndjson";
    req.body = BodySource::from_view(ndjson);
    req.crc32c = crc32c(ndjson);
    c.s3.put_object(std::move(req), done);
  });
  ASSERT_TRUE(put.ok()) << put.describe();

  auto ds = c.wait<HlResult<DatastoreProperties>>(
      [&](auto d) { c.hl.describe_datastore(hll->datastore(), d); });
  ASSERT_TRUE(ds.ok()) << ds.describe();
  EXPECT_EQ(ds.value->datastore_id, hll->datastore());
  EXPECT_EQ(ds.value->datastore_status, "ACTIVE");

  StartImportRequest start;
  start.job_name = "e1";
  start.input_s3_uri = std::string("s3://") + kBucket + "/exports/e1/import/";
  start.output_s3_uri = "s3://fhir-results/imports/";
  start.output_kms_key_id = "arn:aws:kms:us-east-1:123456789012:key/k";
  start.datastore_id = hll->datastore();
  start.data_access_role_arn = "arn:aws:iam::123456789012:role/HealthLakeImport";
  start.client_token = "e1-3f2a9c";
  start.validation_level = "structure-only";
  const double before =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count() -
      60;
  auto job = c.wait<HlResult<StartImportResult>>([&](auto d) { c.hl.start_import_job(start, d); });
  ASSERT_TRUE(job.ok()) << job.describe();
  EXPECT_FALSE(job.value->job_id.empty());
  // Same ClientToken (a retry after a crash): the same job, never a second one.
  auto again =
      c.wait<HlResult<StartImportResult>>([&](auto d) { c.hl.start_import_job(start, d); });
  ASSERT_TRUE(again.ok()) << again.describe();
  EXPECT_EQ(again.value->job_id, job.value->job_id);

  ImportJobProperties props;
  for (int i = 0; i < 200; ++i) {
    auto d = c.wait<HlResult<ImportJobProperties>>(
        [&](auto cb) { c.hl.describe_import_job(hll->datastore(), job.value->job_id, cb); });
    ASSERT_TRUE(d.ok()) << d.describe();
    props = *d.value;
    if (is_terminal_job_status(props.job_status)) break;
    boost::asio::steady_timer t(c.io, std::chrono::milliseconds(50));
    bool fired = false;
    t.async_wait([&](auto) { fired = true; });
    run_until(c.io, [&] { return fired; });
  }
  EXPECT_TRUE(is_terminal_job_status(props.job_status)) << props.job_status;
  EXPECT_EQ(props.job_name, "e1");
  EXPECT_EQ(props.input_s3_uri, start.input_s3_uri);
  EXPECT_EQ(props.data_access_role_arn, start.data_access_role_arn);
  EXPECT_GT(props.submit_time, before);

  ListImportJobsRequest list;
  list.datastore_id = hll->datastore();
  list.job_name = "e1";
  list.submitted_after = before;
  auto listed =
      c.wait<HlResult<ListImportJobsResult>>([&](auto d) { c.hl.list_import_jobs(list, d); });
  ASSERT_TRUE(listed.ok()) << listed.describe();
  ASSERT_EQ(listed.value->jobs.size(), 1u);
  EXPECT_EQ(listed.value->jobs[0].job_id, job.value->job_id);

  // Unknown job: typed not_found for the pipeline.
  auto missing = c.wait<HlResult<ImportJobProperties>>(
      [&](auto cb) { c.hl.describe_import_job(hll->datastore(), "0000000000000000", cb); });
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.error->category, ErrorCategory::not_found) << missing.describe();
}

}  // namespace

// Issue 18, defect 4: a HEAD signed before another request corrected the clock offset comes back
// 403 without a body. It was classed `auth` (and parked its export) because its Date was compared
// with the clock as corrected meanwhile, not with the clock it was signed with. Timeline: the
// PutObject and the HeadObject are signed together with offset 0 and both meet a server clock
// 20 minutes ahead (skew=@1). The PutObject's RequestTimeTooSkewed moves the offset to +20 min at
// once; the HeadObject's 403 arrives a second later (slow=@1), while the PutObject's retry is
// held for 3 s (slow=@2) so the offset is still +20 min then.
TEST(Emulator, Head403SignedBeforeASkewCorrectionIsRetriedNotAuth) {
  HealthLakeLocalOptions opt;
  opt.faults =
      "PutObject:skew=@1:20m,PutObject:slow=@2:3s,HeadObject:skew=@1:20m,HeadObject:slow=@1:1s";
  auto hll = start_emulator(opt);
  if (!hll) return;
  Client c(*hll);
  const std::string line = R"({"resourceType":"Patient","id":"p1"})"
                           "\n";
  std::optional<S3Result<PutObjectResult>> put;
  std::optional<S3Result<HeadObjectResult>> head;
  PutObjectRequest req;
  req.bucket = kBucket;
  req.key = "exports/skew/import/Patient.ndjson";
  req.body = BodySource::from_view(line);
  req.crc32c = crc32c(line);
  c.s3.put_object(std::move(req), [&](auto r) { put = std::move(r); });
  c.s3.head_object(kBucket, "exports/skew/import/Other.ndjson",
                   [&](auto r) { head = std::move(r); });
  run_until(c.io, [&] { return put.has_value() && head.has_value(); });
  ASSERT_TRUE(put->ok()) << put->describe();
  // The object does not exist: 404 proves the HEAD was accepted once re-signed.
  ASSERT_FALSE(head->ok());
  EXPECT_EQ(head->error->http_status, 404) << head->describe();
  EXPECT_EQ(head->error->category, ErrorCategory::not_found) << head->describe();
  EXPECT_LT(std::chrono::abs(c.caller.skew().offset()), ClockSkew::kThreshold);
}

// STREAMING-UNSIGNED-PAYLOAD-TRAILER (issue 13 item 4): PutObject and UploadPart bodies go
// aws-chunked with the CRC32C the caller already has in the trailer; healthlake-local decodes the
// framing, checks the trailer against the bytes and stores exactly the payload.
TEST(Emulator, UnsignedTrailerPutAndPartsAreStoredExactly) {
  HealthLakeLocalOptions opt;
  opt.min_part_size = 1 << 20;
  auto hll = start_emulator(opt);
  if (!hll) return;
  Client c(*hll, {}, {}, PayloadSigning::unsigned_trailer);
  const std::uint64_t seed = 41;
  // 300 000 bytes: five 64 KiB chunks and a short one.
  std::string data(300000, '\0');
  fe::test::generate(seed, 0, data.data(), data.size());
  const std::string key = "exports/trailer/archive/Patient.ndjson.zst";
  auto put = c.wait<S3Result<PutObjectResult>>([&](auto done) {
    PutObjectRequest req;
    req.bucket = kBucket;
    req.key = key;
    req.body = BodySource::from_view(data);
    req.crc32c = crc32c(data);
    c.s3.put_object(std::move(req), done);
  });
  ASSERT_TRUE(put.ok()) << put.describe();
  EXPECT_EQ(put.value->checksum_crc32c, crc32c_base64(crc32c(data)));
  EXPECT_EQ(hll->object(kBucket, key), data);
  auto head =
      c.wait<S3Result<HeadObjectResult>>([&](auto d) { c.s3.head_object(kBucket, key, d); });
  ASSERT_TRUE(head.ok()) << head.describe();
  EXPECT_EQ(head.value->size, data.size());
  EXPECT_EQ(head.value->checksum_crc32c, crc32c_base64(crc32c(data)));

  // Multipart: 3.5 MiB in 1 MiB parts, each part aws-chunked with its own trailer.
  const std::uint64_t size = 3584ull << 10, part = 1ull << 20;
  const std::string mkey = "exports/trailer/import/Observation.ndjson";
  auto created = c.wait<S3Result<CreateMultipartResult>>([&](auto done) {
    c.s3.create_multipart_upload({kBucket, mkey, "application/fhir+ndjson", {}}, done);
  });
  ASSERT_TRUE(created.ok()) << created.describe();
  PartUploader up(c.s3, kBucket, mkey, created.value->upload_id, seed, size, part);
  bool finished = false;
  up.start({1, 2, 3, 4}, 2, [&](PartUploader::Outcome&) { finished = true; });
  run_until(c.io, [&] { return finished; });
  ASSERT_FALSE(up.outcome().error) << *up.outcome().error;
  auto done = c.wait<S3Result<CompleteMultipartResult>>([&](auto d) {
    c.s3.complete_multipart_upload(
        {kBucket, mkey, created.value->upload_id, up.outcome().parts, true}, d);
  });
  ASSERT_TRUE(done.ok()) << done.describe();
  std::uint64_t bytes = 0;
  EXPECT_EQ(read_back_sha256(c, mkey, &bytes), fe::test::sha256_of_generated(seed, size));
  EXPECT_EQ(bytes, size);
  auto mhead =
      c.wait<S3Result<HeadObjectResult>>([&](auto d) { c.s3.head_object(kBucket, mkey, d); });
  ASSERT_TRUE(mhead.ok()) << mhead.describe();
  EXPECT_EQ(mhead.value->checksum_crc32c, composite_crc32c(up.outcome().crcs));

  // Every PUT went aws-chunked, none hashed: the emulator logs the x-amz-content-sha256 mode.
  int trailer_puts = 0;
  for (const auto& l : hll->request_log_lines()) {
    if (l.find("\"PutObject\"") == std::string::npos &&
        l.find("\"UploadPart\"") == std::string::npos)
      continue;
    EXPECT_NE(l.find("STREAMING-UNSIGNED-PAYLOAD-TRAILER"), std::string::npos) << l;
    ++trailer_puts;
  }
  EXPECT_EQ(trailer_puts, 5);
}

TEST(Emulator, UnsignedTrailerWithAWrongCrcIsRefused) {
  auto hll = start_emulator();
  if (!hll) return;
  Client c(*hll, {}, {}, PayloadSigning::unsigned_trailer);
  const std::string data(100000, 'r');
  const std::string key = "exports/trailer/import/Bad.ndjson";
  auto put = c.wait<S3Result<PutObjectResult>>([&](auto done) {
    PutObjectRequest req;
    req.bucket = kBucket;
    req.key = key;
    req.body = BodySource::from_view(data);
    req.crc32c = crc32c(data) ^ 1u;  // the spool's record and the bytes disagree
    c.s3.put_object(std::move(req), done);
  });
  ASSERT_FALSE(put.ok());
  EXPECT_EQ(put.error->http_status, 400) << put.describe();
  EXPECT_EQ(put.error->code, "BadDigest") << put.describe();
  EXPECT_EQ(put.attempts, 1);
  EXPECT_FALSE(hll->object(kBucket, key).has_value());
}

// A retry rewinds the encoder: the second attempt sends the same framing and trailer, and what S3
// stores is the payload once.
TEST(Emulator, UnsignedTrailerRetriesResendTheSameFraming) {
  HealthLakeLocalOptions opt;
  opt.faults = "PutObject:500=@1,UploadPart:drop=@1";
  opt.min_part_size = 1 << 20;
  auto hll = start_emulator(opt);
  if (!hll) return;
  Client c(*hll, {}, {}, PayloadSigning::unsigned_trailer);
  std::string data(200001, '\0');
  fe::test::generate(5, 0, data.data(), data.size());
  const std::string key = "exports/trailer-retry/archive/Patient.ndjson.zst";
  auto put = c.wait<S3Result<PutObjectResult>>([&](auto done) {
    PutObjectRequest req;
    req.bucket = kBucket;
    req.key = key;
    req.body = BodySource::from_view(data);
    req.crc32c = crc32c(data);
    c.s3.put_object(std::move(req), done);
  });
  ASSERT_TRUE(put.ok()) << put.describe();
  EXPECT_EQ(put.attempts, 2);
  EXPECT_EQ(hll->object(kBucket, key), data);

  const std::string mkey = "exports/trailer-retry/import/Patient.ndjson";
  auto created = c.wait<S3Result<CreateMultipartResult>>([&](auto done) {
    c.s3.create_multipart_upload({kBucket, mkey, "", {}}, done);
  });
  ASSERT_TRUE(created.ok()) << created.describe();
  PartUploader up(c.s3, kBucket, mkey, created.value->upload_id, 9, 1500000, 1 << 20);
  bool finished = false;
  up.start({1, 2}, 1, [&](PartUploader::Outcome&) { finished = true; });
  run_until(c.io, [&] { return finished; });
  ASSERT_FALSE(up.outcome().error) << *up.outcome().error;
  auto done = c.wait<S3Result<CompleteMultipartResult>>([&](auto d) {
    c.s3.complete_multipart_upload(
        {kBucket, mkey, created.value->upload_id, up.outcome().parts, true}, d);
  });
  ASSERT_TRUE(done.ok()) << done.describe();
  EXPECT_EQ(read_back_sha256(c, mkey, nullptr), fe::test::sha256_of_generated(9, 1500000));
}
