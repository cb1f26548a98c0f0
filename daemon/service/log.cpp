// Logging: structured entries to journald when stderr is the journal, plain lines otherwise.
//
// Why check JOURNAL_STREAM rather than "are we under systemd": a service whose stderr is
// redirected to a file or a pipe (StandardError=file:..., or a user running it by hand) must keep
// readable lines there; journald's native protocol is used only when stderr really goes to it
// (systemd.exec(5), "$JOURNAL_STREAM"), and then fields such as EXPORT_ID become searchable with
// `journalctl EXPORT_ID=...`.
#define SD_JOURNAL_SUPPRESS_LOCATION  // CODE_FILE=log.cpp would be noise on every entry
#include "service/log.hpp"

#include <sys/stat.h>
#include <sys/uio.h>
#include <systemd/sd-journal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <string>
#include <vector>

#include "common/json_escape.hpp"

namespace fe::log {
namespace {
std::atomic<int> g_level{static_cast<int>(Level::info)};
// -1: not decided yet, 0: plain stderr, 1: journald native protocol.
std::atomic<int> g_journal{-1};
std::atomic<int> g_format{static_cast<int>(Format::plain)};

// "2026-12-05T22:57:34.123Z": UTC, millisecond precision, sortable.
std::string timestamp() {
  const auto now = std::chrono::system_clock::now();
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch());
  const std::time_t secs = static_cast<std::time_t>(ms.count() / 1000);
  std::tm tm{};
  gmtime_r(&secs, &tm);
  char buf[96];  // room for any int the compiler can imagine in each field
  std::snprintf(buf, sizeof buf, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900,
                tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec,
                static_cast<int>(ms.count() % 1000));
  return buf;
}

const char* name(Level l) {
  switch (l) {
    case Level::error:
      return "error";
    case Level::warning:
      return "warning";
    case Level::notice:
      return "notice";
    case Level::info:
      return "info";
    case Level::debug:
      return "debug";
  }
  return "info";
}

bool detect_journal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (!js || !*js) {
    return false;
  }
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) {
    return false;
  }
  struct stat st {};
  if (fstat(STDERR_FILENO, &st) != 0) {
    return false;
  }
  return static_cast<unsigned long long>(st.st_dev) == dev &&
         static_cast<unsigned long long>(st.st_ino) == ino;
}

bool use_journal() {
  int j = g_journal.load(std::memory_order_relaxed);
  if (j < 0) {
    j = detect_journal() ? 1 : 0;
    g_journal.store(j);
  }
  return j == 1;
}

// journald field names: [A-Z0-9_], not starting with '_' (those are trusted fields) or a digit.
std::string field_name(std::string_view key) {
  std::string out;
  for (char c : key) {
    if (c >= 'a' && c <= 'z') {
      c = static_cast<char>(c - 'a' + 'A');
    }
    out += ((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) ? c : '_';
  }
  while (!out.empty() && (out[0] == '_' || (out[0] >= '0' && out[0] <= '9'))) {
    out.erase(0, 1);
  }
  if (out.empty()) {
    out = "FIELD";
  }
  return out.substr(0, 64);
}

bool needs_quotes(const std::string& v) {
  if (v.empty()) {
    return true;
  }
  for (unsigned char c : v) {
    if (c <= ' ' || c == '"' || c == '\\' || c == '=' || c == 0x7f) {
      return true;
    }
  }
  return false;
}

// Plain-line values are quoted (C-style escapes) when they would otherwise break the line apart.
std::string quoted(const std::string& v) {
  std::string out = "\"";
  for (unsigned char c : v) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c < ' ' || c == 0x7f) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

std::string printable(std::string_view m) {
  bool clean = true;
  for (unsigned char c : m) clean = clean && c >= ' ' && c != 0x7f;
  if (clean) {
    return std::string(m);
  }
  std::string q = quoted(std::string(m));
  return q.substr(1, q.size() - 2);  // the escapes without the surrounding quotes
}

void send_journal(Level l, std::string_view message, std::initializer_list<Field> fields) {
  std::vector<std::string> parts;
  parts.reserve(3 + fields.size());
  parts.push_back("MESSAGE=" + std::string(message));
  parts.push_back("PRIORITY=" + std::to_string(static_cast<int>(l)));
  parts.push_back("SYSLOG_IDENTIFIER=fhir-edge");
  for (const auto& f : fields) {
    parts.push_back(field_name(f.key) + "=" + f.value);
  }
  std::vector<iovec> iov(parts.size());
  for (size_t i = 0; i < parts.size(); ++i) {
    iov[i] = {parts[i].data(), parts[i].size()};
  }
  // Same wire format as sd_journal_send(); the iovec form takes a field count known at run time.
  if (sd_journal_sendv(iov.data(), static_cast<int>(iov.size())) < 0) {
    // journald refused (e.g. socket gone during shutdown): do not lose the line.
    std::string line = std::string(name(l)) + ": " + std::string(message) + "\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
}

}  // namespace

void set_format(Format f) {
  g_format = static_cast<int>(f);
}
Format format() {
  return static_cast<Format>(g_format.load());
}
bool parse_format(std::string_view t, Format& out) {
  if (t == "text") {
    out = Format::text;
    return true;
  }
  if (t == "json") {
    out = Format::json;
    return true;
  }
  return false;
}

void set_level(Level l) {
  g_level = static_cast<int>(l);
}
Level level() {
  return static_cast<Level>(g_level.load());
}

bool parse_level(std::string_view t, Level& out) {
  for (Level l : {Level::error, Level::warning, Level::notice, Level::info, Level::debug}) {
    if (t == name(l)) {
      out = l;
      return true;
    }
  }
  return false;
}

void redetect_sink() {
  g_journal.store(-1);
}

bool journal_active() {
  return use_journal();
}

void write(Level l, std::string_view message, std::initializer_list<Field> fields) {
  if (static_cast<int>(l) > g_level.load()) {
    return;
  }
  if (use_journal()) {
    send_journal(l, message, fields);
    return;
  }
  const auto f = format();
  if (f == Format::json) {
    // json::escape makes any byte sequence a valid JSON string body (control characters
    // escaped, invalid UTF-8 replaced), so one entry stays one line and one object.
    std::string line = "{\"time\":\"" + timestamp() + "\",\"level\":\"" + name(l) +
                       "\",\"message\":\"" + json::escape(message) + "\"";
    for (const auto& fl : fields)
      line += ",\"" + field_name(fl.key) + "\":\"" + json::escape(fl.value) + "\"";
    line += "}\n";
    std::fwrite(line.data(), 1, line.size(), stderr);
    return;
  }
  // A message may quote names from the drop directory (a file name with a newline or a terminal
  // escape): control characters are escaped so one entry stays one line and cannot forge another.
  std::string line = (f == Format::text ? timestamp() + " " : std::string()) +
                     std::string(name(l)) + ": " + printable(message);
  for (const auto& fl : fields) {
    // The MESSAGE_ID is for journald and json readers; in a text line it is only noise.
    if (fl.key == "MESSAGE_ID") continue;
    line +=
        " " + std::string(fl.key) + "=" + (needs_quotes(fl.value) ? quoted(fl.value) : fl.value);
  }
  line += '\n';
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace fe::log
