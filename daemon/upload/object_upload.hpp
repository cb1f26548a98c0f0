#pragma once
// One S3 object of an export, uploaded as an explicit state machine (issue 14). The stage's
// contract:
//
// Input: an ObjectSpec (bucket, key, spool file, file id and kind) and what the PartLedger holds
// for it (key and upload id as last journaled, the planned parts with their CRC32C, state and
// ETag). The machine is rebuilt from the ledger alone after a crash or for a retry: nothing else
// carries over. Output: exactly one Outcome (upload/outcome.hpp) through `finished`.
//
// Steps (the shape of aws-c-s3's auto-ranged put: `advance()` decides the next request from the
// recorded state, `on_*` records a finished request and calls advance() again):
//
//   one part ──────────────────────────────▶ put ──ok──────────────────────────────▶ done
//                                             └─412─▶ head_settle
//   parts, no upload id ─▶ create ─ok─▶ send_parts ─all ok─▶ complete ─ok───────────▶ done
//   parts, upload id ────▶ list_parts ─ok/501─┘  │              ├─412 / NoSuchUpload─▶ head_settle
//                              └─NoSuchUpload─▶ head_settle ◀──┘ (UploadPart NoSuchUpload too)
//   head_settle: stored CRC32C (composite "<b64>-N" for multipart) = the journal's → done;
//                other content → failed (park); no object after NoSuchUpload → create again
//                (once per run: the multipart was aborted outside us; every part is re-sent);
//   any error the AWS layer gave up on → failed (retry_later or park, Outcome::from_error).
//
// Rules:
// - Every object is created with If-None-Match: * (PutObject, CompleteMultipartUpload): an object
//   already at the key is never overwritten; it is settled by checksum, never uploaded blindly.
// - The ledger records first, the step counts after: the key before PutObject, the upload id right
//   after CreateMultipartUpload, a part `uploading` before it is sent and `uploaded` with its ETag
//   after. A ledger write that throws ends the object retry_later ("journal write failed, will
//   retry: ...") and the step is not counted as done; the retry reconciles with ListParts /
//   HeadObject, so a part the server completed is not sent again.
// - ListParts: a part the server has with the journal's size and CRC32C is recorded uploaded
//   (never sent again); a server without ListParts (501 / NotImplemented): the journal alone.
// - Parts go through the PartScheduler (global concurrency); `abandoned()` is asked before each
//   queued part is sent: true (an early object of a superseded export, the daemon stopping) ends
//   the object retry_later without sending it.
// - Untracked objects (report.json, rejects: file_id 0): one PutObject of the whole file, not in
//   the ledger, not gated by the scheduler; settled like any other object on 412.
// - Streaming (issue 13 item 5): the import object of a file that is still being spooled.
//   start_streaming() creates the multipart upload at once (there is no single-PutObject form:
//   the part count is not known yet); add_part() hands over each part as soon as its frame is
//   written (the caller journals the part first, plan_parts); close(true) when the file is
//   spooled and journaled: the machine completes the upload once every part is up. close(false):
//   the file will not be complete (spool error, cancelled, superseded): the machine ends
//   retry_later once its parts in flight are back, without completing. A part or journal failure
//   while streaming ends the machine at once (the parts still to come are not sent); a
//   NoSuchUpload while streaming is retry_later, not a restart. The retry, like a crash, starts
//   from the journal: ListParts adopts what was sent. A multipart object of one part is settled
//   with the composite checksum "<b64>-1", as S3 reports it.
// Threading: control thread only; the machine keeps itself alive through its callbacks.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "upload/outcome.hpp"
#include "upload/ports.hpp"

namespace fe::upload {

enum class Step { put, create, list_parts, send_parts, complete, head_settle, done, failed };
std::string_view to_string(Step s);

struct ObjectSpec {
  std::int64_t file_id = 0;  // 0: untracked (report.json, rejects)
  journal::PartKind kind = journal::PartKind::import;
  std::string bucket;
  std::string key;
  std::filesystem::path spool_file;
  std::string content_type = "application/octet-stream";
  aws::Sse sse;
  // Parts queue behind every foreground part (PartScheduler): the archive copy, which the
  // import job does not wait for.
  bool background = false;
};

// What the machine reports to its owner while it runs (all optional).
struct Hooks {
  // Around CreateMultipartUpload: the key is being created (the orphan sweep spares it), and
  // its answer came after `attempts` attempts (more than one: an upload may have been orphaned).
  std::function<void(const std::string& key)> creating;
  std::function<void(const std::string& key, int attempts)> created;
  // A part request succeeded with `bytes` of body (`part` false: report.json / rejects).
  std::function<void(std::uint64_t bytes, bool part)> part_sent;
  std::function<void()> part_skipped;   // already uploaded (journal or ListParts)
  std::function<void()> settled;        // settled by HeadObject checksum
  std::function<void()> journal_error;  // a ledger write failed
  std::function<bool()> abandoned;      // see "Rules"
};

struct Ports {
  ObjectStore& store;
  PartLedger& ledger;
  PartBodies& bodies;
  PartScheduler& scheduler;
};

class ObjectUpload : public std::enable_shared_from_this<ObjectUpload> {
 public:
  using Finished = std::function<void(const Outcome&)>;

