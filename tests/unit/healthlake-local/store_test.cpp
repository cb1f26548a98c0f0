// S3 rules of healthlake-local, on the store directly (real files in a temp dir).
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "s3_store.hpp"
#include "temp_dir.hpp"
#include "util.hpp"

namespace fs = std::filesystem;
using namespace fe::hll;

namespace {

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = fe::test::make_temp_dir("hll-store"); }
  void TearDown() override { fs::remove_all(dir_); }

  // Spools `data` the way the server does and returns the path.
  fs::path body(S3Store& s, const std::string& data) {
    fs::path p = s.new_temp_path();
    std::ofstream(p, std::ios::binary) << data;
    return p;
  }
  template <class F>
  S3Error error_of(F&& f) {
    try {
      f();
    } catch (const S3Error& e) {
      return e;
    }
    ADD_FAILURE() << "expected an S3Error";
    return S3Error(0, "", "");
  }
  fs::path dir_;
};

std::string field(const S3Error& e, const std::string& name) {
  for (const auto& [k, v] : e.fields)
    if (k == name) return v;
  return {};
}

TEST(Util, ChecksumsMatchPublishedVectors) {
  EXPECT_EQ(crc32c("123456789"), 0xE3069283u);  // RFC 3720 check value
  EXPECT_EQ(crc32("123456789"), 0xCBF43926u);
  EXPECT_EQ(crc32c("56789", crc32c("1234")), 0xE3069283u);  // chainable
  EXPECT_EQ(hex(md5("")), "d41d8cd98f00b204e9800998ecf8427e");
  EXPECT_EQ(base64_decode(base64("any carnal pleas")).value(), "any carnal pleas");
  EXPECT_FALSE(base64_decode("abc").has_value());
}

TEST(BucketNames, FollowS3Rules) {
  EXPECT_TRUE(S3Store::valid_bucket_name("fhir-landing"));
  EXPECT_TRUE(S3Store::valid_bucket_name("a.b-c"));
  EXPECT_FALSE(S3Store::valid_bucket_name("ab"));
  EXPECT_FALSE(S3Store::valid_bucket_name("Upper"));
  EXPECT_FALSE(S3Store::valid_bucket_name("under_score"));
  EXPECT_FALSE(S3Store::valid_bucket_name("-start"));
  EXPECT_FALSE(S3Store::valid_bucket_name("a..b"));
  EXPECT_FALSE(S3Store::valid_bucket_name("192.168.1.1"));
  EXPECT_FALSE(S3Store::valid_bucket_name(std::string(64, 'a')));
}

TEST_F(StoreTest, PutGetAndChecksumsAreVerified) {
  S3Store s(dir_);
  EXPECT_TRUE(s.create_bucket("bkt"));
  EXPECT_FALSE(s.create_bucket("bkt"));
  const std::string data = "{\"resourceType\":\"Patient\"}\n";
  WriteRequest w;
  w.content_md5 = base64(md5(data));
  w.checksums["CRC32C"] = base64(be32(crc32c(data)));
  ObjectInfo o = s.put_object("bkt", "k/one", body(s, data), w);
  EXPECT_EQ(o.etag, "\"" + hex(md5(data)) + "\"");
  EXPECT_EQ(o.size, data.size());
  EXPECT_EQ(o.checksums.at("CRC32C"), base64(be32(crc32c(data))));
  EXPECT_EQ(read_file(s.head_object("bkt", "k/one").data), data);

  WriteRequest bad_md5;
  bad_md5.content_md5 = base64(md5("other"));
  EXPECT_EQ(error_of([&] { s.put_object("bkt", "k/x", body(s, data), bad_md5); }).code,
            "BadDigest");
  WriteRequest malformed_md5;
  malformed_md5.content_md5 = "not-base64";
  EXPECT_EQ(error_of([&] { s.put_object("bkt", "k/x", body(s, data), malformed_md5); }).code,
            "InvalidDigest");
  WriteRequest bad_crc;
  bad_crc.checksums["CRC32C"] = base64(be32(crc32c("other")));
  S3Error e = error_of([&] { s.put_object("bkt", "k/x", body(s, data), bad_crc); });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.code, "BadDigest");
  WriteRequest short_crc;
  short_crc.checksums["CRC32C"] = "AAA=";
  EXPECT_EQ(error_of([&] { s.put_object("bkt", "k/x", body(s, data), short_crc); }).code,
            "InvalidRequest");
  WriteRequest bad_sha;
  bad_sha.content_sha256 = hex(sha256("other"));
  EXPECT_EQ(error_of([&] { s.put_object("bkt", "k/x", body(s, data), bad_sha); }).code,
            "XAmzContentSHA256Mismatch");
  EXPECT_EQ(s.find_object("bkt", "k/x"), nullptr) << "a rejected body is never stored";

  EXPECT_EQ(error_of([&] { s.head_object("bkt", "k/missing"); }).code, "NoSuchKey");
  EXPECT_EQ(error_of([&] { s.head_object("nobucket", "k"); }).code, "NoSuchBucket");
  EXPECT_EQ(error_of([&] { s.put_object("bkt", std::string(1025, 'k'), body(s, data), {}); }).code,
            "KeyTooLongError");
}

