// Streaming NDJSON reading: a fixed read buffer plus at most one line of carry-over, so memory is
// bounded by max_line_bytes whatever the file size. An over-long line is counted to its end, never
// buffered past the limit.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zlib.h>
#include <zstd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "fhir/internal.hpp"
#include "fhir/validator.hpp"

namespace fe::fhir {

namespace {
constexpr size_t kReadChunk = 1u << 20;
constexpr size_t kMaxReserve = size_t{1} << 30;
constexpr size_t kCompressedChunk = 256u << 10;
}  // namespace

// Streaming decoder state for a compressed source. `in` holds raw file bytes not yet decoded.
struct LineSource::Codec {
  enum class Kind { gzip, zstd } kind;
  std::vector<char> in = std::vector<char>(kCompressedChunk);
  size_t in_pos = 0, in_end = 0;
  bool member_open = false;  // inside a gzip member / zstd frame (EOF here = truncated)
  z_stream zs{};
  bool zs_init = false;
  ZSTD_DCtx* zd = nullptr;
  explicit Codec(Kind k) : kind(k) {
    if (kind == Kind::gzip) {
      // 15 + 16: gzip wrapper only (not raw zlib), 32 KiB window.
      zs_init = inflateInit2(&zs, 15 + 16) == Z_OK;
    } else {
      zd = ZSTD_createDCtx();
    }
  }
  ~Codec() {
    if (zs_init) inflateEnd(&zs);
    if (zd) ZSTD_freeDCtx(zd);
  }
  Codec(const Codec&) = delete;
  Codec& operator=(const Codec&) = delete;
};

const char* LineSource::compression() const {
  if (!codec_) return "";
  return codec_->kind == Codec::Kind::gzip ? "gzip" : "zstd";
}

// Reads decoded bytes into out[0, cap): plain files straight from the fd; compressed ones through
// the codec, refilling its input buffer from the fd as needed. Returns 0 only at the real end.
ssize_t LineSource::read_raw(char* dst, size_t n) {
  ssize_t r;
  do r = ::read(fd_, dst, n);
  while (r < 0 && errno == EINTR);
  if (r < 0) {
    error_ = name_ + ": read error: " + std::strerror(errno);
    return -1;
  }
  if (r == 0) raw_eof_ = true;
  bytes_ += static_cast<uint64_t>(r);
  if (on_raw_ && r > 0) on_raw_(dst, static_cast<size_t>(r));
  return r;
}

bool LineSource::drain() {
  if (fd_ < 0 || !error_.empty()) return false;
  std::vector<char> tmp(1 << 20);
  while (!raw_eof_)
    if (read_raw(tmp.data(), tmp.size()) < 0) return false;
  return true;
}

ssize_t LineSource::fill(char* out, size_t cap) {
  if (!codec_) return read_raw(out, cap);
  Codec& c = *codec_;
  const char* what = compression();
  while (true) {
    if (c.in_pos == c.in_end && !raw_eof_) {
      ssize_t r = read_raw(c.in.data(), c.in.size());
      if (r < 0) return -1;
      c.in_pos = 0;
      c.in_end = static_cast<size_t>(r);
    }
    if (c.in_pos == c.in_end && raw_eof_) {
      if (c.member_open) {
        error_ = name_ + ": " + what + " data is truncated (the file ends inside a compressed " +
                 (c.kind == Codec::Kind::gzip ? "member" : "frame") + ")";
        return -1;
      }
      return 0;
    }
    size_t produced = 0;
    if (c.kind == Codec::Kind::gzip) {
      if (!c.zs_init) {
        error_ = name_ + ": cannot initialise the gzip decoder";
        return -1;
      }
      c.zs.next_in = reinterpret_cast<Bytef*>(c.in.data() + c.in_pos);
      c.zs.avail_in = static_cast<uInt>(c.in_end - c.in_pos);
      c.zs.next_out = reinterpret_cast<Bytef*>(out);
      c.zs.avail_out = static_cast<uInt>(std::min<size_t>(cap, UINT32_MAX));
      c.member_open = true;
      int rc = inflate(&c.zs, Z_NO_FLUSH);
      c.in_pos = c.in_end - c.zs.avail_in;
      produced = static_cast<size_t>(reinterpret_cast<char*>(c.zs.next_out) - out);
      if (rc == Z_STREAM_END) {
        // Another member may follow (gzip -c a b > ab): start over on the remaining input.
        c.member_open = false;
        inflateReset(&c.zs);
      } else if (rc != Z_OK && rc != Z_BUF_ERROR) {
        error_ =
            name_ + ": gzip data is corrupt (" + (c.zs.msg ? c.zs.msg : "inflate failed") + ")";
        return -1;
      }
    } else {
      if (!c.zd) {
        error_ = name_ + ": cannot initialise the zstd decoder";
        return -1;
      }
      ZSTD_inBuffer ib{c.in.data(), c.in_end, c.in_pos};
      ZSTD_outBuffer ob{out, cap, 0};
      size_t rc = ZSTD_decompressStream(c.zd, &ob, &ib);
      c.in_pos = ib.pos;
      produced = ob.pos;
      if (ZSTD_isError(rc)) {
        error_ = name_ + ": zstd data is corrupt (" + ZSTD_getErrorName(rc) + ")";
        return -1;
      }
      c.member_open = rc != 0;  // 0: a frame ended exactly here
    }
    if (produced > 0) return static_cast<ssize_t>(produced);
  }
}

LineSource::LineSource(const std::filesystem::path& path, size_t max_line_bytes,
                       OpenOptions options)
    : name_(path.string()), buf_(kReadChunk), max_(max_line_bytes) {
  int flags = O_RDONLY | O_CLOEXEC;
  if (options.regular_only) flags |= O_NOFOLLOW | O_NONBLOCK;
  fd_ = ::open(path.c_str(), flags);
  if (fd_ < 0) {
    error_ = name_ + ": cannot open: " +
             (errno == ELOOP && options.regular_only ? std::string("is a symlink (never followed)")
                                                     : std::string(std::strerror(errno)));
    return;
  }
  struct stat st {};
  if (::fstat(fd_, &st) != 0) {
    error_ = name_ + ": cannot stat: " + std::strerror(errno);
    return;
  }
  dev_ = static_cast<uint64_t>(st.st_dev);
  ino_ = static_cast<uint64_t>(st.st_ino);
  if (options.regular_only) {
    if (!S_ISREG(st.st_mode)) {
      error_ = name_ + ": not a regular file (replaced after it was taken?)";
      return;
    }
    // Regular files never block; clear O_NONBLOCK so reads behave normally.
    ::fcntl(fd_, F_SETFL, ::fcntl(fd_, F_GETFL) & ~O_NONBLOCK);
  }
  // Compressed by content, not by name: peek at the magic (pread, so a pipe such as stdin is left
  // alone: pread fails there and the input is read as plain NDJSON).
  unsigned char magic[4] = {};
  ssize_t m = ::pread(fd_, magic, sizeof magic, 0);
  if (m >= 2 && magic[0] == 0x1f && magic[1] == 0x8b)
    codec_ = std::make_unique<Codec>(Codec::Kind::gzip);
  else if (m >= 4 && magic[0] == 0x28 && magic[1] == 0xb5 && magic[2] == 0x2f && magic[3] == 0xfd)
    codec_ = std::make_unique<Codec>(Codec::Kind::zstd);
}

LineSource::~LineSource() {
  if (fd_ >= 0) ::close(fd_);
}

LineReader::Status LineSource::next(std::string_view& line, uint64_t& line_no) {
  if (!error_.empty()) return LineReader::Status::error;
  carry_.clear();
  line = {};
  bool skipping = false, have_partial = false;
  uint64_t len = 0;  // bytes of the current line so far (also while skipping it)
  // Plain file: the raw bytes read so far less those still buffered = where this line starts.
  const int64_t start = codec_ ? -1 : static_cast<int64_t>(bytes_ - (end_ - pos_));
  verbatim_ = -1;
  auto finish = [&](std::string_view seg, bool newline) {
    bool verbatim = newline;
    if (!seg.empty() && seg.back() == '\r') {
      seg.remove_suffix(1);
      verbatim = false;
    }
    // A UTF-8 byte order mark before the first line (Windows tools write one) is not part of the
    // resource: removed here so it neither fails validation nor reaches the import object.
    if (line_no_ == 1 && seg.starts_with("\xEF\xBB\xBF")) {
      seg.remove_prefix(3);
      bom_ = true;
      verbatim = false;
    }
    if (verbatim) verbatim_ = start;
    line = seg;
    line_no = line_no_;
  };
  auto too_long = [&] {
    last_len_ = len;
    return LineReader::Status::too_long;
  };
  while (true) {
    if (pos_ == end_) {
      if (eof_) {
        if (!have_partial) return LineReader::Status::eof;
        line_no_++;  // last line without a newline
        line_no = line_no_;
        if (skipping) return too_long();
        finish(carry_, false);
        return LineReader::Status::line;
      }
      ssize_t n = fill(buf_.data(), buf_.size());
      if (n < 0) return LineReader::Status::error;
      pos_ = 0;
      end_ = static_cast<size_t>(n);
      if (n == 0) eof_ = true;
      continue;
    }
    const char* start = buf_.data() + pos_;
    const char* nl = static_cast<const char*>(std::memchr(start, '\n', end_ - pos_));
    if (nl) {
      std::string_view seg(start, static_cast<size_t>(nl - start));
      pos_ += seg.size() + 1;
      line_no_++;
      line_no = line_no_;
      len += seg.size();
      if (skipping) return too_long();
      if (carry_.empty()) {
        if (seg.size() > max_ + 1) return too_long();  // +1: a trailing '\r'
        finish(seg, true);
        return LineReader::Status::line;
      }
      if (carry_.size() + seg.size() > max_ + 1) {
        std::string().swap(carry_);
        return too_long();
      }
      carry_.append(seg);
      finish(carry_, true);
      return LineReader::Status::line;
    }
    std::string_view seg(start, end_ - pos_);
    pos_ = end_;
    have_partial = true;
    len += seg.size();
    if (!skipping) {
      if (carry_.size() + seg.size() > max_ + 1) {
        skipping = true;  // drop the over-long line, keep counting to its end
        std::string().swap(carry_);
      } else {
        // Reserve the limit once (address space; pages are touched only as the line fills them)
        // instead of doubling: no copies, and no freed smaller buffers on top of the line.
        // (Not for an unbounded reader, e.g. a whole .json file: its size is checked beforehand.)
        if (max_ <= kMaxReserve && carry_.capacity() < max_ + 1) carry_.reserve(max_ + 1);
        carry_.append(seg);
      }
    }
  }
}

struct LineReader::Impl {
  LineSource src;
  Impl(const std::filesystem::path& p, size_t max) : src(p, max, {}) {}
};

LineReader::LineReader(const std::filesystem::path& path, size_t max_line_bytes)
    : impl_(std::make_unique<Impl>(path, max_line_bytes)) {}

LineReader::~LineReader() = default;

bool LineReader::ok() const {
  return impl_->src.ok();
}
const std::string& LineReader::error() const {
  return impl_->src.error();
}
uint64_t LineReader::bytes_read() const {
  return impl_->src.bytes_read();
}

LineReader::Status LineReader::next(std::string_view& line, uint64_t& line_no) {
  return impl_->src.next(line, line_no);
}

FileSummary validate_file(const Validator& validator, const std::filesystem::path& path,
                          Scratch& scratch, const ResultSink& sink, bool all_results,
                          uint64_t* bytes_read) {
  FileSummary sum;
  std::map<std::string, uint64_t> codes;
  const Options& opt = validator.options();
  auto account = [&](const Result& r) -> bool {
    sum.lines++;
    if (r.blank) {
      sum.blank++;
    } else {
      sum.resources++;
      if (r.valid())
        sum.valid++;
      else
        sum.invalid++;
    }
    for (const Issue& i : r.issues) {
      if (i.severity == Severity::error) sum.errors++;
      if (i.severity == Severity::warning) sum.warnings++;
      if (i.severity != Severity::information && !r.blank) codes[i.code]++;
    }
    if (all_results || !r.issues.empty()) return sink ? sink(r) : true;
    return true;
  };
  const bool whole = path.extension() == ".json";
  LineReader reader(path, whole ? SIZE_MAX / 2 : opt.max_line_bytes);
  if (!reader.ok()) {
    sum.fatal = reader.error();
    return sum;
  }
  if (whole) {
    // One resource per file (pretty-printed JSON): read it all, bounded by max_line_bytes.
    std::error_code ec;
    auto size = std::filesystem::file_size(path, ec);
    if (ec) {
      sum.fatal = path.string() + ": " + ec.message();
      return sum;
    }
    sum.bytes = size;
    if (size > opt.max_line_bytes) {
      Result r;
      r.line = 1;
      r.issues.push_back(Issue{Severity::error, std::string(code::too_long), 1, "",
                               "file of " + std::to_string(size) +
                                   " bytes exceeds the size limit of " +
                                   std::to_string(opt.max_line_bytes) + " bytes"});
      account(r);
      sum.by_code.assign(codes.begin(), codes.end());
      return sum;
    }
    std::string doc;
    std::string_view line;
    uint64_t no;
    LineReader::Status st;
    while ((st = reader.next(line, no)) == LineReader::Status::line) {
      doc.append(line);
      doc += '\n';
    }
    if (st == LineReader::Status::error) {
      sum.fatal = reader.error();
      return sum;
    }
    while (!doc.empty() && (doc.back() == '\n' || doc.back() == ' ')) doc.pop_back();
    account(validator.validate_line(doc, 1, scratch));
    sum.by_code.assign(codes.begin(), codes.end());
    return sum;
  }
  std::string_view line;
  uint64_t no = 0;
  while (true) {
    auto st = reader.next(line, no);
    if (bytes_read) *bytes_read = reader.bytes_read();
    if (st == LineReader::Status::eof) break;
    if (st == LineReader::Status::error) {
      sum.fatal = reader.error();
      break;
    }
    bool go;
    if (st == LineReader::Status::too_long) {
      Result r;
      r.line = no;
      r.issues.push_back(Issue{Severity::error, std::string(code::too_long), no, "",
                               "line exceeds the line size limit of " +
                                   std::to_string(opt.max_line_bytes) + " bytes (skipped)"});
      go = account(r);
    } else {
      go = account(validator.validate_line(line, no, scratch));
    }
    if (!go) break;
  }
  sum.bytes = reader.bytes_read();
  sum.by_code.assign(codes.begin(), codes.end());
  return sum;
}

}  // namespace fe::fhir
