// The process_* collector metrics (metrics.hpp read_process_stats): this process's CPU, memory,
// start time and descriptors from /proc/self, as every Prometheus client library exports them.
#include <sys/resource.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "metrics/metrics.hpp"

namespace fe::metrics {

std::optional<ProcessStats> read_process_stats() {
  // /proc/self/stat: the second field is "(comm)", which may hold spaces and ')', so fields are
  // counted from the last ')'. proc(5): utime 14, stime 15, starttime 22 (clock ticks after
  // boot), vsize 23 (bytes), rss 24 (pages).
  std::ifstream in("/proc/self/stat");
  std::string line;
  if (!std::getline(in, line)) return std::nullopt;
  auto close = line.rfind(')');
  if (close == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(close + 1));
  std::vector<std::string> f;  // f[0] is field 3 (state)
  for (std::string x; rest >> x;) f.push_back(x);
  if (f.size() < 22) return std::nullopt;
  auto field = [&](int n) { return std::strtod(f[static_cast<size_t>(n - 3)].c_str(), nullptr); };
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  const double page = static_cast<double>(sysconf(_SC_PAGESIZE));
  if (ticks <= 0 || page <= 0) return std::nullopt;
  double boot_time = 0;
  {
    std::ifstream st("/proc/stat");
    for (std::string l; std::getline(st, l);)
      if (l.rfind("btime ", 0) == 0) boot_time = std::strtod(l.c_str() + 6, nullptr);
  }
  ProcessStats p;
  p.cpu_seconds = (field(14) + field(15)) / ticks;
  p.start_time_seconds = boot_time + field(22) / ticks;
  p.virtual_memory_bytes = field(23);
  p.resident_memory_bytes = field(24) * page;
  std::error_code ec;
  for (auto it = std::filesystem::directory_iterator("/proc/self/fd", ec);
       !ec && it != std::filesystem::directory_iterator(); it.increment(ec))
    p.open_fds += 1;
  if (p.open_fds > 0) p.open_fds -= 1;  // the iterator's own descriptor
  rlimit rl{};
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0) p.max_fds = static_cast<double>(rl.rlim_cur);
  return p;
}

}  // namespace fe::metrics
