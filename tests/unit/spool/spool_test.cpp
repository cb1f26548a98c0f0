// The spool against real files and real zstd in a temp directory.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <stdlib.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>
#include <zstd.h>

#include <csignal>
#include <cstring>

#include <fstream>
#include <future>
#include <mutex>
#include <random>
#include <thread>

#include <openssl/evp.h>

#include "common/hashing.hpp"
#include "spool/part_body.hpp"
#include "spool/spool.hpp"

#include "temp_dir.hpp"

namespace fs = std::filesystem;
using namespace fe::spool;

namespace {

using TempDir = fe::test::TempDir;

// NDJSON lines of varying length so frame boundaries fall inside lines.
std::string make_ndjson(size_t bytes, unsigned seed = 1) {
  std::mt19937 rng(seed);
  std::string out;
  for (int i = 0; out.size() < bytes; ++i) {
    out += "{\"resourceType\":\"Observation\",\"id\":\"obs-" + std::to_string(i) +
           "\",\"status\":\"final\",\"valueQuantity\":{\"value\":" + std::to_string(rng() % 1000) +
           "},\"note\":[{\"text\":\"" + std::string(rng() % 300, 'a' + static_cast<char>(i % 26)) +
           "\"}]}\n";
  }
  return out;
}

std::string random_bytes(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng());
  return s;
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), {}};
}

// Whole-file streaming decompression with plain libzstd: the archive copy as a user would read it.
std::string zstd_decompress_all(const std::string& compressed) {
  ZSTD_DCtx* d = ZSTD_createDCtx();
  std::string out;
  std::vector<char> buf(ZSTD_DStreamOutSize());
  ZSTD_inBuffer in{compressed.data(), compressed.size(), 0};
  while (in.pos < in.size) {
    ZSTD_outBuffer o{buf.data(), buf.size(), 0};
    size_t rc = ZSTD_decompressStream(d, &o, &in);
    if (ZSTD_isError(rc)) {
      ZSTD_freeDCtx(d);
      throw std::runtime_error(ZSTD_getErrorName(rc));
    }
    out.append(buf.data(), o.pos);
  }
  ZSTD_freeDCtx(d);
  return out;
}

}  // namespace

TEST(Spool, PartNIsFrameNAndFramesDecompressIndependently) {
  TempDir dir;
  const uint64_t part = 64 * 1024;
  std::string data = make_ndjson(5 * part + 12345);
  auto path = import_path(dir.path(), "exp1", "Observation.000.ndjson");
  EXPECT_EQ(path, dir.path() / "exp1" / "import" / "Observation.000.ndjson.zst");
  {
    SpoolWriter w(path, {.part_size = part, .zstd_level = 3});
    // Feed in uneven pieces, as a validator hands over lines.
    size_t pos = 0;
    std::mt19937 rng(7);
    while (pos < data.size()) {
      size_t n = std::min<size_t>(data.size() - pos, 1 + rng() % 5000);
      w.write(std::string_view(data).substr(pos, n));
      pos += n;
    }
    const auto& idx = w.finish();
    EXPECT_EQ(idx.frames.size(), 6u);
    EXPECT_EQ(idx.uncompressed_size, data.size());
  }
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
  auto f = SpoolFile::open(path);
  ASSERT_EQ(f.frame_count(), 6u);
  EXPECT_EQ(f.index().crc32c, fe::crc32c(data));
  std::string file = slurp(path);
  EXPECT_LT(file.size(), data.size() / 3) << "NDJSON should compress well";
  for (size_t n = 0; n < f.frame_count(); ++n) {
    const auto& fr = f.index().frames[n];
    std::string expect = data.substr(n * part, part);
    EXPECT_EQ(fr.uncompressed_offset, n * part);
    EXPECT_EQ(fr.uncompressed_size, expect.size());
    EXPECT_EQ(fr.crc32c, fe::crc32c(expect));
    // Through the reader.
    std::string got;
    f.read_frame(n, got);
    EXPECT_EQ(got, expect) << "frame " << n;
    // And with nothing but libzstd on the frame's bytes alone: frames are independent.
    std::string raw = file.substr(fr.compressed_offset, fr.compressed_size);
    EXPECT_EQ(ZSTD_findFrameCompressedSize(raw.data(), raw.size()), raw.size());
    EXPECT_EQ(ZSTD_getFrameContentSize(raw.data(), raw.size()) == ZSTD_CONTENTSIZE_ERROR, false);
    EXPECT_EQ(zstd_decompress_all(raw), expect) << "frame " << n;
  }
  // The archive copy (the .zst as is) decompresses to the whole content.
  EXPECT_EQ(zstd_decompress_all(file), data);
  // read_raw returns the exact archive bytes (for archive parts).
  std::string raw;
  f.read_raw(10, 1000, [&](std::span<const char> c) { raw.append(c.data(), c.size()); });
  EXPECT_EQ(raw, file.substr(10, 1000));
  EXPECT_NO_THROW(f.verify());
}

