// LineReader / validate_file on real files: CRLF, missing final newline, over-long lines.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "fhir/validator.hpp"

namespace fe::fhir {
namespace {

namespace fs = std::filesystem;

struct TempFile {
  fs::path path;
  explicit TempFile(const std::string& content, const std::string& ext = ".ndjson") {
    path = fs::temp_directory_path() /
           ("fe-fhir-" + std::to_string(::getpid()) + "-" + std::to_string(counter()++) + ext);
    std::ofstream(path, std::ios::binary) << content;
  }
  ~TempFile() { fs::remove(path); }
  static int& counter() {
    static int c = 0;
    return c;
  }
};

TEST(LineReader, CrlfAndLastLineWithoutNewline) {
  TempFile f("a\r\nbb\n\nccc");
  LineReader r(f.path, 16);
  ASSERT_TRUE(r.ok());
  std::string_view line;
  uint64_t no = 0;
  ASSERT_EQ(r.next(line, no), LineReader::Status::line);
  EXPECT_EQ(line, "a");
  EXPECT_EQ(no, 1u);
  ASSERT_EQ(r.next(line, no), LineReader::Status::line);
  EXPECT_EQ(line, "bb");
  ASSERT_EQ(r.next(line, no), LineReader::Status::line);
  EXPECT_EQ(line, "");
  ASSERT_EQ(r.next(line, no), LineReader::Status::line);
  EXPECT_EQ(line, "ccc");
  EXPECT_EQ(no, 4u);
  EXPECT_EQ(r.next(line, no), LineReader::Status::eof);
  EXPECT_EQ(r.bytes_read(), 10u);
}

TEST(LineReader, OverLongLineIsSkippedNotFatal) {
  // Longer than the 1 MiB read chunk too, so the carry-over path is exercised.
  std::string big(3u << 20, 'x');
  TempFile f("ok\n" + big + "\nafter\n" + big);
  LineReader r(f.path, 1u << 20);
  std::string_view line;
  uint64_t no = 0;
  ASSERT_EQ(r.next(line, no), LineReader::Status::line);
  EXPECT_EQ(r.next(line, no), LineReader::Status::too_long);
  EXPECT_EQ(no, 2u);
  ASSERT_EQ(r.next(line, no), LineReader::Status::line);
  EXPECT_EQ(line, "after");
  EXPECT_EQ(no, 3u);
  EXPECT_EQ(r.next(line, no), LineReader::Status::too_long);
  EXPECT_EQ(no, 4u);
  EXPECT_EQ(r.next(line, no), LineReader::Status::eof);
}

TEST(LineReader, LineSpanningChunksIsJoined) {
  std::string mid(1500000, 'y');
  TempFile f("a\n" + mid + "\r\nb\n");
  LineReader r(f.path, 2u << 20);
  std::string_view line;
  uint64_t no = 0;
  ASSERT_EQ(r.next(line, no), LineReader::Status::line);
  ASSERT_EQ(r.next(line, no), LineReader::Status::line);
  EXPECT_EQ(line.size(), mid.size());
  ASSERT_EQ(r.next(line, no), LineReader::Status::line);
  EXPECT_EQ(line, "b");
}

TEST(LineReader, MissingFileNamesIt) {
  LineReader r("/nonexistent/fe/x.ndjson");
  EXPECT_FALSE(r.ok());
  EXPECT_NE(r.error().find("/nonexistent/fe/x.ndjson"), std::string::npos);
}

TEST(ValidateFile, CountsAndLineNumbers) {
  TempFile f(
      "{\"resourceType\":\"Patient\",\"gender\":\"male\"}\r\n"
      "\n"
      "{\"resourceType\":\"Patient\",\"gender\":\"boy\"}\n"
      "not json\n"
      "{\"resourceType\":\"Observation\",\"status\":\"final\",\"code\":{\"text\":\"x\"}}");
  Options o;
  LoadReport rep;
  auto v = Validator::create(o, rep);
  Scratch s;
  std::vector<Result> got;
  FileSummary sum = validate_file(*v, f.path, s, [&](const Result& r) {
    got.push_back(r);
    return true;
  });
  EXPECT_TRUE(sum.fatal.empty());
  EXPECT_EQ(sum.lines, 5u);
  EXPECT_EQ(sum.resources, 4u);
  EXPECT_EQ(sum.valid, 2u);
  EXPECT_EQ(sum.invalid, 2u);
  EXPECT_EQ(sum.blank, 1u);
  ASSERT_EQ(got.size(), 3u);  // blank warning + two invalid
  EXPECT_EQ(got[0].line, 2u);
  EXPECT_TRUE(got[0].blank);
  EXPECT_EQ(got[1].line, 3u);
  EXPECT_EQ(got[1].issues[0].path, "Patient.gender");
  EXPECT_EQ(got[2].line, 4u);
  bool found = false;
  for (auto& [c, n] : sum.by_code)
    if (c == "code-invalid") found = n == 1;
  EXPECT_TRUE(found);
}

TEST(ValidateFile, WholeJsonFileIsOneResource) {
  TempFile f("{\n  \"resourceType\": \"Patient\",\n  \"gender\": \"female\"\n}\n", ".json");
  Options o;
  LoadReport rep;
  auto v = Validator::create(o, rep);
  Scratch s;
  FileSummary sum = validate_file(*v, f.path, s, nullptr);
  EXPECT_EQ(sum.resources, 1u);
  EXPECT_EQ(sum.valid, 1u);
}

TEST(ValidateFile, OverLongLineReportedAndReadingContinues) {
  Options o;
  o.max_line_bytes = 64;
  LoadReport rep;
  auto v = Validator::create(o, rep);
  TempFile f("{\"resourceType\":\"Patient\",\"name\":[{\"text\":\"" + std::string(100, 'a') +
             "\"}]}\n{\"resourceType\":\"Patient\"}\n");
  Scratch s;
  std::vector<Result> got;
  FileSummary sum = validate_file(*v, f.path, s, [&](const Result& r) {
    got.push_back(r);
    return true;
  });
  EXPECT_EQ(sum.resources, 2u);
  EXPECT_EQ(sum.invalid, 1u);
  ASSERT_EQ(got.size(), 1u);
  EXPECT_EQ(got[0].issues[0].code, code::too_long);
  EXPECT_NE(got[0].issues[0].message.find("64"), std::string::npos);
}

}  // namespace
}  // namespace fe::fhir
