// spool_file with idle pool threads helping to validate one file (issue 13 item 3): the spool,
// its parts, the line map and the report are the same bytes as when the owner validates alone,
// and the helpers really did validate lines. PoolHelp lends only pool threads and cores that
// nobody else uses.
#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/thread_pool.hpp>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>

#include <zlib.h>

#include "common/hashing.hpp"
#include "fhir/validator.hpp"
#include "journal/digest.hpp"
#include "pipeline/spooler.hpp"
#include "spool/spool.hpp"
#include "temp_dir.hpp"
#include "watch/identity.hpp"

namespace fe {
namespace {

std::string slurp(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// ~6 MiB (several 1 MiB batches): valid Patients and Observations, invalid lines (bad code, bad
// JSON, unknown type), blank lines, a CRLF line, lines longer than a 64 KiB chunk (one valid, one
// invalid) and one over the line limit.
std::string mixed_source(std::size_t max_line) {
  std::string s;
  for (int i = 0; i < 24000; ++i) {
    const std::string id = std::to_string(i);
    switch (i % 97) {
      case 5:
        s += "{\"resourceType\":\"Patient\",\"id\":\"b" + id + "\",\"gender\":\"x\"}\n";
        break;
      case 17:
        s += "not json " + id + "\n";
        break;
      case 29:
        s += "\n";
        break;
      case 41:
        s += "{\"resourceType\":\"NoSuchType\",\"id\":\"n" + id + "\"}\n";
        break;
      case 53:
        s += "{\"resourceType\":\"Patient\",\"id\":\"c" + id + "\",\"gender\":\"male\"}\r\n";
        break;
      default:
        if (i % 2)
          s += "{\"resourceType\":\"Patient\",\"id\":\"p" + id +
               "\",\"gender\":\"female\",\"birthDate\":\"1970-01-0" + std::to_string(1 + i % 9) +
               "\",\"name\":[{\"family\":\"Family" + id + "\",\"given\":[\"Given\"]}]}\n";
        else
          s += "{\"resourceType\":\"Observation\",\"id\":\"o" + id +
               "\",\"status\":\"final\",\"code\":{\"text\":\"t" + id +
               "\"},\"valueQuantity\":{\"value\":" + id + ".5,\"unit\":\"mg\"}}\n";
    }
    if (i == 7000 || i == 15000) {  // longer than a chunk: validated by the owner
      std::string text(100 << 10, 'a');
      s += "{\"resourceType\":\"Patient\",\"id\":\"long" + id + "\",\"gender\":\"" +
           (i == 7000 ? "male" : "bad") +
           "\",\"text\":{\"status\":\"generated\",\"div\":\"<div "
           "xmlns=\\\"http://www.w3.org/1999/xhtml\\\">" +
           text + "</div>\"}}\n";
    }
    if (i == 11000)
      s += "{\"resourceType\":\"Patient\",\"id\":\"" + std::string(max_line, 'z') + "\"}\n";
  }
  return s;
}

struct Spooled {
  pipeline::SpoolResult res;
  std::string import, rejected, report, line_map;
};

Spooled spool_src(const test::TempDir& dir, const std::string& sub,
                  const std::filesystem::path& src,
                  const std::shared_ptr<const fhir::Validator>& validator, pipeline::PoolHelp* help,
                  const std::function<void(pipeline::SpoolJob&)>& tune = {}) {
  pipeline::SpoolJob job;
  job.spool_dir = dir / sub;
  job.export_name = "e1";
  job.file_name = "Mixed.ndjson";
  job.source = {"Mixed.ndjson", src, *watch::identity_of(src)};
  job.validator = validator;
  job.part_size = 1u << 20;
  job.fsync = false;
  job.help = help;
  if (tune) tune(job);
  Spooled out;
  out.res = pipeline::spool_file(job);
  if (!out.res.ok) return out;
  auto frames = [](const std::filesystem::path& p) {
    auto f = spool::SpoolFile::open(p);
    std::string all, one;
    for (std::size_t n = 0; n < f.frame_count(); ++n) {
      f.read_frame(n, one);
      all += one;
    }
    return all;
  };
  out.import = frames(spool::import_path(job.spool_dir, "e1", "Mixed.ndjson"));
  if (!out.res.rejected_file.empty()) out.rejected = frames(out.res.rejected_file);
  out.report = slurp(out.res.report_fragment);
  if (!out.res.line_map.empty()) out.line_map = slurp(out.res.line_map);
  return out;
}

TEST(Spooler, IdleWorkersValidateOneFileWithItsOwnerAndTheSpoolIsTheSameBytes) {
  test::TempDir dir("fe-spooler");
  fhir::Options fo;
  fo.level = fhir::Level::structure_only;
  fhir::LoadReport lr;
  std::shared_ptr<const fhir::Validator> validator = fhir::Validator::create(fo, lr);
  ASSERT_TRUE(validator);
  const auto src = dir / "Mixed.ndjson";
  { std::ofstream(src, std::ios::binary) << mixed_source(validator->options().max_line_bytes); }

  const auto alone = spool_src(dir, "alone", src, validator, nullptr);
  ASSERT_TRUE(alone.res.ok) << alone.res.error;
  EXPECT_EQ(alone.res.lines_helped, 0);

  boost::asio::thread_pool pool(3);
  // A pool of 4 on 8 cores, as on a bigger gateway: the owner's job, three helpers.
  pipeline::PoolHelp help([&](std::function<void()> t) { boost::asio::post(pool, std::move(t)); },
                          4, 8);
  help.job_posted(pipeline::PoolHelp::Job::spool);  // the owner's own job, as the ingest counts it
  const auto helped = spool_src(dir, "helped", src, validator, &help);
  help.job_done(pipeline::PoolHelp::Job::spool);
  pool.join();
  ASSERT_TRUE(helped.res.ok) << helped.res.error;

  // Helpers validated a real share of the lines (three idle threads for one owner).
  const std::int64_t lines = helped.res.valid + helped.res.rejected + helped.res.blank;
  EXPECT_GT(helped.res.lines_helped, lines / 4) << lines;
  EXPECT_LT(helped.res.lines_helped, lines);

  // What was counted and kept is the same, byte for byte.
  EXPECT_GT(alone.res.valid, 20000);
  int bad = 2;  // the long invalid line and the over-long one
  for (int i = 0; i < 24000; ++i) bad += i % 97 == 5 || i % 97 == 17 || i % 97 == 41;
  EXPECT_EQ(alone.res.rejected, bad);
  EXPECT_EQ(helped.res.valid, alone.res.valid);
  EXPECT_EQ(helped.res.rejected, alone.res.rejected);
  EXPECT_EQ(helped.res.blank, alone.res.blank);
  EXPECT_EQ(helped.res.line_anchors, alone.res.line_anchors);
  EXPECT_EQ(helped.res.crc32c, alone.res.crc32c);
  EXPECT_EQ(helped.res.bytes_uncompressed, alone.res.bytes_uncompressed);
  ASSERT_EQ(helped.res.import_parts.size(), alone.res.import_parts.size());
  for (std::size_t i = 0; i < alone.res.import_parts.size(); ++i) {
    EXPECT_EQ(helped.res.import_parts[i].offset, alone.res.import_parts[i].offset) << i;
    EXPECT_EQ(helped.res.import_parts[i].length, alone.res.import_parts[i].length) << i;
    EXPECT_EQ(helped.res.import_parts[i].crc32c, alone.res.import_parts[i].crc32c) << i;
  }
  EXPECT_GE(alone.res.import_parts.size(), 4u);
  EXPECT_EQ(helped.import, alone.import);
  EXPECT_EQ(helped.rejected, alone.rejected);
  EXPECT_FALSE(alone.line_map.empty());
  EXPECT_EQ(helped.line_map, alone.line_map);
  EXPECT_EQ(helped.report, alone.report);
  // The report names the long invalid line and the over-long one, in file order.
  const auto long_bad = alone.report.find("\"id\":\"long15000\"");
  EXPECT_NE(long_bad, std::string::npos);
  EXPECT_NE(alone.report.find("exceeds the line size limit"), std::string::npos);
  EXPECT_LT(alone.report.find("exceeds the line size limit"), long_bad);
}

TEST(Spooler, PoolHelpLendsOnlyPoolThreadsAndCoresNobodyUses) {
  std::vector<std::function<void()>> tasks;
  auto post = [&](std::function<void()> t) { tasks.push_back(std::move(t)); };
  using Job = pipeline::PoolHelp::Job;
  std::atomic<int> ran{0};
  {
    // 2 cores: a spooling file keeps both busy (its worker and its compressor): no helper, even
    // with a pool thread free.
    pipeline::PoolHelp help(post, 2, 2);
    EXPECT_EQ(help.idle(), 2);
    help.job_posted(Job::spool);
    EXPECT_EQ(help.idle(), 0);
    EXPECT_EQ(help.lend(3, [&] { ++ran; }), 0);
    help.job_done(Job::spool);
  }
  EXPECT_TRUE(tasks.empty());
  {
    // 4 cores, a pool of 2: one spooling file leaves one thread (and two cores) free.
    pipeline::PoolHelp help(post, 2, 4);
    help.job_posted(Job::spool);
    EXPECT_EQ(help.idle(), 1);
    EXPECT_EQ(help.lend(3, [&] { ++ran; }), 1);  // reserved for its task until it ends
    EXPECT_EQ(help.idle(), 0);
    EXPECT_EQ(help.lend(1, [&] { ++ran; }), 0);
    ASSERT_EQ(tasks.size(), 1u);
    tasks.front()();  // the task runs and gives its thread back
    EXPECT_EQ(ran.load(), 1);
    EXPECT_EQ(help.idle(), 1);
    help.job_posted(Job::digest);  // both threads have a job: nobody is asked
    EXPECT_EQ(help.idle(), 0);
    EXPECT_EQ(help.lend(2, [&] { ++ran; }), 0);
    help.job_done(Job::digest);
    help.job_done(Job::spool);
    EXPECT_EQ(help.idle(), 2);
  }
  {
    // 8 cores, a pool of 8: two spooling files use four cores; at most four helpers.
    pipeline::PoolHelp help(post, 8, 8);
    help.job_posted(Job::spool);
    help.job_posted(Job::spool);
    EXPECT_EQ(help.lend(10, [&] { ++ran; }), 4);
  }
}

}  // namespace
}  // namespace fe

namespace fe {
namespace {

std::shared_ptr<const fhir::Validator> structure_only() {
  fhir::Options fo;
  fo.level = fhir::Level::structure_only;
  fhir::LoadReport lr;
  return fhir::Validator::create(fo, lr);
}

void gzip_file(const std::filesystem::path& from, const std::filesystem::path& to) {
  const std::string data = slurp(from);
  gzFile gz = gzopen(to.c_str(), "wb");
  ASSERT_NE(gz, nullptr);
  ASSERT_EQ(gzwrite(gz, data.data(), static_cast<unsigned>(data.size())),
            static_cast<int>(data.size()));
  gzclose(gz);
}

}  // namespace

// An export taken before its digest (docs/pipeline.md "One pass"): the spool pass hashes the
// file's content digest from its own read, the same as journal::file_digest of the file: with
// invalid, blank, CRLF and over-long lines, with helpers, and of a gzip source's raw bytes.
TEST(Spooler, TheSpoolPassHashesTheSourcesContentDigest) {
  test::TempDir dir("fe-spooler");
  auto validator = structure_only();
  ASSERT_TRUE(validator);
  const auto src = dir / "Mixed.ndjson";
  { std::ofstream(src, std::ios::binary) << mixed_source(validator->options().max_line_bytes); }
  const auto want = journal::file_digest(src);
  auto hash = [](pipeline::SpoolJob& j) { j.digest_source = true; };

  const auto plain = spool_src(dir, "plain", src, validator, nullptr, hash);
  ASSERT_TRUE(plain.res.ok) << plain.res.error;
  ASSERT_TRUE(plain.res.digest);
  EXPECT_EQ(plain.res.digest->root, want.root);
  EXPECT_EQ(plain.res.digest->size, want.size);
  EXPECT_EQ(*plain.res.digest->pieces, *want.pieces);
  // Not asked: nothing hashed.
  EXPECT_FALSE(spool_src(dir, "not", src, validator, nullptr).res.digest);

  boost::asio::thread_pool pool(3);
  pipeline::PoolHelp help([&](std::function<void()> t) { boost::asio::post(pool, std::move(t)); },
                          4, 8);
  help.job_posted(pipeline::PoolHelp::Job::spool);
  const auto helped = spool_src(dir, "helped", src, validator, &help, hash);
  help.job_done(pipeline::PoolHelp::Job::spool);
  pool.join();
  ASSERT_TRUE(helped.res.ok) << helped.res.error;
  EXPECT_GT(helped.res.lines_helped, 0);
  ASSERT_TRUE(helped.res.digest);
  EXPECT_EQ(helped.res.digest->root, want.root);
  EXPECT_EQ(helped.import, plain.import);

  // A gzip source: the digest is of the file's bytes, not of the NDJSON it holds.
  const auto gz = dir / "Mixed.ndjson.gz";
  gzip_file(src, gz);
  const auto zipped = spool_src(dir, "gz", gz, validator, nullptr, hash);
  ASSERT_TRUE(zipped.res.ok) << zipped.res.error;
  ASSERT_TRUE(zipped.res.digest);
  const auto want_gz = journal::file_digest(gz);
  EXPECT_EQ(zipped.res.digest->root, want_gz.root);
  EXPECT_EQ(zipped.res.digest->size, std::filesystem::file_size(gz));
  EXPECT_EQ(zipped.import, plain.import);

  // on_invalid fail-export stops at the first invalid line, and still reads the rest for the
  // digest (an identical re-delivery is then recognised as the failed export).
  const auto failed = spool_src(dir, "fail", src, validator, nullptr, [](pipeline::SpoolJob& j) {
    j.digest_source = true;
    j.on_invalid = config::OnInvalid::fail_export;
  });
  EXPECT_TRUE(failed.res.fail_export);
  ASSERT_TRUE(failed.res.digest);
  EXPECT_EQ(failed.res.digest->root, want.root);
  EXPECT_EQ(failed.res.digest->size, want.size);
}

// Signed parts (frame_sha256) of a file taken before its digest: a frame that is a piece of the
// source verbatim is signed with the piece digest the pass has just hashed, and every frame's
// SHA-256 is that of its bytes.
TEST(Spooler, VerbatimPartsAreSignedWithThePiecesTheSpoolPassHashed) {
  test::TempDir dir("fe-spooler");
  auto validator = structure_only();
  ASSERT_TRUE(validator);
  const auto src = dir / "Patient.ndjson";
  {
    std::ofstream out(src, std::ios::binary);
    std::uint64_t n = 0;
    for (int i = 0; n < 2 * journal::kDigestPiece + 300000; ++i) {
      const std::string line = "{\"resourceType\":\"Patient\",\"id\":\"p" + std::to_string(i) +
                               "\",\"gender\":\"female\",\"name\":[{\"family\":\"F" +
                               std::to_string(i) + "\"}]}\n";
      out << line;
      n += line.size();
    }
  }
  const auto res = spool_src(dir, "signed", src, validator, nullptr, [](pipeline::SpoolJob& j) {
    j.digest_source = true;
    j.frame_sha256 = true;
    j.part_size = journal::kDigestPiece;
  });
  ASSERT_TRUE(res.res.ok) << res.res.error;
  ASSERT_TRUE(res.res.digest);
  const auto want = journal::file_digest(src);
  EXPECT_EQ(res.res.digest->root, want.root);
  ASSERT_EQ(res.import, slurp(src));  // verbatim: every frame is a piece
  auto f = spool::SpoolFile::open(spool::import_path(dir / "signed", "e1", "Mixed.ndjson"));
  const auto& frames = f.index().frames;
  ASSERT_EQ(frames.size(), 3u);
  for (std::size_t k = 0; k < frames.size(); ++k) {
    SCOPED_TRACE(k);
    const std::string_view bytes =
        std::string_view(res.import)
            .substr(frames[k].uncompressed_offset, frames[k].uncompressed_size);
    EXPECT_EQ(frames[k].sha256, fe::sha256_hex(bytes));
    EXPECT_EQ(frames[k].sha256, fe::to_hex((*want.pieces)[k]));
  }
}

}  // namespace fe