// The writer hands 256 KiB chunks to its compressor thread: frames that end inside a chunk, lines
// longer than a chunk and a part size that is no multiple of the chunk must still give frame N =
// exactly bytes [N * part, (N + 1) * part), each an independent zstd frame, in one file whose
// frames the index locates exactly.
TEST(Spool, ChunksHandedToTheCompressorKeepFramesExact) {
  TempDir dir;
  const uint64_t part = (1u << 20) + 13;
  std::string data;
  std::mt19937 rng(11);
  for (int i = 0; data.size() < 6 * part + 4321; ++i) {
    size_t len = i % 17 == 0 ? 600 * 1024 + rng() % 1000 : 1 + rng() % 3000;  // some > a chunk
    data += "{\"resourceType\":\"Binary\",\"id\":\"b" + std::to_string(i) + "\",\"data\":\"" +
            std::string(len, 'A' + static_cast<char>(i % 26)) + "\"}\n";
  }
  auto path = import_path(dir.path(), "chunks", "Binary.ndjson");
  {
    SpoolWriter w(path, {.part_size = part, .zstd_level = 1});
    size_t pos = 0;
    while (pos < data.size()) {  // one line per write, as the spooler does
      size_t nl = data.find('\n', pos);
      w.write(std::string_view(data).substr(pos, nl + 1 - pos));
      pos = nl + 1;
    }
    w.finish();
  }
  auto f = SpoolFile::open(path);
  const size_t frames = (data.size() + part - 1) / part;
  ASSERT_EQ(f.frame_count(), frames);
  std::string file = slurp(path);
  uint64_t expect_offset = 0;
  for (size_t n = 0; n < frames; ++n) {
    const auto& fr = f.index().frames[n];
    std::string expect = data.substr(n * part, part);
    EXPECT_EQ(fr.compressed_offset, expect_offset) << "frame " << n;
    expect_offset += fr.compressed_size;
    EXPECT_EQ(fr.crc32c, fe::crc32c(expect)) << "frame " << n;
    std::string raw = file.substr(fr.compressed_offset, fr.compressed_size);
    EXPECT_EQ(ZSTD_findFrameCompressedSize(raw.data(), raw.size()), raw.size()) << "frame " << n;
    EXPECT_EQ(zstd_decompress_all(raw), expect) << "frame " << n;
  }
  EXPECT_EQ(expect_offset, file.size());
  EXPECT_EQ(zstd_decompress_all(file), data);
}

// on_frame (per-part overlap, issue 13 item 5): each frame is reported in order as soon as it is
// in the .tmp file, with the same Frame the committed index has, and its bytes can be read back
// from the .tmp file right then (the upload streams them while the file is still spooling).
TEST(Spool, EachFrameIsReportedReadableFromTheTmpFileAsSoonAsItIsWritten) {
  TempDir dir;
  const uint64_t part = (1u << 20) + 7;
  std::string data;
  for (int i = 0; data.size() < 4 * part + 999; ++i)
    data += "{\"resourceType\":\"Basic\",\"id\":\"x" + std::to_string(i) + "\",\"n\":\"" +
            std::string(static_cast<size_t>(100 + i % 900), 'a' + static_cast<char>(i % 26)) +
            "\"}\n";
  auto path = import_path(dir.path(), "stream", "Basic.ndjson");
  auto tmp = path;
  tmp += ".tmp";
  std::mutex mu;
  std::vector<std::pair<size_t, Frame>> seen;
  std::vector<std::string> read_back;  // frame n decompressed from the .tmp file in the callback
  {
    WriterOptions wo{.part_size = part, .zstd_level = 1};
    wo.on_frame = [&](size_t n, const Frame& f) {
      std::string raw(f.compressed_size, '\0');
      int fd = ::open(tmp.c_str(), O_RDONLY);
      ssize_t got =
          fd < 0 ? -1
                 : ::pread(fd, raw.data(), raw.size(), static_cast<off_t>(f.compressed_offset));
      if (fd >= 0) ::close(fd);
      std::lock_guard lk(mu);
      seen.emplace_back(n, f);
      read_back.push_back(got == static_cast<ssize_t>(raw.size()) ? zstd_decompress_all(raw)
                                                                  : "<unreadable>");
    };
    SpoolWriter w(path, wo);
    size_t pos = 0;
    while (pos < data.size()) {
      size_t nl = data.find('\n', pos);
      w.write(std::string_view(data).substr(pos, nl + 1 - pos));
      pos = nl + 1;
    }
    w.finish();
  }
  auto f = SpoolFile::open(path);
  ASSERT_EQ(seen.size(), f.frame_count());
  ASSERT_EQ(f.frame_count(), 5u);
  for (size_t n = 0; n < seen.size(); ++n) {
    const Frame& got = seen[n].second;
    const Frame& idx = f.index().frames[n];
    EXPECT_EQ(seen[n].first, n);
    EXPECT_EQ(got.compressed_offset, idx.compressed_offset) << "frame " << n;
    EXPECT_EQ(got.compressed_size, idx.compressed_size) << "frame " << n;
    EXPECT_EQ(got.uncompressed_offset, idx.uncompressed_offset) << "frame " << n;
    EXPECT_EQ(got.uncompressed_size, idx.uncompressed_size) << "frame " << n;
    EXPECT_EQ(got.crc32c, idx.crc32c) << "frame " << n;
    EXPECT_EQ(got.sha256, idx.sha256) << "frame " << n;
    EXPECT_EQ(read_back[n], data.substr(n * part, part)) << "frame " << n;
  }
}

