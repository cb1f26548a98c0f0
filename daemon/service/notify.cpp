#include "service/notify.hpp"

#include <systemd/sd-daemon.h>

#include <ctime>
#include <string>

namespace fe::service {

bool notify(std::string_view state) {
  // unset_environment=0: the variables stay for later messages (READY, WATCHDOG, STOPPING...).
  return sd_notify(0, std::string(state).c_str()) > 0;
}

bool notify_ready() {
  return notify("READY=1");
}

bool notify_stopping() {
  return notify("STOPPING=1");
}

bool notify_reloading() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  unsigned long long usec = static_cast<unsigned long long>(ts.tv_sec) * 1'000'000ULL +
                            static_cast<unsigned long long>(ts.tv_nsec) / 1000ULL;
  return notify("RELOADING=1\nMONOTONIC_USEC=" + std::to_string(usec));
}

bool notify_status(std::string_view status) {
  std::string s = "STATUS=";
  for (char c : status) {
    s += (c == '\n' ? ' ' : c);  // STATUS is one line
  }
  return notify(s);
}

bool notify_watchdog() {
  return notify("WATCHDOG=1");
}

std::optional<std::chrono::microseconds> watchdog_interval() {
  uint64_t usec = 0;
  if (sd_watchdog_enabled(0, &usec) <= 0 || usec == 0) {
    return std::nullopt;
  }
  return std::chrono::microseconds(usec);
}

}  // namespace fe::service
