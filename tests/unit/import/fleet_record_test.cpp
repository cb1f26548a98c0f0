// The fleet's objects (issue 16 item 3, fleet/batch_record.hpp, fleet/manifest.hpp): where they
// live, the batch record and the ready.json entry with its request fields and claim, through
// JSON and back.
#include <gtest/gtest.h>

#include "fleet/batch_record.hpp"
#include "fleet/manifest.hpp"

namespace {

using namespace fe::fleet;

TEST(FleetRecord, KeysUnderTheFleetFolder) {
  EXPECT_EQ(fleet_dir("", "north"), "fleet/north/");
  EXPECT_EQ(fleet_dir("coord/", "north"), "coord/fleet/north/");
  EXPECT_EQ(batch_record_key("coord", "north", "fb-1"), "coord/fleet/north/batches/fb-1.json");
  // The copies' prefix is not a prefix of the record's key: the job never imports the record.
  EXPECT_EQ(batch_copy_prefix("coord", "north", "fb-1"), "coord/fleet/north/batches/fb-1/");
  EXPECT_EQ(member_pointer_key("", "north", "gw-3", "nightly.retry2"),
            "fleet/north/members/gw-3/nightly.retry2.json");
}

TEST(FleetRecord, BatchIdIsAClientTokenAndTheJobNameFits) {
  auto a = new_batch_id(), b = new_batch_id();
  EXPECT_NE(a, b);
  EXPECT_EQ(a.size(), 35u);
  EXPECT_EQ(a.rfind("fb-", 0), 0u);
  for (char c : a) EXPECT_TRUE(std::isalnum(static_cast<unsigned char>(c)) || c == '-') << a;
  EXPECT_EQ(fleet_job_name("north", "fb-0123456789abcdef", 12), "fleet-north-0123456789ab-12");
  EXPECT_LE(fleet_job_name(std::string(63, 'x'), a, 10000).size(), 64u);
}

TEST(FleetRecord, BatchRecordRoundTrips) {
  BatchRecord r;
  r.batch_id = r.client_token = "fb-00ff";
  r.fleet = "north";
  r.holder = "gw-1";
  r.epoch = 7;
  r.job_name = "fleet-north-00ff-2";
  r.input_uri = "s3://landing/fleet/north/batches/fb-00ff/";
  r.datastore_id = "0123456789abcdef0123456789abcdef";
  r.validation_level = "strict";
  r.role_arn = "arn:aws:iam::123456789012:role/Import";
  r.output_s3_uri = "s3://results/imports";
  r.output_kms_key_id = "alias/hl";
  r.members = {{"gw-1", "a", "s3://landing/x/a/import/", 2, 100, ""},
               {"gw-2", "b \"quoted\"", "s3://landing/y/b/import/", 3, 200, "alias/in"}};
  r.created_at_ms = 1;
  r.updated_at_ms = 2;
  auto back = BatchRecord::parse(r.to_json());
  ASSERT_TRUE(back);
  EXPECT_EQ(back->to_json(), r.to_json());
  EXPECT_FALSE(back->outcome);
  ASSERT_TRUE(back->member("gw-2", "b \"quoted\""));
  EXPECT_EQ(back->member("gw-2", "b \"quoted\"")->input_kms_key_id, "alias/in");
  EXPECT_FALSE(back->member("gw-1", "b \"quoted\""));
  r.job_id = "job-1";
  r.job_status = "SUBMITTED";
  r.outcome = BatchOutcome{"COMPLETED_WITH_ERRORS", "s3://results/imports", "strict", "2 failed"};
  back = BatchRecord::parse(r.to_json());
  ASSERT_TRUE(back && back->outcome);
  EXPECT_EQ(back->outcome->job_status, "COMPLETED_WITH_ERRORS");
  EXPECT_EQ(back->outcome->message, "2 failed");
  EXPECT_EQ(back->to_json(), r.to_json());
  EXPECT_FALSE(BatchRecord::parse("{\"members\":[]}"));  // no batch id
  EXPECT_FALSE(BatchRecord::parse("not json"));
}

TEST(FleetRecord, ReadyEntryKeepsItsRequestFieldsAndClaim) {
  ManifestDoc d;
  d.version = 3;
  ManifestEntry e;
  e.gateway = "gw-1";
  e.export_id = "a";
  e.validation_level = "minimal";
  e.role_arn = "arn:aws:iam::123456789012:role/Import";
  e.output_s3_uri = "s3://results/";
  e.output_kms_key_id = "alias/hl";
  e.input_kms_key_id = "alias/in";
  e.batch = "fb-1";
  d.entries = {e};
  auto back = ManifestDoc::parse(d.to_json());
  ASSERT_TRUE(back);
  ASSERT_EQ(back->entries.size(), 1u);
  EXPECT_EQ(back->entries[0].batch, "fb-1");
  EXPECT_EQ(back->entries[0].validation_level, "minimal");
  EXPECT_EQ(back->entries[0].input_kms_key_id, "alias/in");
  EXPECT_EQ(back->to_json(), d.to_json());
  // An entry written before these fields (or unclaimed) has none of them.
  ManifestEntry plain;
  plain.gateway = "gw-2";
  plain.export_id = "b";
  d.entries = {plain};
  EXPECT_EQ(d.to_json().find("batch"), std::string::npos);
}

}  // namespace