// Frame::source_offset (issue 13 item 2): a frame whose every write was verbatim and contiguous in
// the source knows where it sits there, also when a write runs over a frame boundary; a gap (a line
// not kept) or a write without an offset makes the frame not verbatim. Never in the index file.
TEST(Spool, FramesKnowWhereTheySitVerbatimInTheSource) {
  TempDir dir;
  const uint64_t part = 1000;
  std::vector<Frame> seen;
  std::mutex mu;
  WriterOptions wo{.part_size = part, .zstd_level = 1};
  wo.on_frame = [&](size_t, const Frame& f) {
    std::lock_guard lk(mu);
    seen.push_back(f);
  };
  auto path = import_path(dir.path(), "src", "Basic.ndjson");
  {
    SpoolWriter w(path, wo);
    const std::string line(300, 'x');  // 300 bytes each, source offsets 17, 317, 617, 917, ...
    int64_t src = 17;
    for (int i = 0; i < 4; ++i, src += 300) w.write(line, src);  // frame 0 = source [17, 1017)
    for (int i = 0; i < 3; ++i, src += 300) w.write(line, src);  // frame 1 = source [1017, ...)
    src += 50;                                                   // a line not kept: a gap
    for (int i = 0; i < 4; ++i, src += 300) w.write(line, src);  // frame 2 holds the gap
    w.write(line, -1);                                           // frame 3: a write not verbatim
    w.write(line, src + 300);
    w.finish();
  }
  ASSERT_EQ(seen.size(), 4u);
  EXPECT_EQ(seen[0].source_offset, 17);
  EXPECT_EQ(seen[1].source_offset, 1017);
  EXPECT_EQ(seen[2].source_offset, -1);
  EXPECT_EQ(seen[3].source_offset, -1);
  auto f = SpoolFile::open(path);
  for (const auto& fr : f.index().frames) EXPECT_EQ(fr.source_offset, -1);
}

namespace {
// A ByteStream over a string that counts how often it is read: the spool frame in the tests below.
struct CountingStream {
  std::shared_ptr<int> reads = std::make_shared<int>(0);
  ByteStream make(std::string bytes) {
    auto b = std::make_shared<std::string>(std::move(bytes));
    auto pos = std::make_shared<size_t>(0);
    ByteStream s;
    s.size = b->size();
    s.read = [b, pos, reads = reads](std::span<char> buf) -> std::ptrdiff_t {
      ++*reads;
      size_t n = std::min(buf.size(), b->size() - *pos);
      std::memcpy(buf.data(), b->data() + *pos, n);
      *pos += n;
      return static_cast<std::ptrdiff_t>(n);
    };
    s.rewind = [pos] {
      *pos = 0;
      return true;
    };
    return s;
  }
};

std::string read_all(ByteStream& s, size_t chunk = 4096) {
  std::string out;
  std::vector<char> buf(chunk);
  for (;;) {
    auto n = s.read(std::span<char>(buf.data(), buf.size()));
    if (n < 0) return out + "<error>";
    if (n == 0) return out;
    out.append(buf.data(), static_cast<size_t>(n));
  }
}

void set_mtime(const fs::path& p, const struct timespec& t) {
  struct timespec ts[2] = {t, t};
  ASSERT_EQ(::utimensat(AT_FDCWD, p.c_str(), ts, 0), 0);
}
}  // namespace

