// The daemon's upload ports: see adapters.hpp.
#include "upload/adapters.hpp"

#include <boost/asio/post.hpp>

#include "spool/part_body.hpp"

namespace fe::upload {
namespace asio = boost::asio;

// ------------------------------------------------------------------ S3Store

void S3Store::put_object(aws::PutObjectRequest req, Done<aws::PutObjectResult> done) {
  if (auto* c = client_()) c->put_object(std::move(req), guard(std::move(done)));
}
void S3Store::create_multipart_upload(aws::CreateMultipartRequest req,
                                      Done<aws::CreateMultipartResult> done) {
  if (auto* c = client_()) c->create_multipart_upload(std::move(req), guard(std::move(done)));
}
void S3Store::upload_part(aws::UploadPartRequest req, Done<aws::UploadPartResult> done) {
  if (auto* c = client_()) c->upload_part(std::move(req), guard(std::move(done)));
}
void S3Store::complete_multipart_upload(aws::CompleteMultipartRequest req,
                                        Done<aws::CompleteMultipartResult> done) {
  if (auto* c = client_()) c->complete_multipart_upload(std::move(req), guard(std::move(done)));
}
void S3Store::list_parts(std::string bucket, std::string key, std::string upload_id,
                         Done<std::vector<aws::PartInfo>> done) {
  if (auto* c = client_())
    c->list_all_parts(std::move(bucket), std::move(key), std::move(upload_id),
                      guard(std::move(done)));
}
void S3Store::head_object(std::string bucket, std::string key, Done<aws::HeadObjectResult> done) {
  if (auto* c = client_())
    c->head_object(std::move(bucket), std::move(key), guard(std::move(done)));
}

// ------------------------------------------------------------------ JournalLedger

LedgerObject JournalLedger::load(std::int64_t file_id, journal::PartKind kind) {
  const auto f = j_.get_file(file_id);
  LedgerObject o;
  o.key = kind == journal::PartKind::import ? f.import_key : f.archive_key;
  o.upload_id = kind == journal::PartKind::import ? f.import_upload_id : f.archive_upload_id;
  o.parts = j_.parts(file_id, kind);
  return o;
}
void JournalLedger::set_object(std::int64_t file_id, journal::PartKind kind, const std::string& key,
                               const std::string& upload_id) {
  j_.set_file_upload(file_id, kind, key, upload_id);
}
void JournalLedger::restart_object(std::int64_t file_id, journal::PartKind kind,
                                   const std::string& key, const std::string& upload_id) {
  j_.restart_upload(file_id, kind, key, upload_id);
}
void JournalLedger::set_part_state(std::int64_t file_id, journal::PartKind kind, int part_number,
                                   journal::PartState to) {
  j_.set_part_state(file_id, kind, part_number, to);
}
void JournalLedger::part_uploaded(std::int64_t file_id, journal::PartKind kind, int part_number,
                                  const std::string& etag, const std::string& crc32c) {
  j_.record_part_uploaded(file_id, kind, part_number, etag, crc32c);
}

// ------------------------------------------------------------------ SpoolBodies

namespace {
aws::BodySource to_body(spool::ByteStream s) {
  aws::BodySource b;
  b.size = s.size;
  b.read = std::move(s.read);
  b.rewind = std::move(s.rewind);
  return b;
}
}  // namespace

void SpoolBodies::open(const BodyRequest& req, std::function<void(PartBody)> done) {
  if (req.whole_file) {
    // report.json / rejects: CRC32C, size and SHA-256 on the reader thread.
    asio::post(reader_, [this, req, done = std::move(done)]() mutable {
      PartBody b;
      spool::FileChecksum sum;
      try {
        sum = spool::file_crc32c(req.spool_file);
        b.sha256 = spool::sha256_of_range(req.spool_file, 0, sum.size);
      } catch (const std::exception& e) {
        b.error = e.what();
      }
      asio::post(io_, [live = live_, req, sum, b = std::move(b), done = std::move(done)]() mutable {
        if (!live()) return;
        if (b.error.empty()) {
          b.body = to_body(spool::range_stream(req.spool_file, 0, sum.size));
          b.crc32c = sum.crc32c;
        }
        done(std::move(b));
      });
    });
    return;
  }
  if (req.kind == journal::PartKind::archive) {
    // Raw bytes of the .zst, streamed straight from the file; their SHA-256 (the signed payload
    // hash) is computed on the reader thread first, so the control thread never hashes a part.
    asio::post(reader_, [this, req, done = std::move(done)]() mutable {
      std::string sha = spool::sha256_of_range(req.spool_file, req.offset, req.length);
      asio::post(io_, [live = live_, req, sha, done = std::move(done)] {
        if (!live()) return;
        PartBody b;
        b.body = to_body(spool::range_stream(req.spool_file, req.offset, req.length));
        b.sha256 = sha;
        done(std::move(b));
      });
    });
    return;
  }
  if (req.frame) {
    // A part streamed while its file is being spooled: the frame as the writer reported it, in
    // its .tmp file. The writer may have renamed that file meanwhile (same bytes, same inode),
    // so the final name is tried next; frame_stream keeps the descriptor it opened.
    PartBody b;
    spool::ByteStream frame;
    for (const auto& path : {req.frame_file, req.spool_file}) {
      frame = spool::frame_stream(path, *req.frame);
      if (frame.rewind && frame.rewind()) break;
      frame = {};
    }
    if (!frame.read) {
      b.error = "spool frame " + std::to_string(req.part_number) + " of " +
                req.spool_file.string() + " is gone";
      return done(std::move(b));
    }
    // The same bytes from the source while it is the file taken (no decompression), the frame
    // otherwise (issue 13 item 2).
    spool::ByteStream source;
    if (!req.source_file.empty())
      source = spool::source_stream(req.source_file, req.source_identity, *req.frame, frame);
    b.body = to_body(source.read ? std::move(source) : std::move(frame));
    b.sha256 = req.frame->sha256;
    return done(std::move(b));
  }
  // Import part: frame N decompressed while curl reads it (a ZSTD_DStream per part, bounded
  // buffers), so a part in flight costs ~200 KiB whatever the part size. S3 checks the CRC32C
  // from the frame index; zstd checks its own frame checksum.
  PartBody b;
  try {
    auto sf = spool::SpoolFile::open(req.spool_file);
    const auto idx = static_cast<size_t>(req.part_number - 1);
    if (idx >= sf.frame_count()) throw spool::Error("no frame " + std::to_string(idx));
    const auto& frame = sf.index().frames[idx];
    b.body = to_body(spool::frame_stream(req.spool_file, frame));
    b.sha256 = frame.sha256;
  } catch (const std::exception& e) {
    b.error = e.what();
  }
  done(std::move(b));
}

}  // namespace fe::upload
