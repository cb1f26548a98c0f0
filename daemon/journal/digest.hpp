#pragma once
// Content digest of an export (DESIGN "Units of work": identity = path + content digest), so a
// re-delivered identical export is recognised and a changed one becomes a new export.
//
// SHA-256 over, for each file in byte-wise name order: the name, a NUL, the number of bytes read
// as 8 bytes big-endian, then the SHA-256 of the content. Files are streamed in fixed 64 KiB reads
// (memory does not grow with file size) and opened with O_NOFOLLOW (a symlink is an error, never
// followed). Result: "sha256:" + 64 lower-case hex digits.
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/hashing.hpp"

namespace fe::journal {

// `dir` holds the files; `names` are file names inside it (order does not matter). Throws
// std::runtime_error naming the file on any I/O error.
std::string content_digest(const std::filesystem::path& dir, std::vector<std::string> names);

// The same digest in two steps, so the files of an export can be hashed on different threads
// (issue 13: a 1 GB export's digest is on the path to its import): file_digest per file (any
// thread; throws like content_digest), then combine_digest over every file's (name, part) in any
// order. content_digest(dir, names) == combine_digest({name, file_digest(dir / name)}...).
struct FileDigest {
  fe::Sha256Digest sha256{};  // of the bytes read
  uint64_t size = 0;          // bytes read
};
FileDigest file_digest(const std::filesystem::path& path);
std::string combine_digest(std::vector<std::pair<std::string, FileDigest>> files);

// HealthLake ClientToken for an export version (DESIGN "HealthLake": 1-64 of [a-zA-Z0-9-],
// derived from the export identity): "fe-" + the first 48 hex digits of
// SHA-256(pipeline NUL source_path NUL digest NUL version). Deterministic, so a retry after a crash
// sends the same token; record it with Journal::record_import_token before the call.
std::string client_token(std::string_view pipeline, std::string_view source_path,
                         std::string_view digest, int version);
// The token of one import job of an export: `attempt` (ExportRow::import_attempt, raised by
// `fhir-edge retry` when the import must run again) and `part` (exports over 10,000 files are
// imported as several jobs). Attempt 1 part 1 equals client_token(...); every other pair hashes
// "attempt A part P" in as well, so each job has its own deterministic token.
std::string import_client_token(std::string_view pipeline, std::string_view source_path,
                                std::string_view digest, int version, int attempt, int part);

}  // namespace fe::journal
