#pragma once
// Content digest of an export (DESIGN "Units of work": identity = path + content digest), so a
// re-delivered identical export is recognised and a changed one becomes a new export.
//
// Two schemes; the string says which (its prefix), and a digest is only ever compared with one of
// its own scheme:
// - "sha256-pieces:" (DigestScheme::pieces, every export taken since issue 13): each file is cut
//   into pieces of kDigestPiece bytes (the last one shorter; an empty file has none), each piece
//   is SHA-256 hashed, and the file's root is the SHA-256 of its piece digests in order. Then
//   SHA-256 over, for each file in byte-wise name order: the name, a NUL, the number of bytes read
//   as 8 bytes big-endian, then the root. A piece is exactly one upload part at the default part
//   size, so a part whose bytes are a piece of the source verbatim is signed with that piece's
//   digest (FileDigest::pieces → spool::WriterOptions::source_pieces): over plain http, where every
//   part's SHA-256 is signed, the bytes are hashed once instead of twice.
// - "sha256:" (DigestScheme::legacy, journals from before): the same with the SHA-256 of the whole
//   content in place of the root. A source path the journal holds with a legacy digest keeps being
//   digested so (Journal::has_legacy_digest): an export taken before an upgrade is recognised
//   after it and never imported twice.
// Files are streamed in fixed reads (memory does not grow with file size) and opened with
// O_NOFOLLOW (a symlink is an error, never followed).
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/file_identity.hpp"
#include "common/hashing.hpp"

namespace fe::journal {

enum class DigestScheme { pieces, legacy };
inline constexpr std::string_view kLegacyDigestPrefix = "sha256:";
inline constexpr std::string_view kPiecesDigestPrefix = "sha256-pieces:";
inline constexpr std::uint64_t kDigestPiece = 8ull << 20;  // = the default upload part size
// Piece digests kept per file for the upload (FileDigest::pieces): 32 bytes each, so at most 128
// KiB per file whatever its size; a file beyond 32 GiB has the rest hashed at spool time.
inline constexpr std::size_t kPiecesKept = 4096;

// The scheme a digest string was made with (its prefix).
DigestScheme scheme_of(std::string_view digest);

// `dir` holds the files; `names` are file names inside it (order does not matter). Throws
// std::runtime_error naming the file on any I/O error.
std::string content_digest(const std::filesystem::path& dir, std::vector<std::string> names,
                           DigestScheme scheme = DigestScheme::pieces);

// The same digest in two steps, so the files of an export can be hashed on different threads
// (issue 13: a 1 GB export's digest is on the path to its import): file_digest per file (any
// thread; throws like content_digest), then combine_digest over every file's (name, part) in any
// order. content_digest(dir, names, s) == combine_digest({name, file_digest(dir / name, s)}..., s).
struct FileDigest {
  fe::Sha256Digest root{};  // pieces: SHA-256 of the piece digests; legacy: of the content
  uint64_t size = 0;        // bytes read
  // pieces: the SHA-256 of pieces 0, 1, ... (the first kPiecesKept), for the upload; null in the
  // legacy scheme. Shared: the spool job of the file holds it until the file is spooled.
  std::shared_ptr<const std::vector<fe::Sha256Digest>> pieces;
  // fstat of the file once it was read: piece digests are used only for a file that still has it.
  fe::FileIdentity identity;
};
FileDigest file_digest(const std::filesystem::path& path,
                       DigestScheme scheme = DigestScheme::pieces);
std::string combine_digest(std::vector<std::pair<std::string, FileDigest>> files,
                           DigestScheme scheme = DigestScheme::pieces);

// A big file's pieces hashed in ranges on several threads (issue 13: one 1 GB file is digested
// by both cores, not one). digest_pieces hashes pieces [first, first + count) with pread, or from
// `first` to the end of the file when count is 0 (the last range: a file that grew is hashed to
// its end, as file_digest does); a range that ends before count pieces (the file shrank) throws.
// file_digest_of_pieces gives the FileDigest of the ranges in order, equal to
// file_digest(path) of the same bytes; for a file of at most kPiecesKept pieces.
struct PieceRange {
  std::vector<fe::Sha256Digest> pieces;
  std::uint64_t bytes = 0;    // bytes read
  fe::FileIdentity identity;  // fstat once the range was read
};
PieceRange digest_pieces(const std::filesystem::path& path, std::uint64_t first,
                         std::uint64_t count);
// Throws when the ranges disagree on the file's identity (it changed while it was read).
FileDigest file_digest_of_pieces(const std::filesystem::path& path, std::vector<PieceRange> ranges);

// The same FileDigest (pieces scheme) from bytes handed in as they are read elsewhere, in order:
// the spool pass of a file taken before its digest hashes the raw bytes its reader reads
// (pipeline/spooler.hpp SpoolJob::digest_source), so the source is read once, not twice (issue
// 13 "One pass", docs/pipeline.md); file_digest hashes its own reads through it. Each piece's
// digest is in pieces() as soon as its last byte was handed in (the spool's writer signs a
// verbatim part with it on the same thread).
class SourceHasher {
 public:
  SourceHasher();
  ~SourceHasher();
  SourceHasher(const SourceHasher&) = delete;
  SourceHasher& operator=(const SourceHasher&) = delete;
  void update(const void* data, std::uint64_t n);
  // The pieces ended so far (the first kPiecesKept); grows as update() ends pieces.
  std::shared_ptr<const std::vector<fe::Sha256Digest>> pieces() const { return kept_; }
  // Ends the last piece and gives the file's digest (identity left empty: the caller's).
  FileDigest finish();

 private:
  void end_piece(const fe::Sha256Digest& d);  // into the root, and kept
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::shared_ptr<std::vector<fe::Sha256Digest>> kept_;
};

// An export taken before its content digest (a source path the journal had never seen): its
// digest column holds kPendingDigestPrefix + its name until the spool pass has read every file
// (Journal::record_digest). No digest of either scheme has this prefix, so a pending one never
// matches a re-delivery; a ClientToken is never made from it (import_client_token throws).
inline constexpr std::string_view kPendingDigestPrefix = "pending:";
inline bool is_pending_digest(std::string_view digest) {
  return digest.starts_with(kPendingDigestPrefix);
}

// HealthLake ClientToken for an export version (DESIGN "HealthLake": 1-64 of [a-zA-Z0-9-],
// derived from the export identity): "fe-" + the first 48 hex digits of
// SHA-256(pipeline NUL source_path NUL digest NUL version). Deterministic, so a retry after a crash
// sends the same token; record it with Journal::record_import_token before the call. Throws
// std::logic_error for a pending digest (is_pending_digest): a token must name the content.
std::string client_token(std::string_view pipeline, std::string_view source_path,
                         std::string_view digest, int version);
// The token of one import job of an export: `attempt` (ExportRow::import_attempt, raised by
// `fhir-edge retry` when the import must run again) and `part` (exports over 10,000 files are
// imported as several jobs). Attempt 1 part 1 equals client_token(...); every other pair hashes
// "attempt A part P" in as well, so each job has its own deterministic token.
std::string import_client_token(std::string_view pipeline, std::string_view source_path,
                                std::string_view digest, int version, int attempt, int part);

}  // namespace fe::journal
