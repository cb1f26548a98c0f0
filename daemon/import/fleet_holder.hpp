#pragma once
// The fleet's lease holder (issue 16 item 3, docs/import.md "Fleet", docs/scale.md). Every
// gateway with a `fleet` runs one; the one that holds fleet::Lease starts the fleet's import jobs
// for the exports that every gateway of the fleet lists in ready.json (fleet::Manifest). Member
// gateways' side (append, read the outcome, reconcile their own exports) is fleet_member.cpp.
//
// Contract:
//   lease     acquire while not held (every min(ttl/3, poll_interval)), renew every ttl/3 while
//             held. Work needs Lease::held() (monotonic: stops trusting at ttl - skew_margin),
//             checked before each write and before Start.
//   claim     every poll_interval the holder reads ready.json. When no claimed batch is in it,
//             it takes the oldest waiting entry's group (import::batch_group_key of the entries'
//             data store, level, role and output) up to the caps (import.batch_max_exports,
//             _bytes, 10,000 files), due when full or when the oldest waited batch_max_wait,
//             and claims them with ONE conditional write of ready.json marking each entry with
//             a new batch id (fleet::new_batch_id(); it is the job's ClientToken). An entry
//             already claimed is never claimed again; a holder that dies right after the claim
//             leaves the claim in ready.json, where the next holder finds it.
//   drive     a claimed batch (its entries in ready.json): the batch record batches/<id>.json is
//             created (If-None-Match: *; an existing one is read instead: a resumed batch, whose
//             job is first looked up by JobName with ListFHIRImportJobs and adopted), the
//             member pointers members/<gw>/<export>.json are written, the members' import objects
//             are copied server-side to batches/<id>/<gw>/<export>/ (at most 8 CopyObject at a
//             time; idempotent), held() is checked, StartFHIRImportJob is sent with the batch's
//             ClientToken (a resumed batch re-sends the same token: HealthLake answers with the
//             job it already made), the job id is written into the record, the job is followed
//             (Describe every poll_min..poll_max), the terminal outcome is written into the
//             record, and only then are the batch's entries removed from ready.json. One batch
//             at a time: the fleet shares one slot, and what arrives meanwhile is batched next.
//   stop      a clean stop releases the lease (release(), below: after the requests in flight
//             have answered, If-Match on our last lease write); a crash leaves it to lapse.
//   failure   an S3 or HealthLake error that may pass stops the drive; the next poll resumes the
//             batch from its record. A Start HealthLake refuses for good (validation, access) is
//             written as the outcome (job_status FAILED, the message), so every member ends
//             import_failed with the reason instead of the batch blocking the fleet.
// No journal: everything a holder needs after a crash is in S3 (ready.json's claims, the batch
// records), so any gateway can resume it. Threading: the io_context of the S3 client (the
// daemon's control thread), like the importer.
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>

#include "fleet/settings.hpp"
#include "import/batch_former.hpp"

namespace fe::aws {
class HealthLakeClient;
class S3Client;
}  // namespace fe::aws

namespace fe::import {

struct FleetHolderOptions {
  fleet::Settings fleet;  // enabled
  BatchCaps caps;         // import.batch_* (max_files: HealthLake's 10,000)
  std::chrono::milliseconds poll_min = std::chrono::seconds(15);  // DescribeFHIRImportJob
  std::chrono::milliseconds poll_max = std::chrono::seconds(60);
  std::chrono::milliseconds retry_delay = std::chrono::seconds(60);
  int max_parallel_copies = 8;
  // release(): how long to wait for requests in flight, and then for the release write. Twice
  // this stays well inside the service's stop deadline (25 s).
  std::chrono::milliseconds release_wait = std::chrono::seconds(4);
};

struct FleetHolderStats {
  std::uint64_t lease_acquired = 0;  // times this gateway became holder
  std::uint64_t batches_claimed = 0;
  std::uint64_t batches_resumed = 0;  // claimed batches found in ready.json and driven on
  std::uint64_t starts_sent = 0;
  std::uint64_t copies = 0;
  std::uint64_t outcomes_written = 0;
  std::uint64_t batches_done = 0;        // entries removed from ready.json
  std::uint64_t relistings_dropped = 0;  // entries whose export was already in a batch
  std::uint64_t lease_released = 0;      // release() wrote the lease released
};

class FleetHolder {
 public:
  FleetHolder(boost::asio::io_context& io, aws::S3Client& s3, aws::HealthLakeClient& hl,
              FleetHolderOptions options);
  ~FleetHolder();  // = stop()
  FleetHolder(const FleetHolder&) = delete;
  FleetHolder& operator=(const FleetHolder&) = delete;

  void start();
  // Cancels timers; work in flight is abandoned (S3 says where to resume). The lease is not
  // released (a crash does not release it either); release() does, at a clean stop.
  void stop();
  // A clean stop (the daemon's SIGTERM path; stop()s first if that was not done): gives the
  // lease up, so the next holder takes it at once instead of after lease_ttl + skew_margin.
  //  1. waits until the holder's requests in flight have answered (S3 writes, Start, reads; at
  //     most release_wait), so the next holder reads their outcome rather than racing them;
  //  2. if this gateway wrote the lease last (as far as it knows), rewrites it released with
  //     If-Match on the ETag of that write (fleet::Lease::release). Another gateway's newer
  //     lease has another ETag, so it is never overwritten: the refused write is logged
  //     (notice), not an error.
  // Safe in every batch state: releasing changes no batch. A claimed batch, a record without a
  // job id, a Start whose answer was lost, a running job: the next holder resumes each from
  // ready.json and the batch record with the batch's ClientToken (adopting the job by JobName),
  // as after a crash, only sooner. Requests still unanswered after release_wait are settled by
  // the conditional writes as after a partition. done() runs exactly once (unless the holder is
  // destroyed first): when the release is settled, or after release_wait more at the latest
  // (the lease then lapses after its ttl).
  void release(std::function<void()> done);
  bool holding() const;
  const FleetHolderStats& stats() const;

  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace fe::import
