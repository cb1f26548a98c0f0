#pragma once
// Validate + spool one source file (runs on a worker-pool thread; touches no journal and no
// shared state besides the thread-safe Validator, Quota and PoolHelp). The control thread records
// the result in the journal afterwards: everything this returns is already durable on disk.
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "fhir/validator.hpp"
#include "journal/digest.hpp"
#include "spool/spool.hpp"
#include "watch/identity.hpp"

namespace fe::pipeline {

// Idle worker-pool threads lend a hand validating a file that is spooling (issue 13 item 3: one big
// file uses every core, not one worker plus its compressor). Two budgets decide, both counted from
// the moment a job is posted (so a helper never waits in the queue behind another file):
// - pool threads: jobs (spool_file, digests) and helper tasks never exceed the pool's threads;
// - cores: a spooling file already keeps two cores busy (its worker validating, its SpoolWriter's
//   compressor thread), a digest one, a helper one. A helper is lent only to a core nobody else
//   would use. Measured on 2 cores (bench/e2e README, session 11): a helper there only competes
//   with the file's own compressor and the upload, and cost ~0.5 CPU-s per GB for no time gained.
// Thread-safe.
class PoolHelp {
 public:
  enum class Job { spool, digest };
  // `post` runs a task on the pool (any thread); `threads` is the pool's size, `cores` the CPUs
  // this process may run on.
  PoolHelp(std::function<void(std::function<void()>)> post, int threads, int cores);
  void job_posted(Job job);  // a spool or digest job was posted to the pool
  void job_done(Job job);    // ... and has ended
  // Helpers that could be lent now (a hint: it may change at once).
  int idle() const;
  // Posts `task` for up to `n` helpers within both budgets; returns how many (0: none).
  int lend(int n, const std::function<void()>& task);

 private:
  static int cores_of(Job job) { return job == Job::spool ? 2 : 1; }
  void count(int jobs, int cores);  // adds to both budgets' use
  int free_locked() const;          // helpers both budgets allow (mu_ held)
  std::function<void(std::function<void()>)> post_;
  const int threads_, cores_;
  mutable std::mutex mu_;
  int jobs_ = 0;        // jobs and helper tasks posted and not yet ended
  int cores_used_ = 0;  // the cores they keep busy
};

struct PartSpec {
  int number = 0;  // 1-based
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  std::uint32_t crc32c = 0;
};

struct SpoolJob {
  std::filesystem::path spool_dir;
  std::string export_name;
  std::string pipeline;  // for log entries (PIPELINE)
  std::string file_name;
  watch::TakenFile source;  // path + identity as taken (checked again after spooling)
  std::shared_ptr<const fhir::Validator> validator;
  config::OnInvalid on_invalid = config::OnInvalid::reject_resource;
  std::uint64_t part_size = 8u << 20;
  int zstd_level = 1;
  // Record each import frame's SHA-256 for a signed upload (false: the parts go with the
  // unsigned-payload trailer, S3Client::payload_mode_for).
  bool frame_sha256 = true;
  // The piece digests of the source from its content digest (journal::FileDigest::pieces), when
  // this is the first spool of the file as digested: a verbatim import frame that is a piece is
  // signed with its digest instead of being hashed again (spool::WriterOptions::source_pieces).
  // Used only when part_size is the piece size (journal::kDigestPiece).
  std::shared_ptr<const std::vector<fe::Sha256Digest>> source_pieces{};
  // Hash the source's content digest from this pass's own read (journal::SourceHasher): the
  // export was taken before its digest (a path the journal had never seen, docs/pipeline.md "One
  // pass"). SpoolResult::digest then holds the file's digest; its piece digests sign verbatim
  // parts as source_pieces would.
  bool digest_source = false;
  spool::Quota* quota = nullptr;
  bool fsync = true;
  const std::atomic<bool>* cancel = nullptr;  // daemon stopping: abandon (redone at next start)
  std::size_t max_report_entries = 1000;      // rejected lines listed in the report per file
  // Idle pool threads validate batches of this file's lines with the owner (null: the owner
  // validates every line). The lines are written in file order either way, so the spool, the
  // parts and the report are the same bytes with or without help.
  PoolHelp* help = nullptr;
  // Each import frame as soon as it is written (on the writer's compressor thread; see
  // spool::WriterOptions::on_frame): frame n (0-based), its Frame and the .tmp file it is in.
  // The ingest streams the file's import parts to S3 with it while the file is still spooling.
  std::function<void(std::size_t n, const spool::Frame& frame,
                     const std::filesystem::path& tmp_file)>
      on_import_frame{};
};

struct SpoolResult {
  // Exactly one of: ok, error (I/O, spool), fail_export (on_invalid fail-export hit an invalid
  // line), changed (the source changed while it was read), cancelled.
  bool ok = false;
  std::string error;
  bool fail_export = false;
  bool changed = false;
  bool cancelled = false;

