#include "spool/spool.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <charconv>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "common/hashing.hpp"

namespace fe::spool {
namespace fs = std::filesystem;

namespace {

std::string sys_error(std::string_view what, const fs::path& p) {
  return std::string(what) + " " + p.string() + ": " + std::strerror(errno);
}

void write_all(int fd, const void* data, size_t size, const fs::path& p) {
  auto* c = static_cast<const char*>(data);
  while (size > 0) {
    ssize_t n = ::write(fd, c, size);
    if (n < 0) {
      if (errno == EINTR) continue;
      throw Error(sys_error("spool: cannot write", p));
    }
    c += n;
    size -= static_cast<size_t>(n);
  }
}

// Writes a file completely and fsyncs it (no rename).
void write_synced(const fs::path& p, std::string_view content, bool sync) {
  int fd = ::open(p.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
  if (fd < 0) throw Error(sys_error("spool: cannot create", p));
  try {
    write_all(fd, content.data(), content.size(), p);
    if (sync && ::fsync(fd) != 0) throw Error(sys_error("spool: cannot fsync", p));
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
}

std::string read_small(const fs::path& p) {
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) throw Error(sys_error("spool: cannot open", p));
  std::string out;
  char buf[8192];
  for (;;) {
    ssize_t n = ::read(fd, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) {
      int e = errno;
      ::close(fd);
      errno = e;
      throw Error(sys_error("spool: cannot read", p));
    }
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
    if (out.size() > (64u << 20)) {
      ::close(fd);
      throw Error("spool: index " + p.string() + " is unreasonably large");
    }
  }
  ::close(fd);
  return out;
}

struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
struct DCtxDeleter {
  void operator()(ZSTD_DCtx* c) const { ZSTD_freeDCtx(c); }
};

bool is_hex_sha256(std::string_view s) {
  if (s.size() != 64) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

template <typename T>
bool parse_num(std::string_view s, T& out, int base = 10) {
  auto r = std::from_chars(s.data(), s.data() + s.size(), out, base);
  return r.ec == std::errc() && r.ptr == s.data() + s.size();
}

}  // namespace

// ------------------------------------------------------------------ FrameIndex

std::string FrameIndex::serialize() const {
  std::string out = "fhir-edge-spool-index 1\n";
  out += "part_size=" + std::to_string(part_size) + "\n";
  out += "uncompressed_size=" + std::to_string(uncompressed_size) + "\n";
  out += "compressed_size=" + std::to_string(compressed_size) + "\n";
  char buf[160];
  std::snprintf(buf, sizeof buf, "crc32c=%08x\n", crc32c);
  out += buf;
  out += "frames=" + std::to_string(frames.size()) + "\n";
  for (const auto& f : frames) {
    std::snprintf(buf, sizeof buf, "frame %llu %llu %llu %llu %08x",
                  static_cast<unsigned long long>(f.compressed_offset),
                  static_cast<unsigned long long>(f.compressed_size),
                  static_cast<unsigned long long>(f.uncompressed_offset),
                  static_cast<unsigned long long>(f.uncompressed_size), f.crc32c);
    out += buf;
    if (!f.sha256.empty()) {
      out += ' ';
      out += f.sha256;
    }
    out += '\n';
  }
  out += "end\n";
  return out;
}

FrameIndex FrameIndex::parse(std::string_view text, const fs::path& where) {
  FrameIndex idx;
  size_t line_no = 0;
  size_t declared = 0;
  bool header = false, end = false;
  auto bad = [&](const std::string& why) {
    return Incomplete("spool index " + where.string() + " line " + std::to_string(line_no) + ": " +
                      why);
  };
  while (!text.empty()) {
    size_t nl = text.find('\n');
    if (nl == std::string_view::npos) throw bad("truncated (no final newline)");
    std::string_view line = text.substr(0, nl);
    text.remove_prefix(nl + 1);
    ++line_no;
    if (!header) {
      if (line != "fhir-edge-spool-index 1") throw bad("not a fhir-edge spool index (version 1)");
      header = true;
      continue;
    }
    if (end) throw bad("data after 'end'");
    if (line == "end") {
      end = true;
      continue;
    }
    if (line.starts_with("frame ")) {
      Frame f;
      std::string_view rest = line.substr(6);
      std::string_view fields[5];
      for (int i = 0; i < 5; ++i) {
        size_t sp = rest.find(' ');
        fields[i] = rest.substr(0, sp);
        rest = sp == std::string_view::npos ? std::string_view{} : rest.substr(sp + 1);
      }
      if (!parse_num(fields[0], f.compressed_offset) || !parse_num(fields[1], f.compressed_size) ||
          !parse_num(fields[2], f.uncompressed_offset) ||
          !parse_num(fields[3], f.uncompressed_size) || !parse_num(fields[4], f.crc32c, 16) ||
          (!rest.empty() && !is_hex_sha256(rest)))
        throw bad("malformed frame line");
      f.sha256 = std::string(rest);
      idx.frames.push_back(f);
      continue;
    }
    size_t eq = line.find('=');
    if (eq == std::string_view::npos) throw bad("expected key=value");
    auto key = line.substr(0, eq), value = line.substr(eq + 1);
    bool ok = true;
    if (key == "part_size")
      ok = parse_num(value, idx.part_size);
    else if (key == "uncompressed_size")
      ok = parse_num(value, idx.uncompressed_size);
    else if (key == "compressed_size")
      ok = parse_num(value, idx.compressed_size);
    else if (key == "crc32c")
      ok = parse_num(value, idx.crc32c, 16);
    else if (key == "frames")
      ok = parse_num(value, declared);
    if (!ok) throw bad("bad value for " + std::string(key));
  }
  if (!end) throw bad("truncated (no 'end' line)");
  if (declared != idx.frames.size()) throw bad("frame count does not match");
  // Frames must tile both the compressed file and the uncompressed content.
  uint64_t c = 0, u = 0;
  for (size_t i = 0; i < idx.frames.size(); ++i) {
    const auto& f = idx.frames[i];
    if (f.compressed_offset != c || f.uncompressed_offset != u)
      throw Incomplete("spool index " + where.string() + ": frame " + std::to_string(i) +
                       " does not follow the previous one");
    c += f.compressed_size;
    u += f.uncompressed_size;
  }
  if (c != idx.compressed_size || u != idx.uncompressed_size)
    throw Incomplete("spool index " + where.string() + ": frame sizes do not add up");
  return idx;
}

// ------------------------------------------------------------------ Quota

uint64_t Quota::max_bytes() const {
  std::lock_guard l(mu_);
  return max_;
}
// Runs `change` under the lock; when it turned a full quota into one with room, calls on_room
// (outside the lock) and wakes waiting writers.
template <typename F>
void Quota::update(F&& change) {
  std::function<void()> cb;
  {
    std::lock_guard l(mu_);
    bool was_full = used_ >= max_;
    change();
    if (was_full && used_ < max_) cb = on_room_;
  }
  cv_.notify_all();
  if (cb) cb();
}
void Quota::set_max_bytes(uint64_t max) {
  update([&] { max_ = max; });
}
uint64_t Quota::used() const {
  std::lock_guard l(mu_);
  return used_;
}
bool Quota::full() const {
  std::lock_guard l(mu_);
  return used_ >= max_;
}
void Quota::set_used(uint64_t bytes) {
  update([&] { used_ = bytes; });
}
void Quota::add(uint64_t bytes) {
  std::lock_guard l(mu_);
  used_ += bytes;
}
void Quota::release(uint64_t bytes) {
  update([&] { used_ = bytes > used_ ? 0 : used_ - bytes; });
}
void Quota::on_room(std::function<void()> f) {
  std::lock_guard l(mu_);
  on_room_ = std::move(f);
}
void Quota::shutdown() {
  {
    std::lock_guard l(mu_);
    shutdown_ = true;
  }
  cv_.notify_all();
}
void Quota::on_full(std::function<void()> f) {
  std::lock_guard l(mu_);
  on_full_ = std::move(f);
}
bool Quota::wait_for_room(std::chrono::milliseconds timeout) {
  std::unique_lock l(mu_);
  if (shutdown_) throw Cancelled("spool: stopping while waiting for spool space");
  if (used_ < max_) return true;
  if (auto cb = on_full_) {
    l.unlock();
    cb();
    l.lock();
  }
  bool ok = cv_.wait_for(l, timeout, [&] { return shutdown_ || used_ < max_; });
  if (shutdown_) throw Cancelled("spool: stopping while waiting for spool space");
  return ok;
}

// ------------------------------------------------------------------ paths and helpers

uint64_t disk_usage(const fs::path& dir) {
  std::error_code ec;
  uint64_t total = 0;
  if (!fs::is_directory(fs::symlink_status(dir, ec))) return 0;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    std::error_code ec2;
    if (fs::is_regular_file(it->symlink_status(ec2))) {
      auto n = fs::file_size(it->path(), ec2);
      if (!ec2) total += n;
    }
  }
  return total;
}

void fsync_path(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) throw Error(sys_error("spool: cannot open for fsync", path));
  int rc = ::fsync(fd);
  int e = errno;
  ::close(fd);
  errno = e;
  if (rc != 0) throw Error(sys_error("spool: cannot fsync", path));
}

void write_durable(const fs::path& given, std::string_view content) {
  fs::path path = given.has_parent_path() ? given : fs::path(".") / given;
  fs::create_directories(path.parent_path());
  auto tmp = path;
  tmp += ".tmp";
  write_synced(tmp, content, true);
  fs::rename(tmp, path);
  fsync_path(path.parent_path());
}

namespace {
// Export and file names become path components under the spool dir: never let one escape it.
std::string component(std::string_view name, const char* what) {
  bool bad = name.empty() || name == "." || name == ".." ||
             name.find('/') != std::string_view::npos || name.find('\0') != std::string_view::npos;
  if (bad)
    throw Error(std::string("spool: unusable ") + what + " name '" + std::string(name) + "'");
  return std::string(name);
}
}  // namespace

fs::path export_dir(const fs::path& spool_dir, std::string_view export_name) {
  return spool_dir / component(export_name, "export");
}
fs::path import_path(const fs::path& spool_dir, std::string_view export_name,
                     std::string_view file_name) {
  return export_dir(spool_dir, export_name) / "import" / (component(file_name, "file") + ".zst");
}
fs::path rejected_path(const fs::path& spool_dir, std::string_view export_name,
                       std::string_view file_name) {
  return export_dir(spool_dir, export_name) / "rejected" / (component(file_name, "file") + ".zst");
}
fs::path report_path(const fs::path& spool_dir, std::string_view export_name) {
  return export_dir(spool_dir, export_name) / "report.json";
}
fs::path index_path(const fs::path& spool_file) {
  auto p = spool_file;
  p += ".idx";
  return p;
}

// ------------------------------------------------------------------ SpoolWriter

// The writer is two threads joined by a small queue of fixed chunks. The caller's side (write,
// begin/end_frame) keeps the uncompressed bookkeeping: frame sizes, CRC32C and SHA-256, the quota
// wait. The compressor thread owns the zstd context and the file descriptor: it compresses each
// chunk in order, ends a zstd frame where the caller ended a frame, writes the output and records
// each frame's compressed range. Nothing else is shared, and finish() reads the compressor's
// results only after joining it.
struct SpoolWriter::Impl {
  static constexpr size_t kChunk = 256 * 1024;
  static constexpr size_t kChunks = 4;  // 1 MiB in flight per writer
  struct Chunk {
    std::unique_ptr<char[]> data{new char[kChunk]};
    size_t len = 0;
    bool end_frame = false;  // the caller ended a frame after these bytes
  };

