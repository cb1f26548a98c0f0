#include "pipeline/spooler.hpp"
#include "common/json_writer.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <exception>
#include <fstream>
#include <mutex>
#include <optional>
#include <sstream>

#include "aws/crc32c.hpp"
#include "fhir/internal.hpp"
#include "journal/digest.hpp"
#include "service/log.hpp"

namespace fe::pipeline {
namespace fs = std::filesystem;

fs::path fragment_path(const fs::path& spool_dir, std::string_view export_name,
                       std::string_view file_name) {
  return spool::export_dir(spool_dir, export_name) / "reports" / (std::string(file_name) + ".json");
}

fs::path line_map_path(const fs::path& spool_dir, std::string_view export_name,
                       std::string_view file_name) {
  return spool::export_dir(spool_dir, export_name) / "lines" / (std::string(file_name) + ".map");
}

LineMapReader::LineMapReader(const fs::path& path) : path_(path), buf_(1 << 16) {
  fd_ = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd_ < 0)
    throw std::runtime_error("cannot open line map " + path.string() + ": " + std::strerror(errno));
}

LineMapReader::~LineMapReader() {
  if (fd_ >= 0) ::close(fd_);
}

bool LineMapReader::next(std::int64_t& import_line, std::int64_t& source_line) {
  if (len_ - pos_ < 16) {
    std::memmove(buf_.data(), buf_.data() + pos_, len_ - pos_);
    len_ -= pos_;
    pos_ = 0;
    while (len_ < buf_.size()) {
      ssize_t n = ::read(fd_, buf_.data() + len_, buf_.size() - len_);
      if (n < 0) {
        if (errno == EINTR) continue;
        throw std::runtime_error("cannot read line map " + path_.string() + ": " +
                                 std::strerror(errno));
      }
      if (n == 0) break;
      len_ += static_cast<std::size_t>(n);
    }
    if (len_ == 0) return false;
    if (len_ < 16) throw std::runtime_error("line map " + path_.string() + " is truncated");
  }
  auto u64 = [&](std::size_t at) {
    std::uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | buf_[at + static_cast<std::size_t>(i)];
    return static_cast<std::int64_t>(v);
  };
  import_line = u64(pos_);
  source_line = u64(pos_ + 8);
  pos_ += 16;
  return true;
}

std::vector<PartSpec> raw_parts(const spool::SpoolFile& file, std::uint64_t size,
                                std::uint64_t part_size) {
  std::vector<PartSpec> parts;
  for (std::uint64_t off = 0; off < size; off += part_size) {
    PartSpec p;
    p.number = static_cast<int>(parts.size()) + 1;
    p.offset = off;
    p.length = std::min(part_size, size - off);
    std::uint32_t crc = 0;
    file.read_raw(p.offset, p.length,
                  [&](std::span<const char> b) { crc = aws::crc32c(b.data(), b.size(), crc); });
    p.crc32c = crc;
    parts.push_back(p);
  }
  return parts;
}

namespace {

// One rejected line in the report: where, what, and every issue with its JSON path.
std::string report_entry(const fhir::Result& r) {
  json::Writer w;
  w.begin_object().field("line", r.line);
  if (!r.resource_type.empty()) w.field("resourceType", r.resource_type);
  if (!r.id.empty()) w.field("id", r.id);
  w.key("issues").begin_array();
  for (const auto& i : r.issues)
    w.begin_object()
        .field("severity", fhir::to_string(i.severity))
        .field("code", i.code)
        .field("path", i.path)
        .field("message", i.message)
        .end_object();
  w.end_array();
  if (r.truncated) w.field("issues_truncated", true);
  w.end_object();
  return std::move(w).str();
}

std::string first_error(const fhir::Result& r) {
  for (const auto& i : r.issues)
    if (i.severity == fhir::Severity::error)
      return (i.path.empty() ? std::string() : i.path + ": ") + i.message;
  return "invalid";
}

fhir::Scratch& local_scratch() {
  thread_local fhir::Scratch scratch;  // per thread: the owner's and each helper's
  return scratch;
}

// Lines are read in runs of about kBatchBytes and validated in chunks of about kChunkBytes (enough
// work per chunk that handing it out costs nothing measurable, small enough that the owner never
// waits long for a helper's last chunk). A line longer than a chunk is validated by the owner.
constexpr std::size_t kBatchBytes = 1u << 20;
constexpr std::size_t kChunkBytes = 64u << 10;

// A run of lines copied out of the reader, with their results once validated.
struct Batch {
  struct Line {
    std::size_t off = 0, len = 0;
    std::uint64_t no = 0;
    std::int64_t verbatim = -1;
  };
  std::string bytes;
  std::vector<Line> lines;
  std::vector<fhir::Result> results;
  std::vector<std::size_t> chunk_end;  // chunk c is lines [chunk_end[c - 1], chunk_end[c])

