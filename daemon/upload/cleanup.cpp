// Orphaned multipart uploads and superseded versions' objects: see cleanup.hpp. Moved out of
// pipeline.cpp (issue 14) unchanged in behaviour.
#include "upload/cleanup.hpp"

#include <boost/asio/post.hpp>

#include "import/s3_layout.hpp"
#include "service/log.hpp"

namespace fe::upload {
namespace asio = boost::asio;
using journal::ExportState;
using journal::PartKind;

// A CreateMultipartUpload answered (or given up): the key is no longer being created. When an
// earlier attempt's answer may have been lost (attempts > 1), or a sweep spared an upload of a
// key being created, sweep again. Posted, so it runs after the caller journaled the new id.
void Cleanup::created(const std::string& key, int attempts) {
  auto it = creating_.find(key);
  if (it != creating_.end() && --it->second <= 0) creating_.erase(it);
  if (attempts > 1 || (sweep_deferred && creating_.empty())) {
    sweep_deferred = false;
    auto self = shared_from_this();
    asio::post(d_.io, [self] { self->sweep_orphans(); });
  }
}

// Lists each pipeline's (bucket, prefix) once and aborts the uploads nobody owns (see the
// header's "orphans"). S3 lifecycle rules (AbortIncompleteMultipartUpload, docs/install.md)
// remain the backstop for anything this leaves.
void Cleanup::sweep_orphans() {
  if (!d_.live() || !d_.s3()) return;
  if (sweeping) {
    sweep_again = true;
    return;
  }
  std::set<std::pair<std::string, std::string>> where;
  for (const auto& w : d_.where()) where.insert(w);
  if (where.empty()) return;
  sweeping = true;
  sweep_again = false;
  auto left = std::make_shared<std::size_t>(where.size());
  auto self = shared_from_this();
  for (const auto& [bucket, prefix] : where) {
    aws::ListUploadsRequest req;
    req.bucket = bucket;
    req.prefix = prefix.empty() ? "" : prefix + "/";
    d_.s3()->list_all_multipart_uploads(
        req, [self, left, bucket, prefix](aws::S3Result<aws::ListUploadsResult> r) {
          if (!self->d_.live()) return;
          if (!r.ok()) {
            // Not fatal: a bucket policy may not grant s3:ListBucketMultipartUploads; the
            // lifecycle rule then cleans up.
            log::warning("cannot list incomplete multipart uploads: " + r.describe(),
                         {{"S3_BUCKET", bucket}, {"S3_PREFIX", prefix}});
          } else {
            self->abort_orphans(bucket, prefix, r.value->uploads);
          }
          if (--*left == 0) {
            self->sweeping = false;
            if (self->sweep_again) self->sweep_orphans();
          }
        });
  }
}

void Cleanup::abort_orphans(const std::string& bucket, const std::string& prefix,
                            const std::vector<aws::UploadInfo>& uploads) {
  if (uploads.empty()) return;
  // Ownership is read now, on the control thread, after the listing: an id journaled since
  // the listing started is seen, and a CreateMultipartUpload still in flight is in `creating`.
  std::set<std::string> owned;
  try {
    for (const auto& e : d_.journal.exports(true)) {
      // Nothing ever resumes the uploads of a superseded or failed export (an early upload of
      // a version whose source changed mid-spool): they are orphans too.
      if (e.state == ExportState::superseded || e.state == ExportState::failed) continue;
      for (const auto& f : d_.journal.files(e.id)) {
        if (!f.import_upload_id.empty()) owned.insert(f.import_upload_id);
        if (!f.archive_upload_id.empty()) owned.insert(f.archive_upload_id);
      }
    }
  } catch (const std::exception& e) {
    self_count(d_.journal_error);
    log::warning(std::string("journal: cannot check multipart upload ownership: ") + e.what());
    return;  // when in doubt, abort nothing
  }
  for (const auto& u : uploads) {
    if (u.upload_id.empty() || owned.count(u.upload_id)) continue;
    const std::string name = import::export_of_upload_key(prefix, u.key);
    if (name.empty()) continue;  // not a key this daemon writes
    try {
      if (!d_.journal.find_export(name)) continue;  // not an export of this journal
    } catch (const std::exception&) {
      continue;
    }
    if (creating_.count(u.key)) {
      sweep_deferred = true;  // may be the one being created right now: look again later
      continue;
    }
    log::warning("aborting an incomplete multipart upload the journal does not own",
                 {{"S3_BUCKET", bucket},
                  {"S3_KEY", u.key},
                  {"UPLOAD_ID", u.upload_id},
                  {"INITIATED", u.initiated}});
    auto self = shared_from_this();
    d_.s3()->abort_multipart_upload(
        bucket, u.key, u.upload_id, [self, key = u.key](aws::S3Result<aws::Empty> r) {
          if (!self->d_.live()) return;
          if (r.ok() || (r.error && r.error->code == "NoSuchUpload")) {
            self_count(self->d_.orphan_aborted);
          } else {
            log::warning("cannot abort an orphaned multipart upload: " + r.describe(),
                         {{"S3_KEY", key}});
          }
        });
  }
}

// ---------------------------------------------------------------- superseded objects
// A superseded version is never imported, so the objects it uploaded early are deleted: only
// the keys its file rows recorded (what this journal itself uploaded), never a prefix listing.
// A key is cleared in the journal once S3 said it is gone (404 too); what is left is retried at
// the next start or supersede. Failures are logged and never hold another export.
void Cleanup::delete_superseded_objects() {
  if (!d_.live() || !d_.s3()) return;
  std::vector<std::pair<std::int64_t, journal::FileRow>> todo;
  std::map<std::int64_t, std::string> bucket_of_export, name_of_export;
  try {
    for (const auto& e : d_.journal.exports(true)) {
      if (e.state != ExportState::superseded) continue;
      const auto bucket = d_.bucket_of(e.pipeline);
      if (!bucket) continue;  // pipeline no longer configured: its bucket is unknown, left as is
      for (const auto& f : d_.journal.files(e.id))
        if (!f.import_key.empty() || !f.archive_key.empty()) {
          todo.emplace_back(e.id, f);
          bucket_of_export[e.id] = *bucket;
          name_of_export[e.id] = e.name;
        }
    }
  } catch (const std::exception& e) {
    self_count(d_.journal_error);
    log::warning(std::string("journal: cannot list the objects of superseded versions: ") +
                 e.what());
    return;
  }
  auto self = shared_from_this();
  for (const auto& [export_id, f] : todo) {
    for (PartKind kind : {PartKind::import, PartKind::archive}) {
      const std::string& key = kind == PartKind::import ? f.import_key : f.archive_key;
      if (key.empty()) continue;
      const std::string bucket = bucket_of_export[export_id];
      if (!deleting.insert(bucket + "/" + key).second) continue;  // already in flight
      d_.s3()->delete_object(
          bucket, key,
          [self, bucket, key, kind, file_id = f.id,
           name = name_of_export[export_id]](aws::S3Result<aws::Empty> r) {
            if (!self->d_.live()) return;
            self->deleting.erase(bucket + "/" + key);
            if (!r.ok() && !(r.error && r.error->category == aws::ErrorCategory::not_found)) {
              log::warning(
                  "cannot delete an object of a superseded version (retried at the "
                  "next start): " +
                      r.describe(),
                  {{"EXPORT_ID", name}, {"S3_BUCKET", bucket}, {"S3_KEY", key}});
              return;
            }
            try {
              self->d_.journal.record_object_deleted(file_id, kind, bucket);
            } catch (const std::exception& e) {
              self_count(self->d_.journal_error);  // deleted again (404) at the next start
              log::warning(std::string("journal: ") + e.what(), {{"EXPORT_ID", name}});
              return;
            }
            self_count(self->d_.object_deleted);
            log::info("deleted an object of a superseded version (never imported)",
                      {{"EXPORT_ID", name}, {"S3_BUCKET", bucket}, {"S3_KEY", key}});
          });
    }
  }
}

}  // namespace fe::upload
