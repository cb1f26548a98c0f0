#pragma once
// Human units used in the configuration (and usable by any stage that takes such values):
//   sizes      "64MiB", "20GiB", "1.5GB", "512KB", "4096", "4096B"  (KiB/MiB/GiB/TiB are powers
//              of 1024, KB/MB/GB/TB powers of 1000, a bare number is bytes)
//   durations  "30s", "5m", "7d", "1h30m", "250ms", "2w", "45"  (a bare number is seconds)
//   rates      "20MiB/s", "500KB/s", "1000000" (bytes per second)
// Each parser returns std::nullopt and sets `why` to a human explanation on bad input; values
// that overflow 64 bits are rejected, never wrapped.
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fe::config {

std::optional<std::uint64_t> parse_size(std::string_view text, std::string& why);
std::optional<std::chrono::milliseconds> parse_duration(std::string_view text, std::string& why);
std::optional<std::uint64_t> parse_rate(std::string_view text, std::string& why);  // bytes/s

// "20GiB", "1.5MiB", "12B": the shortest exact-enough binary form, for messages and status.
std::string format_size(std::uint64_t bytes);

}  // namespace fe::config