// spool::source_stream: a streamed part read back from the source file while it is the file taken,
// checked against the frame's CRC32C, and the spool frame (the fallback) in every other case.
TEST(Spool, APartIsReadFromTheUnchangedSourceAndFromTheSpoolOtherwise) {
  TempDir dir;
  const std::string head = "{\"skipped\":1}\n";
  const std::string body = make_ndjson(100000, 7);
  auto src = dir.path() / "Observation.ndjson";
  { std::ofstream(src, std::ios::binary) << head << body << "tail\n"; }
  Frame f;
  f.uncompressed_size = body.size();
  f.crc32c = fe::crc32c(body);
  f.source_offset = static_cast<int64_t>(head.size());
  auto taken = fe::identity_of(src);
  ASSERT_TRUE(taken);

  {  // Unchanged: the source's bytes, the fallback never read; a rewind reads them again.
    CountingStream spool;
    auto s = source_stream(src, *taken, f, spool.make(body));
    ASSERT_TRUE(s.read);
    EXPECT_EQ(s.size, body.size());
    EXPECT_EQ(read_all(s, 1000), body);
    ASSERT_TRUE(s.rewind());
    EXPECT_EQ(read_all(s), body);
    EXPECT_EQ(*spool.reads, 0);
  }
  {  // Not verbatim, or not the file taken: no source stream (the caller sends the frame).
    Frame nv = f;
    nv.source_offset = -1;
    EXPECT_FALSE(source_stream(src, *taken, nv, CountingStream().make(body)).read);
    auto other = *taken;
    other.mtime_ns += 1;
    EXPECT_FALSE(source_stream(src, other, f, CountingStream().make(body)).read);
    EXPECT_FALSE(source_stream(dir.path() / "gone", *taken, f, CountingStream().make(body)).read);
  }
  {  // Rewritten in place, same size, mtime put back: the CRC32C catches it before the last byte
     // is given; after the rewind, the part comes from the spool.
    CountingStream spool;
    auto s = source_stream(src, *taken, f, spool.make(body));
    ASSERT_TRUE(s.read);
    struct stat st;
    ASSERT_EQ(::stat(src.c_str(), &st), 0);
    {
      std::fstream io(src, std::ios::binary | std::ios::in | std::ios::out);
      io.seekp(static_cast<std::streamoff>(head.size() + 5000));
      io.put('#');
    }
    set_mtime(src, st.st_mtim);
    ASSERT_EQ(fe::identity_of(src), taken);
    std::string got = read_all(s);
    EXPECT_TRUE(got.ends_with("<error>"));
    EXPECT_LT(got.size() - 7, body.size());  // never the whole (wrong) part
    ASSERT_TRUE(s.rewind());
    EXPECT_EQ(read_all(s), body);
    EXPECT_GT(*spool.reads, 0);
  }
  {  // Modified (mtime) after the part was opened: the next rewind switches to the spool.
    { std::ofstream(src, std::ios::binary) << head << body << "tail\n"; }
    auto now = fe::identity_of(src);
    ASSERT_TRUE(now);
    CountingStream spool;
    auto s = source_stream(src, *now, f, spool.make(body));
    ASSERT_TRUE(s.read);
    struct timespec later = {static_cast<time_t>(now->mtime_ns / 1000000000) + 10, 0};
    set_mtime(src, later);
    ASSERT_TRUE(s.rewind());
    EXPECT_EQ(read_all(s), body);
    EXPECT_GT(*spool.reads, 0);
  }
}

// A write that fails on the compressor thread (here: the file size limit, EFBIG; the same path as
// a full disk) reaches the caller as an Error naming the file, the temporary file is removed and
// its bytes go back to the quota. Run in a child process, which may lower its own RLIMIT_FSIZE.
TEST(Spool, AWriteErrorOnTheCompressorThreadReachesTheCaller) {
  TempDir dir;
  auto path = import_path(dir.path(), "efbig", "Big.ndjson");
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    ::signal(SIGXFSZ, SIG_IGN);  // write() then fails with EFBIG instead of killing the process
    rlimit lim{64 * 1024, 64 * 1024};
    if (::setrlimit(RLIMIT_FSIZE, &lim) != 0) _exit(10);
    Quota quota(1 << 30);
    std::string data = random_bytes(2 << 20, 5);  // incompressible: ~2 MiB to write
    try {
      SpoolWriter w(path, {.part_size = 128 * 1024, .quota = &quota});
      w.write(data);
      w.finish();
      _exit(11);  // the error was lost
    } catch (const Error& e) {
      std::string what = e.what();
      std::fprintf(stderr, "caught: %s\n", what.c_str());
      if (what.find("File too large") == std::string::npos) _exit(12);
      if (what.find("Big.ndjson.zst.tmp") == std::string::npos) _exit(13);
    }
    if (fs::exists(path.string() + ".tmp")) _exit(14);
    if (quota.used() != 0) _exit(15);
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0) << "10: setrlimit, 11: no error, 12/13: message, 14: .tmp "
                                       "left, 15: quota not returned";
}

TEST(Spool, EmptyFileHasNoFrames) {
  TempDir dir;
  auto path = import_path(dir.path(), "e", "Empty.ndjson");
  {
    SpoolWriter w(path, {.part_size = 1024});
    w.finish();
  }
  auto f = SpoolFile::open(path);
  EXPECT_EQ(f.frame_count(), 0u);
  EXPECT_EQ(f.index().uncompressed_size, 0u);
}

TEST(Spool, ExactMultipleOfPartSizeHasNoEmptyTrailingFrame) {
  TempDir dir;
  auto path = import_path(dir.path(), "e", "X.ndjson");
  std::string data(3 * 4096, 'z');
  {
    SpoolWriter w(path, {.part_size = 4096});
    w.write(data);
    w.finish();
  }
  auto f = SpoolFile::open(path);
  EXPECT_EQ(f.frame_count(), 3u);
  std::string got;
  f.read_frame(2, got);
  EXPECT_EQ(got, std::string(4096, 'z'));
}