  // Shared between the two threads (under mu).
  std::mutex mu;
  std::condition_variable ready_cv, free_cv;
  std::deque<Chunk*> ready;  // in order, for the compressor
  std::vector<Chunk*> spare;
  size_t pending = 0;         // chunks handed off and not yet compressed and written
  uint64_t queued_bytes = 0;  // their uncompressed bytes (not yet counted in the quota)
  bool closing = false;       // no more chunks: finish() or the destructor
  bool aborted = false;       // the destructor: drop what is queued
  std::exception_ptr error;

  // The caller's side.
  Chunk chunks[kChunks];
  Chunk* filling = nullptr;
  fe::Sha256 sha;  // of the current frame's uncompressed bytes (starts over after each frame)

  // The compressor's side (read by finish() after the join).
  std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx;
  std::vector<char> out;
  int fd = -1;
  uint64_t written = 0;  // compressed bytes written to the .tmp file
  uint64_t charged = 0;  // bytes added to the quota for this file
  uint64_t frame_start = 0;
  std::vector<std::pair<uint64_t, uint64_t>> frame_ranges;  // compressed offset, size
  std::thread thread;

  Impl() {
    for (auto& c : chunks) spare.push_back(&c);
  }

  // Caller: a free chunk to fill; rethrows the compressor's error instead of waiting forever.
  Chunk* take_free() {
    std::unique_lock lk(mu);
    free_cv.wait(lk, [&] { return !spare.empty() || error; });
    if (error) std::rethrow_exception(error);
    Chunk* c = spare.back();
    spare.pop_back();
    c->len = 0;
    c->end_frame = false;
    return c;
  }
  void hand_off(Chunk* c) {
    {
      std::lock_guard lk(mu);
      ready.push_back(c);
      ++pending;
      queued_bytes += c->len;
    }
    ready_cv.notify_one();
  }
  uint64_t queued() {
    std::lock_guard lk(mu);
    return queued_bytes;
  }
  // Caller: waits until the compressor has written everything handed off.
  void drain() {
    std::unique_lock lk(mu);
    free_cv.wait(lk, [&] { return pending == 0 || error; });
    if (error) std::rethrow_exception(error);
  }
  void append(std::string_view bytes) {
    while (!bytes.empty()) {
      if (!filling) filling = take_free();
      size_t n = std::min(bytes.size(), kChunk - filling->len);
      std::memcpy(filling->data.get() + filling->len, bytes.data(), n);
      filling->len += n;
      bytes.remove_prefix(n);
      if (filling->len == kChunk) {
        hand_off(filling);
        filling = nullptr;
      }
    }
  }
  void mark_frame_end() {
    if (!filling) filling = take_free();
    filling->end_frame = true;
    hand_off(filling);
    filling = nullptr;
  }
  // Caller: no more chunks; waits for the compressor and rethrows its error.
  void close() {
    // finish() ended the last frame, so no chunk is half filled here.
    {
      std::lock_guard lk(mu);
      closing = true;
    }
    ready_cv.notify_one();
    if (thread.joinable()) thread.join();
    if (error) std::rethrow_exception(error);
  }
  void abort() {
    {
      std::lock_guard lk(mu);
      closing = aborted = true;
    }
    ready_cv.notify_one();
    if (thread.joinable()) thread.join();
  }

