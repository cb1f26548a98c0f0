#pragma once
// The batch former (issue 16 item 2): which uploaded exports go into one StartFHIRImportJob.
//
// HealthLake runs one import job at a time per account and Region and each job costs minutes of
// fixed overhead, so exports that wait for the same data store are imported together. The former
// is pure bookkeeping: no journal, no I/O, no clock of its own (the caller passes `now`), so the
// importer and the fleet's lease holder (daemon/fleet/) can both use it.
//
//   lane       what shares one import slot (the importer: the data store). take() forms at most
//              one batch per call for a lane; the caller calls it when the lane's slot is free.
//   group      what one job can carry (batch_group_key: data store, ValidationLevel, role,
//              output location and key). Only candidates of one group go into one batch.
//   order      first in, first out: the oldest waiting candidate of the lane opens the batch;
//              later candidates of its group follow in arrival order while the caps allow. The
//              first one that does not fit closes the batch (it opens the next one), so no export
//              is overtaken for ever by smaller ones.
//   caps       max_exports (1 = batching off: every export is its own job, as before issue 16),
//              max_files (HealthLake's 10,000 files per job), max_bytes. A candidate over a cap
//              on its own, or not batchable (an export split into part folders), is a batch of
//              one: it never waits for a partner and never blocks the lane.
//   wait       a batch is due when it is full (the next candidate of the group would not fit, or
//              max_exports is reached) or when its first candidate has waited max_wait. Until
//              then take() returns nothing and due_at() says when to ask again. max_wait 0: due
//              at once (what is waiting while a job runs is still batched, because the slot is
//              busy meanwhile).
// Not thread-safe; cheap to copy.
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fe::import {

// The grouping key of an import: exports with equal keys can share one StartFHIRImportJob
// (every field of the request except JobName, ClientToken and the input prefix).
std::string batch_group_key(std::string_view datastore_id, std::string_view validation_level,
                            std::string_view data_access_role_arn, std::string_view output_s3_uri,
                            std::string_view output_kms_key_id);

struct BatchCaps {
  std::size_t max_exports = 1;            // 1 = batching off
  std::int64_t max_files = 10000;         // HealthLake's limit of input files per job
  std::int64_t max_bytes = 0;             // import bytes per job; 0 = no cap
  std::chrono::milliseconds max_wait{0};  // how long the first member may wait for others
};

struct BatchCandidate {
  std::int64_t id = 0;                             // export id (the fleet: any unique id)
  std::string lane;                                // shares one import slot
  std::string group;                               // batch_group_key
  std::int64_t files = 0;                          // import objects
  std::int64_t bytes = 0;                          // import bytes
  std::chrono::steady_clock::time_point ready_at;  // when it started waiting
  bool batchable = true;                           // false: always a batch of one
};

class BatchFormer {
 public:
  using Clock = std::chrono::steady_clock;
  explicit BatchFormer(BatchCaps caps = {}) : caps_(caps) {}

  const BatchCaps& caps() const { return caps_; }
  void set_caps(BatchCaps caps) { caps_ = caps; }

  // Appends a candidate to its lane's queue; false (and nothing changes) when the id waits
  // already.
  bool add(BatchCandidate c);
  // Takes a candidate out (parked, moved on); false when it was not waiting.
  bool remove(std::int64_t id);
  bool contains(std::int64_t id) const;

  // The batch due in `lane` at `now` (ids in arrival order, the first the oldest of the lane),
  // removed from the queue; nothing when the lane is empty or its next batch is not due yet.
  std::optional<std::vector<std::int64_t>> take(std::string_view lane, Clock::time_point now);
  // When the lane's next batch becomes due by waiting (nothing when the lane is empty; a time
  // <= now when it is due already).
  std::optional<Clock::time_point> due_at(std::string_view lane) const;

  std::size_t waiting(std::string_view lane) const;
  std::size_t waiting() const;
  std::vector<std::string> lanes() const;

 private:
  // The batch the lane's oldest candidate opens (indices into the lane's queue) and whether it
  // is full.
  struct Plan {
    std::vector<std::size_t> picks;
    bool full = false;
  };
  Plan plan(const std::deque<BatchCandidate>& q) const;

  BatchCaps caps_;
  std::map<std::string, std::deque<BatchCandidate>, std::less<>> lanes_;
};

}  // namespace fe::import
