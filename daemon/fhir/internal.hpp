#pragma once
// Internal pieces shared by the validator (validator*.cpp), the profiles (profiles*.cpp) and
// reader.cpp.
#include <simdjson.h>
#include <sys/types.h>

#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "fhir/schema.hpp"
#include "fhir/validator.hpp"

namespace fe::fhir {

struct PathSeg {
  std::string_view name;
  int64_t index = -1;  // array index, or -1
};

// The JSON path being walked, a stack pushed and popped on every element visited. It lives in the
// Scratch, so its storage is reused line after line and never shrinks; push_back is inline (with
// std::vector, emplace_back was an out-of-line call per element: 3.6 % of `fhir-edge validate` at
// structure-only, bench/e2e/README.md "Single-stage ceilings").
class PathStack {
 public:
  void push_back(PathSeg s) {
    if (n_ == segs_.size()) [[unlikely]]
      grow();
    segs_[n_++] = s;
  }
  void pop_back() { --n_; }
  void clear() { n_ = 0; }
  size_t size() const { return n_; }
  bool empty() const { return n_ == 0; }
  PathSeg& operator[](size_t i) { return segs_[i]; }
  const PathSeg& operator[](size_t i) const { return segs_[i]; }
  PathSeg& back() { return segs_[n_ - 1]; }
  const PathSeg* begin() const { return segs_.data(); }
  const PathSeg* end() const { return segs_.data() + n_; }