  void clear() {
    bytes.clear();
    lines.clear();
    chunk_end.clear();
  }
  void add(std::string_view line, std::uint64_t no, std::int64_t verbatim) {
    lines.push_back({bytes.size(), line.size(), no, verbatim});
    bytes.append(line);
  }
  std::string_view text(const Line& l) const { return {bytes.data() + l.off, l.len}; }
};

// One batch's chunks, handed out to whoever asks first: the owner and its helpers. A helper task
// that starts after the last chunk was taken touches only these counters (by then the batch may
// be refilled, or the file done), so a Chunks is shared, a Batch is not.
struct Chunks {
  Batch* batch = nullptr;
  const fhir::Validator* validator = nullptr;
  std::size_t count = 0;
  std::atomic<std::size_t> next{0};
  std::atomic<std::size_t> done{0};
  std::atomic<std::int64_t> helped{0};
  std::mutex mu;
  std::condition_variable all_done;
  std::exception_ptr error;

  void work(bool helper) {
    for (;;) {
      const std::size_t c = next.fetch_add(1);
      if (c >= count) return;
      const std::size_t from = c == 0 ? 0 : batch->chunk_end[c - 1], to = batch->chunk_end[c];
      try {
        auto& scratch = local_scratch();
        for (std::size_t i = from; i < to; ++i) {
          const auto& l = batch->lines[i];
          batch->results[i] = validator->validate_line(batch->text(l), l.no, scratch);
        }
      } catch (...) {
        std::lock_guard lk(mu);
        if (!error) error = std::current_exception();
      }
      if (helper) helped.fetch_add(static_cast<std::int64_t>(to - from));
      if (done.fetch_add(1) + 1 == count) {
        std::lock_guard lk(mu);
        all_done.notify_all();
      }
    }
  }
};

// Validates every line of `batch` into batch.results, with as many idle pool threads as there
// are chunks to share (none when `help` is null or no thread is idle). Returns the lines the
// helpers validated. Rethrows what validating a line threw.
std::int64_t validate_batch(Batch& batch, const fhir::Validator& validator, PoolHelp* help) {
  batch.results.resize(batch.lines.size());
  std::size_t bytes = 0;
  for (std::size_t i = 0; i < batch.lines.size(); ++i) {
    bytes += batch.lines[i].len + 1;
    if (bytes >= kChunkBytes || i + 1 == batch.lines.size()) {
      batch.chunk_end.push_back(i + 1);
      bytes = 0;
    }
  }
  auto chunks = std::make_shared<Chunks>();
  chunks->batch = &batch;
  chunks->validator = &validator;
  chunks->count = batch.chunk_end.size();
  if (help && chunks->count > 1)
    help->lend(static_cast<int>(chunks->count - 1), [chunks] { chunks->work(true); });
  chunks->work(false);
  {
    // Chunks a helper took are finished by it; the owner waits for those only.
    std::unique_lock lk(chunks->mu);
    chunks->all_done.wait(lk, [&] { return chunks->done.load() == chunks->count; });
  }
  if (chunks->error) std::rethrow_exception(chunks->error);
  return chunks->helped.load();
}

}  // namespace