TEST(Spool, CrashMidWriteIsDetectedAndCleanedUp) {
  TempDir dir;
  auto path = import_path(dir.path(), "crash", "Patient.ndjson");
  // A child process writes part of a file and dies without finishing (no destructors run).
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    auto* w = new SpoolWriter(path, {.part_size = 4096});
    w->write(make_ndjson(20000));
    _exit(0);
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  ASSERT_TRUE(fs::exists(path.string() + ".tmp"));
  try {
    SpoolFile::open(path);
    FAIL() << "an unfinished spool file must not open";
  } catch (const Incomplete& e) {
    EXPECT_NE(std::string(e.what()).find("never finished"), std::string::npos) << e.what();
  }
  Quota q(1 << 30);
  q.set_used(disk_usage(dir.path()));
  auto removed = remove_partials(export_dir(dir.path(), "crash"), &q);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], fs::path(path.string() + ".tmp"));
  EXPECT_EQ(q.used(), 0u);
  // Redo: a new writer produces a good file.
  std::string data = make_ndjson(20000);
  {
    SpoolWriter w(path, {.part_size = 4096});
    w.write(data);
    w.finish();
  }
  std::string all;
  auto f = SpoolFile::open(path);
  for (size_t n = 0; n < f.frame_count(); ++n)
    f.read_frame(n, [&](std::span<const char> c) { all.append(c.data(), c.size()); });
  EXPECT_EQ(all, data);
}

TEST(Spool, TruncatedFileOrIndexIsIncomplete) {
  TempDir dir;
  auto path = import_path(dir.path(), "t", "A.ndjson");
  {
    SpoolWriter w(path, {.part_size = 8192});
    w.write(make_ndjson(50000));
    w.finish();
  }
  auto size = fs::file_size(path);
  fs::resize_file(path, size - 7);
  try {
    SpoolFile::open(path);
    FAIL() << "truncation must be detected";
  } catch (const Incomplete& e) {
    EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(path.string()), std::string::npos) << e.what();
  }
  // Index cut in half.
  auto idx = index_path(path);
  fs::resize_file(path, size);
  auto idx_size = fs::file_size(idx);
  fs::resize_file(idx, idx_size / 2);
  EXPECT_THROW(SpoolFile::open(path), Incomplete);
  fs::remove(idx);
  EXPECT_THROW(SpoolFile::open(path), Incomplete);
}

TEST(Spool, CorruptedFrameIsReportedNotReturned) {
  TempDir dir;
  auto path = import_path(dir.path(), "c", "A.ndjson");
  {
    SpoolWriter w(path, {.part_size = 8192});
    w.write(make_ndjson(40000));
    w.finish();
  }
  auto f0 = SpoolFile::open(path);
  auto fr = f0.index().frames[1];
  {
    std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
    f.seekp(static_cast<std::streamoff>(fr.compressed_offset + fr.compressed_size / 2));
    f.write("\xff\x00\xff\x00", 4);
  }
  auto f = SpoolFile::open(path);
  std::string got;
  EXPECT_NO_THROW(f.read_frame(0, got));  // other frames are unaffected
  EXPECT_THROW(f.read_frame(1, got), Error);
  EXPECT_THROW(f.verify(), Error);
}

TEST(Spool, QuotaBackPressureBlocksWritersUntilSpaceIsReleased) {
  TempDir dir;
  Quota quota(100 * 1024);
  std::promise<void> blocked;
  std::atomic<bool> signalled{false};
  quota.on_full([&] {
    if (!signalled.exchange(true)) blocked.set_value();
  });
  std::atomic<bool> done{false};
  auto path = import_path(dir.path(), "q", "Big.ndjson");
  // Incompressible data: compressed size ~ input, so 400 KiB overruns the 100 KiB quota.
  std::string data = random_bytes(400 * 1024, 3);
  std::thread writer([&] {
    SpoolWriter w(path, {.part_size = 32 * 1024, .quota = &quota});
    w.write(data);
    w.finish();
    done = true;
  });
  // Wait (generously) until the writer reports it is waiting for room.
  ASSERT_EQ(blocked.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready);
  EXPECT_FALSE(done.load()) << "a writer over the quota must wait";
  EXPECT_GE(quota.used(), quota.max_bytes());
  EXPECT_LT(quota.used(), quota.max_bytes() + 64 * 1024) << "overshoot is at most about a frame";
  // More room (retention freed space, or a reload raised max_bytes): the writer goes on.
  quota.set_max_bytes(1 << 30);
  writer.join();
  EXPECT_TRUE(done.load());
  auto f = SpoolFile::open(path);
  EXPECT_EQ(f.index().uncompressed_size, data.size());
}

