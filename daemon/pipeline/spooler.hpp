#pragma once
// Validate + spool one source file (runs on a worker-pool thread; touches no journal and no
// shared state besides the thread-safe Validator and Quota). The control thread records the
// result in the journal afterwards: everything this returns is already durable on disk.
#include <atomic>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "config/config.hpp"
#include "fhir/validator.hpp"
#include "spool/spool.hpp"
#include "watch/identity.hpp"

namespace fe::pipeline {

struct PartSpec {
  int number = 0;  // 1-based
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  std::uint32_t crc32c = 0;
};

struct SpoolJob {
  std::filesystem::path spool_dir;
  std::string export_name;
  std::string file_name;
  watch::TakenFile source;  // path + identity as taken (checked again after spooling)
  std::shared_ptr<const fhir::Validator> validator;
  config::OnInvalid on_invalid = config::OnInvalid::reject_resource;
  std::uint64_t part_size = 8u << 20;
  int zstd_level = 3;
  spool::Quota* quota = nullptr;
  bool fsync = true;
  const std::atomic<bool>* cancel = nullptr;  // daemon stopping: abandon (redone at next start)
  std::size_t max_report_entries = 1000;      // rejected lines listed in the report per file
};

struct SpoolResult {
  // Exactly one of: ok, error (I/O, spool), fail_export (on_invalid fail-export hit an invalid
  // line), changed (the source changed while it was read), cancelled.
  bool ok = false;
  std::string error;
  bool fail_export = false;
  bool changed = false;
  bool cancelled = false;

  bool file_rejected = false;  // on_invalid reject-file and the file had invalid lines
  std::int64_t valid = 0;
  std::int64_t rejected = 0;
  std::int64_t blank = 0;
  std::uint64_t bytes_uncompressed = 0;  // import object size
  std::uint64_t bytes_spooled = 0;       // import .zst size (archive object size)
  std::uint32_t crc32c = 0;              // of the whole import object
  std::uint64_t part_size = 0;
  std::vector<PartSpec> import_parts;   // = frames
  std::vector<PartSpec> archive_parts;  // byte ranges of the .zst
  // Rejected spool file (empty path when there were no rejected lines).
  std::filesystem::path rejected_file;
  std::uint64_t rejected_bytes = 0;  // .zst size
  std::uint32_t rejected_crc32c = 0;
  std::filesystem::path report_fragment;  // spool/<export>/reports/<File>.json
};

SpoolResult spool_file(const SpoolJob& job);

// Byte ranges of size part_size covering [0, size) with the CRC32C of each range read from the
// spool file's raw bytes.
std::vector<PartSpec> raw_parts(const spool::SpoolFile& file, std::uint64_t size,
                                std::uint64_t part_size);

// spool/<export>/reports/<File>.json
std::filesystem::path fragment_path(const std::filesystem::path& spool_dir,
                                    std::string_view export_name, std::string_view file_name);

// Assembles report.json from the per-file fragments (in file order) and writes it durably.
void write_report(const std::filesystem::path& spool_dir, std::string_view export_name,
                  std::string_view pipeline, std::string_view level,
                  const std::vector<std::string>& file_names);

std::string json_escape(std::string_view s);

}  // namespace fe::pipeline
