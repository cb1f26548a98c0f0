#pragma once
#include <gtest/gtest.h>
#include <stdlib.h>

#include <sqlite3.h>

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include "journal/journal.hpp"
#include "temp_dir.hpp"

using TempDir = fe::test::TempDir;

// Shared by the journal's tests. Raw SQL access checks what the journal wrote independently of
// its own API.
namespace fe::journal::test {

inline std::string query_text(const std::filesystem::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  EXPECT_EQ(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE, nullptr), SQLITE_OK);
  sqlite3_stmt* st = nullptr;
  std::string out;
  if (sqlite3_prepare_v2(h, sql.c_str(), -1, &st, nullptr) == SQLITE_OK &&
      sqlite3_step(st) == SQLITE_ROW) {
    auto* t = sqlite3_column_text(st, 0);
    if (t) out = reinterpret_cast<const char*>(t);
  }
  sqlite3_finalize(st);
  sqlite3_close(h);
  return out;
}

inline void exec_sql(const std::filesystem::path& db, const std::string& sql) {
  sqlite3* h = nullptr;
  ASSERT_EQ(sqlite3_open_v2(db.c_str(), &h, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, nullptr),
            SQLITE_OK);
  char* err = nullptr;
  int rc = sqlite3_exec(h, sql.c_str(), nullptr, nullptr, &err);
  std::string e = err ? err : "";
  sqlite3_free(err);
  sqlite3_close(h);
  ASSERT_EQ(rc, SQLITE_OK) << e;
}

template <typename F>
inline std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

inline std::vector<std::pair<std::string, SourceIdentity>> two_files() {
  return {{"Patient.ndjson", {100, 1, 11, 1}}, {"Observation.ndjson", {300, 2, 12, 1}}};
}

}  // namespace fe::journal::test