TEST(Spool, ShutdownCancelsAWaitingWriterAndRemovesItsTemporaryFile) {
  TempDir dir;
  Quota quota(16 * 1024);
  std::promise<void> blocked;
  std::atomic<bool> signalled{false};
  quota.on_full([&] {
    if (!signalled.exchange(true)) blocked.set_value();
  });
  auto path = import_path(dir.path(), "q", "Big.ndjson");
  std::string data = random_bytes(200 * 1024, 4);
  std::atomic<bool> cancelled{false};
  std::thread writer([&] {
    try {
      SpoolWriter w(path, {.part_size = 8 * 1024, .quota = &quota});
      w.write(data);
      w.finish();
    } catch (const Cancelled&) {
      cancelled = true;
    }
  });
  ASSERT_EQ(blocked.get_future().wait_for(std::chrono::seconds(60)), std::future_status::ready);
  quota.shutdown();
  writer.join();
  EXPECT_TRUE(cancelled.load());
  EXPECT_FALSE(fs::exists(path.string() + ".tmp"));
  EXPECT_FALSE(fs::exists(path));
  EXPECT_EQ(quota.used(), 0u) << "an abandoned writer returns its bytes to the quota";
}

TEST(Spool, WriteDurableAndFsyncPaths) {
  TempDir dir;
  auto report = report_path(dir.path(), "e1");
  EXPECT_EQ(report, dir.path() / "e1" / "report.json");
  write_durable(report, "{\"rejected\":0}\n");
  EXPECT_EQ(slurp(report), "{\"rejected\":0}\n");
  EXPECT_FALSE(fs::exists(report.string() + ".tmp"));
  write_durable(report, "{\"rejected\":1}\n");  // replaces atomically
  EXPECT_EQ(slurp(report), "{\"rejected\":1}\n");
  EXPECT_NO_THROW(fsync_path(dir.path()));
  try {
    fsync_path(dir.path() / "missing");
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos);
  }
  // Rejected lines use the same framed format.
  auto rej = rejected_path(dir.path(), "e1", "Patient.ndjson");
  EXPECT_EQ(rej, dir.path() / "e1" / "rejected" / "Patient.ndjson.zst");
  {
    SpoolWriter w(rej, {.part_size = 1 << 20});
    w.write("{\"resourceType\":\"Nope\"}\n");
    w.finish();
  }
  std::string got;
  SpoolFile::open(rej).read_frame(0, got);
  EXPECT_EQ(got, "{\"resourceType\":\"Nope\"}\n");
}

TEST(Spool, DiskUsageAndRetention) {
  TempDir dir;
  for (const char* e : {"old-done", "old-live", "new-done"}) {
    SpoolWriter w(import_path(dir.path(), e, "A.ndjson"), {.part_size = 4096});
    w.write(random_bytes(10000, 9));
    w.finish();
  }
  uint64_t total = disk_usage(dir.path());
  uint64_t old_done = disk_usage(export_dir(dir.path(), "old-done"));
  EXPECT_GT(old_done, 10000u);
  EXPECT_EQ(total, old_done + disk_usage(export_dir(dir.path(), "old-live")) +
                       disk_usage(export_dir(dir.path(), "new-done")));
  auto past = fs::file_time_type::clock::now() - std::chrono::hours(48);
  for (const char* e : {"old-done", "old-live"})
    for (auto& f : fs::recursive_directory_iterator(export_dir(dir.path(), e)))
      fs::last_write_time(f.path(), past);
  for (const char* e : {"old-done", "old-live"})
    fs::last_write_time(export_dir(dir.path(), e), past);
  Quota q(1 << 30);
  q.set_used(total);
  auto removed = remove_expired(
      dir.path(), std::chrono::hours(24),
      [](const std::string& name) { return name.ends_with("-done"); }, &q);
  ASSERT_EQ(removed.size(), 1u);
  EXPECT_EQ(removed[0], "old-done");
  EXPECT_FALSE(fs::exists(export_dir(dir.path(), "old-done")));
  EXPECT_TRUE(fs::exists(export_dir(dir.path(), "old-live")));  // not finished: kept
  EXPECT_TRUE(fs::exists(export_dir(dir.path(), "new-done")));  // too young: kept
  EXPECT_EQ(q.used(), total - old_done);
}

TEST(Spool, FrameIndexRoundTripAndMalformedIndex) {
  FrameIndex idx;
  idx.part_size = 10;
  idx.frames = {{0, 5, 0, 10, 0xdeadbeef, ""}, {5, 4, 10, 3, 0x1, ""}};
  idx.compressed_size = 9;
  idx.uncompressed_size = 13;
  idx.crc32c = 0xabcdef01;
  auto back = FrameIndex::parse(idx.serialize(), "x.idx");
  EXPECT_EQ(back.frames.size(), 2u);
  EXPECT_EQ(back.frames[0].crc32c, 0xdeadbeefu);
  EXPECT_EQ(back.crc32c, 0xabcdef01u);
  EXPECT_EQ(back.serialize(), idx.serialize());
  auto text = idx.serialize();
  auto gap = text;
  gap.replace(gap.find("frame 5 4"), 9, "frame 6 3");
  EXPECT_THROW(FrameIndex::parse(gap, "x.idx"), Incomplete);
  EXPECT_THROW(FrameIndex::parse("garbage\n", "x.idx"), Incomplete);
}