  void write_out(const void* data, size_t size, const fs::path& tmp, Quota* quota) {
    if (size == 0) return;
    write_all(fd, data, size, tmp);
    written += size;
    if (quota) {
      quota->add(size);
      charged += size;
    }
  }
  void compress(std::string_view in_bytes, bool end, const fs::path& final_path,
                const fs::path& tmp, Quota* quota) {
    ZSTD_inBuffer in{in_bytes.data(), in_bytes.size(), 0};
    for (;;) {
      ZSTD_outBuffer o{out.data(), out.size(), 0};
      size_t rc = ZSTD_compressStream2(cctx.get(), &o, &in, end ? ZSTD_e_end : ZSTD_e_continue);
      if (ZSTD_isError(rc))
        throw Error("spool: zstd compression of " + final_path.string() +
                    " failed: " + ZSTD_getErrorName(rc));
      write_out(out.data(), o.pos, tmp, quota);
      if (end ? rc == 0 : in.pos == in.size) break;
    }
  }
  // The compressor thread.
  void run(const fs::path& final_path, const fs::path& tmp, Quota* quota) {
    for (;;) {
      Chunk* c = nullptr;
      {
        std::unique_lock lk(mu);
        ready_cv.wait(lk, [&] { return !ready.empty() || closing; });
        if (aborted || ready.empty()) return;  // closing with everything done
        c = ready.front();
        ready.pop_front();
      }
      if (!error) {
        try {
          compress({c->data.get(), c->len}, false, final_path, tmp, quota);
          if (c->end_frame) {
            compress({}, true, final_path, tmp, quota);
            frame_ranges.emplace_back(frame_start, written - frame_start);
            frame_start = written;
          }
        } catch (...) {
          std::lock_guard lk(mu);
          error = std::current_exception();
        }
      }
      {
        std::lock_guard lk(mu);
        spare.push_back(c);
        --pending;
        queued_bytes -= c->len;
      }
      free_cv.notify_one();
    }
  }
};

SpoolWriter::SpoolWriter(fs::path final_path, WriterOptions options)
    : final_(std::move(final_path)), opt_(options), impl_(std::make_unique<Impl>()) {
  if (opt_.part_size == 0) throw Error("spool: part size must be positive");
  if (!final_.has_parent_path()) final_ = fs::path(".") / final_;  // a bare name: the cwd
  tmp_ = final_;
  tmp_ += ".tmp";
  std::error_code ec;
  fs::create_directories(final_.parent_path(), ec);
  if (ec)
    throw Error("spool: cannot create " + final_.parent_path().string() + ": " + ec.message());
  // A previous committed copy (an export being redone) is invalid from now on.
  fs::remove(index_path(final_), ec);
  impl_->cctx.reset(ZSTD_createCCtx());
  if (!impl_->cctx) throw Error("spool: cannot allocate a zstd context");
  ZSTD_CCtx_setParameter(impl_->cctx.get(), ZSTD_c_compressionLevel, opt_.zstd_level);
  ZSTD_CCtx_setParameter(impl_->cctx.get(), ZSTD_c_checksumFlag, 1);
  impl_->out.resize(ZSTD_CStreamOutSize());
  impl_->fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
  if (impl_->fd < 0) throw Error(sys_error("spool: cannot create", tmp_));
  index_.part_size = opt_.part_size;
  impl_->thread = std::thread(
      [impl = impl_.get(), fin = final_, tmp = tmp_, q = opt_.quota] { impl->run(fin, tmp, q); });
}

SpoolWriter::~SpoolWriter() {
  if (!impl_) return;
  impl_->abort();
  if (impl_->fd >= 0) ::close(impl_->fd);
  if (!finished_) {
    std::error_code ec;
    fs::remove(tmp_, ec);
    // finish() may have failed while writing the index (disk full): its temporary goes too.
    auto idx_tmp = index_path(final_);
    idx_tmp += ".tmp";
    fs::remove(idx_tmp, ec);
    if (opt_.quota && impl_->charged) opt_.quota->release(impl_->charged);
  }
}

void SpoolWriter::begin_frame() {
  if (opt_.quota) {
    // Up to kChunks of this writer's bytes may still be on their way to disk, not yet counted in
    // the quota. When they could fill it, let them land first, so the check below sees them and
    // the spool still exceeds max by at most about one frame per writer.
    if (opt_.quota->used() + impl_->queued() >= opt_.quota->max_bytes()) impl_->drain();
    opt_.quota->wait_for_room();
  }
  frame_crc_ = 0;
  frame_in_ = 0;
  in_frame_ = true;
}

void SpoolWriter::end_frame() {
  impl_->mark_frame_end();
  Frame f;  // its compressed range comes from the compressor thread in finish()
  f.uncompressed_offset = index_.uncompressed_size;
  f.uncompressed_size = frame_in_;
  f.crc32c = frame_crc_;
  if (opt_.frame_sha256) f.sha256 = impl_->sha.final_hex();
  index_.frames.push_back(f);
  index_.uncompressed_size += frame_in_;
  frame_in_ = 0;
  in_frame_ = false;
}

void SpoolWriter::write(std::string_view bytes) {
  if (finished_) throw Error("spool: write after finish on " + final_.string());
  while (!bytes.empty()) {
    if (!in_frame_) begin_frame();
    size_t n = static_cast<size_t>(std::min<uint64_t>(bytes.size(), opt_.part_size - frame_in_));
    auto chunk = bytes.substr(0, n);
    impl_->append(chunk);
    frame_crc_ = fe::crc32c(chunk, frame_crc_);
    if (opt_.frame_sha256) impl_->sha.update(chunk);
    index_.crc32c = fe::crc32c(chunk, index_.crc32c);
    frame_in_ += n;
    bytes.remove_prefix(n);
    if (frame_in_ == opt_.part_size) end_frame();
  }
}

const FrameIndex& SpoolWriter::finish() {
  if (finished_) return index_;
  if (in_frame_) end_frame();
  impl_->close();  // every frame compressed and written, or the compressor's error
  if (impl_->frame_ranges.size() != index_.frames.size())
    throw Error("spool: " + final_.string() + ": compressor ended " +
                std::to_string(impl_->frame_ranges.size()) + " frames, expected " +
                std::to_string(index_.frames.size()));
  for (size_t i = 0; i < index_.frames.size(); ++i) {
    index_.frames[i].compressed_offset = impl_->frame_ranges[i].first;
    index_.frames[i].compressed_size = impl_->frame_ranges[i].second;
  }
  index_.compressed_size = impl_->written;
  if (opt_.fsync && ::fsync(impl_->fd) != 0) throw Error(sys_error("spool: cannot fsync", tmp_));
  ::close(impl_->fd);
  impl_->fd = -1;
  impl_->cctx.reset();

  // Index first, data file last: the data rename is the commit point, and SpoolFile::open
  // requires both to agree, so any crash in between leaves a detectably incomplete file.
  auto idx_final = index_path(final_);
  auto idx_tmp = idx_final;
  idx_tmp += ".tmp";
  std::string idx_text = index_.serialize();
  write_synced(idx_tmp, idx_text, opt_.fsync);
  if (opt_.quota) {
    opt_.quota->add(idx_text.size());
    impl_->charged += idx_text.size();
  }
  std::error_code ec;
  fs::rename(idx_tmp, idx_final, ec);
  if (!ec) fs::rename(tmp_, final_, ec);
  if (ec) throw Error("spool: cannot commit " + final_.string() + ": " + ec.message());
  if (opt_.fsync) fsync_path(final_.parent_path());
  finished_ = true;
  return index_;
}

// ------------------------------------------------------------------ SpoolFile

SpoolFile::SpoolFile(SpoolFile&& o) noexcept
    : path_(std::move(o.path_)), fd_(o.fd_), index_(std::move(o.index_)) {
  o.fd_ = -1;
}
SpoolFile& SpoolFile::operator=(SpoolFile&& o) noexcept {
  std::swap(path_, o.path_);
  std::swap(fd_, o.fd_);
  std::swap(index_, o.index_);
  return *this;
}
SpoolFile::~SpoolFile() {
  if (fd_ >= 0) ::close(fd_);
}

SpoolFile SpoolFile::open(const fs::path& path) {
  SpoolFile f;
  f.path_ = path;
  f.fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (f.fd_ < 0) {
    if (errno == ENOENT) {
      auto tmp = path;
      tmp += ".tmp";
      if (fs::exists(tmp))
        throw Incomplete("spool file " + path.string() + " was never finished (" +
                         tmp.filename().string() + " left by an interrupted write); redo it");
      throw Incomplete("spool file " + path.string() + " does not exist");
    }
    throw Error(sys_error("spool: cannot open", path));
  }
  auto idx = index_path(path);
  if (!fs::exists(fs::symlink_status(idx)))
    throw Incomplete("spool file " + path.string() + " has no index " + idx.filename().string() +
                     "; redo it");
  f.index_ = FrameIndex::parse(read_small(idx), idx);
  struct stat st {};
  if (::fstat(f.fd_, &st) != 0) throw Error(sys_error("spool: cannot stat", path));
  if (static_cast<uint64_t>(st.st_size) != f.index_.compressed_size)
    throw Incomplete("spool file " + path.string() + " is " + std::to_string(st.st_size) +
                     " bytes but its index says " + std::to_string(f.index_.compressed_size) +
                     " (truncated or overwritten); redo it");
  return f;
}

void SpoolFile::read_raw(uint64_t offset, uint64_t length,
                         const std::function<void(std::span<const char>)>& sink) const {
  if (offset + length > index_.compressed_size)
    throw Error("spool: range beyond the end of " + path_.string());
  std::vector<char> buf(std::min<uint64_t>(length, 256 * 1024));
  while (length > 0) {
    size_t want = static_cast<size_t>(std::min<uint64_t>(length, buf.size()));
    ssize_t n = ::pread(fd_, buf.data(), want, static_cast<off_t>(offset));
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) throw Error(sys_error("spool: cannot read", path_));
    if (n == 0) throw Incomplete("spool file " + path_.string() + " ended early (truncated)");
    sink({buf.data(), static_cast<size_t>(n)});
    offset += static_cast<uint64_t>(n);
    length -= static_cast<uint64_t>(n);
  }
}

