// Fuzz target: the YAML configuration loader (config::load_config_text).
// Contract checked: it never throws (an escaping exception aborts the fuzzer), and it returns
// either a Config or at least one error, each naming the file.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string_view>

#include "config/config.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  auto r = fe::config::load_config_text(text, "fuzz.yaml");
  if (r.ok() == !r.errors.empty()) {
    std::fprintf(stderr, "config fuzz: ok() is %d with %zu errors\n", r.ok(), r.errors.size());
    std::abort();
  }
  for (const auto& e : r.errors) {
    if (e.file != "fuzz.yaml" || e.message.empty()) {
      std::fprintf(stderr, "config fuzz: error without file or message: %s\n",
                   fe::config::format(e).c_str());
      std::abort();
    }
  }
  (void)fe::config::format(r.errors);
  return 0;
}
