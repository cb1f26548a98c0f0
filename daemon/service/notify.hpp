#pragma once
// sd_notify(3) wrapper: the daemon's side of Type=notify. All functions are no-ops (returning
// false) when NOTIFY_SOCKET is unset, so the daemon behaves the same outside systemd.
#include <chrono>
#include <optional>
#include <string>
#include <string_view>

namespace fe::service {

bool notify(std::string_view state);  // raw "KEY=value\nKEY=value" message
bool notify_ready();                  // READY=1
bool notify_stopping();               // STOPPING=1
// RELOADING=1 plus MONOTONIC_USEC=<now> (systemd 253+ requires the timestamp for
// Type=notify-reload and uses it to match the READY=1 that ends the reload).
bool notify_reloading();
bool notify_status(std::string_view status);  // STATUS=<one line>
bool notify_watchdog();                       // WATCHDOG=1

// The watchdog period systemd expects (WATCHDOG_USEC, honouring WATCHDOG_PID); nullopt when the
// watchdog is off. Ping at half of it.
std::optional<std::chrono::microseconds> watchdog_interval();

}  // namespace fe::service
