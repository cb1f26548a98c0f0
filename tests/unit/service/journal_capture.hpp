#pragma once
// Capturing what sd_journal_send()/sd_journal_sendv() put on the wire, without a journald.
//
// libsystemd sends each entry as one datagram to the fixed path /run/systemd/journal/socket (and
// silently drops it when nothing listens there). So the capture runs the code under test in a
// child process with a private mount namespace (unshare(CLONE_NEWNS), root only or in a user
// namespace) where a fresh tmpfs hides the host's /run/systemd and a socket this test owns sits
// at that path. Nothing in the daemon knows about the test: the real library code path and the
// real native protocol are exercised. Where namespaces are not allowed the test is skipped with a
// one-line reason.
#include <fcntl.h>
#include <poll.h>
#include <sched.h>
#include <sys/mount.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace fe::test {

using JournalEntry = std::multimap<std::string, std::string>;

// Parses journald's native protocol: "KEY=value\n" fields, or for values containing newlines
// "KEY\n" + 64-bit little-endian length + raw bytes + "\n".
inline std::optional<JournalEntry> parse_native(const std::string& d) {
  JournalEntry e;
  size_t i = 0;
  while (i < d.size()) {
    size_t nl = d.find('\n', i);
    size_t eq = d.find('=', i);
    if (nl == std::string::npos) return std::nullopt;
    if (eq != std::string::npos && eq < nl) {
      e.emplace(d.substr(i, eq - i), d.substr(eq + 1, nl - eq - 1));
      i = nl + 1;
    } else {
      std::string key = d.substr(i, nl - i);
      i = nl + 1;
      if (i + 8 > d.size()) return std::nullopt;
      uint64_t len = 0;
      for (int b = 7; b >= 0; --b) len = (len << 8) | static_cast<unsigned char>(d[i + b]);
      i += 8;
      if (i + len + 1 > d.size() || d[i + len] != '\n') return std::nullopt;
      e.emplace(key, d.substr(i, len));
      i += len + 1;
    }
  }
  return e;
}

// Waits for one datagram on `sock` (nullopt after `limit`, a guard against hangs only).
inline std::optional<std::string> recv_datagram(int sock, std::chrono::milliseconds limit) {
  pollfd p{sock, POLLIN, 0};
  if (poll(&p, 1, static_cast<int>(limit.count())) <= 0) return std::nullopt;
  std::string buf(256 * 1024, '\0');
  ssize_t n = recv(sock, buf.data(), buf.size(), 0);
  if (n < 0) return std::nullopt;
  buf.resize(static_cast<size_t>(n));
  return buf;
}

struct Capture {
  std::string skipped;           // non-empty: why the capture could not run
  std::vector<std::string> raw;  // every datagram, in order
  std::string child_error;       // set when the body reported a failure
};

// Runs body(sock, got) in a child inside the private namespace. The body may read datagrams
// itself (pushing them into `got`) and returns "" or an error text; everything still queued on
// the socket afterwards is collected too.
inline Capture capture_journal(
    const std::function<std::string(int sock, std::vector<std::string>& got)>& body) {
  Capture result;
  int pipefd[2];
  if (pipe(pipefd) != 0) {
    result.skipped = "pipe() failed";
    return result;
  }
  pid_t pid = fork();
  if (pid == 0) {
    close(pipefd[0]);
    auto send_all = [&](char tag, const std::string& s) {
      uint32_t n = static_cast<uint32_t>(s.size());
      std::string rec(1, tag);
      rec.append(reinterpret_cast<const char*>(&n), 4);
      rec += s;
      size_t off = 0;
      while (off < rec.size()) {
        ssize_t w = write(pipefd[1], rec.data() + off, rec.size() - off);
        if (w <= 0) break;
        off += static_cast<size_t>(w);
      }
    };
    if (unshare(CLONE_NEWNS) != 0) {
      send_all('S', std::string("cannot create a mount namespace (unshare: ") +
                        std::strerror(errno) + "); needs root or user namespaces");
      _exit(0);
    }
    const char* over = access("/run/systemd", F_OK) == 0 ? "/run/systemd" : "/run";
    if (mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        mount("tmpfs", over, "tmpfs", 0, "mode=0755") != 0) {
      send_all('S', std::string("cannot mount a private tmpfs on ") + over + ": " +
                        std::strerror(errno));
      _exit(0);
    }
    mkdir("/run/systemd", 0755);
    mkdir("/run/systemd/journal", 0755);
    int sock = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un sa{};
    sa.sun_family = AF_UNIX;
    std::strcpy(sa.sun_path, "/run/systemd/journal/socket");
    if (sock < 0 || bind(sock, reinterpret_cast<sockaddr*>(&sa), sizeof sa) != 0) {
      send_all('S', std::string("cannot bind the journal socket: ") + std::strerror(errno));
      _exit(0);
    }
    std::vector<std::string> got;
    std::string err = body(sock, got);
    while (auto d = recv_datagram(sock, std::chrono::milliseconds(0))) got.push_back(*d);
    for (const auto& d : got) send_all('D', d);
    if (!err.empty()) send_all('E', err);
    _exit(0);
  }
  close(pipefd[1]);
  std::string all;
  char buf[65536];
  ssize_t n;
  while ((n = read(pipefd[0], buf, sizeof buf)) > 0) all.append(buf, static_cast<size_t>(n));
  close(pipefd[0]);
  waitpid(pid, nullptr, 0);
  for (size_t i = 0; i + 5 <= all.size();) {
    char tag = all[i];
    uint32_t len;
    std::memcpy(&len, all.data() + i + 1, 4);
    std::string payload = all.substr(i + 5, len);
    i += 5 + len;
    if (tag == 'S') result.skipped = payload;
    if (tag == 'D') result.raw.push_back(payload);
    if (tag == 'E') result.child_error = payload;
  }
  return result;
}

// "dev:ino" of a file descriptor, as systemd puts in JOURNAL_STREAM.
inline std::string dev_ino(int fd) {
  struct stat st {};
  fstat(fd, &st);
  return std::to_string(static_cast<unsigned long long>(st.st_dev)) + ":" +
         std::to_string(static_cast<unsigned long long>(st.st_ino));
}

}  // namespace fe::test