TEST_F(StoreTest, IfNoneMatchStarRefusesAnExistingKey) {
  S3Store s(dir_);
  s.create_bucket("bkt");
  WriteRequest w;
  w.if_none_match_star = true;
  s.put_object("bkt", "k", body(s, "first"), w);
  S3Error e = error_of([&] { s.put_object("bkt", "k", body(s, "second"), w); });
  EXPECT_EQ(e.status, 412);
  EXPECT_EQ(e.code, "PreconditionFailed");
  EXPECT_EQ(read_file(s.head_object("bkt", "k").data), "first");
}

TEST_F(StoreTest, MultipartFollowsS3Rules) {
  const uint64_t min = 64;  // scaled-down S3 minimum keeps the test small; rule is the same
  S3Store s(dir_, min);
  s.create_bucket("bkt");
  const std::string a(min, 'a'), b(min + 5, 'b'), c = "tail";
  const UploadInfo& u = s.create_upload("bkt", "obj", {}, "CRC32C");
  std::string id = u.upload_id;
  PartInfo p1 = s.upload_part("bkt", "obj", id, 1, body(s, a), {});
  PartInfo p2 = s.upload_part("bkt", "obj", id, 2, body(s, b), {});
  PartInfo p3 = s.upload_part("bkt", "obj", id, 3, body(s, c), {});
  EXPECT_EQ(p1.etag, "\"" + hex(md5(a)) + "\"");
  EXPECT_EQ(p1.checksums.at("CRC32C"), base64(be32(crc32c(a))))
      << "S3 computes the upload's algorithm for every part";

  auto part = [](const PartInfo& p, bool with_crc = true) {
    CompletePart cp{p.number, p.etag, {}};
    if (with_crc) cp.checksums["CRC32C"] = p.checksums.at("CRC32C");
    return cp;
  };
  EXPECT_EQ(error_of([&] { s.upload_part("bkt", "obj", id, 0, body(s, c), {}); }).code,
            "InvalidArgument");
  EXPECT_EQ(error_of([&] { s.upload_part("bkt", "obj", id, 10001, body(s, c), {}); }).code,
            "InvalidArgument");
  EXPECT_EQ(error_of([&] { s.upload_part("bkt", "obj", "nope", 1, body(s, c), {}); }).code,
            "NoSuchUpload");
  EXPECT_EQ(error_of([&] {
              s.complete_upload("bkt", "obj", id, {part(p2), part(p1)}, false);
            }).code,
            "InvalidPartOrder");
  EXPECT_EQ(error_of([&] {
              s.complete_upload("bkt", "obj", id, {part(p1), part(p1)}, false);
            }).code,
            "InvalidPartOrder")
      << "a repeated part number is not ascending";
  CompletePart wrong_etag = part(p2);
  wrong_etag.etag = p1.etag;
  S3Error inv = error_of([&] {
    s.complete_upload("bkt", "obj", id, {part(p1), wrong_etag}, false);
  });
  EXPECT_EQ(inv.code, "InvalidPart");
  EXPECT_EQ(field(inv, "PartNumber"), "2");
  CompletePart missing{7, p3.etag, {}};
  EXPECT_EQ(error_of([&] {
              s.complete_upload("bkt", "obj", id, {part(p1), missing}, false);
            }).code,
            "InvalidPart");
  CompletePart wrong_crc = part(p2);
  wrong_crc.checksums["CRC32C"] = p1.checksums.at("CRC32C");
  EXPECT_EQ(error_of([&] {
              s.complete_upload("bkt", "obj", id, {part(p1), wrong_crc}, false);
            }).code,
            "InvalidPart");
  EXPECT_EQ(error_of([&] {
              s.complete_upload("bkt", "obj", id, {part(p1), part(p2, false)}, false);
            }).code,
            "InvalidRequest")
      << "an upload created with CRC32C needs every part's checksum in Complete";
  // A subset of the uploaded parts may be completed; only the last one may be small.
  ObjectInfo o = s.complete_upload("bkt", "obj", id, {part(p1), part(p3)}, false);
  EXPECT_EQ(read_file(o.data), a + c);
  EXPECT_EQ(o.size, a.size() + c.size());
}

