// LineReader / validate_file on real files: CRLF, missing final newline, over-long lines.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include <zlib.h>
#include <zstd.h>

#include "fhir/internal.hpp"
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

// gzip member of `data` (zlib's own gzip writer, as bulk-data clients and gzip(1) produce).
std::string gzip(const std::string& data) {
  z_stream zs{};
  EXPECT_EQ(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&zs, data.size()) + 32, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(data.data()));
  zs.avail_in = static_cast<uInt>(data.size());
  zs.next_out = reinterpret_cast<Bytef*>(out.data());
  zs.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&zs, Z_FINISH), Z_STREAM_END);
  out.resize(zs.total_out);
  deflateEnd(&zs);
  return out;
}

std::string zstd(const std::string& data) {
  std::string out(ZSTD_compressBound(data.size()), '\0');
  size_t n = ZSTD_compress(out.data(), out.size(), data.data(), data.size(), 3);
  EXPECT_FALSE(ZSTD_isError(n));
  out.resize(n);
  return out;
}

std::vector<std::string> all_lines(LineReader& r) {
  std::vector<std::string> v;
  std::string_view line;
  uint64_t no;
  LineReader::Status st;
  while ((st = r.next(line, no)) == LineReader::Status::line) v.emplace_back(line);
  EXPECT_EQ(st, LineReader::Status::eof) << r.error();
  return v;
}

// Many bulk-data clients write .ndjson.gz: the lines are the decompressed NDJSON (before, every
// line was the compressed bytes and failed as "not valid UTF-8").
TEST(LineReader, GzipIsDecompressedWhileRead) {
  std::string plain;
  for (int i = 0; i < 5000; ++i)
    plain += R"({"resourceType":"Patient","id":"p)" + std::to_string(i) + "\"}\n";
  TempFile f(gzip(plain), ".ndjson.gz");
  LineReader r(f.path, 1u << 16);
  ASSERT_TRUE(r.ok()) << r.error();
  auto lines = all_lines(r);
  ASSERT_EQ(lines.size(), 5000u);
  EXPECT_EQ(lines[4999], R"({"resourceType":"Patient","id":"p4999"})");
}

TEST(LineReader, ConcatenatedGzipMembersAndZstdFramesAreAllRead) {
  TempFile g(gzip("a\nb") + gzip("c\n"), ".ndjson.gz");  // gzip -c x y > xy
  LineReader rg(g.path, 64);
  EXPECT_EQ(all_lines(rg), (std::vector<std::string>{"a", "bc"}));
  TempFile z(zstd("one\ntwo\n") + zstd("three\n"), ".ndjson.zst");
  LineReader rz(z.path, 64);
  EXPECT_EQ(all_lines(rz), (std::vector<std::string>{"one", "two", "three"}));
}

TEST(LineReader, TruncatedOrCorruptCompressedInputIsAnErrorNamingTheFile) {
  std::string gz = gzip(std::string(100000, 'x') + "\n");
  TempFile cut(gz.substr(0, gz.size() / 2), ".ndjson.gz");
  LineReader r(cut.path, 1u << 20);
  std::string_view line;
  uint64_t no;
  LineReader::Status st;
  while ((st = r.next(line, no)) == LineReader::Status::line) {
  }
  ASSERT_EQ(st, LineReader::Status::error);
  EXPECT_NE(r.error().find(cut.path.string()), std::string::npos) << r.error();
  EXPECT_NE(r.error().find("gzip data is truncated"), std::string::npos) << r.error();

  std::string bad = gz;
  for (size_t i = 20; i < 60; ++i) bad[i] = static_cast<char>(bad[i] ^ 0x5a);
  TempFile corrupt(bad, ".ndjson.gz");
  LineReader r2(corrupt.path, 1u << 20);
  while ((st = r2.next(line, no)) == LineReader::Status::line) {
  }
  ASSERT_EQ(st, LineReader::Status::error);
  EXPECT_NE(r2.error().find("gzip data is corrupt"), std::string::npos) << r2.error();
}

TEST(ValidateFile, GzipExportValidatesItsResources) {
  std::string plain = std::string(R"({"resourceType":"Patient","id":"a"})") + "\n" +
                      R"({"resourceType":"Patient","id":"b","gender":"boy"})" + "\n";
  TempFile f(gzip(plain), ".ndjson.gz");
  LoadReport rep;
  auto v = Validator::create(Options{}, rep);
  ASSERT_TRUE(v);
  Scratch sc;
  auto sum = validate_file(*v, f.path, sc, {}, false);
  EXPECT_TRUE(sum.fatal.empty()) << sum.fatal;
  EXPECT_EQ(sum.resources, 2u);
  EXPECT_EQ(sum.valid, 1u);
  EXPECT_EQ(sum.invalid, 1u);
}

}  // namespace
// verbatim_offset (issue 13 item 2): where a line sits in the file when it plus '\n' is exactly
// the file's bytes; -1 after a removed '\r', a removed byte order mark, at a last line without a
// newline, and for compressed input.
TEST(LineSource, VerbatimOffsetOnlyWhereTheLineAndItsNewlineAreTheFilesBytes) {
  TempFile f("\xEF\xBB\xBF{}\nab\n\ncd\r\nef\nlast");
  LineSource r(f.path, 16, {});
  ASSERT_TRUE(r.ok());
  std::string_view line;
  uint64_t no = 0;
  std::vector<std::pair<std::string, int64_t>> got;
  while (r.next(line, no) == LineReader::Status::line)
    got.emplace_back(std::string(line), r.verbatim_offset());
  std::vector<std::pair<std::string, int64_t>> want = {{"{}", -1}, {"ab", 6},  {"", 9},
                                                       {"cd", -1}, {"ef", 14}, {"last", -1}};
  EXPECT_EQ(got, want);

  // Lines across read chunks keep their offsets.
  std::string big;
  std::vector<int64_t> starts;
  for (int i = 0; big.size() < (3u << 20); ++i) {
    starts.push_back(static_cast<int64_t>(big.size()));
    big += std::string(1000 + i % 5000, 'a' + static_cast<char>(i % 26)) + "\n";
  }
  TempFile g(big);
  LineSource b(g.path, 1u << 20, {});
  size_t i = 0;
  while (b.next(line, no) == LineReader::Status::line) {
    ASSERT_LT(i, starts.size());
    EXPECT_EQ(b.verbatim_offset(), starts[i]) << "line " << no;
    ++i;
  }
  EXPECT_EQ(i, starts.size());

  // Compressed input: offsets in the decoded stream are not offsets in the file.
  std::string gz = gzip("{}\n{}\n");
  TempFile z(gz, ".ndjson.gz");
  LineSource c(z.path, 16, {});
  ASSERT_EQ(c.next(line, no), LineReader::Status::line);
  EXPECT_EQ(c.verbatim_offset(), -1);
}

}  // namespace fe::fhir