PoolHelp::PoolHelp(std::function<void(std::function<void()>)> post, int threads, int cores)
    : post_(std::move(post)), threads_(threads), cores_(cores) {}

void PoolHelp::count(int jobs, int cores) {
  std::lock_guard lk(mu_);
  jobs_ += jobs;
  cores_used_ += cores;
}

void PoolHelp::job_posted(Job job) {
  count(1, cores_of(job));
}
void PoolHelp::job_done(Job job) {
  count(-1, -cores_of(job));
}

int PoolHelp::free_locked() const {
  return std::max(0, std::min(threads_ - jobs_, cores_ - cores_used_));
}

int PoolHelp::idle() const {
  std::lock_guard lk(mu_);
  return free_locked();
}

int PoolHelp::lend(int n, const std::function<void()>& task) {
  int given = 0;
  {
    std::lock_guard lk(mu_);
    given = std::min(n, free_locked());
    jobs_ += given;  // reserved for the tasks, released as each ends
    cores_used_ += given;
  }
  for (int i = 0; i < given; ++i)
    post_([this, task] {
      task();
      count(-1, -1);
    });
  return given;
}

// one piece: the single pass over a file's bytes (read a line, validate it, write it to the import
// or the rejected spool, anchor lines, then make both durable) inside one try that turns any I/O
// error into the file's result; the per-line helpers above are its parts (Batch, Chunks and
// validate_batch let idle pool threads validate with the owner, issue 13 item 3).
SpoolResult spool_file(const SpoolJob& job) {
  SpoolResult res;
  res.part_size = job.part_size;
  const std::string where = job.source.path.string();
  try {
    const std::size_t max_line = job.validator->options().max_line_bytes;
    // The source sits in a directory other users can write to: open it without following a
    // symlink or blocking on a FIFO, and make sure it is the very file the watcher took (a file
    // swapped in between is a change, never read as if it were the export).
    fhir::LineSource reader(job.source.path, max_line, {.regular_only = true});
    if (reader.ok() &&
        (reader.dev() != job.source.identity.dev || reader.inode() != job.source.identity.inode)) {
      res.changed = true;
      res.error = where + " changed while it was spooled (replaced (inode) before it was read)";
      return res;
    }
    if (!reader.ok()) {
      // Gone or replaced by something that is not a regular file: the watcher's view is stale.
      if (auto changes = watch::changed_after_taken({job.source}); !changes.empty()) {
        res.changed = true;
        res.error = where + " changed while it was spooled (" + changes.front().what + ": " +
                    reader.error() + ")";
        return res;
      }
      res.error = reader.error();
      return res;
    }
    // The content digest from this pass's read (SpoolJob::digest_source): every raw byte once.
    std::optional<journal::SourceHasher> hasher;
    if (job.digest_source) {
      hasher.emplace();
      reader.on_raw([&h = *hasher](const char* p, size_t n) { h.update(p, n); });
    }
    // fail-export stopped the pass at an invalid line: the rest of the file is still read for
    // its digest, so an identical re-delivery is recognised as this (failed) export.
    auto stopped = [&] {
      if (hasher && reader.drain() && watch::changed_after_taken({job.source}).empty())
        res.digest = hasher->finish();
      return res;
    };
    spool::WriterOptions wo;
    wo.part_size = job.part_size;
    wo.zstd_level = job.zstd_level;
    wo.quota = job.quota;
    wo.fsync = job.fsync;
    wo.frame_sha256 = false;  // rejected/: uploaded whole by PutObject, which hashes the file
    spool::WriterOptions import_wo = wo;
    import_wo.frame_sha256 = job.frame_sha256;
    if (job.source_pieces && job.part_size == journal::kDigestPiece) {
      import_wo.source_pieces = job.source_pieces;
      import_wo.source_size = job.source.identity.size;
    } else if (hasher && job.part_size == journal::kDigestPiece) {
      import_wo.source_pieces = hasher->pieces();  // filled as this pass reads
      import_wo.source_pieces_live = true;
      import_wo.source_pieces_max = journal::kPiecesKept;
      import_wo.source_size = job.source.identity.size;
    }
    auto import_file = spool::import_path(job.spool_dir, job.export_name, job.file_name);
    if (job.on_import_frame) {
      // The writer (and its thread) ends before this function returns, so `job` outlives it.
      import_wo.on_frame = [&job, tmp = fs::path(import_file.string() + ".tmp")](
                               std::size_t n, const spool::Frame& f) {
        job.on_import_frame(n, f, tmp);
      };
    }
    auto rejected_file = spool::rejected_path(job.spool_dir, job.export_name, job.file_name);
    spool::SpoolWriter import(import_file, import_wo);
    std::optional<spool::SpoolWriter> rejected;  // created at the first rejected line
    const bool reject_file = job.on_invalid == config::OnInvalid::reject_file;
    // reject-file: every line also goes to rejected/ (the whole file is rejected if one line is
    // invalid); the import writer is dropped at the end in that case.
    if (reject_file) rejected.emplace(rejected_file, wo);

    // Line anchors (SpoolResult::line_map): one each time a valid line does not follow the
    // previous valid line in the source, i.e. after a rejected or blank line. Buffered in 64 KiB
    // and appended to the file, so memory does not grow with the number of anchors.
    std::int64_t import_no = 0;
    std::uint64_t prev_source = 0;
    std::string anchors;
    std::optional<std::ofstream> anchor_out;
    const fs::path map_file = line_map_path(job.spool_dir, job.export_name, job.file_name);
    auto flush_anchors = [&] {
      if (anchors.empty()) return;
      if (!anchor_out) {
        fs::create_directories(map_file.parent_path());
        anchor_out.emplace(map_file, std::ios::binary | std::ios::trunc);
      }
      anchor_out->write(anchors.data(), static_cast<std::streamsize>(anchors.size()));
      if (!*anchor_out) throw std::runtime_error("cannot write line map " + map_file.string());
      anchors.clear();
    };
    auto put_u64 = [&](std::uint64_t v) {
      for (int i = 0; i < 8; ++i) anchors.push_back(static_cast<char>((v >> (8 * i)) & 0xff));
    };

    std::vector<std::string> entries;  // at most job.max_report_entries
    std::size_t listed = 0;
    std::string first_rejected;  // "line N: cause" of the first rejected line, for the log
    // One line, validated, in file order: counted, written to the import or the rejected spool,
    // anchored, listed in the report. False: stop here (on_invalid fail-export; res says why).
    // `verbatim` is where the line sits in the source (LineSource::verbatim_offset).
    auto consume = [&](const fhir::Result& r, bool too_long, std::string_view line,
                       std::uint64_t line_no, std::int64_t verbatim) {
      if (r.blank) {
        ++res.blank;  // not a resource; dropped (HealthLake wants one resource per line)
        return true;
      }
      // `line` is only meaningful for a line that was read (not for a skipped over-long one).
      if (r.valid()) {
        ++res.valid;
        ++import_no;
        if (line_no != prev_source + 1) {
          put_u64(static_cast<std::uint64_t>(import_no));
          put_u64(line_no);
          ++res.line_anchors;
          if (anchors.size() >= (1u << 16)) flush_anchors();
        }
        prev_source = line_no;
        // Verbatim lines let a streamed part be read back from the source (Frame::source_offset).
        import.write_line(line, verbatim);
        if (reject_file) rejected->write_line(line);
        return true;
      }
      ++res.rejected;
      if (first_rejected.empty())
        first_rejected = "line " + std::to_string(line_no) + ": " + first_error(r);
      if (job.on_invalid == config::OnInvalid::fail_export) {
        res.fail_export = true;
        res.error = where + ":" + std::to_string(line_no) + ": " + first_error(r) +
                    " (on_invalid: fail-export)";
        return false;
      }
      if (!too_long) {
        if (!rejected) rejected.emplace(rejected_file, wo);
        rejected->write_line(line);
      }
      if (listed < job.max_report_entries) {
        entries.push_back(report_entry(r));
        ++listed;
      }
      return true;
    };
    // The line the reader just returned (`st`, `line`, `line_no` below), validated on this thread
    // (or the over-long line's issue) and consumed.
    std::string_view line;
    std::uint64_t line_no = 0;
    fhir::LineReader::Status st = fhir::LineReader::Status::eof;
    auto consume_here = [&] {
      if (st != fhir::LineReader::Status::too_long)
        return consume(job.validator->validate_line(line, line_no, local_scratch()), false, line,
                       line_no, reader.verbatim_offset());
      fhir::Result r;
      r.line = line_no;
      r.issues.push_back(
          fhir::Issue{fhir::Severity::error, std::string(fhir::code::too_long), line_no, "",
                      "line of " + std::to_string(reader.last_line_bytes()) +
                          " bytes exceeds the line size limit of " + std::to_string(max_line) +
                          " bytes; skipped without being held in memory, not kept"});
      return consume(r, true, line, line_no, -1);
    };

    // The pass: lines are read in runs of about kBatchBytes. While an idle pool thread can help
    // (PoolHelp), a run is copied into a Batch and validated in chunks by this thread and the
    // helpers, then consumed in order; otherwise each line is validated and consumed straight
    // from the reader's buffer (no copy). An over-long or large line is never copied.
    Batch batch;
    bool eof = false;
    while (!eof) {
      if (job.cancel && job.cancel->load(std::memory_order_relaxed)) {
        res.cancelled = true;
        return res;
      }
      const bool batched = job.help != nullptr && job.help->idle() > 0;
      batch.clear();
      std::size_t taken = 0;
      bool held = false;  // a line left in the reader's buffer to validate here after the batch
      while (taken < kBatchBytes) {
        st = reader.next(line, line_no);
        if (st == fhir::LineReader::Status::eof) {
          eof = true;
          break;
        }
        if (st == fhir::LineReader::Status::error) {
          res.error = reader.error();
          return res;
        }
        taken += line.size() + 1;
        if (batched && st == fhir::LineReader::Status::line && line.size() <= kChunkBytes) {
          batch.add(line, line_no, reader.verbatim_offset());
          continue;
        }
        if (batched) {
          held = true;  // after the lines before it
          break;
        }
        if (!consume_here()) return stopped();
      }
      if (!batch.lines.empty()) {
        res.lines_helped += validate_batch(batch, *job.validator, job.help);
        for (std::size_t i = 0; i < batch.lines.size(); ++i) {
          const auto& l = batch.lines[i];
          if (!consume(batch.results[i], false, batch.text(l), l.no, l.verbatim)) return stopped();
        }
      }
      if (held && !consume_here()) return stopped();
    }

    // The last piece ends here, before the last frame does (import.finish below).
    std::optional<journal::FileDigest> digest;
    if (hasher) digest = hasher->finish();
    // The source must still be what was taken: otherwise this export is superseded (never
    // uploaded half-old, half-new).
    auto changes = watch::changed_after_taken({job.source});
    if (!changes.empty()) {
      res.changed = true;
      res.error = where + " changed while it was spooled (" + changes.front().what + ")";
      return res;
    }

    if (res.line_anchors > 0) {
      flush_anchors();
      anchor_out->close();
      if (!*anchor_out) throw std::runtime_error("cannot write line map " + map_file.string());
      res.line_map = map_file;
    }

    res.file_rejected = reject_file && res.rejected > 0;
    std::int64_t withheld = 0;  // reject-file: valid lines not imported with their file
    if (res.file_rejected) {
      withheld = res.valid;
      res.valid = 0;  // nothing of this file is imported
      // The import writer is not finished: its destructor removes the temporary files.
    } else {
      const auto& idx = import.finish();
      res.bytes_uncompressed = idx.uncompressed_size;
      res.bytes_spooled = idx.compressed_size;
      res.crc32c = idx.crc32c;
      for (size_t i = 0; i < idx.frames.size(); ++i) {
        const auto& f = idx.frames[i];
        res.import_parts.push_back(PartSpec{static_cast<int>(i) + 1, f.uncompressed_offset,
                                            f.uncompressed_size, f.crc32c});
      }
      auto sf = spool::SpoolFile::open(import_file);
      res.archive_parts = raw_parts(sf, sf.index().compressed_size, job.part_size);
    }
    if (rejected && (res.file_rejected || (!reject_file && res.rejected > 0))) {
      const auto& ridx = rejected->finish();
      res.rejected_file = rejected_file;
      res.rejected_bytes = ridx.compressed_size;
      auto sf = spool::SpoolFile::open(rejected_file);
      std::uint32_t crc = 0;
      sf.read_raw(0, ridx.compressed_size,
                  [&](std::span<const char> b) { crc = aws::crc32c(b.data(), b.size(), crc); });
      res.rejected_crc32c = crc;
    }
    // rejected (reject-file without invalid lines) is dropped unfinished: nothing to keep.

    // report.json is read by people too: each rejected line on a line of its own.
    json::Writer fw;
    fw.begin_object()
        .field("file", job.file_name)
        .field("resources_valid", res.valid)
        .field("resources_rejected", res.rejected)
        .field("blank_lines", res.blank)
        .field("file_rejected", res.file_rejected);
    if (res.file_rejected) fw.field("resources_withheld", withheld);
    fw.field("bytes_import", res.bytes_uncompressed)
        .field("rejected_listed", listed)
        .key("rejected")
        .begin_array();
    for (const auto& e : entries) fw.space("\n    ").raw(e);
    if (entries.empty()) fw.space("\n    ");
    fw.end_array().end_object();
    const std::string frag = std::move(fw).str();
    res.report_fragment = fragment_path(job.spool_dir, job.export_name, job.file_name);
    fs::create_directories(res.report_fragment.parent_path());
    spool::write_durable(res.report_fragment, frag);
    res.ok = true;
    res.digest = std::move(digest);
    // One line per file that had bad input, naming the file and the first cause (the report has
    // every rejected line); said here because only the reader knows a skipped line's size.
    if (reader.had_bom())
      log::notice(
          "leading UTF-8 byte order mark on line 1 ignored (not sent to HealthLake)",
          {{"EXPORT_ID", job.export_name}, {"PIPELINE", job.pipeline}, {"FHIR_FILE", where}});
    if (res.rejected > 0)
      log::warning(
          std::to_string(res.rejected) + " invalid line(s) " +
              (res.file_rejected ? "(whole file rejected)" : "rejected") + ", first " +
              first_rejected,
          {{"EXPORT_ID", job.export_name}, {"PIPELINE", job.pipeline}, {"FHIR_FILE", where}});
  } catch (const spool::Cancelled&) {
    res.cancelled = true;
  } catch (const std::exception& e) {
    res.error = where + ": " + e.what();
  }
  return res;
}

void write_report(const fs::path& spool_dir, std::string_view export_name,
                  std::string_view pipeline, std::string_view level,
                  const std::vector<std::string>& file_names) {
  json::Writer w;
  w.begin_object()
      .field("export", export_name)
      .field("pipeline", pipeline)
      .field("validation_level", level)
      .space("\n ")
      .key("files")
      .begin_array();
  bool any = false;
  for (const auto& name : file_names) {
    auto p = fragment_path(spool_dir, export_name, name);
    std::ifstream in(p, std::ios::binary);
    if (!in) continue;  // a file that was never spooled (fail-export) has no fragment
    std::ostringstream ss;
    ss << in.rdbuf();
    w.space("\n  ").raw(ss.str());  // a fragment this file's spooling wrote
    any = true;
  }
  if (!any) w.space("\n  ");
  w.end_array().end_object();
  spool::write_durable(spool::report_path(spool_dir, export_name), std::move(w).str() + "\n");
}

}  // namespace fe::pipeline