TEST_F(StoreTest, CompleteBuildsAwsEtagAndCompositeChecksum) {
  const uint64_t min = 64;
  S3Store s(dir_, min);
  s.create_bucket("bkt");
  const std::string a(min, 'a'), b(10, 'b'), small(min - 1, 's');
  {
    std::string id = s.create_upload("bkt", "tiny", {}, "").upload_id;
    PartInfo p1 = s.upload_part("bkt", "tiny", id, 1, body(s, small), {});
    PartInfo p2 = s.upload_part("bkt", "tiny", id, 2, body(s, b), {});
    S3Error e = error_of([&] {
      s.complete_upload("bkt", "tiny", id, {{1, p1.etag, {}}, {2, p2.etag, {}}}, false);
    });
    EXPECT_EQ(e.code, "EntityTooSmall");
    EXPECT_EQ(field(e, "ProposedSize"), std::to_string(min - 1));
    EXPECT_EQ(field(e, "MinSizeAllowed"), std::to_string(min));
    s.abort_upload("bkt", "tiny", id);
    EXPECT_EQ(error_of([&] { s.upload("bkt", "tiny", id); }).code, "NoSuchUpload");
  }
  std::string id = s.create_upload("bkt", "obj", {}, "CRC32C").upload_id;
  PartInfo p1 = s.upload_part("bkt", "obj", id, 1, body(s, a), {});
  PartInfo p2 = s.upload_part("bkt", "obj", id, 2, body(s, b), {});
  ObjectInfo o = s.complete_upload("bkt", "obj", id,
                                   {{1, p1.etag, {{"CRC32C", p1.checksums["CRC32C"]}}},
                                    {2,
                                     std::string(p2.etag.substr(1, p2.etag.size() - 2)),
                                     {{"CRC32C", p2.checksums["CRC32C"]}}}},
                                   false);
  EXPECT_EQ(o.etag, "\"" + hex(md5(md5(a) + md5(b))) + "-2\"");
  EXPECT_EQ(o.checksums.at("CRC32C"),
            base64(be32(crc32c(be32(crc32c(a)) + be32(crc32c(b))))) + "-2");
  EXPECT_EQ(o.checksum_type, "COMPOSITE");
  EXPECT_EQ(read_file(s.head_object("bkt", "obj").data), a + b);
  EXPECT_EQ(error_of([&] { s.list_parts("bkt", "obj", id, 0, 1000); }).code, "NoSuchUpload")
      << "a completed upload is gone";

  // If-None-Match: * on Complete over an existing key.
  std::string id2 = s.create_upload("bkt", "obj", {}, "").upload_id;
  PartInfo q1 = s.upload_part("bkt", "obj", id2, 1, body(s, b), {});
  S3Error e = error_of([&] { s.complete_upload("bkt", "obj", id2, {{1, q1.etag, {}}}, true); });
  EXPECT_EQ(e.status, 412);
  EXPECT_EQ(read_file(s.head_object("bkt", "obj").data), a + b);
  EXPECT_NO_THROW(s.upload("bkt", "obj", id2)) << "the upload survives a failed precondition";
}

