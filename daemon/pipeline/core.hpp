#pragma once
// Private to the pipeline component (pipeline.hpp is its contract): the state its two parts
// share, on the control thread.
//
//   Ingest      (ingest.hpp)        watch → take → spool: a ReadyExport becomes a journaled,
//                                   spooled export (or a held, parked, failed or superseded one)
//   UploadStage (upload_stage.hpp)  the objects of an export → upload::ObjectUpload, merged
//                                   outcomes, retry with backoff, park; emits `uploaded`
//
// Both are peers built by Pipeline::Impl (pipeline.cpp), which owns this Core (it derives from
// it): the journal, the spool quota, the worker pools, the configured pipelines, the exports
// being worked on (`runs`) and the counters. A Run is handed between the parts by calling the
// other one (spooled → start_upload; an early object finished → spool_done; a retry →
// start_spool or start_upload); neither part owns or builds the other.
//
// Lifetime: callbacks posted to the pools or the io_context hold `weak_self` (or a shared_ptr
// from it) and return once `stopping` is set; the parts are destroyed with the Core.
#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>

#include "common/export_events.hpp"
#include "config/config.hpp"
#include "fhir/validator.hpp"
#include "journal/journal.hpp"
#include "pipeline/pipeline.hpp"
#include "pipeline/spooler.hpp"
#include "spool/spool.hpp"
#include "upload/object_upload.hpp"
#include "watch/watcher.hpp"

namespace fe::aws {
class S3Client;
}
namespace fe::upload {
class Cleanup;
}

namespace fe::pipeline {

class Ingest;
class UploadStage;

enum class Phase { spooling, uploading, waiting };

// One export being worked on (control thread only).
struct Run {
  std::int64_t id = 0;
  std::string name;
  std::string pipeline;
  Phase phase = Phase::spooling;
  int ops = 0;  // outstanding async work of the current phase
  bool superseded = false;
  std::string fail;  // fail-export message (the spool stage's verdict, not an upload outcome)
  // What went wrong in this attempt (spool I/O, journal, early uploads, the upload pass): park
  // beats retry_later; done when nothing did.
  upload::Outcome outcome;
  // Nothing above went wrong yet: objects may still be started early (or streamed).
  bool attempt_ok() const { return !superseded && fail.empty() && outcome.ok(); }
  int attempt = 0;
  std::unique_ptr<boost::asio::steady_timer> timer;
  // Upload overlapping the spool: a file's import and archive objects start as soon as that
  // file is spooled and journaled, while the export's later files are still being validated.
  // Such "early" objects exist only while the export is in Phase::spooling: spool_done waits
  // for them (spool_waiting), so every export-level decision (uploaded, retry, park, failed,
  // superseded) is taken with no early object in flight.
  int early_ops = 0;                    // early objects not finished yet
  std::set<std::int64_t> early_files;   // files whose objects were started early (this attempt)
  std::set<std::int64_t> early_failed;  // ... and one of them did not succeed
  bool spool_waiting = false;           // spool_done deferred until early_ops is 0
  // Per-part overlap (issue 13 item 5): the import object of a file that is still spooling,
  // streamed part by part as its frames are written (UploadStage::stream_part). An early object
  // like the others (early_files, early_ops); on_spooled closes it and takes it out of here.
  std::map<std::int64_t, std::shared_ptr<upload::ObjectUpload>> streams;  // by file id
  // Trailing objects (issue 13 item 5): what the import job does not read (the archive copies,
  // the rejects, report.json) is uploaded beside the import objects, not in front of them. The
  // export becomes `uploaded` (and the import stage starts its job) when its import objects are
  // done; each file stays `uploading` in the journal until its trailing objects are done too,
  // which is how a restart knows what is left (UploadStage::resume_trailing).
  int trail_ops = 0;                 // trailing objects not finished yet
  upload::Outcome trail_outcome;     // their merged outcome
  bool importable = false;           // the export is `uploaded`: only trailing objects remain
  bool decide_when_drained = false;  // the import objects failed: decide once trail_ops is 0
  // The piece digests of the files as the content digest read them (journal::FileDigest::pieces),
  // by file name, for the files' first spool after the take: a verbatim part is then signed with
  // its piece's digest, not hashed again (issue 13 item 4). Handed to the spool jobs and cleared
  // by start_spool; a resume after a restart has none and hashes as it spools.
  std::map<std::string, std::shared_ptr<const std::vector<fe::Sha256Digest>>> source_pieces;
  // Taken before its content digest (docs/pipeline.md "One pass"): each file's digest comes from
  // its spool pass (SpoolResult::digest), or, for a file spooled by an earlier process, from a
  // read of it (Ingest::resolve_digest); the export's is recorded before it is `spooled`.
  bool digest_pending = false;
  bool digest_tried = false;                           // resolve_digest ran in this spool attempt
  int digest_reads = 0;                                // files being read for their digest
  std::map<std::string, journal::FileDigest> digests;  // by file name (pieces dropped)
};

// One configured pipeline: its config, validator and watcher.
struct Pipe {
  config::Pipeline cfg;
  std::shared_ptr<const fhir::Validator> validator;
  std::unique_ptr<watch::Watcher> watcher;
};

struct Core {
  Core(boost::asio::io_context& io_, const config::Config& c, Options o);
  ~Core();
  Core(const Core&) = delete;
  Core& operator=(const Core&) = delete;

  boost::asio::io_context& io;
  config::Config cfg;
  Options opt;
  std::optional<journal::Journal> jr;
  std::unique_ptr<spool::Quota> quota;
  // Declared before `pool`, so it outlives the helper tasks the pool may still run at its end.
  std::unique_ptr<PoolHelp> help;                    // idle pool threads help spool_file
  std::unique_ptr<boost::asio::thread_pool> pool;    // validate + spool, digests
  std::unique_ptr<boost::asio::thread_pool> reader;  // upload::SpoolBodies
  aws::S3Client* s3 = nullptr;                       // null before start and once stopped
  std::map<std::string, Pipe> pipes;
  std::map<std::int64_t, std::shared_ptr<Run>> runs;
  // Exports past `uploaded` whose trailing objects are still uploading (or wait to retry): not in
  // `runs`, since from `uploaded` on the export belongs to the import stage.
  std::map<std::int64_t, std::shared_ptr<Run>> trailing;
  // Orphaned multipart uploads and superseded versions' objects (daemon/upload/cleanup.hpp).
  std::shared_ptr<upload::Cleanup> cleanup;
  // The hand-off to the next stage (Options::events, from the composition root).
  ExportEvents* events = nullptr;
  std::unique_ptr<Ingest> ingest;
  std::unique_ptr<UploadStage> upload;
  std::weak_ptr<Core> weak_self;  // set by Pipeline's constructor
  std::atomic<bool> cancel{false};
  bool stopping = false;
  Stats stats;

  // Status may have changed (Options::on_change).
  void changed() {
    if (opt.on_change) opt.on_change();
  }
  const Pipe* pipe_of(const std::string& name) const {
    auto it = pipes.find(name);
    return it == pipes.end() ? nullptr : &it->second;
  }
  // A Run for an export row, registered in `runs`.
  std::shared_ptr<Run> make_run(const journal::ExportRow& row);
};

}  // namespace fe::pipeline
