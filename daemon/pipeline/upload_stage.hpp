#pragma once
// The pipeline's upload part (private to the pipeline component; its contract is pipeline.hpp's
// upload / errors): the objects of a spooled export go to S3, and the export becomes `uploaded`,
// waits to retry, or is parked.
//
//   start_upload        the export's upload pass: which objects it has (import and archive
//                       objects of every file, laid out in import/part-NNNN/ folders past
//                       Options::max_files_per_import_job; rejects and report.json with
//                       s3.upload_rejects), each an upload::ObjectUpload (daemon/upload/: put /
//                       create / list_parts / send_parts / complete / head_settle) loaded from the
//                       journal, all started at once under one PartScheduler. The import objects
//                       are the front; the archive copies, rejects and report.json trail
//                       (issue 13 item 5): archive parts queue behind every import part
//                       (ObjectSpec::background), and the export does not wait for them
//   start_early_upload  the import object of one file of an export that is still spooling (not
//                       with fail-export); its archive copy trails in start_upload
//   stream_part         per-part overlap: frame N of a file still being spooled (Ingest decides
//                       which files stream, SpoolJob::on_import_frame); the first frame creates
//                       the file's import object (ObjectUpload::start_streaming, an early
//                       object), every frame is journaled (plan_parts) and handed to it;
//                       end_stream (Ingest::on_spooled) closes it: complete once the file is
//                       spooled and journaled, else stopped (retry_later, resumed from the
//                       journal with ListParts)
//   object_done         merges each object's upload::Outcome into the Run (park beats
//                       retry_later beats done); an early object's last one hands back to
//                       Ingest::spool_done
//   front_done          the import objects are done: `uploaded` in the journal (files whose
//                       trailing objects are still going stay `uploading`), then emits
//                       ExportEvent::uploaded (the import stage takes it from there) while the
//                       trailing objects go on. Failed: once the trailing ones drained, upload_done
//   trail_done          the trailing objects of an `uploaded` export are done: its files become
//                       `uploaded`; failed: retried after the backoff (resume_trailing), never
//                       parking the export, whose state the import stage owns now
//   resume_trailing     at start: every export past `uploaded` with a file still `uploading`
//                       uploads its trailing objects (from the journal: ListParts / HeadObject)
//   upload_done         park / schedule_retry / `uploaded` (an export without import objects:
//                       everything is front) in the journal, then emits ExportEvent::uploaded
//   schedule_retry      the Run waits retry_base · 2^(attempt-1), at most retry_max, and is
//                       resumed from the journal (resume: start_spool or start_upload)
//   park                park_export with the reason; the Run ends
//
// Threading: control thread; part bodies are read on Core::reader (upload::SpoolBodies).
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "journal/journal.hpp"
#include "pipeline/core.hpp"
#include "upload/adapters.hpp"
#include "upload/object_upload.hpp"

namespace fe::pipeline {

class UploadStage {
 public:
  // After the journal, the quota and the reader pool exist (Impl::start).
  explicit UploadStage(Core& core);
  ~UploadStage();

  void start_upload(std::shared_ptr<Run> run);
  // At start (after recovery): exports past `uploaded` whose trailing objects are not all done.
  void resume_trailing();
  // Exports whose trailing objects are still uploading or wait to retry (status line).
  std::size_t trailing() const { return c_.trailing.size(); }
  // Throws on a journal error (Ingest::on_spooled turns it into a retry).
  void start_early_upload(std::shared_ptr<Run> run, std::int64_t file_id);
  // Per-part overlap (control thread; see above). stream_part does nothing once the export's
  // attempt failed; end_stream returns false when the file had no stream.
  // `source`: the file being spooled, as taken; a frame that sits in it verbatim is read from
  // there (upload::BodyRequest::source_file).
  void stream_part(const std::shared_ptr<Run>& run, std::int64_t file_id, std::size_t n,
                   const spool::Frame& frame, const std::filesystem::path& tmp_file,
                   const watch::TakenFile& source);
  bool end_stream(const std::shared_ptr<Run>& run, std::int64_t file_id, bool complete);
  void schedule_retry(std::shared_ptr<Run> run, const std::string& why);
  void park(std::shared_ptr<Run> run, const std::string& why);
  // Stop: queued parts are dropped (they are resumed from the journal at the next start).
  void clear();

 private:
  void resume(std::shared_ptr<Run> run);
  upload::Ports ports();
  upload::Hooks hooks_for(const std::shared_ptr<Run>& run, bool early);
  std::shared_ptr<upload::ObjectUpload> untracked_object(const std::shared_ptr<Run>& run,
                                                         const config::S3Target& s3c,
                                                         std::string key,
                                                         std::filesystem::path file);
  enum class Kinds { import, archive, both };
  void add_file_objects(const std::shared_ptr<Run>& run, const config::S3Target& s3c,
                        const std::string& export_name, const journal::FileRow& f,
                        std::int64_t file_index, std::int64_t n_files, bool early, Kinds kinds,
                        std::vector<std::shared_ptr<upload::ObjectUpload>>& objs);
  // The trailing objects of an export into `trail`: per file (each_file first, if given, which
  // may update the file's row), its archive copy while it is `uploading` and its rejects while
  // it is not `uploaded` (s3.upload_rejects); then report.json (s3.upload_rejects).
  using Objects = std::vector<std::shared_ptr<upload::ObjectUpload>>;
  using EachFile =
      std::function<void(journal::FileRow& f, std::int64_t file_index, std::int64_t n_files)>;
  void add_trailing_objects(const std::shared_ptr<Run>& run, const config::S3Target& s3c,
                            const std::string& export_name, std::vector<journal::FileRow> files,
                            const EachFile& each_file, Objects& trail);
  // Which count an object belongs to: an early import object, the pass's front, the trailing.
  enum class Role { early, front, trail };
  void launch(const std::shared_ptr<Run>& run, const std::shared_ptr<upload::ObjectUpload>& o,
              Role role, bool streaming = false);
  // A file's row and its position among its export's files (its import key depends on both).
  struct FileAt {
    journal::FileRow row;
    std::int64_t index = 0, count = 0;
  };
  std::optional<FileAt> file_at(std::int64_t export_id, std::int64_t file_id);
  // The object of one file of an export (its key: the one place keys of a file are built).
  upload::ObjectSpec file_spec(const config::S3Target& s3c, const std::string& export_name,
                               const journal::FileRow& f, std::int64_t file_index,
                               std::int64_t n_files, journal::PartKind kind);
  void object_done(const std::shared_ptr<Run>& run, Role role, std::int64_t file_id,
                   const upload::Outcome& out);
  void front_done(std::shared_ptr<Run> run);
  void trail_done(std::shared_ptr<Run> run);
  // The trailing objects of an export past `uploaded` (journal: files still `uploading`).
  void start_trailing(std::int64_t export_id);
  void retry_trailing(std::shared_ptr<Run> run);
  void upload_done(std::shared_ptr<Run> run);

  Core& c_;
  // The object upload's ports (daemon/upload/), kept until the Core goes (a machine only runs
  // from callbacks that check `stopping` first).
  std::unique_ptr<upload::PartScheduler> scheduler;  // upload.concurrency over every object
  std::unique_ptr<upload::S3Store> store;
  std::unique_ptr<upload::JournalLedger> ledger;
  std::unique_ptr<upload::SpoolBodies> bodies;
};

}  // namespace fe::pipeline