// --etag opaque: ETags are unique random values (as S3 gives for SSE-KMS objects), not the MD5;
// Complete accepts the part ETags it handed out and builds "<hex>-N"; a Content-MD5 sent is still
// checked, a write with another body gets another ETag, and conditional writes still work on them.
TEST_F(StoreTest, OpaqueEtagsAreNotTheMd5YetCompleteAndContentMd5StillWork) {
  const uint64_t min = 64;
  S3Store s(dir_, min, /*md5_etags=*/false);
  s.create_bucket("bkt");
  const std::string a(min, 'a'), b(10, 'b');
  ObjectInfo o1 = s.put_object("bkt", "one", body(s, a), {});
  ObjectInfo o2 = s.put_object("bkt", "one", body(s, a), {});
  EXPECT_EQ(o1.etag.size(), 34u);
  EXPECT_NE(o1.etag, "\"" + hex(md5(a)) + "\"");
  EXPECT_NE(o1.etag, o2.etag) << "every write its own ETag";
  EXPECT_EQ(s.head_object("bkt", "one").etag, o2.etag);
  WriteRequest bad;
  bad.content_md5 = base64(md5(b));
  EXPECT_EQ(error_of([&] { s.put_object("bkt", "two", body(s, a), bad); }).code, "BadDigest");
  WriteRequest good;
  good.content_md5 = base64(md5(a));
  EXPECT_NO_THROW(s.put_object("bkt", "two", body(s, a), good));
  WriteRequest swap;
  swap.if_match = o1.etag;  // no longer the current ETag
  EXPECT_EQ(error_of([&] { s.put_object("bkt", "one", body(s, b), swap); }).status, 412);
  swap.if_match = o2.etag;
  EXPECT_NO_THROW(s.put_object("bkt", "one", body(s, b), swap));

  std::string id = s.create_upload("bkt", "obj", {}, "").upload_id;
  PartInfo p1 = s.upload_part("bkt", "obj", id, 1, body(s, a), {});
  PartInfo p2 = s.upload_part("bkt", "obj", id, 2, body(s, b), {});
  EXPECT_NE(p1.etag, "\"" + hex(md5(a)) + "\"");
  EXPECT_EQ(error_of([&] {
              s.complete_upload("bkt", "obj", id,
                                {{1, "\"" + hex(md5(a)) + "\"", {}}, {2, p2.etag, {}}}, false);
            }).code,
            "InvalidPart");
  ObjectInfo o = s.complete_upload("bkt", "obj", id, {{1, p1.etag, {}}, {2, p2.etag, {}}}, false);
  EXPECT_TRUE(o.etag.ends_with("-2\"")) << o.etag;
  EXPECT_EQ(read_file(s.head_object("bkt", "obj").data), a + b);
}

TEST_F(StoreTest, ListPartsPaginates) {
  S3Store s(dir_, 1);
  s.create_bucket("bkt");
  std::string id = s.create_upload("bkt", "obj", {}, "").upload_id;
  for (int n : {5, 1, 3, 2, 4})
    s.upload_part("bkt", "obj", id, n, body(s, std::string(n, 'x')), {});
  std::vector<int> seen;
  int marker = 0, pages = 0;
  while (true) {
    ListPartsResult r = s.list_parts("bkt", "obj", id, marker, 2);
    ++pages;
    for (const PartInfo* p : r.parts) seen.push_back(p->number);
    if (!r.truncated) break;
    EXPECT_EQ(r.next_marker, r.parts.back()->number);
    marker = r.next_marker;
  }
  EXPECT_EQ(seen, (std::vector<int>{1, 2, 3, 4, 5}));
  EXPECT_EQ(pages, 3);
}

