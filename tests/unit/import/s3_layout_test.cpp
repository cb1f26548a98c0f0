// Every key and name of import/s3_layout.hpp against DESIGN's "S3 layout", with and without a
// prefix, and the part folders of an export over the files-per-job limit.
#include "import/s3_layout.hpp"

#include <gtest/gtest.h>

using namespace fe::import;

TEST(S3Layout, KeysWithPrefixMatchDesign) {
  EXPECT_EQ(import_key("exports", "e1", "Patient.ndjson"), "exports/e1/import/Patient.ndjson");
  EXPECT_EQ(archive_key("exports", "e1", "Patient.ndjson"),
            "exports/e1/archive/Patient.ndjson.zst");
  EXPECT_EQ(rejected_key("exports", "e1", "Patient.ndjson"),
            "exports/e1/rejected/Patient.ndjson.zst");
  EXPECT_EQ(report_key("exports", "e1"), "exports/e1/report.json");
  EXPECT_EQ(import_key("a/b", "e1", "Obs.ndjson"), "a/b/e1/import/Obs.ndjson");
}

TEST(S3Layout, KeysWithoutPrefixStartAtTheExport) {
  EXPECT_EQ(import_key("", "e1", "Patient.ndjson"), "e1/import/Patient.ndjson");
  EXPECT_EQ(archive_key("", "e1", "Patient.ndjson"), "e1/archive/Patient.ndjson.zst");
  EXPECT_EQ(rejected_key("", "e1", "Patient.ndjson"), "e1/rejected/Patient.ndjson.zst");
  EXPECT_EQ(report_key("", "e1"), "e1/report.json");
}

TEST(S3Layout, ObjectNamesAreTheDecompressedNdjson) {
  EXPECT_EQ(ndjson_name("Patient.ndjson"), "Patient.ndjson");
  EXPECT_EQ(ndjson_name("Patient.ndjson.gz"), "Patient.ndjson");
  EXPECT_EQ(ndjson_name("Patient.ndjson.zst"), "Patient.ndjson");
  EXPECT_EQ(ndjson_name("Patient"), "Patient.ndjson");
  EXPECT_EQ(import_key("p", "e", "Patient.ndjson.gz"), "p/e/import/Patient.ndjson");
  EXPECT_EQ(archive_key("p", "e", "Patient.ndjson.zst"), "p/e/archive/Patient.ndjson.zst");
}

TEST(S3Layout, PartFoldersOnlyOverTheLimit) {
  EXPECT_EQ(import_part_dir(0, 3, 3), "");
  EXPECT_EQ(import_part_dir(0, 4, 3), "part-0001/");
  EXPECT_EQ(import_part_dir(2, 4, 3), "part-0001/");
  EXPECT_EQ(import_part_dir(3, 4, 3), "part-0002/");
  EXPECT_EQ(import_part_dir(5, 10, 0), "");  // no limit
  EXPECT_EQ(import_key("p", "e", import_part_dir(3, 4, 3) + "Obs.ndjson"),
            "p/e/import/part-0002/Obs.ndjson");
  EXPECT_EQ(import_part_dir(9999, kMaxFilesPerImportJob + 1, kMaxFilesPerImportJob), "part-0001/");
  EXPECT_EQ(import_part_dir(10000, kMaxFilesPerImportJob + 1, kMaxFilesPerImportJob), "part-0002/");
}

TEST(S3Layout, UrisOfTheJob) {
  EXPECT_EQ(import_input_uri("b", "exports", "e1"), "s3://b/exports/e1/import/");
  EXPECT_EQ(import_input_uri("b", "/exports/", "e1"), "s3://b/exports/e1/import/");
  EXPECT_EQ(import_input_uri("b", "", "e1"), "s3://b/e1/import/");
  EXPECT_EQ(job_output_uri("s3://r/imports/", "DS", "J"), "s3://r/imports/DS-FHIR_IMPORT-J/");
  EXPECT_EQ(job_output_uri("s3://r", "DS", "J"), "s3://r/DS-FHIR_IMPORT-J/");
  EXPECT_EQ(split_s3_uri("s3://b/x/y/"), (std::pair<std::string, std::string>{"b", "x/y"}));
  EXPECT_EQ(split_s3_uri("s3://b"), (std::pair<std::string, std::string>{"b", ""}));
  EXPECT_EQ(split_s3_uri("https://b/x").first, "");
}