void SpoolFile::read_frame(size_t n, const std::function<void(std::span<const char>)>& sink) const {
  if (n >= index_.frames.size())
    throw Error("spool: " + path_.string() + " has no frame " + std::to_string(n));
  const Frame& f = index_.frames[n];
  std::unique_ptr<ZSTD_DCtx, DCtxDeleter> dctx(ZSTD_createDCtx());
  if (!dctx) throw Error("spool: cannot allocate a zstd context");
  std::vector<char> out(ZSTD_DStreamOutSize());
  uint64_t produced = 0;
  uint32_t crc = 0;
  size_t last = 1;  // ZSTD_decompressStream result; 0 once the frame is complete
  std::string where = path_.string() + " frame " + std::to_string(n);
  read_raw(f.compressed_offset, f.compressed_size, [&](std::span<const char> chunk) {
    ZSTD_inBuffer in{chunk.data(), chunk.size(), 0};
    while (in.pos < in.size) {
      if (last == 0) throw Error("spool: " + where + " has data after the end of its zstd frame");
      ZSTD_outBuffer o{out.data(), out.size(), 0};
      last = ZSTD_decompressStream(dctx.get(), &o, &in);
      if (ZSTD_isError(last))
        throw Error("spool: " + where + " is damaged: " + ZSTD_getErrorName(last));
      if (o.pos) {
        crc = fe::crc32c(out.data(), o.pos, crc);
        produced += o.pos;
        if (produced > f.uncompressed_size)
          throw Error("spool: " + where + " decompresses to more than its index says");
        if (sink) sink({out.data(), o.pos});
      }
    }
  });
  // Drain what zstd still holds after the last input byte.
  while (last != 0) {
    ZSTD_inBuffer in{nullptr, 0, 0};
    ZSTD_outBuffer o{out.data(), out.size(), 0};
    last = ZSTD_decompressStream(dctx.get(), &o, &in);
    if (ZSTD_isError(last))
      throw Error("spool: " + where + " is damaged: " + ZSTD_getErrorName(last));
    if (o.pos == 0 && last != 0)
      throw Incomplete("spool: " + where + " ends inside its zstd frame (truncated)");
    crc = fe::crc32c(out.data(), o.pos, crc);
    produced += o.pos;
    if (sink && o.pos) sink({out.data(), o.pos});
  }
  if (produced != f.uncompressed_size || crc != f.crc32c)
    throw Error("spool: " + where + " does not match its index (size or CRC32C)");
}

