#include "watch/manifest.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <simdjson.h>
#include <cerrno>
#include <cstring>

namespace fe::watch {
namespace {

constexpr size_t kMaxManifest = 64u << 20;  // a manifest naming 10,000 files is well under 4 MiB
constexpr size_t kLogTail = 64u << 10;

// Reads at most `max` bytes from `offset_from_end` (0 = whole file when it fits).
bool read_file(const std::filesystem::path& p, std::string& out, std::string& error, size_t max,
               bool tail) {
  // O_NONBLOCK: this runs on the control thread, and a FIFO swapped in for manifest.json or
  // log.ndjson after the watcher looked must not block the daemon in open().
  int fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);
  if (fd < 0) {
    error = p.string() + ": cannot open: " + std::strerror(errno);
    return false;
  }
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    error = p.string() + ": not a regular file";
    return false;
  }
  off_t start = 0;
  if (static_cast<size_t>(st.st_size) > max) {
    if (!tail) {
      ::close(fd);
      error = p.string() + ": larger than " + std::to_string(max >> 20) + " MiB";
      return false;
    }
    start = st.st_size - static_cast<off_t>(max);
  }
  out.resize(static_cast<size_t>(st.st_size - start));
  size_t got = 0;
  while (got < out.size()) {
    ssize_t n = ::pread(fd, out.data() + got, out.size() - got, start + static_cast<off_t>(got));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    got += static_cast<size_t>(n);
  }
  out.resize(got);
  ::close(fd);
  return true;
}

std::string last_segment(std::string_view url) {
  size_t cut = url.find_first_of("?#");
  if (cut != std::string_view::npos) url = url.substr(0, cut);
  size_t slash = url.rfind('/');
  if (slash != std::string_view::npos) url = url.substr(slash + 1);
  return std::string(url);
}

}  // namespace

ManifestResult parse_bulk_manifest_text(std::string_view json, std::string_view name) {
  ManifestResult r;
  auto fail = [&](std::string_view path, std::string_view msg) {
    r.error = std::string(name) + ": " + std::string(path) + ": " + std::string(msg);
    return r;
  };
  simdjson::dom::parser parser;
  simdjson::padded_string padded(json);
  simdjson::dom::element root;
  if (auto err = parser.parse(padded).get(root))
    return fail("$", std::string("not valid JSON (") + simdjson::error_message(err) + ")");
  simdjson::dom::object obj;
  if (root.get(obj)) return fail("$", "expected an object");
  BulkManifest m;
  std::string_view sv;
  if (obj["transactionTime"].get(sv)) return fail("$.transactionTime", "expected a string");
  m.transaction_time = sv;
  if (obj["request"].get(sv)) return fail("$.request", "expected a string");
  m.request = sv;
  simdjson::dom::array output;
  if (obj["output"].get(output)) return fail("$.output", "expected an array");
  size_t i = 0;
  for (auto entry : output) {
    std::string at = "$.output[" + std::to_string(i) + "]";
    simdjson::dom::object o;
    if (entry.get(o)) return fail(at, "expected an object");
    if (o["type"].get(sv)) return fail(at + ".type", "expected a string");
    if (o["url"].get(sv)) return fail(at + ".url", "expected a string");
    std::string file = last_segment(sv);
    if (file.empty() || file == "." || file == "..")
      return fail(at + ".url", "does not end in a file name");
    // JSON can carry any byte ("\u0000", "\n"): such a name cannot be a file a bulk-data
    // client wrote, would be cut at the NUL by the OS, and would garble the log line naming it.
    for (unsigned char c : file)
      if (c < 0x20 || c == 0x7f) return fail(at + ".url", "file name has control characters");
    m.files.push_back(std::move(file));
    ++i;
  }
  r.manifest = std::move(m);
  return r;
}

ManifestResult parse_bulk_manifest(const std::filesystem::path& file) {
  std::string text, error;
  if (!read_file(file, text, error, kMaxManifest, false)) return {std::nullopt, error};
  return parse_bulk_manifest_text(text, file.string());
}

bool client_log_complete(const std::filesystem::path& file, std::string* error) {
  std::string text, err;
  if (!read_file(file, text, err, kLogTail, true)) {
    if (error) *error = err;
    return false;
  }
  // Last non-empty line.
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' '))
    text.pop_back();
  size_t nl = text.rfind('\n');
  std::string_view line =
      nl == std::string::npos ? std::string_view(text) : std::string_view(text).substr(nl + 1);
  if (line.empty()) return false;
  simdjson::dom::parser parser;
  simdjson::padded_string padded(line);
  simdjson::dom::element root;
  if (auto e = parser.parse(padded).get(root)) {
    if (error)
      *error = file.string() + ": last line is not valid JSON (" + simdjson::error_message(e) + ")";
    return false;
  }
  std::string_view event;
  if (root["eventId"].get(event)) return false;
  return event == "export_complete";
}

}  // namespace fe::watch