TEST(Spool, NamesCannotEscapeTheSpoolDir) {
  EXPECT_THROW(export_dir("/spool", ".."), Error);
  EXPECT_THROW(import_path("/spool", "e", "../x.ndjson"), Error);
  EXPECT_THROW(rejected_path("/spool", "a/b", "x.ndjson"), Error);
  EXPECT_EQ(import_path("/spool", "e.v2", "P.ndjson"), fs::path("/spool/e.v2/import/P.ndjson.zst"));
}

TEST(Spool, QuotaSignalsWhenAFullSpoolHasRoomAgain) {
  Quota q(1000);
  int rooms = 0;
  q.on_room([&] { ++rooms; });
  q.add(600);
  q.release(100);  // was not full: no signal
  EXPECT_EQ(rooms, 0);
  q.add(600);  // 1100: full
  EXPECT_TRUE(q.full());
  EXPECT_FALSE(q.wait_for_room(std::chrono::milliseconds(1)));
  q.release(50);  // 1050: still full
  EXPECT_EQ(rooms, 0);
  q.release(100);  // 950: room
  EXPECT_EQ(rooms, 1);
  EXPECT_FALSE(q.full());
  EXPECT_TRUE(q.wait_for_room(std::chrono::milliseconds(1)));
  q.add(100);
  q.set_max_bytes(2000);  // a reload raising the limit also signals
  EXPECT_EQ(rooms, 2);
}

TEST(Spool, RedoInvalidatesThePreviousCopyUntilItIsFinished) {
  TempDir dir;
  auto path = import_path(dir.path(), "r", "A.ndjson");
  {
    SpoolWriter w(path, {.part_size = 4096});
    w.write(make_ndjson(10000, 1));
    w.finish();
  }
  EXPECT_NO_THROW(SpoolFile::open(path));
  {
    // A redo starts and is abandoned (crash or error): the old copy must not pass as current.
    SpoolWriter w(path, {.part_size = 4096});
    w.write(make_ndjson(5000, 2));
  }
  EXPECT_THROW(SpoolFile::open(path), Incomplete);
  std::string data = make_ndjson(7000, 3);
  {
    SpoolWriter w(path, {.part_size = 4096});
    w.write(data);
    w.finish();
  }
  auto f = SpoolFile::open(path);
  EXPECT_EQ(f.index().uncompressed_size, data.size());
}

// Each frame's SHA-256 (the part's signed payload hash) is recorded in the index as it is written,
// equals an independent hash of the frame's bytes, and survives the index round trip. Indexes
// without it (written by an older version) still parse, with an empty hash.
TEST(Spool, FrameSha256IsRecordedAndParsed) {
  TempDir dir;
  const uint64_t part = 32 * 1024;
  std::string data = make_ndjson(3 * part + 777, 5);
  auto path = import_path(dir.path(), "e", "F.ndjson");
  {
    SpoolWriter w(path, {.part_size = part, .zstd_level = 1});
    w.write(data);
    w.finish();
  }
  auto f = SpoolFile::open(path);
  ASSERT_EQ(f.frame_count(), 4u);
  for (size_t n = 0; n < f.frame_count(); ++n)
    EXPECT_EQ(f.index().frames[n].sha256,
              fe::sha256_hex(std::string_view(data).substr(n * part, part)))
        << "frame " << n;
  auto text = f.index().serialize();
  EXPECT_EQ(FrameIndex::parse(text, "x.idx").serialize(), text);
  // Old format: no hash column.
  FrameIndex old = f.index();
  for (auto& fr : old.frames) fr.sha256.clear();
  auto parsed = FrameIndex::parse(old.serialize(), "old.idx");
  EXPECT_TRUE(parsed.frames[0].sha256.empty());
  // A damaged hash column is an incomplete index, not a silently wrong hash.
  auto bad = text;
  bad.replace(bad.find(f.index().frames[1].sha256), 3, "xyz");
  EXPECT_THROW(FrameIndex::parse(bad, "bad.idx"), Incomplete);
}

