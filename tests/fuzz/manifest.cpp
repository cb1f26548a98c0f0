// Fuzz target: the bulk-data completion documents (watch/manifest.hpp): the manifest JSON
// (parse_bulk_manifest_text) and the client log tail (client_log_complete, through a real file
// since it reads one with O_NOFOLLOW).
// Checked beyond "does not crash": a manifest either parses or has an error naming the file; a
// parsed manifest names only plain file names (no '/', not "." or ".."), one per output entry.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "temp_dir.hpp"
#include "watch/manifest.hpp"

namespace {

void check(bool ok, const char* what) {
  if (!ok) {
    std::fprintf(stderr, "manifest fuzz: property violated: %s\n", what);
    std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = fe::watch::parse_bulk_manifest_text(text, "fuzz/manifest.json");
  check(r.manifest.has_value() == r.error.empty(), "manifest and error both set, or neither");
  if (r.manifest) {
    for (const auto& f : r.manifest->files) {
      check(!f.empty() && f != "." && f != ".." && f.find('/') == std::string::npos,
            "a manifest file name that is not a plain name");
      for (unsigned char c : f) check(c >= 0x20 && c != 0x7f, "a control character in a file name");
    }
  } else {
    check(r.error.starts_with("fuzz/manifest.json: $"), "error does not name the file and path");
  }

  // The same bytes as a bulk-data client log.
  // One directory per process, removed at exit (libFuzzer exits through exit()).
  static const fe::test::TempDir dir("fe-fuzz-manifest");
  const auto log = dir / "log.ndjson";
  {
    std::ofstream out(log, std::ios::binary | std::ios::trunc);
    out.write(text.data(), static_cast<std::streamsize>(text.size()));
  }
  std::string error;
  bool complete = fe::watch::client_log_complete(log, &error);
  check(!(complete && !error.empty()), "complete with an error");
  return 0;
}
