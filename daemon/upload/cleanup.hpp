#pragma once
// What the upload leaves behind that nobody will ever finish (issue 18), swept by the pipeline
// after recovery at start and when a run asks for it. Contract:
//
// orphans   ListMultipartUploads under each pipeline's (bucket, prefix/); an upload is aborted only
//           when all hold:
//           - its key is <prefix>/<export>/{import,archive}/... and <export> is in the journal
//             (other writers' uploads are never touched);
//           - no file row of a journal export names its upload id (superseded and failed exports
//             excepted: nothing resumes them); the journal is read after the listing, on the
//             control thread, where new ids are journaled;
//           - no CreateMultipartUpload for that key is in flight in this process (creating() /
//             created() bracket each one; such an upload is spared and the sweep runs again
//             once the answer came). A CreateMultipartUpload that took more than one attempt
//             (an earlier answer may have been lost) also triggers a sweep.
//           A listing that fails is a warning; the bucket's lifecycle rule stays the backstop.
// superseded  each import_key / archive_key recorded by a file row of a `superseded` export gets
//           one DeleteObject (never a listing); a 204 or 404 clears the key in the journal
//           (record_object_deleted); anything else is a warning, the key stays and is tried at
//           the next start or supersede. Nothing waits for it.
// Threading: control thread; callbacks are dropped once live() is false.
#include <boost/asio/io_context.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "aws/s3.hpp"
#include "journal/journal.hpp"

namespace fe::upload {

class Cleanup : public std::enable_shared_from_this<Cleanup> {
 public:
  struct Deps {
    boost::asio::io_context& io;
    journal::Journal& journal;
    std::function<aws::S3Client*()> s3;  // nullptr once stopped
    std::function<bool()> live;
    // (bucket, prefix) of every configured pipeline; the bucket of a pipeline (none when it is
    // no longer configured: its objects are left as they are).
    std::function<std::vector<std::pair<std::string, std::string>>()> where;
    std::function<std::optional<std::string>(const std::string& pipeline)> bucket_of;
    // Counters / status (optional).
    std::function<void()> orphan_aborted, object_deleted, journal_error;
  };
  explicit Cleanup(Deps d) : d_(std::move(d)) {}

  // Around each CreateMultipartUpload of the upload stage (upload::Hooks).
  void creating(const std::string& key) { ++creating_[key]; }
  void created(const std::string& key, int attempts);

  void sweep_orphans();
  void delete_superseded_objects();

 private:
  void abort_orphans(const std::string& bucket, const std::string& prefix,
                     const std::vector<aws::UploadInfo>& uploads);
  static void self_count(const std::function<void()>& f) {
    if (f) f();
  }

  Deps d_;
  std::map<std::string, int> creating_;  // keys with a CreateMultipartUpload in flight
  bool sweeping = false;
  bool sweep_again = false;        // asked for while a sweep was listing
  bool sweep_deferred = false;     // an unowned upload was spared because its key was being created
  std::set<std::string> deleting;  // bucket/key DeleteObjects in flight (superseded versions)
};

}  // namespace fe::upload
