#pragma once
// The pipeline's ingest part (private to the pipeline component; its contract is pipeline.hpp's
// watch / take / spool): a ReadyExport of a pipeline's watcher becomes a journaled export whose
// files are validated and spooled.
//
//   on_ready     a path the journal has never seen: take() at once, the content digest is
//                hashed by the spool pass (docs/pipeline.md "One pass"); a path whose export
//                taken that way still has its digest pending: nothing, if its files are the
//                very files taken (same identities), else as a known path; a known path: content
//                digest on the worker pool (a second report of the same path while one is
//                digested is queued and digested after it; the legacy scheme for a path the
//                journal holds with a legacy digest, journal/digest.hpp), then take() on the
//                control thread
//   take         journal.take_export: an identical re-delivery is recognised (not redone), a
//                changed one is a new version; on_changed: hold parks a new version whose
//                earlier one got past spooling (hold_reason says what changed); files in
//                subdirectories park the export; the files' piece digests go to the run
//   start_spool  every pending file, largest first, to spool_file (spooler.hpp) on the pool, with
//                its piece digests (a verbatim signed part is not hashed again); a
//                file of several parts streams its import parts to the UploadStage as its frames
//                are written (SpoolJob::on_import_frame → UploadStage::stream_part; streams()
//                says which files)
//   on_spooled   journals one file's outcome (plan_parts + record_spooled only after its spool
//                files are durable), then completes its stream (UploadStage::end_stream) or
//                starts its import object early (UploadStage::start_early_upload); a file that
//                failed stops its stream
//   spool_done   once every file and early object is done: superseded (spool removed, cleanup of
//                what early uploads left); a pending content digest recorded (resolve_digest);
//                failed (fail-export), park / retry, else report.json, `spooled` and
//                UploadStage::start_upload
//
// Hand-offs: to the UploadStage (stream_part, end_stream, start_early_upload, start_upload, park,
// schedule_retry); the
// UploadStage calls start_spool (a retry of a spooling export) and spool_done (the last early
// object finished). Threading: control thread, except spool_file and the digest on the pool.
#include <map>
#include <memory>
#include <set>
#include <string>

#include "journal/digest.hpp"
#include "journal/journal.hpp"
#include "pipeline/core.hpp"
#include "pipeline/spooler.hpp"
#include "watch/watcher.hpp"

namespace fe::pipeline {

class Ingest {
 public:
  explicit Ingest(Core& core) : c_(core) {}

  // A watcher reported an export of pipeline `pname` ready.
  void on_ready(const std::string& pname, const watch::ReadyExport& r);
  // Validates and spools the export's pending files (its Run enters Phase::spooling).
  void start_spool(std::shared_ptr<Run> run);
  // Every file is spooled (or failed): decide where the export goes next.
  void spool_done(std::shared_ptr<Run> run);

 private:
  // The content digest on the pool, then take().
  void digest_and_take(const std::string& pname, const watch::ReadyExport& r);
  // `files`: each file's digest (its piece digests go to the spool jobs). An empty digest: taken
  // before it (Journal::take_new_source).
  void take(const std::string& pname, const watch::ReadyExport& r, const std::string& digest,
            const std::vector<std::pair<std::string, journal::FileDigest>>& files = {});
  // Records the content digest of an export taken before it. True: recorded (or not pending), go
  // on; false: spool_done runs again once the files spooled by an earlier process are read, or
  // the export ended (the same content is a later version already: superseded).
  bool resolve_digest(const std::shared_ptr<Run>& run);
  void digest_read(const std::shared_ptr<Run>& run, const std::string& name,
                   const journal::FileDigest& d, const std::string& error,
                   const journal::SourceIdentity& taken);
  std::string hold_reason(const std::string& pname, const journal::ExportRow& row,
                          const watch::ReadyExport& r);
  // `where`: the source file's full path (log entries name it).
  void on_spooled(std::shared_ptr<Run> run, std::int64_t file_id, const std::string& where,
                  const SpoolResult& res);
  // Whether the file's import parts are streamed while it spools (ingest.cpp says when).
  bool streams(const Pipe& pipe, const journal::FileRow& f, std::uint64_t part_size) const;

  Core& c_;
  std::set<std::string> digesting;                  // pipeline \n path
  std::map<std::string, watch::ReadyExport> again;  // reported again while digesting
};

}  // namespace fe::pipeline