TEST_F(StoreTest, ListObjectsV2PaginatesWithDelimiterAndTokens) {
  S3Store s(dir_);
  s.create_bucket("bkt");
  for (std::string k : {"a/1", "a/2", "b", "c/x/1", "c/y", "d", "e/1"})
    s.put_object("bkt", k, body(s, k), {});
  // Page through with max-keys 2 and '/' as delimiter: prefixes count as keys.
  ListV2Request r;
  r.delimiter = "/";
  r.max_keys = 2;
  std::vector<std::string> all;
  int pages = 0;
  while (true) {
    ListV2Result page = s.list_objects_v2("bkt", r);
    ++pages;
    std::vector<std::string> got;
    for (const auto* o : page.contents) got.push_back(o->key);
    for (const auto& p : page.common_prefixes) got.push_back(p);
    EXPECT_LE(got.size(), 2u);
    all.insert(all.end(), got.begin(), got.end());
    if (!page.truncated) break;
    r.continuation_token = page.next_token;
  }
  std::sort(all.begin(), all.end());
  EXPECT_EQ(all, (std::vector<std::string>{"a/", "b", "c/", "d", "e/"}));
  EXPECT_EQ(pages, 3);

  ListV2Request pre;
  pre.prefix = "c/";
  pre.delimiter = "/";
  ListV2Result cp = s.list_objects_v2("bkt", pre);
  ASSERT_EQ(cp.contents.size(), 1u);
  EXPECT_EQ(cp.contents[0]->key, "c/y");
  EXPECT_EQ(cp.common_prefixes, (std::vector<std::string>{"c/x/"}));

  ListV2Request after;
  after.start_after = "c/y";
  ListV2Result sa = s.list_objects_v2("bkt", after);
  ASSERT_EQ(sa.contents.size(), 2u);
  EXPECT_EQ(sa.contents[0]->key, "d");

  ListV2Request bad;
  bad.continuation_token = "garbage!";
  EXPECT_EQ(error_of([&] { s.list_objects_v2("bkt", bad); }).code, "InvalidArgument");
}

TEST_F(StoreTest, ObjectsAndUploadsSurviveARestart) {
  std::string id;
  {
    S3Store s(dir_, 1);
    s.create_bucket("bkt");
    WriteRequest w;
    w.stored_headers["x-amz-server-side-encryption"] = "aws:kms";
    s.put_object("bkt", "kept", body(s, "payload"), w);
    id = s.create_upload("bkt", "mp", {}, "CRC32C").upload_id;
    s.upload_part("bkt", "mp", id, 1, body(s, "part-one"), {});
  }
  S3Store s(dir_, 1);
  const ObjectInfo& o = s.head_object("bkt", "kept");
  EXPECT_EQ(read_file(o.data), "payload");
  EXPECT_EQ(o.stored_headers.at("x-amz-server-side-encryption"), "aws:kms");
  ListPartsResult parts = s.list_parts("bkt", "mp", id, 0, 1000);
  ASSERT_EQ(parts.parts.size(), 1u);
  EXPECT_EQ(parts.parts[0]->etag, "\"" + hex(md5("part-one")) + "\"");
  ObjectInfo done = s.complete_upload(
      "bkt", "mp", id,
      {{1, parts.parts[0]->etag, {{"CRC32C", parts.parts[0]->checksums.at("CRC32C")}}}}, false);
  EXPECT_EQ(read_file(done.data), "part-one");
}

