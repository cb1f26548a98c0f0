#pragma once
// The small interfaces the object upload (upload/object_upload.hpp) works through, so the state
// machine can be driven by the daemon (S3 client, SQLite journal, spool) and by unit tests (a
// fake store, an in-memory ledger) alike. The daemon's implementations are in
// upload/adapters.hpp.
//
//   ObjectStore    the S3 calls an object upload makes. Asynchronous: `done` runs exactly once,
//                  on the control thread, with the value or a typed aws::AwsError (after the AWS
//                  layer's own retries).
//   PartLedger     the journal rows the upload owns: per (file, kind) the object's key, its
//                  multipart upload id and its parts. Synchronous; a call that returns has reached
//                  the disk; it throws (std::exception) when the journal cannot be written, and
//                  the upload then ends retry_later without counting the step as done.
//   PartBodies     part bodies out of the spool (spool/part_body.hpp), possibly computed on
//                  another thread; `done` runs on the control thread.
//   PartScheduler  the global gate: at most `limit` part requests (UploadPart, single PutObject)
//                  in flight over every object of every export, in FIFO order within two classes:
//                  a background job (a part of an archive copy, ObjectSpec::background) runs only
//                  when no foreground job (an import part) waits, so the archive copy never
//                  delays the import objects the import job waits for (issue 13 item 5).
#include <cstdint>
#include <deque>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "aws/s3.hpp"
#include "common/file_identity.hpp"
#include "journal/journal.hpp"
#include "spool/spool.hpp"

namespace fe::upload {

class ObjectStore {
 public:
  template <class T>
  using Done = std::function<void(aws::S3Result<T>)>;
  virtual ~ObjectStore() = default;
  virtual void put_object(aws::PutObjectRequest req, Done<aws::PutObjectResult> done) = 0;
  virtual void create_multipart_upload(aws::CreateMultipartRequest req,
                                       Done<aws::CreateMultipartResult> done) = 0;
  virtual void upload_part(aws::UploadPartRequest req, Done<aws::UploadPartResult> done) = 0;
  virtual void complete_multipart_upload(aws::CompleteMultipartRequest req,
                                         Done<aws::CompleteMultipartResult> done) = 0;
  // Every page of ListParts.
  virtual void list_parts(std::string bucket, std::string key, std::string upload_id,
                          Done<std::vector<aws::PartInfo>> done) = 0;
  virtual void head_object(std::string bucket, std::string key,
                           Done<aws::HeadObjectResult> done) = 0;
};

// What the ledger records for one object (one file's import or archive object).
struct LedgerObject {
  std::string key;        // as last journaled ("" before the first attempt)
  std::string upload_id;  // "" for a single PutObject or before CreateMultipartUpload
  std::vector<journal::PartRow> parts;
};

class PartLedger {
 public:
  virtual ~PartLedger() = default;
  virtual LedgerObject load(std::int64_t file_id, journal::PartKind kind) = 0;
  // The object's key and upload id ("" for a single PutObject), before any part is sent to it.
  virtual void set_object(std::int64_t file_id, journal::PartKind kind, const std::string& key,
                          const std::string& upload_id) = 0;
  // A new multipart upload replaces one S3 no longer has (NoSuchUpload, object absent): the new
  // id is recorded and every part goes back to pending, in one step.
  virtual void restart_object(std::int64_t file_id, journal::PartKind kind, const std::string& key,
                              const std::string& upload_id) = 0;
  virtual void set_part_state(std::int64_t file_id, journal::PartKind kind, int part_number,
                              journal::PartState to) = 0;
  virtual void part_uploaded(std::int64_t file_id, journal::PartKind kind, int part_number,
                             const std::string& etag, const std::string& crc32c) = 0;
};

// The object being uploaded, as the bodies need it.
struct BodyRequest {
  std::filesystem::path spool_file;
  journal::PartKind kind = journal::PartKind::import;
  bool whole_file = false;  // report.json / rejects: the whole file, checksum computed too
  std::uint64_t offset = 0, length = 0;
  int part_number = 1;
  // A part streamed while its file is still spooling (ObjectUpload::add_part): the frame's
  // compressed range in `frame_file`, the writer's .tmp file, or spool_file once it is renamed.
  std::optional<spool::Frame> frame;
  std::filesystem::path frame_file;
  // And the export's source file the frame's bytes sit in (Frame::source_offset), with its
  // identity when taken: the part is read from there while the file is unchanged
  // (spool::source_stream). Empty path: from the spool only.
  std::filesystem::path source_file;
  FileIdentity source_identity;
};
struct PartBody {
  aws::BodySource body;
  std::string sha256;        // hex, "" when unknown (the AWS layer then decides)
  std::uint32_t crc32c = 0;  // whole_file only: computed from the file
  std::string error;         // non-empty: the body cannot be read (damaged or missing spool)
};
class PartBodies {
 public:
  virtual ~PartBodies() = default;
  virtual void open(const BodyRequest& req, std::function<void(PartBody)> done) = 0;
};

class PartScheduler {
 public:
  explicit PartScheduler(int limit) : limit_(limit) {}
  void set_limit(int limit) { limit_ = limit; }
  // Queues a job. It runs when fewer than `limit` jobs hold a slot; it returns true when it took
  // the slot (it sent a request and will call release() once that request finished), false when
  // it sent nothing (its object had already failed or was abandoned).
  void submit(std::function<bool()> job, bool background = false) {
    (background ? background_ : queue_).push_back(std::move(job));
    pump();
  }
  void release() {
    --in_flight_;
    pump();
  }
  // Daemon stopping: queued jobs are dropped (their parts stay pending in the journal).
  void clear() {
    stopped_ = true;
    queue_.clear();
    background_.clear();
  }
  int in_flight() const { return in_flight_; }
  std::size_t queued() const { return queue_.size() + background_.size(); }

 private:
  void pump() {
    while (!stopped_ && in_flight_ < limit_ && (!queue_.empty() || !background_.empty())) {
      auto& q = queue_.empty() ? background_ : queue_;
      auto job = std::move(q.front());
      q.pop_front();
      ++in_flight_;  // held while the job runs, so a nested pump does not overrun the limit
      if (!job()) --in_flight_;
    }
  }
  int limit_;
  int in_flight_ = 0;
  bool stopped_ = false;
  std::deque<std::function<bool()>> queue_;
  std::deque<std::function<bool()>> background_;
};

}  // namespace fe::upload