// WriterOptions::source_pieces (issue 13 item 4): a frame that is piece k of the source verbatim
// takes the digest the content digest computed for it, and its bytes are not hashed again. To show
// that the given digest is taken, not recomputed, piece 1's is a wrong one on purpose: the frame
// index records it as given (S3 would refuse such a part; the pipeline hands over only digests
// of the very file it spools).
TEST(Spool, AFrameThatIsAPieceOfTheSourceTakesThePiecesDigest) {
  TempDir dir;
  const uint64_t part = 32 * 1024;
  const std::string data = make_ndjson(3 * part + 777, 9);
  auto piece = [&](size_t k) { return std::string_view(data).substr(k * part, part); };
  std::vector<fe::Sha256Digest> pieces;
  for (size_t k = 0; k < 4; ++k) pieces.push_back(fe::sha256(piece(k)));
  pieces[1].fill(0xab);
  auto path = import_path(dir.path(), "e", "F.ndjson");
  {
    SpoolWriter w(path, {.part_size = part,
                         .source_pieces = std::make_shared<std::vector<fe::Sha256Digest>>(pieces),
                         .source_size = data.size()});
    w.write(data, 0);  // verbatim from byte 0 of the source
    w.finish();
  }
  auto f = SpoolFile::open(path);
  ASSERT_EQ(f.frame_count(), 4u);
  EXPECT_EQ(f.index().frames[0].sha256, fe::sha256_hex(piece(0)));
  EXPECT_EQ(f.index().frames[1].sha256, fe::to_hex(pieces[1]));
  EXPECT_NE(f.index().frames[1].sha256, fe::sha256_hex(piece(1)));
  EXPECT_EQ(f.index().frames[3].sha256, fe::sha256_hex(piece(3)));  // the short last piece
  // The bytes and their CRC32C are the data's, whatever digest was given.
  std::string frame1;
  f.read_frame(1, frame1);
  EXPECT_EQ(frame1, piece(1));
  EXPECT_EQ(f.index().frames[1].crc32c, fe::crc32c(piece(1)));
}

// A frame not exactly a piece is hashed from its bytes, never given a piece's digest:
// - a frame that starts at a piece but loses a line on the way (a gap: not the piece) gets no
//   digest at all (its bytes went by unhashed; the upload hashes that part itself);
// - the frames after the gap start off the piece grid and are hashed as they are written;
// - a last frame shorter than the last piece (bytes at the end of the source not kept) gets none;
// - with frame_sha256 false nothing is hashed or given.
// Every digest given here is a wrong one on purpose, so any use of one would show.
TEST(Spool, AFrameThatIsNotExactlyAPieceIsNeverGivenItsDigest) {
  TempDir dir;
  const uint64_t part = 32 * 1024;
  const std::string data = make_ndjson(4 * part, 11);
  auto wrong = std::make_shared<std::vector<fe::Sha256Digest>>(8);
  for (auto& d : *wrong) d.fill(0xcd);
  const std::string wrong_hex = fe::to_hex((*wrong)[0]);
  // Source = data with 100 bytes dropped at 1000 (a line not kept); the rest written verbatim.
  {
    auto path = import_path(dir.path(), "gap", "F.ndjson");
    SpoolWriter w(path, {.part_size = part, .source_pieces = wrong, .source_size = data.size()});
    w.write(std::string_view(data).substr(0, 1000), 0);
    w.write(std::string_view(data).substr(1100), 1100);
    const auto& idx = w.finish();
    ASSERT_EQ(idx.frames.size(), 4u);
    std::string kept = data.substr(0, 1000) + data.substr(1100);
    EXPECT_EQ(idx.frames[0].sha256, "");  // began at piece 0, then the gap
    for (size_t n = 1; n < 4; ++n) {
      EXPECT_EQ(idx.frames[n].sha256, fe::sha256_hex(std::string_view(kept).substr(n * part, part)))
          << "frame " << n;
      EXPECT_NE(idx.frames[n].sha256, wrong_hex);
    }
  }
  // The source is 10 bytes longer than what is written (a trailing blank line not kept): the
  // last frame is not the last piece.
  {
    auto path = import_path(dir.path(), "short", "F.ndjson");
    SpoolWriter w(path,
                  {.part_size = part, .source_pieces = wrong, .source_size = data.size() - 100});
    w.write(std::string_view(data).substr(0, data.size() - 110), 0);
    const auto& idx = w.finish();
    ASSERT_EQ(idx.frames.size(), 4u);
    EXPECT_EQ(idx.frames[0].sha256, wrong_hex);
    EXPECT_EQ(idx.frames[3].sha256, "");
  }
  // Not verbatim at all (source_offset -1, e.g. a gzip source): hashed, nothing given.
  {
    auto path = import_path(dir.path(), "copy", "F.ndjson");
    SpoolWriter w(path, {.part_size = part, .source_pieces = wrong, .source_size = data.size()});
    w.write(data);
    const auto& idx = w.finish();
    for (size_t n = 0; n < idx.frames.size(); ++n)
      EXPECT_EQ(idx.frames[n].sha256,
                fe::sha256_hex(std::string_view(data).substr(n * part, part)));
  }
  // frame_sha256 false (the parts go unsigned): no digest, given or computed.
  {
    auto path = import_path(dir.path(), "unsigned", "F.ndjson");
    SpoolWriter w(path, {.part_size = part,
                         .frame_sha256 = false,
                         .source_pieces = wrong,
                         .source_size = data.size()});
    w.write(data, 0);
    for (const auto& fr : w.finish().frames) EXPECT_EQ(fr.sha256, "");
  }
}