TEST_F(StoreTest, ListMultipartUploadsOrdersByKeyAndPaginates) {
  S3Store s(dir_);
  s.create_bucket("bkt");
  std::string u1 = s.create_upload("bkt", "b", {}, "").upload_id;
  std::string u2 = s.create_upload("bkt", "a", {}, "").upload_id;
  std::string u3 = s.create_upload("bkt", "x/c", {}, "").upload_id;
  ListUploadsResult r = s.list_uploads("bkt", "", "", "", "", 2);
  ASSERT_EQ(r.uploads.size(), 2u);
  EXPECT_EQ(r.uploads[0]->upload_id, u2);
  EXPECT_EQ(r.uploads[1]->upload_id, u1);
  EXPECT_TRUE(r.truncated);
  ListUploadsResult r2 =
      s.list_uploads("bkt", "", "", r.next_key_marker, r.next_upload_id_marker, 2);
  ASSERT_EQ(r2.uploads.size(), 1u);
  EXPECT_EQ(r2.uploads[0]->upload_id, u3);
  EXPECT_FALSE(r2.truncated);
}

}  // namespace

namespace {
WriteRequest if_none_match() {
  WriteRequest w;
  w.if_none_match_star = true;
  return w;
}
WriteRequest if_match(const std::string& etag) {
  WriteRequest w;
  w.if_match = etag;
  return w;
}
}  // namespace

// S3 conditional writes (user guide "How to prevent object overwrites with conditional writes"):
// If-None-Match: * creates only, If-Match: <etag> replaces only that version, 404 NoSuchKey when
// If-Match finds no object, and the failed write leaves the stored object as it was.
TEST_F(StoreTest, ConditionalPutCreatesOnlyAndSwapsOnlyTheNamedETag) {
  S3Store s(dir_);
  s.create_bucket("bkt");
  ObjectInfo first = s.put_object("bkt", "lease", body(s, "one"), if_none_match());
  S3Error again = error_of([&] { s.put_object("bkt", "lease", body(s, "two"), if_none_match()); });
  EXPECT_EQ(again.status, 412);
  EXPECT_EQ(again.code, "PreconditionFailed");
  EXPECT_EQ(field(again, "Condition"), "If-None-Match");
  EXPECT_EQ(read_file(s.head_object("bkt", "lease").data), "one");

  // Quoted or bare ETag both match, as S3 compares the entity tag value.
  ObjectInfo second = s.put_object("bkt", "lease", body(s, "two"), if_match(first.etag));
  EXPECT_NE(second.etag, first.etag);
  std::string bare = second.etag.substr(1, second.etag.size() - 2);
  ObjectInfo third = s.put_object("bkt", "lease", body(s, "three"), if_match(bare));
  S3Error stale =
      error_of([&] { s.put_object("bkt", "lease", body(s, "stale"), if_match(first.etag)); });
  EXPECT_EQ(stale.status, 412);
  EXPECT_EQ(stale.code, "PreconditionFailed");
  EXPECT_EQ(field(stale, "Condition"), "If-Match");
  EXPECT_EQ(s.head_object("bkt", "lease").etag, third.etag);

  S3Error absent =
      error_of([&] { s.put_object("bkt", "nothing", body(s, "x"), if_match(first.etag)); });
  EXPECT_EQ(absent.status, 404);
  EXPECT_EQ(absent.code, "NoSuchKey");
  EXPECT_EQ(s.find_object("bkt", "nothing"), nullptr);
}

// A DELETE that succeeds while a conditional write is in flight makes that write 409
// ConditionalRequestConflict (not a silent create); a write that began after the delete is
// judged on its precondition alone.
TEST_F(StoreTest, DeleteDuringConditionalWriteIsConditionalRequestConflict) {
  S3Store s(dir_);
  s.create_bucket("bkt");
  ObjectInfo o = s.put_object("bkt", "lease", body(s, "one"), {});
  WriteRequest inm = if_none_match();
  inm.began_at = s.delete_sequence();  // the PUT's headers arrived
  WriteRequest im = if_match(o.etag);
  im.began_at = s.delete_sequence();
  s.delete_object("bkt", "lease");  // ... then someone deleted the key
  S3Error e = error_of([&] { s.put_object("bkt", "lease", body(s, "two"), inm); });
  EXPECT_EQ(e.status, 409);
  EXPECT_EQ(e.code, "ConditionalRequestConflict");
  EXPECT_EQ(error_of([&] { s.put_object("bkt", "lease", body(s, "two"), im); }).code,
            "ConditionalRequestConflict");
  EXPECT_EQ(s.find_object("bkt", "lease"), nullptr);
  EXPECT_NO_THROW(s.put_object("bkt", "lease", body(s, "two"), if_none_match()))
      << "a retry that begins after the delete succeeds";
  // Unconditional writes never conflict.
  WriteRequest plain;
  plain.began_at = 0;
  EXPECT_NO_THROW(s.put_object("bkt", "lease", body(s, "three"), plain));
}