void SpoolFile::read_frame(size_t n, std::string& out) const {
  if (n >= index_.frames.size())
    throw Error("spool: " + path_.string() + " has no frame " + std::to_string(n));
  out.clear();
  out.reserve(static_cast<size_t>(index_.frames[n].uncompressed_size));
  read_frame(n, [&](std::span<const char> c) { out.append(c.data(), c.size()); });
}

void SpoolFile::verify() const {
  for (size_t i = 0; i < index_.frames.size(); ++i) read_frame(i, nullptr);
}

// ------------------------------------------------------------------ cleanup

std::vector<fs::path> remove_partials(const fs::path& export_spool_dir, Quota* quota) {
  std::vector<fs::path> removed;
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(export_spool_dir, ec))) return removed;
  for (auto it = fs::recursive_directory_iterator(export_spool_dir, ec); !ec && it != fs::end(it);
       it.increment(ec)) {
    std::error_code ec2;
    if (!fs::is_regular_file(it->symlink_status(ec2))) continue;
    if (it->path().extension() != ".tmp") continue;
    auto size = fs::file_size(it->path(), ec2);
    if (fs::remove(it->path(), ec2)) {
      removed.push_back(it->path());
      if (quota && !ec2) quota->release(size);
    }
  }
  return removed;
}

