#pragma once
// Logging contract for every stage.
//
// When stderr is connected to journald (JOURNAL_STREAM names stderr's device:inode) entries go out
// with sd_journal_send as structured fields (MESSAGE, PRIORITY, plus the given fields such as
// EXPORT_ID, FHIR_FILE, S3_KEY, JOB_ID); otherwise as one plain line on stderr:
//   "<level>: <message> [KEY=value ...]" (a value with spaces, quotes or control characters is
//   written as a C-style quoted string).
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
