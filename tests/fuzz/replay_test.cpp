// Regression test for one fuzz target (FE_FUZZ_TARGET), built without libFuzzer: every file in
// tests/fuzz/corpus/<target>/ and tests/fuzz/regressions/<target>/ goes through the target's
// LLVMFuzzerTestOneInput. A crash, sanitizer report or property violation (abort) fails the test;
// the file being replayed is named on stderr first so the failing input is known.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

std::vector<std::filesystem::path> files_in(const std::filesystem::path& dir) {
  std::vector<std::filesystem::path> out;
  if (!std::filesystem::is_directory(dir)) return out;
  for (const auto& e : std::filesystem::directory_iterator(dir))
    if (e.is_regular_file() && e.path().filename().string()[0] != '.') out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

void replay(const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  ASSERT_TRUE(in) << "cannot read " << file;
  std::vector<char> bytes{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
  std::fprintf(stderr, "replaying %s (%zu bytes)\n", file.c_str(), bytes.size());
  LLVMFuzzerTestOneInput(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
}

const std::filesystem::path kRoot = std::filesystem::path(FE_SOURCE_DIR) / "tests" / "fuzz";

}  // namespace

// The suite is fuzz_replay_<target> (FE_FUZZ_SUITE), so `ctest -R fuzz_replay` selects them all.
TEST(FE_FUZZ_SUITE, CorpusAndRegressions) {
  auto files = files_in(kRoot / "corpus" / FE_FUZZ_TARGET);
  // A target without seeds would make this test pass without running anything.
  ASSERT_GE(files.size(), 3u) << "seed corpus missing for " << FE_FUZZ_TARGET;
  // Every crash the fuzzer found stays here (tests/fuzz/regressions/<target>/, may be empty).
  auto regressions = files_in(kRoot / "regressions" / FE_FUZZ_TARGET);
  files.insert(files.end(), regressions.begin(), regressions.end());
  for (const auto& f : files) replay(f);
}
