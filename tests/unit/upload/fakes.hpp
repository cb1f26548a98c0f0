#pragma once
// Test doubles for the upload ports (daemon/upload/ports.hpp):
//   FakeStore   an in-memory S3 with the semantics the machine relies on: multipart uploads with
//               per-part CRC32C, the COMPOSITE checksum on completion, If-None-Match: * (412),
//               NoSuchUpload, HeadObject. A request is applied when it is made or when its answer
//               is delivered (apply_on_delivery), and answers wait in a queue the test drains, so a
//               "crash" can drop answers the server already acted on.
//   MemLedger   the journal's rows for one object, with the journal's part transitions enforced.
//   FakeBodies  part bodies from strings.
#include <gtest/gtest.h>

#include <deque>
#include <map>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

#include "aws/crc32c.hpp"
#include "upload/ports.hpp"

namespace fe::upload::testing {

inline std::string read_all(aws::BodySource& b) {
  std::string out;
  char buf[4096];
  for (;;) {
    auto n = b.read(std::span<char>(buf, sizeof buf));
    if (n < 0) throw std::runtime_error("body read failed");
    if (n == 0) break;
    out.append(buf, static_cast<size_t>(n));
  }
  return out;
}

template <class T>
aws::S3Result<T> ok(T v) {
  aws::S3Result<T> r;
  r.value = std::move(v);
  r.attempts = 1;
  r.context = "fake";
  return r;
}
template <class T>
aws::S3Result<T> err(int status, std::string code, aws::ErrorCategory cat) {
  aws::S3Result<T> r;
  aws::AwsError e;
  e.http_status = status;
  e.code = std::move(code);
  e.message = e.code;
  e.category = cat;
  r.error = e;
  r.attempts = 1;
  r.context = "fake";
  return r;
}

class FakeStore : public ObjectStore {
 public:
  struct Part {
    std::string bytes, etag, crc;
  };
  struct Upload {
    std::string key;
    std::map<int, Part> parts;
  };
  struct Object {
    std::string bytes, checksum, etag;
  };
  std::map<std::string, Object> objects;
  std::map<std::string, Upload> uploads;  // by upload id
  std::map<std::string, int> writes;      // successful PutObject / Complete per key
  std::vector<std::string> log;           // "UploadPart 3", "CompleteMultipartUpload", ...
  bool apply_on_delivery = false;
  bool list_parts_not_implemented = false;
  int next_id = 1;

  // Answers not yet delivered to the machine.
  std::deque<std::function<void()>> pending;
  // Delivers one answer (false when none is waiting).
  bool deliver_one() {
    if (pending.empty()) return false;
    auto f = std::move(pending.front());
    pending.pop_front();
    f();
    return true;
  }
  int deliver_all(int limit = 10000) {
    int n = 0;
    while (n < limit && deliver_one()) ++n;
    return n;
  }
  // A crash: answers in flight are lost (with apply_on_delivery, so are their requests).
  void crash() { pending.clear(); }

  int count(const std::string& what) const {
    int n = 0;
    for (const auto& l : log) n += l == what;
    return n;
  }

  void put_object(aws::PutObjectRequest req, Done<aws::PutObjectResult> done) override {
    std::string bytes = read_all(req.body);
    act<aws::PutObjectResult>("PutObject", std::move(done), [this, req, bytes] {
      using R = aws::PutObjectResult;
      if (aws::crc32c(bytes) != req.crc32c)
        return err<R>(400, "BadDigest", aws::ErrorCategory::validation);
      if (req.if_none_match && objects.count(req.key))
        return err<R>(412, "PreconditionFailed", aws::ErrorCategory::conflict);
      auto& o = objects[req.key];
      o.bytes = bytes;
      o.checksum = aws::crc32c_base64(req.crc32c);
      o.etag = "\"put-" + std::to_string(next_id++) + "\"";
      ++writes[req.key];
      return ok(R{o.etag, o.checksum, ""});
    });
  }
  void create_multipart_upload(aws::CreateMultipartRequest req,
                               Done<aws::CreateMultipartResult> done) override {
    act<aws::CreateMultipartResult>("CreateMultipartUpload", std::move(done), [this, req] {
      std::string id = "up" + std::to_string(next_id++);
      uploads[id].key = req.key;
      return ok(aws::CreateMultipartResult{id});
    });
  }
  void upload_part(aws::UploadPartRequest req, Done<aws::UploadPartResult> done) override {
    std::string bytes = read_all(req.body);
    act<aws::UploadPartResult>(
        "UploadPart " + std::to_string(req.part_number), std::move(done), [this, req, bytes] {
          using R = aws::UploadPartResult;
          auto it = uploads.find(req.upload_id);
          if (it == uploads.end())
            return err<R>(404, "NoSuchUpload", aws::ErrorCategory::not_found);
          if (aws::crc32c(bytes) != req.crc32c)
            return err<R>(400, "BadDigest", aws::ErrorCategory::validation);
          Part p{bytes, "\"etag-" + std::to_string(next_id++) + "\"",
                 aws::crc32c_base64(req.crc32c)};
          it->second.parts[req.part_number] = p;
          return ok(R{p.etag, p.crc});
        });
  }
  void complete_multipart_upload(aws::CompleteMultipartRequest req,
                                 Done<aws::CompleteMultipartResult> done) override {
    act<aws::CompleteMultipartResult>("CompleteMultipartUpload", std::move(done), [this, req] {
      using R = aws::CompleteMultipartResult;
      auto it = uploads.find(req.upload_id);
      if (it == uploads.end()) return err<R>(404, "NoSuchUpload", aws::ErrorCategory::not_found);
      if (req.if_none_match && objects.count(req.key))
        return err<R>(412, "PreconditionFailed", aws::ErrorCategory::conflict);
      std::string bytes;
      std::vector<std::uint32_t> crcs;
      for (const auto& cp : req.parts) {
        auto p = it->second.parts.find(cp.part_number);
        if (p == it->second.parts.end() || p->second.etag != cp.etag)
          return err<R>(400, "InvalidPart", aws::ErrorCategory::validation);
        bytes += p->second.bytes;
        std::uint32_t c = 0;
        aws::crc32c_from_base64(p->second.crc, c);
        crcs.push_back(c);
      }
      auto& o = objects[req.key];
      o.bytes = bytes;
      o.checksum = aws::composite_crc32c(crcs);
      o.etag = "\"mp-" + std::to_string(next_id++) + "\"";
      ++writes[req.key];
      uploads.erase(it);
      return ok(R{o.etag, o.checksum, ""});
    });
  }
  void list_parts(std::string, std::string, std::string upload_id,
                  Done<std::vector<aws::PartInfo>> done) override {
    act<std::vector<aws::PartInfo>>("ListParts", std::move(done), [this, upload_id] {
      using R = std::vector<aws::PartInfo>;
      if (list_parts_not_implemented)
        return err<R>(501, "NotImplemented", aws::ErrorCategory::other);
      auto it = uploads.find(upload_id);
      if (it == uploads.end()) return err<R>(404, "NoSuchUpload", aws::ErrorCategory::not_found);
      R out;
      for (const auto& [n, p] : it->second.parts) out.push_back({n, p.etag, p.bytes.size(), p.crc});
      return ok(out);
    });
  }
  void head_object(std::string, std::string key, Done<aws::HeadObjectResult> done) override {
    act<aws::HeadObjectResult>("HeadObject", std::move(done), [this, key] {
      using R = aws::HeadObjectResult;
      auto it = objects.find(key);
      if (it == objects.end()) return err<R>(404, "NotFound", aws::ErrorCategory::not_found);
      R h;
      h.size = it->second.bytes.size();
      h.etag = it->second.etag;
      h.checksum_crc32c = it->second.checksum;
      return ok(h);
    });
  }

