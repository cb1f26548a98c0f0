// The object upload state machine: see object_upload.hpp for the contract and the step diagram.
// advance() is the only place that issues a request; every on_*() records what a finished request
// means (ledger first), picks the next step and calls advance() again.
#include "upload/object_upload.hpp"

#include "aws/crc32c.hpp"
#include "service/log.hpp"

namespace fe::upload {

using journal::PartState;

std::string_view to_string(Outcome::Kind k) {
  switch (k) {
    case Outcome::Kind::done:
      return "done";
    case Outcome::Kind::retry_later:
      return "retry_later";
    case Outcome::Kind::park:
      return "park";
  }
  return "?";
}

std::string_view to_string(Step s) {
  switch (s) {
    case Step::put:
      return "put";
    case Step::create:
      return "create";
    case Step::list_parts:
      return "list_parts";
    case Step::send_parts:
      return "send_parts";
    case Step::complete:
      return "complete";
    case Step::head_settle:
      return "head_settle";
    case Step::done:
      return "done";
    case Step::failed:
      return "failed";
  }
  return "?";
}

std::string ObjectUpload::expected_checksum(const std::vector<journal::PartRow>& parts,
                                            bool multipart) {
  if (!multipart && parts.size() == 1) return parts[0].crc32c;
  std::vector<std::uint32_t> crcs;
  for (const auto& p : parts) {
    std::uint32_t c = 0;
    aws::crc32c_from_base64(p.crc32c, c);
    crcs.push_back(c);
  }
  return aws::composite_crc32c(crcs);
}

ObjectUpload::ObjectUpload(Ports ports, ObjectSpec spec, Hooks hooks)
    : ports_(ports), spec_(std::move(spec)), hooks_(std::move(hooks)) {
  if (!tracked()) return;
  LedgerObject lo = ports_.ledger.load(spec_.file_id, spec_.kind);
  parts_ = std::move(lo.parts);
  upload_id_ = std::move(lo.upload_id);
  journaled_key_ = std::move(lo.key);
}

void ObjectUpload::start(Finished finished) {
  finished_ = std::move(finished);
  if (!tracked()) {
    step_ = Step::put;
    return advance();
  }
  if (parts_.size() == 1 && upload_id_.empty()) {
    if (parts_[0].state == PartState::uploaded) {
      if (hooks_.part_skipped) hooks_.part_skipped();
      return finish(Outcome::done());
    }
    if (journaled_key_ != spec_.key) {
      // A single PutObject has no upload id, but the journal still names the object's key
      // (status, the importer and an operator read it from the file row).
      if (!ledger_write(
              [&] { ports_.ledger.set_object(spec_.file_id, spec_.kind, spec_.key, ""); }))
        return;
      journaled_key_ = spec_.key;
    }
    step_ = Step::put;
  } else {
    step_ = upload_id_.empty() ? Step::create : Step::list_parts;
  }
  advance();
}

void ObjectUpload::start_streaming(Finished finished) {
  finished_ = std::move(finished);
  streaming_ = true;
  parts_.clear();
  step_ = Step::create;
  advance();
}

void ObjectUpload::add_part(journal::PartRow part, const spool::Frame& frame,
                            const std::filesystem::path& frame_file,
                            const std::filesystem::path& source_file,
                            const FileIdentity& source_identity) {
  if (!streaming_ || closed_ || step_ == Step::done || step_ == Step::failed) return;
  frames_[part.part_number] = {frame, frame_file, source_file, source_identity};
  parts_.push_back(std::move(part));
  // Before the upload id is known (create in flight) do_send_parts sends it; after a failure
  // nothing more is sent.
  if (step_ != Step::send_parts || !failure_.ok()) return;
  ++outstanding_;
  auto self = shared_from_this();
  const std::size_t i = parts_.size() - 1;
  ports_.scheduler.submit([self, i] { return self->send_one(i); }, spec_.background);
}

void ObjectUpload::close(bool complete) {
  if (!streaming_ || closed_) return;
  closed_ = true;
  complete_ = complete;
  if (!complete && failure_.ok())
    failure_ = Outcome::retry_later("upload of " + spec_.key +
                                    " stopped: its file was not spooled completely");
  if (step_ == Step::send_parts && outstanding_ == 0) part_done_or_failed();
}

void ObjectUpload::advance() {
  switch (step_) {
    case Step::put:
      return do_put();
    case Step::create:
      return do_create();
    case Step::list_parts:
      return do_list_parts();
    case Step::send_parts:
      return do_send_parts();
    case Step::complete:
      return do_complete();
    case Step::head_settle:
      return do_head_settle();
    case Step::done:
    case Step::failed:
      return;
  }
}

// ------------------------------------------------------------------ decide: the requests

void ObjectUpload::do_put() {
  auto self = shared_from_this();
  if (tracked()) {
    outstanding_ = 1;
    ports_.scheduler.submit([self] { return self->send_one(0); }, spec_.background);
    return;
  }
  // report.json / rejects: the whole file, checksummed off the control thread, one PutObject.
  BodyRequest br;
  br.spool_file = spec_.spool_file;
  br.kind = spec_.kind;
  br.whole_file = true;
  ports_.bodies.open(br, [self](PartBody b) {
    if (!b.error.empty()) return self->fail(Outcome::retry_later(b.error));
    self->whole_crc_ = b.crc32c;
    self->whole_size_ = b.body.size;
    aws::PutObjectRequest req;
    req.bucket = self->spec_.bucket;
    req.key = self->spec_.key;
    req.body = std::move(b.body);
    req.crc32c = b.crc32c;
    req.payload_sha256 = b.sha256;
    req.sse = self->spec_.sse;
    req.if_none_match = true;
    req.content_type = self->spec_.content_type;
    self->ports_.store.put_object(std::move(req), [self](aws::S3Result<aws::PutObjectResult> r) {
      self->on_put(std::move(r));
    });
  });
}

void ObjectUpload::do_create() {
  aws::CreateMultipartRequest req;
  req.bucket = spec_.bucket;
  req.key = spec_.key;
  req.sse = spec_.sse;
  req.content_type = spec_.content_type;
  if (hooks_.creating) hooks_.creating(spec_.key);
  auto self = shared_from_this();
  ports_.store.create_multipart_upload(
      std::move(req),
      [self](aws::S3Result<aws::CreateMultipartResult> r) { self->on_created(std::move(r)); });
}

void ObjectUpload::do_list_parts() {
  auto self = shared_from_this();
  ports_.store.list_parts(
      spec_.bucket, spec_.key, upload_id_,
      [self](aws::S3Result<std::vector<aws::PartInfo>> r) { self->on_listed(std::move(r)); });
}

void ObjectUpload::do_send_parts() {
  std::vector<std::size_t> missing;
  for (std::size_t i = 0; i < parts_.size(); ++i) {
    if (parts_[i].state == PartState::uploaded) {
      if (hooks_.part_skipped) hooks_.part_skipped();
    } else {
      missing.push_back(i);
    }
  }
  if (missing.empty()) {
    if (streaming_ && !closed_) return;  // the parts come with add_part
    if (streaming_ && !failure_.ok()) return fail(failure_);
    step_ = Step::complete;
    return advance();
  }
  // Counted before the first submit: a job that finishes at once cannot see zero early.
  outstanding_ = static_cast<int>(missing.size());
  auto self = shared_from_this();
  for (std::size_t i : missing)
    ports_.scheduler.submit([self, i] { return self->send_one(i); }, spec_.background);
}

void ObjectUpload::do_complete() {
  aws::CompleteMultipartRequest req;
  req.bucket = spec_.bucket;
  req.key = spec_.key;
  req.upload_id = upload_id_;
  for (const auto& p : parts_) req.parts.push_back({p.part_number, p.etag, p.crc32c});
  req.if_none_match = true;
  auto self = shared_from_this();
  ports_.store.complete_multipart_upload(
      std::move(req),
      [self](aws::S3Result<aws::CompleteMultipartResult> r) { self->on_completed(std::move(r)); });
}

void ObjectUpload::do_head_settle() {
  auto self = shared_from_this();
  ports_.store.head_object(spec_.bucket, spec_.key, [self](aws::S3Result<aws::HeadObjectResult> r) {
    self->on_head(std::move(r));
  });
}

// One part request under the scheduler (a single PutObject in step put, else UploadPart).
bool ObjectUpload::send_one(std::size_t idx) {
  if (failure_.ok() && hooks_.abandoned && hooks_.abandoned())
    failure_ = Outcome::retry_later("upload of " + spec_.key + " abandoned");
  if (!failure_.ok()) {
    // Not sent, not done: the next attempt redoes it from the ledger.
    if (--outstanding_ == 0) part_done_or_failed();
    return false;
  }
  auto& p = parts_[idx];
  if (p.state == PartState::pending) {
    try {
      ports_.ledger.set_part_state(spec_.file_id, spec_.kind, p.part_number, PartState::uploading);
    } catch (const std::exception& e) {
      if (hooks_.journal_error) hooks_.journal_error();
      failure_ = Outcome::retry_later(std::string("journal write failed, will retry: ") + e.what());
      if (--outstanding_ == 0) part_done_or_failed();
      return false;
    }
    p.state = PartState::uploading;
  }
  BodyRequest br;
  br.spool_file = spec_.spool_file;
  br.kind = spec_.kind;
  br.offset = static_cast<std::uint64_t>(p.offset);
  br.length = static_cast<std::uint64_t>(p.length);
  br.part_number = p.part_number;
  if (auto it = frames_.find(p.part_number); it != frames_.end()) {
    br.frame = it->second.frame;
    br.frame_file = it->second.file;
    br.source_file = it->second.source_file;
    br.source_identity = it->second.source_identity;
  }
  auto self = shared_from_this();
  ports_.bodies.open(br, [self, idx](PartBody b) {
    auto& p = self->parts_[idx];
    if (!b.error.empty()) {
      // A damaged spool frame is never sent: an operator must look at it.
      self->ports_.scheduler.release();
      // A streamed part's .tmp file is gone when its spooling failed: that file is spooled again
      // and its parts resumed from the journal, nothing to park for.
      if (self->failure_.ok())
        self->failure_ =
            self->frames_.count(p.part_number)
                ? Outcome::retry_later("spool frame gone while its file was spooled: " + b.error)
                : Outcome::park("spool file damaged, cannot upload: " + b.error);
      if (--self->outstanding_ == 0) self->part_done_or_failed();
      return;
    }
    std::uint32_t crc = 0;
    aws::crc32c_from_base64(p.crc32c, crc);
    if (self->step_ == Step::put) {
      aws::PutObjectRequest req;
      req.bucket = self->spec_.bucket;
      req.key = self->spec_.key;
      req.body = std::move(b.body);
      req.crc32c = crc;
      req.payload_sha256 = b.sha256;
      req.sse = self->spec_.sse;
      req.if_none_match = true;
      req.content_type = self->spec_.content_type;
      self->ports_.store.put_object(std::move(req), [self](aws::S3Result<aws::PutObjectResult> r) {
        self->on_put(std::move(r));
      });
      return;
    }
    aws::UploadPartRequest req;
    req.bucket = self->spec_.bucket;
    req.key = self->spec_.key;
    req.upload_id = self->upload_id_;
    req.part_number = p.part_number;
    req.body = std::move(b.body);
    req.crc32c = crc;
    req.payload_sha256 = b.sha256;
    self->ports_.store.upload_part(
        std::move(req),
        [self, idx](aws::S3Result<aws::UploadPartResult> r) { self->on_part(idx, std::move(r)); });
  });
  return true;
}

// ------------------------------------------------------------------ record: finished requests

void ObjectUpload::on_put(aws::S3Result<aws::PutObjectResult> r) {
  if (tracked()) {
    ports_.scheduler.release();
    --outstanding_;
  }
  if (r.ok()) {
    if (!tracked()) {
      if (hooks_.part_sent) hooks_.part_sent(whole_size_, false);
      return finish(Outcome::done());
    }
    auto& p = parts_[0];
    if (hooks_.part_sent) hooks_.part_sent(static_cast<std::uint64_t>(p.length), true);
    if (!ledger_write([&] {
          ports_.ledger.part_uploaded(spec_.file_id, spec_.kind, p.part_number, r.value->etag,
                                      p.crc32c);
        }))
      return;
    p.state = PartState::uploaded;
    p.etag = r.value->etag;
    return finish(Outcome::done());
  }
  if (r.error->category == aws::ErrorCategory::conflict) {
    step_ = Step::head_settle;  // 412: something is at the key already
    return advance();
  }
  fail(Outcome::from_error(*r.error, r.describe()));
}

void ObjectUpload::on_created(aws::S3Result<aws::CreateMultipartResult> r) {
  if (hooks_.created) hooks_.created(spec_.key, r.attempts);
  if (!r.ok()) return fail(Outcome::from_error(*r.error, r.describe()));
  upload_id_ = r.value->upload_id;
  // Not journaled = this upload is nobody's: the retry creates a new one and the orphan sweep
  // (or the bucket's lifecycle rule) aborts this one.
  if (!ledger_write([&] {
        if (restarted_)
          ports_.ledger.restart_object(spec_.file_id, spec_.kind, spec_.key, upload_id_);
        else
          ports_.ledger.set_object(spec_.file_id, spec_.kind, spec_.key, upload_id_);
      }))
    return;
  journaled_key_ = spec_.key;
  if (restarted_) {
    for (auto& p : parts_) {
      p.state = PartState::pending;
      p.etag.clear();
    }
  }
  step_ = Step::send_parts;
  advance();
}

void ObjectUpload::on_listed(aws::S3Result<std::vector<aws::PartInfo>> r) {
  if (!r.ok()) {
    const auto& e = *r.error;
    if (e.code == "NoSuchUpload") {
      // Completed before a crash, or aborted: the object (or its absence) decides.
      settle_may_restart_ = true;
      step_ = Step::head_settle;
      return advance();
    }
    if (e.http_status == 501 || e.code == "NotImplemented") {
      log::info("server lacks ListParts; resuming from the journal alone", {{"S3_KEY", spec_.key}});
      step_ = Step::send_parts;
      return advance();
    }
    return fail(Outcome::from_error(e, r.describe()));
  }
  if (!ledger_write([&] { adopt_listed(*r.value); })) return;
  step_ = Step::send_parts;
  advance();
}

// Parts ListParts reports with our size and CRC32C count as uploaded (never sent again).
void ObjectUpload::adopt_listed(const std::vector<aws::PartInfo>& listed) {
  for (auto& p : parts_) {
    if (p.state == PartState::uploaded) continue;
    for (const auto& s : listed) {
      if (s.part_number == p.part_number && s.size == static_cast<std::uint64_t>(p.length) &&
          (s.checksum_crc32c.empty() || s.checksum_crc32c == p.crc32c)) {
        if (p.state == PartState::uploading) {
          ports_.ledger.set_part_state(spec_.file_id, spec_.kind, p.part_number,
                                       PartState::pending);
          p.state = PartState::pending;
        }
        ports_.ledger.part_uploaded(spec_.file_id, spec_.kind, p.part_number, s.etag, p.crc32c);
        p.state = PartState::uploaded;
        p.etag = s.etag;
      }
    }
  }
}

void ObjectUpload::on_part(std::size_t idx, aws::S3Result<aws::UploadPartResult> r) {
  ports_.scheduler.release();
  --outstanding_;
  auto& p = parts_[idx];
  if (r.ok()) {
    if (hooks_.part_sent) hooks_.part_sent(static_cast<std::uint64_t>(p.length), true);
    try {
      ports_.ledger.part_uploaded(spec_.file_id, spec_.kind, p.part_number, r.value->etag,
                                  p.crc32c);
      p.state = PartState::uploaded;
      p.etag = r.value->etag;
    } catch (const std::exception& e) {
      // Not journaled = not done: the retry finds the part with ListParts and records it then.
      if (hooks_.journal_error) hooks_.journal_error();
      if (failure_.ok())
        failure_ =
            Outcome::retry_later(std::string("journal write failed, will retry: ") + e.what());
    }
  } else if (r.error->code == "NoSuchUpload") {
    upload_gone_ = true;  // aborted outside fhir-edge: settle, and start again if absent
  } else if (failure_.ok()) {
    failure_ = Outcome::from_error(*r.error, r.describe());
  }
  if (outstanding_ == 0) part_done_or_failed();
}

// Every part job of the current step ended (sent, failed or not sent).
void ObjectUpload::part_done_or_failed() {
  if (!failure_.ok()) return fail(failure_);
  if (upload_gone_ && streaming_ && !closed_)
    return fail(Outcome::retry_later("multipart upload " + upload_id_ + " of " + spec_.key +
                                     " disappeared while its file was being spooled"));
  if (upload_gone_) {
    upload_gone_ = false;
    settle_may_restart_ = true;
    step_ = Step::head_settle;
    return advance();
  }
  if (step_ == Step::send_parts) {
    if (streaming_ && !closed_) return;  // more parts to come
    step_ = Step::complete;
    return advance();
  }
}

void ObjectUpload::on_completed(aws::S3Result<aws::CompleteMultipartResult> r) {
  if (r.ok()) return finish(Outcome::done());
  const auto& e = *r.error;
  if (e.category == aws::ErrorCategory::conflict || e.code == "NoSuchUpload") {
    // 412: the object exists (If-None-Match); NoSuchUpload: this upload was completed just
    // before (a lost answer, a crash) or aborted. Never uploaded blindly again.
    settle_may_restart_ = e.code == "NoSuchUpload";
    step_ = Step::head_settle;
    return advance();
  }
  fail(Outcome::from_error(e, r.describe()));
}

void ObjectUpload::on_head(aws::S3Result<aws::HeadObjectResult> r) {
  if (!r.ok()) {
    const auto& e = *r.error;
    if (e.category == aws::ErrorCategory::not_found && settle_may_restart_ && tracked() &&
        (parts_.size() > 1 || !upload_id_.empty())) {
      settle_may_restart_ = false;
      if (restarted_)
        return fail(Outcome::retry_later(
            "s3://" + spec_.bucket + "/" + spec_.key +
            ": the new multipart upload disappeared as well (NoSuchUpload), will retry"));
      // The multipart upload is gone and no object was made from it (aborted by a lifecycle
      // rule or by hand): start a new one; every part is sent again.
      log::warning("multipart upload " + upload_id_ +
                       " no longer exists and the object is not there; starting a new upload",
                   {{"S3_KEY", spec_.key}});
      restarted_ = true;
      step_ = Step::create;
      return advance();
    }
    return fail(Outcome::from_error(e, r.describe()));
  }
  const std::string expect =
      tracked() ? expected_checksum(parts_, !upload_id_.empty()) : aws::crc32c_base64(whole_crc_);
  if (r.value->checksum_crc32c != expect)
    return fail(Outcome::park("s3://" + spec_.bucket + "/" + spec_.key +
                              " already exists with other content (CRC32C " +
                              r.value->checksum_crc32c + ", expected " + expect +
                              "); fhir-edge never overwrites or deletes objects"));
  if (hooks_.settled) hooks_.settled();
  log::info("object already in S3 with the expected checksum (settled)", {{"S3_KEY", spec_.key}});
  const std::string etag = r.value->etag;
  if (!ledger_write([&] {
        for (auto& p : parts_) {
          if (p.state == PartState::uploaded) continue;
          if (p.state == PartState::uploading) {
            ports_.ledger.set_part_state(spec_.file_id, spec_.kind, p.part_number,
                                         PartState::pending);
            p.state = PartState::pending;
          }
          ports_.ledger.part_uploaded(spec_.file_id, spec_.kind, p.part_number, etag, p.crc32c);
          p.state = PartState::uploaded;
        }
      }))
    return;
  finish(Outcome::done());
}

// ------------------------------------------------------------------ ending

bool ObjectUpload::ledger_write(const std::function<void()>& f) {
  try {
    f();
    return true;
  } catch (const std::exception& e) {
    fail_journal(e);
    return false;
  }
}

void ObjectUpload::fail_journal(const std::exception& e) {
  if (hooks_.journal_error) hooks_.journal_error();
  fail(Outcome::retry_later(std::string("journal write failed, will retry: ") + e.what()));
}

void ObjectUpload::fail(Outcome o) {
  step_ = Step::failed;
  if (o.ok()) o = Outcome::retry_later("upload of " + spec_.key);
  finish(std::move(o));
}

void ObjectUpload::finish(Outcome o) {
  if (o.ok()) step_ = Step::done;
  if (!finished_) return;
  auto f = std::move(finished_);
  finished_ = nullptr;
  f(o);
}

}  // namespace fe::upload