uint64_t remove_export(const fs::path& spool_dir, std::string_view export_name, Quota* quota) {
  auto dir = export_dir(spool_dir, export_name);
  uint64_t bytes = disk_usage(dir);
  std::error_code ec;
  fs::remove_all(dir, ec);
  if (ec) throw Error("spool: cannot remove " + dir.string() + ": " + ec.message());
  if (quota) quota->release(bytes);
  return bytes;
}

std::vector<std::string> remove_expired(const fs::path& spool_dir, std::chrono::seconds keep_for,
                                        const std::function<bool(const std::string&)>& may_delete,
                                        Quota* quota) {
  std::vector<std::string> removed;
  std::error_code ec;
  if (!fs::is_directory(fs::symlink_status(spool_dir, ec))) return removed;
  auto now = fs::file_time_type::clock::now();
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(spool_dir, ec)) {
    std::error_code ec2;
    if (fs::is_directory(e.symlink_status(ec2))) dirs.push_back(e.path());
  }
  for (const auto& d : dirs) {
    auto newest = fs::last_write_time(d, ec);
    for (auto it = fs::recursive_directory_iterator(d, ec); !ec && it != fs::end(it);
         it.increment(ec)) {
      std::error_code ec2;
      auto t = fs::last_write_time(it->path(), ec2);
      if (!ec2 && t > newest) newest = t;
    }
    if (now - newest < keep_for) continue;
    std::string name = d.filename().string();
    if (!may_delete(name)) continue;
    remove_export(spool_dir, name, quota);
    removed.push_back(name);
  }
  return removed;
}

}  // namespace fe::spool
