// common/file_identity: identity_of (lstat, regular files only) and identity_change.
#include "common/file_identity.hpp"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "temp_dir.hpp"

namespace fs = std::filesystem;
using fe::FileIdentity;

TEST(FileIdentity, OfRegularFilesOnly) {
  fe::test::TempDir dir;
  const fs::path f = dir.path() / "Patient.ndjson";
  std::ofstream(f) << "{}\n";
  auto id = fe::identity_of(f);
  ASSERT_TRUE(id);
  EXPECT_EQ(id->size, 3u);
  EXPECT_NE(id->inode, 0u);
  EXPECT_GT(id->mtime_ns, 0);
  EXPECT_FALSE(fe::identity_of(dir.path()));              // a directory
  EXPECT_FALSE(fe::identity_of(dir.path() / "missing"));  // nothing there
  fs::create_symlink(f, dir.path() / "link");
  EXPECT_FALSE(fe::identity_of(dir.path() / "link"));  // symlinks are not followed
}

TEST(FileIdentity, ChangeNamesTheFirstDifference) {
  const FileIdentity then{1, 2, 3, 4};
  EXPECT_EQ(fe::identity_change(then, then), "");
  EXPECT_EQ(fe::identity_change(then, FileIdentity{1, 9, 3, 4}), "replaced (inode)");
  EXPECT_EQ(fe::identity_change(then, FileIdentity{9, 2, 9, 4}), "replaced (inode)");
  EXPECT_EQ(fe::identity_change(then, FileIdentity{1, 2, 9, 9}), "size");
  EXPECT_EQ(fe::identity_change(then, FileIdentity{1, 2, 3, 9}), "modified (mtime)");
}