  bool file_rejected = false;  // on_invalid reject-file and the file had invalid lines
  std::int64_t valid = 0;
  std::int64_t rejected = 0;
  std::int64_t blank = 0;
  std::uint64_t bytes_uncompressed = 0;  // import object size
  std::uint64_t bytes_spooled = 0;       // import .zst size (archive object size)
  std::uint32_t crc32c = 0;              // of the whole import object
  std::uint64_t part_size = 0;
  std::vector<PartSpec> import_parts;   // = frames
  std::vector<PartSpec> archive_parts;  // byte ranges of the .zst
  // Rejected spool file (empty path when there were no rejected lines).
  std::filesystem::path rejected_file;
  std::uint64_t rejected_bytes = 0;  // .zst size
  std::uint32_t rejected_crc32c = 0;
  std::filesystem::path report_fragment;  // spool/<export>/reports/<File>.json
  // Where each import line came from (journal::LineAnchor), when a rejected or blank line made
  // the import object's line numbers differ from the source's: spool/<export>/lines/<File>.map,
  // pairs of little-endian uint64 (import line, source line), ascending. Written as the file is
  // read (never held in memory); the control thread streams it into the journal with
  // record_spooled and removes it. Empty path: no anchor (import line N = source line N).
  std::filesystem::path line_map;
  std::int64_t line_anchors = 0;
  // Lines validated by a helper thread rather than the owner (PoolHelp): for tests.
  std::int64_t lines_helped = 0;
  // SpoolJob::digest_source: the file's digest (journal::file_digest of the same bytes; identity
  // left empty), when the whole file was read and was still the file taken: with ok (also
  // file_rejected), and with fail_export (the rest of the file is read for it).
  std::optional<journal::FileDigest> digest;
};

// spool/<export>/lines/<File>.map
std::filesystem::path line_map_path(const std::filesystem::path& spool_dir,
                                    std::string_view export_name, std::string_view file_name);

// Reads a line map file written by spool_file, one anchor at a time (64 KiB buffer).
class LineMapReader {
 public:
  explicit LineMapReader(const std::filesystem::path& path);
  ~LineMapReader();
  LineMapReader(const LineMapReader&) = delete;
  LineMapReader& operator=(const LineMapReader&) = delete;
  // False at the end; throws std::runtime_error on a read error or a truncated file.
  bool next(std::int64_t& import_line, std::int64_t& source_line);

 private:
  int fd_ = -1;
  std::filesystem::path path_;
  std::vector<unsigned char> buf_;
  std::size_t pos_ = 0, len_ = 0;
};

SpoolResult spool_file(const SpoolJob& job);

// Byte ranges of size part_size covering [0, size) with the CRC32C of each range read from the
// spool file's raw bytes.
std::vector<PartSpec> raw_parts(const spool::SpoolFile& file, std::uint64_t size,
                                std::uint64_t part_size);

// spool/<export>/reports/<File>.json
std::filesystem::path fragment_path(const std::filesystem::path& spool_dir,
                                    std::string_view export_name, std::string_view file_name);

// Assembles report.json from the per-file fragments (in file order) and writes it durably.
void write_report(const std::filesystem::path& spool_dir, std::string_view export_name,
                  std::string_view pipeline, std::string_view level,
                  const std::vector<std::string>& file_names);

}  // namespace fe::pipeline
