#pragma once
// The daemon's implementations of the upload ports (upload/ports.hpp):
//   S3Store        ObjectStore over aws::S3Client (ListParts follows every page).
//   JournalLedger  PartLedger over the SQLite journal: the files' import/archive key and upload
//                  id, and the parts table. The upload stage is the only writer of those columns
//                  and rows after planning (plan_parts is the spooler's).
//   SpoolBodies    PartBodies out of the spool (spool/part_body.hpp): an import part is spool
//                  frame N decompressed while curl reads it (SHA-256 from the frame index, no read
//                  pass); an archive part is a byte range of the .zst whose SHA-256 is computed on
//                  the `reader` thread; report.json and rejects are checksummed there too.
// Every callback is posted/run on the control io_context and dropped once `live()` is false
// (daemon stopping): a machine is never resumed after its component stopped.
#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>
#include <functional>

#include "upload/ports.hpp"

namespace fe::upload {

using Live = std::function<bool()>;

class S3Store : public ObjectStore {
 public:
  // `client` may return nullptr (stopped): the call is dropped.
  S3Store(std::function<aws::S3Client*()> client, Live live)
      : client_(std::move(client)), live_(std::move(live)) {}
  void put_object(aws::PutObjectRequest req, Done<aws::PutObjectResult> done) override;
  void create_multipart_upload(aws::CreateMultipartRequest req,
                               Done<aws::CreateMultipartResult> done) override;
  void upload_part(aws::UploadPartRequest req, Done<aws::UploadPartResult> done) override;
  void complete_multipart_upload(aws::CompleteMultipartRequest req,
                                 Done<aws::CompleteMultipartResult> done) override;
  void list_parts(std::string bucket, std::string key, std::string upload_id,
                  Done<std::vector<aws::PartInfo>> done) override;
  void head_object(std::string bucket, std::string key, Done<aws::HeadObjectResult> done) override;

 private:
  template <class T>
  Done<T> guard(Done<T> done) {
    return [live = live_, done = std::move(done)](aws::S3Result<T> r) {
      if (live()) done(std::move(r));
    };
  }
  std::function<aws::S3Client*()> client_;
  Live live_;
};

class JournalLedger : public PartLedger {
 public:
  explicit JournalLedger(journal::Journal& j) : j_(j) {}
  LedgerObject load(std::int64_t file_id, journal::PartKind kind) override;
  void set_object(std::int64_t file_id, journal::PartKind kind, const std::string& key,
                  const std::string& upload_id) override;
  void restart_object(std::int64_t file_id, journal::PartKind kind, const std::string& key,
                      const std::string& upload_id) override;
  void set_part_state(std::int64_t file_id, journal::PartKind kind, int part_number,
                      journal::PartState to) override;
  void part_uploaded(std::int64_t file_id, journal::PartKind kind, int part_number,
                     const std::string& etag, const std::string& crc32c) override;

 private:
  journal::Journal& j_;
};

class SpoolBodies : public PartBodies {
 public:
  SpoolBodies(boost::asio::io_context& io, boost::asio::thread_pool& reader, Live live)
      : io_(io), reader_(reader), live_(std::move(live)) {}
  void open(const BodyRequest& req, std::function<void(PartBody)> done) override;

 private:
  boost::asio::io_context& io_;
  boost::asio::thread_pool& reader_;
  Live live_;
};

}  // namespace fe::upload