  // Loads the object from the ledger (throws when the ledger cannot be read). An object with no
  // planned part (a file with no valid line has no import object) is empty(): not started.
  ObjectUpload(Ports ports, ObjectSpec spec, Hooks hooks = {});
  bool empty() const { return spec_.file_id != 0 && parts_.empty(); }

  // Runs the steps until the object is done or failed, then calls `finished` once.
  void start(Finished finished);

  // Streaming (see "Rules"). The ledger must hold no upload id for the object; rows it holds
  // for it are ignored (the parts come with add_part).
  void start_streaming(Finished finished);
  // `source_file`/`source_identity`: where the frame's bytes may be read back (BodyRequest).
  void add_part(journal::PartRow part, const spool::Frame& frame,
                const std::filesystem::path& frame_file,
                const std::filesystem::path& source_file = {},
                const FileIdentity& source_identity = {});
  void close(bool complete);
  bool streaming() const { return streaming_; }

  Step step() const { return step_; }
  const ObjectSpec& spec() const { return spec_; }
  const std::vector<journal::PartRow>& parts() const { return parts_; }
  const std::string& upload_id() const { return upload_id_; }

  // The checksum S3 reports for the object as the journal describes it: the part's CRC32C for a
  // single part, the composite "<b64>-N" for multipart.
  static std::string expected_checksum(const std::vector<journal::PartRow>& parts) {
    return expected_checksum(parts, parts.size() > 1);
  }
  static std::string expected_checksum(const std::vector<journal::PartRow>& parts, bool multipart);

 private:
  void advance();
  void do_put();
  void do_create();
  void do_list_parts();
  void do_send_parts();
  void do_complete();
  void do_head_settle();
  bool send_one(std::size_t idx);  // a scheduler job

  void on_put(aws::S3Result<aws::PutObjectResult> r);
  void on_created(aws::S3Result<aws::CreateMultipartResult> r);
  void on_listed(aws::S3Result<std::vector<aws::PartInfo>> r);
  void on_part(std::size_t idx, aws::S3Result<aws::UploadPartResult> r);
  void on_completed(aws::S3Result<aws::CompleteMultipartResult> r);
  void on_head(aws::S3Result<aws::HeadObjectResult> r);

  void adopt_listed(const std::vector<aws::PartInfo>& listed);
  void part_done_or_failed();
  void fail(Outcome o);
  void fail_journal(const std::exception& e);
  void finish(Outcome o);
  bool ledger_write(const std::function<void()>& f);  // false: failed (object failing)
  bool tracked() const { return spec_.file_id != 0; }

  Ports ports_;
  ObjectSpec spec_;
  Hooks hooks_;
  Finished finished_;
  std::vector<journal::PartRow> parts_;
  std::string upload_id_;
  std::string journaled_key_;
  Step step_ = Step::put;
  Outcome failure_;           // first failure while parts are in flight
  int outstanding_ = 0;       // part jobs queued or in flight
  bool restarted_ = false;    // a NoSuchUpload restart happened in this run
  bool upload_gone_ = false;  // an UploadPart answered NoSuchUpload
  bool settle_may_restart_ = false;
  std::uint32_t whole_crc_ = 0;  // untracked objects
  std::uint64_t whole_size_ = 0;
  // Streaming: the parts handed over so far (by part number) with their frames.
  bool streaming_ = false;
  bool closed_ = false;    // close() was called
  bool complete_ = false;  // ... with true
  struct StreamedFrame {
    spool::Frame frame;
    std::filesystem::path file;
    std::filesystem::path source_file;
    FileIdentity source_identity;
  };
  std::map<int, StreamedFrame> frames_;
};

}  // namespace fe::upload