TEST(S3Layout, JobNames) {
  EXPECT_EQ(job_name_for("a b#c.v2"), "a_b_c.v2");
  EXPECT_EQ(job_name_for(""), "export");
  EXPECT_EQ(job_name_for(std::string(100, 'x')).size(), 64u);
  EXPECT_EQ(import_job_name("e", 1, 1, 1), "e");
  EXPECT_EQ(import_job_name("e", 1, 2, 3), "e.part2");
  EXPECT_EQ(import_job_name("e", 2, 1, 1), "e.retry2");
  auto long_name = import_job_name(std::string(80, 'x'), 3, 2, 2);
  EXPECT_EQ(long_name.size(), 64u);
  EXPECT_TRUE(long_name.ends_with(".part2.retry3"));
}

TEST(S3Layout, ExportOfUploadKeyParsesWhatTheKeysMake) {
  EXPECT_EQ(export_of_upload_key("exports", import_key("exports", "e1", "P.ndjson")), "e1");
  EXPECT_EQ(export_of_upload_key("exports", archive_key("exports", "e1", "P.ndjson")), "e1");
  EXPECT_EQ(export_of_upload_key("", import_key("", "e1", "part-0002/P.ndjson")), "e1");
  // Not this layout's uploaded-in-parts objects, or another prefix.
  EXPECT_EQ(export_of_upload_key("exports", rejected_key("exports", "e1", "P.ndjson")), "");
  EXPECT_EQ(export_of_upload_key("exports", report_key("exports", "e1")), "");
  EXPECT_EQ(export_of_upload_key("exports", "other/e1/import/P.ndjson"), "");
  EXPECT_EQ(export_of_upload_key("exports", "exportsX/e1/import/P.ndjson"), "");
  EXPECT_EQ(export_of_upload_key("", "/import/P.ndjson"), "");
}

// Batches (issue 16 item 2): the job's input prefix holds only the batch's copies, and the token
// (so the prefix and the JobName) follows from the members alone.
TEST(S3Layout, BatchPrefixTokenAndJobName) {
  std::vector<std::string> members = {"fe-aaa", "fe-bbb"};
  auto token = batch_client_token(members);
  EXPECT_EQ(token, batch_client_token(members));  // same members, same token (after a crash)
  EXPECT_NE(token, batch_client_token({"fe-bbb", "fe-aaa"}));
  EXPECT_NE(token, batch_client_token({"fe-aaa"}));
  EXPECT_EQ(token.size(), 52u);  // within ClientToken's 64 characters of [a-zA-Z0-9-]
  EXPECT_EQ(token.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-"), std::string::npos);
  EXPECT_TRUE(token.starts_with("fe-b"));
  EXPECT_EQ(batch_job_name(token, 2), "batch-" + token.substr(4, 16) + "-2");
  EXPECT_EQ(batch_input_uri("landing", "exports/", token),
            "s3://landing/exports/batches/" + token + "/");
  EXPECT_EQ(batch_input_uri("landing", "", token), "s3://landing/batches/" + token + "/");
  EXPECT_EQ(batch_object_key("exports", token, "e1", "Patient.ndjson"),
            "exports/batches/" + token + "/e1/Patient.ndjson");
  // Every member object is under the job's input prefix; no export's own objects are.
  auto key = batch_object_key("exports", token, "e1", "Patient.ndjson");
  EXPECT_TRUE(("s3://landing/" + key).starts_with(batch_input_uri("landing", "exports", token)));
  EXPECT_FALSE(("s3://landing/" + import_key("exports", "e1", "Patient.ndjson"))
                   .starts_with(batch_input_uri("landing", "exports", token)));
  // Not taken for an export's upload by the orphan sweep.
  EXPECT_EQ(export_of_upload_key("exports", key), "");
}
