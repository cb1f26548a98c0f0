// Streaming NDJSON reading: a fixed read buffer plus at most one line of carry-over, so memory is
// bounded by max_line_bytes whatever the file size.
#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <map>

#include "fhir/internal.hpp"
#include "fhir/validator.hpp"

namespace fe::fhir {

namespace {
constexpr size_t kReadChunk = 1u << 20;
}

struct LineReader::Impl {
  int fd = -1;
  std::string name;
  std::vector<char> buf = std::vector<char>(kReadChunk);
  size_t pos = 0, end = 0;
  bool eof = false;
  std::string carry;
  size_t max = 0;
  uint64_t line_no = 0, bytes = 0;
  std::string error;
};

LineReader::LineReader(const std::filesystem::path& path, size_t max_line_bytes)
    : impl_(std::make_unique<Impl>()) {
  impl_->name = path.string();
  impl_->max = max_line_bytes;
  impl_->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (impl_->fd < 0) impl_->error = impl_->name + ": cannot open: " + std::strerror(errno);
}

LineReader::~LineReader() {
  if (impl_->fd >= 0) ::close(impl_->fd);
}

bool LineReader::ok() const {
  return impl_->error.empty();
}
const std::string& LineReader::error() const {
  return impl_->error;
}
uint64_t LineReader::bytes_read() const {
  return impl_->bytes;
}

LineReader::Status LineReader::next(std::string_view& line, uint64_t& line_no) {
  Impl& m = *impl_;
  if (!m.error.empty()) return Status::error;
  m.carry.clear();
  bool skipping = false, have_partial = false;
  auto finish = [&](std::string_view seg) {
    if (!seg.empty() && seg.back() == '\r') seg.remove_suffix(1);
    line = seg;
    line_no = m.line_no;
  };
  while (true) {
    if (m.pos == m.end) {
      if (m.eof) {
        if (!have_partial) return Status::eof;
        m.line_no++;  // last line without a newline
        line_no = m.line_no;
        if (skipping) return Status::too_long;
        finish(m.carry);
        return Status::line;
      }
      ssize_t n;
      do n = ::read(m.fd, m.buf.data(), m.buf.size());
      while (n < 0 && errno == EINTR);
      if (n < 0) {
        m.error = m.name + ": read error: " + std::strerror(errno);
        return Status::error;
      }
      m.pos = 0;
      m.end = static_cast<size_t>(n);
      m.bytes += static_cast<uint64_t>(n);
      if (n == 0) m.eof = true;
      continue;
    }
    const char* start = m.buf.data() + m.pos;
    const char* nl = static_cast<const char*>(std::memchr(start, '\n', m.end - m.pos));
    if (nl) {
      std::string_view seg(start, static_cast<size_t>(nl - start));
      m.pos += seg.size() + 1;
      m.line_no++;
      line_no = m.line_no;
      if (skipping) return Status::too_long;
      if (m.carry.empty()) {
        if (seg.size() > m.max + 1) return Status::too_long;  // +1: a trailing '\r'
        finish(seg);
        return Status::line;
      }
      if (m.carry.size() + seg.size() > m.max + 1) return Status::too_long;
      m.carry.append(seg);
      finish(m.carry);
      return Status::line;
    }
    std::string_view seg(start, m.end - m.pos);
    m.pos = m.end;
    have_partial = true;
    if (!skipping) {
      if (m.carry.size() + seg.size() > m.max + 1) {
        skipping = true;  // drop the over-long line, keep reading to its end
        std::string().swap(m.carry);
      } else {
        m.carry.append(seg);
      }
    }
  }
}

FileSummary validate_file(const Validator& validator, const std::filesystem::path& path,
                          Scratch& scratch, const ResultSink& sink, bool all_results) {
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
