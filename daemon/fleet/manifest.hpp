#pragma once
// fleet::Manifest: the fleet's shared list of exports that are uploaded and ready to import
// (issue 16 item 3, docs/scale.md, docs/import.md "Fleet"). One JSON object in the landing bucket
// (manifest_key(): <prefix>/fleet/<fleet>/ready.json) that every gateway appends its ready
// exports to, and that the lease holder takes batches from (import/fleet_member.cpp appends,
// import/fleet_holder.cpp claims and removes).
//
//   {"version":12,"entries":[{"gateway":"gw-3","export_id":"2026-11-26-epic-3f2a",
//     "s3_uri":"s3://landing/exports/2026-11-26-epic-3f2a/import/","datastore_id":"...",
//     "files":4,"bytes":123456,"ready_at_ms":1767225600000,"validation_level":"minimal",
//     "role_arn":"...","output_s3_uri":"...","output_kms_key_id":"...","input_kms_key_id":"...",
//     "batch":"fb-..."}, ...]}
// The request fields (level, role, output) are what a job over the entry must be started with:
// the holder batches only entries whose fields are equal (import::batch_group_key). "batch" is
// set by the holder when it claims the entry into a batch (import/fleet_holder.hpp): the claim
// and its durable record are one conditional write, so no entry is ever claimed twice.
//
// Contract:
// - update(change): read the object (absent: an empty list), apply `change` to the parsed entries
//   and write it back with "If-Match: <the ETag read>" ("If-None-Match: *" when it was absent).
//   A refused write (412, 404, 409: another gateway wrote in between) waits a random delay in
//   [0, min(50 ms x 2^n, 2 s)] (full jitter, so racing gateways spread out instead of colliding
//   again), reads again and re-applies `change` to the fresh list, up to max_attempts writes,
//   then reports `contended` (try later).
//   `change` returns false to write nothing (e.g. the entry is already there).
// - append(entry) is update() that adds the entry unless one with the same (gateway, export_id)
//   is present: idempotent, so a retry after a lost response, or after a crash before the
//   journal noted it, never lists an export twice.
// - remove(keys) drops the named entries (the holder, once they are in a batch it journaled).
// - version counts the writes; a reader can tell a list it already acted on.
// - The object stays under kMaxCasObjectBytes (1 MiB, some 4,000 entries): an append that would
//   pass it fails with FleetManifestFull rather than grow without bound. At 10,000 files per job
//   the holder drains it far faster than gateways fill it (docs/scale.md).
// - Callbacks run on the S3 client's io_context thread, exactly once.
#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "aws/errors.hpp"
#include "aws/s3.hpp"

namespace fe::fleet {

// "<prefix>/fleet/<fleet>/ready.json".
std::string manifest_key(std::string_view prefix, std::string_view fleet);

struct ManifestEntry {
  std::string gateway;
  std::string export_id;
  std::string s3_uri;
  std::string datastore_id;
  std::uint64_t files = 0;
  std::uint64_t bytes = 0;
  std::int64_t ready_at_ms = 0;
  std::string validation_level;
  std::string role_arn;
  std::string output_s3_uri;
  std::string output_kms_key_id;
  std::string input_kms_key_id;  // SSE-KMS key of the batch copies ("" = the bucket default)
  std::string batch;             // the batch that claimed it ("" = waiting)
  bool same_export(const ManifestEntry& o) const {
    return gateway == o.gateway && export_id == o.export_id;
  }
};

struct ManifestDoc {
  std::uint64_t version = 0;
  std::vector<ManifestEntry> entries;
  std::string to_json() const;
  static std::optional<ManifestDoc> parse(std::string_view json);
};

struct ManifestResult {
  bool written = false;    // a new version is stored (false also when change() wrote nothing)
  bool contended = false;  // max_attempts refused writes in a row
  int attempts = 0;        // writes tried
  ManifestDoc doc;         // the list as stored after this call (as last read when not written)
  std::optional<aws::AwsError> error;
};

class Manifest {
 public:
  using Done = std::function<void(ManifestResult)>;
  // `io` is the S3 client's io_context (for the retry delay).
  Manifest(aws::S3Client& s3, boost::asio::io_context& io, std::string bucket, std::string key,
           int max_attempts = 10);

  void update(std::function<bool(ManifestDoc&)> change, Done done);
  void append(ManifestEntry entry, Done done);
  void remove(std::vector<std::pair<std::string, std::string>> gateway_export_ids, Done done);
  void read(Done done);

 private:
  void attempt(std::function<bool(ManifestDoc&)> change, int n, Done done);
  aws::S3Client& s3_;
  boost::asio::io_context& io_;
  std::string bucket_, key_;
  int max_attempts_;
};

}  // namespace fe::fleet