// CompleteMultipartUpload takes the same preconditions; its write began at
// CreateMultipartUpload, so a delete of the key after that is a 409 and the upload stays.
TEST_F(StoreTest, ConditionalCompleteMultipartUpload) {
  S3Store s(dir_, 1);
  s.create_bucket("bkt");
  ObjectInfo o = s.put_object("bkt", "obj", body(s, "old"), {});
  std::string id = s.create_upload("bkt", "obj", {}, "").upload_id;
  PartInfo p = s.upload_part("bkt", "obj", id, 1, body(s, "new"), {});
  S3Error stale = error_of([&] {
    s.complete_upload("bkt", "obj", id, {{1, p.etag, {}}}, if_match("\"0123\""));
  });
  EXPECT_EQ(stale.status, 412);
  EXPECT_EQ(field(stale, "Condition"), "If-Match");
  ObjectInfo done = s.complete_upload("bkt", "obj", id, {{1, p.etag, {}}}, if_match(o.etag));
  EXPECT_EQ(read_file(s.head_object("bkt", "obj").data), "new");

  std::string id2 = s.create_upload("bkt", "obj", {}, "").upload_id;
  PartInfo p2 = s.upload_part("bkt", "obj", id2, 1, body(s, "newer"), {});
  s.delete_object("bkt", "obj");
  S3Error conflict = error_of([&] {
    s.complete_upload("bkt", "obj", id2, {{1, p2.etag, {}}}, if_none_match());
  });
  EXPECT_EQ(conflict.status, 409);
  EXPECT_EQ(conflict.code, "ConditionalRequestConflict");
  EXPECT_NO_THROW(s.upload("bkt", "obj", id2)) << "the upload survives, as after a 412";
  EXPECT_EQ(s.find_object("bkt", "obj"), nullptr);
  (void)done;
}

namespace {
// The server hashes a body with only the digests it expects the rules to use (body.hpp). A digest
// a rule needs that the caller did not compute is computed from the file: never taken as zero.
TEST_F(StoreTest, DigestsTheCallerDidNotComputeAreComputedFromTheFile) {
  S3Store s(dir_);
  s.create_bucket("bkt");
  const std::string data = "the part's bytes";
  DigestStream md5_only(kDigestMd5);
  md5_only.update(data.data(), data.size());
  const Digests known = md5_only.final();
  ASSERT_EQ(known.have, unsigned{kDigestMd5});

  const UploadInfo& u = s.create_upload("bkt", "k", WriteRequest{}, "CRC32");
  PartInfo p = s.upload_part("bkt", "k", u.upload_id, 1, body(s, data), WriteRequest{}, &known);
  EXPECT_EQ(p.checksums.at("CRC32"), base64(be32(crc32(data)))) << "the upload's algorithm";

  WriteRequest sha;
  sha.checksums["SHA256"] = base64(sha256(data));
  EXPECT_EQ(s.put_object("bkt", "o", body(s, data), sha, &known).checksums.at("SHA256"),
            base64(sha256(data)));
  WriteRequest wrong;
  wrong.checksums["CRC32C"] = base64(be32(crc32c("other")));
  EXPECT_EQ(error_of([&] { s.put_object("bkt", "o2", body(s, data), wrong, &known); }).code,
            "BadDigest");
  WriteRequest hashed;
  hashed.content_sha256 = hex(sha256("not the body"));
  EXPECT_EQ(error_of([&] { s.put_object("bkt", "o3", body(s, data), hashed, &known); }).code,
            "XAmzContentSHA256Mismatch");
}
}  // namespace
