#include "spool/spool.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>

#include "common/hashing.hpp"
#include "spool/file_io.hpp"

namespace fe::spool {
namespace fs = std::filesystem;
using detail::sys_error;
using detail::write_all;
using detail::write_synced;

namespace detail {

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

}  // namespace detail

namespace {

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