 private:
  [[gnu::noinline]] void grow() { segs_.resize(segs_.empty() ? 64 : segs_.size() * 2); }
  std::vector<PathSeg> segs_;
  size_t n_ = 0;
};

struct Scratch::Impl {
  simdjson::dom::parser parser{0};
  size_t max_capacity = 0, max_depth = 0;
  std::string buf;  // padded copy of the line
  PathStack path;
  std::vector<uint8_t> seen;               // per-object element flags, stacked by nesting
  std::vector<int32_t> choices;            // per-object chosen variant of each choice group
  std::vector<std::string_view> elem_ids;  // Element.id values of the resources being walked
  // FHIRPath invariants at strict, accumulated over the lines validated with this Scratch.
  uint64_t inv_evaluated = 0, inv_failed = 0, inv_not_evaluated = 0;
  // strict: codes of code systems that need a terminology server, by system (rules.cpp); bounded
  // by kMaxTerminologySystems distinct systems, the rest counted under "(other code systems)".
  std::unordered_map<std::string, uint64_t> tx_not_checked;
};

class ProfileSet;  // profiles_internal.hpp: compiled StructureDefinitions from packages
void destroy_profiles(ProfileSet* p);
using ProfileSetPtr = std::unique_ptr<ProfileSet, void (*)(ProfileSet*)>;

struct Validator::Impl {
  Options options;
  const schema::Schema* schema = nullptr;
  ProfileSetPtr profiles{nullptr, destroy_profiles};
};

// Issue sink used by the walkers: formats the current path and enforces max_issues.
struct IssueSink {
  Result& result;
  const PathStack& path;
  size_t max_issues;
  void add(Severity s, std::string_view code, std::string message, std::string_view child = {});
  // An issue at a path recorded earlier (not the current one).
  void add_at(Severity s, std::string_view code, std::string message, std::string path);
  std::string path_string(std::string_view child = {}) const;
};

// rules.cpp: the strict rule families on the resource alone (docs/validation.md), called by the
// structural walk at Level::strict on the nodes it visits.
namespace rules {
struct BundleRef {  // a Reference.reference inside Bundle.entry[entry].resource
  uint32_t entry = 0;
  std::string_view reference;
  std::string path;  // "Bundle.entry[1].resource.subject.reference"
};
void uri_value(std::string_view v, IssueSink& sink);  // uri/url/canonical: urn:uuid form
void coding(simdjson::dom::object c, Scratch::Impl& sc, IssueSink& sink);
void value_set(simdjson::dom::object vs, Scratch::Impl& sc, IssueSink& sink);
void attachment(simdjson::dom::object a, IssueSink& sink);
void bundle(simdjson::dom::object b, const std::vector<BundleRef>& refs, Scratch::Impl& sc,
            IssueSink& sink);
}  // namespace rules

// profiles_load.cpp: `builtin` adds the built-in US Core set (uscore_data.cpp) to the packages.
ProfileSetPtr load_profiles(const std::vector<std::filesystem::path>& packages,
                            const schema::Schema& core, LoadReport& report, bool builtin);
// `root` is the resource as an element (%resource for the profiles' invariants), `resource` the
// same as an object.
void check_profiles(const ProfileSet& set, const schema::Schema& core, simdjson::dom::element root,
                    simdjson::dom::object resource, std::string_view resource_type,
                    Scratch::Impl& sc, IssueSink& sink);

// The streaming core of LineReader (reader.cpp), with what the spooler needs beyond LineReader's
// public contract: the size of a skipped over-long line, whether line 1 began with a UTF-8 byte
// order mark (removed, see docs/hostile-input.md), and the identity of the file actually opened.
// Memory: one fixed read buffer plus at most max_line_bytes (+1) of carry-over, whatever the file.
// Compressed input: a file that starts with the gzip (1f 8b) or zstd (28 b5 2f fd) magic is
// decompressed while it is read (streaming: one more fixed input buffer and the codec's window,
// never the whole file), so `.ndjson.gz` / `.ndjson.zst` exports read as the NDJSON they hold.
// Concatenated gzip members and zstd frames are read one after the other (as gzip -c a b does).
// A corrupt or truncated stream is an error naming the file, never lines of binary garbage.
class LineSource {
 public:
  struct OpenOptions {
    // For sources the daemon did not choose itself (files in a watched directory): refuse a
    // symlink (O_NOFOLLOW) and anything that is not a regular file, and never block on a FIFO
    // swapped in after the watcher looked (O_NONBLOCK at open, cleared after the fstat check).
    bool regular_only = false;
  };
  LineSource(const std::filesystem::path& path, size_t max_line_bytes, OpenOptions options);
  ~LineSource();
  LineSource(const LineSource&) = delete;
  LineSource& operator=(const LineSource&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  LineReader::Status next(std::string_view& line, uint64_t& line_no);
  uint64_t bytes_read() const { return bytes_; }
  // Byte length (without the newline) of the line just returned as too_long: counted while it was
  // skipped, never buffered beyond max_line_bytes.
  uint64_t last_line_bytes() const { return last_len_; }
  bool had_bom() const { return bom_; }  // line 1 started with EF BB BF (removed from the line)
  // Where the line just returned starts in the file when that line plus one '\n' is exactly the
  // file's bytes there (a plain file, the line ended by a bare '\n', nothing removed), else -1.
  // The spool uses it to read a part back from the source instead of decompressing it.
  int64_t verbatim_offset() const { return verbatim_; }
  // fstat of the open file (dev, inode) — compare with what the watcher took.
  uint64_t dev() const { return dev_; }
  uint64_t inode() const { return ino_; }
  // "gzip", "zstd" or "" (plain): what the content was decoded from.
  const char* compression() const;
  // Sees every byte read from the file (before any decoding), once, in file order: the spool
  // pass hashes the source's content digest from it instead of reading the file a second time
  // (journal::SourceHasher). Set before the first next().
  void on_raw(std::function<void(const char* data, size_t n)> f) { on_raw_ = std::move(f); }
  // Reads the rest of the file for on_raw without decoding or splitting it (a spool pass that
  // stops at an invalid line still needs the whole file's digest). False on a read error.
  bool drain();

 private:
  struct Codec;                         // reader.cpp: zlib / zstd stream state
  ssize_t fill(char* out, size_t cap);  // next decoded bytes; 0 at the end, -1 on error
  int fd_ = -1;
  std::unique_ptr<Codec> codec_;
  std::string name_;
  std::vector<char> buf_;
  size_t pos_ = 0, end_ = 0;
  bool eof_ = false;
  std::string carry_;
  size_t max_ = 0;
  uint64_t line_no_ = 0, bytes_ = 0, last_len_ = 0, dev_ = 0, ino_ = 0;
  int64_t verbatim_ = -1;
  bool bom_ = false;
  std::string error_;
  std::function<void(const char*, size_t)> on_raw_;
  bool raw_eof_ = false;  // a raw read returned 0
  ssize_t read_raw(char* dst, size_t n);
};

std::string shorten(std::string_view s, size_t max = 60);  // for quoting values in messages

}  // namespace fe::fhir