 private:
  // The server acts when the request is made (its answer may then be lost in a crash), or, with
  // apply_on_delivery, only when the answer is delivered (a request lost before it arrived).
  template <class T, class Serve>
  void act(std::string what, Done<T> done, Serve serve) {
    log.push_back(std::move(what));
    if (apply_on_delivery) {
      pending.push_back([serve, done]() mutable { done(serve()); });
      return;
    }
    auto r = serve();
    pending.push_back([r, done] { done(r); });
  }
};

class MemLedger : public PartLedger {
 public:
  std::map<std::pair<std::int64_t, journal::PartKind>, LedgerObject> rows;
  bool fail_writes = false;
  int restarts = 0;

  LedgerObject& at(std::int64_t f, journal::PartKind k) {
    auto it = rows.find({f, k});
    if (it == rows.end()) throw std::runtime_error("no such object in the ledger");
    return it->second;
  }
  journal::PartRow& part(std::int64_t f, journal::PartKind k, int n) {
    for (auto& p : at(f, k).parts)
      if (p.part_number == n) return p;
    throw std::runtime_error("no part " + std::to_string(n));
  }
  void check_write() {
    if (fail_writes) throw std::runtime_error("disk I/O error (simulated)");
  }

  LedgerObject load(std::int64_t f, journal::PartKind k) override { return at(f, k); }
  void set_object(std::int64_t f, journal::PartKind k, const std::string& key,
                  const std::string& id) override {
    check_write();
    at(f, k).key = key;
    at(f, k).upload_id = id;
  }
  void restart_object(std::int64_t f, journal::PartKind k, const std::string& key,
                      const std::string& id) override {
    check_write();
    ++restarts;
    auto& o = at(f, k);
    o.key = key;
    o.upload_id = id;
    for (auto& p : o.parts) {
      p.state = journal::PartState::pending;
      p.etag.clear();
    }
  }
  void set_part_state(std::int64_t f, journal::PartKind k, int n, journal::PartState to) override {
    check_write();
    auto& p = part(f, k, n);
    if (!journal::allowed(p.state, to))
      throw std::runtime_error("illegal part transition " +
                               std::string(journal::to_string(p.state)) + " -> " +
                               std::string(journal::to_string(to)));
    p.state = to;
  }
  void part_uploaded(std::int64_t f, journal::PartKind k, int n, const std::string& etag,
                     const std::string& crc) override {
    check_write();
    auto& p = part(f, k, n);
    if (!journal::allowed(p.state, journal::PartState::uploaded))
      throw std::runtime_error("illegal part transition " +
                               std::string(journal::to_string(p.state)) + " -> uploaded");
    p.state = journal::PartState::uploaded;
    p.etag = etag;
    p.crc32c = crc;
  }
};

class FakeBodies : public PartBodies {
 public:
  std::vector<std::string> parts;  // part N = parts[N-1]
  std::string whole;               // untracked objects
  bool damaged = false;
  void open(const BodyRequest& req, std::function<void(PartBody)> done) override {
    PartBody b;
    if (damaged) {
      b.error = "frame 0: checksum mismatch (simulated)";
      return done(std::move(b));
    }
    const std::string& bytes = req.whole_file ? whole : parts.at(req.part_number - 1);
    b.body = aws::BodySource::from_view(bytes);
    if (req.whole_file) b.crc32c = aws::crc32c(bytes);
    done(std::move(b));
  }
};

}  // namespace fe::upload::testing
