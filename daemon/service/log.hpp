#pragma once
// Logging contract for every stage.
//
// When stderr is connected to journald (JOURNAL_STREAM names stderr's device:inode) entries go out
// with sd_journal_send as structured fields (MESSAGE, PRIORITY, plus the given fields such as
// EXPORT_ID, FHIR_FILE, S3_KEY, JOB_ID; docs/logging.md lists every field); otherwise as one line
// on stderr, in the format set_format() chose (log.format in the config for `run`):
//   plain  "<level>: <message> [KEY=value ...]"   (the CLI commands: a person reads them)
//   text   "<RFC 3339 UTC time> <level>: <message> [KEY=value ...]"   (the daemon's default)
//   json   {"time":"...","level":"...","message":"...","KEY":"value",...}   one object a line
// In plain and text a value with spaces, quotes or control characters is written as a C-style
// quoted string; json is valid UTF-8 JSON whatever the bytes.
// Entries that mark a step of an export carry a MESSAGE_ID (message_id below); the catalog
// systemd/fhir-edge.catalog explains each one (`journalctl -x`).
// Never pass a secret (key, token, credential-process output) in a message or a field.
#include <initializer_list>
#include <string>
#include <string_view>

namespace fe::log {

// Values are syslog priorities (journald PRIORITY=).
enum class Level : int { error = 3, warning = 4, notice = 5, info = 6, debug = 7 };

struct Field {
  std::string_view key;  // upper-case journald field name, e.g. "EXPORT_ID"
  std::string value;
};

// Stable journald MESSAGE_IDs (128-bit, `journalctl MESSAGE_ID=...`), one per step an operator
// follows or alerts on. Never change one: dashboards and the catalog refer to it.
namespace message_id {
inline constexpr std::string_view export_taken = "b506c75750a7453ab539b34f784f262a";
inline constexpr std::string_view export_uploaded = "5ef9a1ad05dd4bb1a286139541766e36";
inline constexpr std::string_view export_imported = "e180e9ab116e4097a91c74176e22128d";
inline constexpr std::string_view import_failed = "d02a90054d9549ad8a00cb4a7b90bd0e";
inline constexpr std::string_view export_parked = "a71bde25d6e543dc9f14a2defd7ae5e2";
inline constexpr std::string_view config_reloaded = "b6a8e6b5884e4db7a24625bccc0e056c";
}  // namespace message_id

enum class Format { plain, text, json };
void set_format(Format format);
Format format();
bool parse_format(std::string_view text, Format& out);  // "text" | "json" (config log.format)

void set_level(Level level);  // entries above this priority are dropped
Level level();
bool parse_level(std::string_view text,
                 Level& out);  // "error" | "warning" | "notice" | "info" | "debug"

// The sink (journald or stderr) is decided on the first entry. Call redetect_sink() after
// changing stderr or JOURNAL_STREAM (tests, a daemon that re-opens stderr).
void redetect_sink();
bool journal_active();  // true when entries go to journald's native protocol

void write(Level level, std::string_view message, std::initializer_list<Field> fields = {});

inline void error(std::string_view m, std::initializer_list<Field> f = {}) {
  write(Level::error, m, f);
}
inline void warning(std::string_view m, std::initializer_list<Field> f = {}) {
  write(Level::warning, m, f);
}
inline void notice(std::string_view m, std::initializer_list<Field> f = {}) {
  write(Level::notice, m, f);
}
inline void info(std::string_view m, std::initializer_list<Field> f = {}) {
  write(Level::info, m, f);
}
inline void debug(std::string_view m, std::initializer_list<Field> f = {}) {
  write(Level::debug, m, f);
}

}  // namespace fe::log
