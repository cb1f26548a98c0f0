#include "body.hpp"

#include <fcntl.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <stdexcept>

#include "aws/sigv4.hpp"

namespace fe::hll {

S3Error malformed_trailer() {
  return S3Error(400, "MalformedTrailerError",
                 "The request contained trailing data that was not well-formed or did not "
                 "conform to our published schema.");
}

namespace {
S3Error bad_chunking(const std::string& why) {
  return S3Error(400, "IncompleteBody",
                 "The request body is not valid aws-chunked encoding: " + why);
}
constexpr size_t kMaxLine = 8192;  // a chunk header or trailer line
std::string lower_ascii(std::string s) {
  for (auto& c : s) c = static_cast<char>(tolower(static_cast<unsigned char>(c)));
  return s;
}
}  // namespace

BodyReceiver::BodyReceiver(const std::filesystem::path& out, Options options)
    : opt_(std::move(options)),
      // A plain body is stored as received: its SHA-256 is the payload hash, one pass for both.
      decoded_stream_(opt_.aws_chunked || !opt_.raw_sha256 ? opt_.decoded
                                                           : opt_.decoded | kDigestSha256) {
  if (opt_.buffer_size < 2) opt_.buffer_size = 2;
  fd_ = ::open(out.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd_ < 0) throw std::runtime_error("cannot create " + out.string());
  buf_.reset(new char[opt_.buffer_size]);
  if (opt_.aws_chunked && opt_.raw_sha256) raw_sha_.emplace();
  if (opt_.signing) {
    chunk_sha_.emplace();
    prev_sig_ = opt_.signing->seed_signature;
  }
}

BodyReceiver::~BodyReceiver() {
  if (fd_ >= 0) ::close(fd_);
}

std::span<char> BodyReceiver::space() {
  // Refill from the start once less than an eighth is left: reads and writes stay large.
  if (opt_.buffer_size - fill_ < std::max<size_t>(1, opt_.buffer_size / 8)) flush();
  return {buf_.get() + fill_, opt_.buffer_size - fill_};
}

void BodyReceiver::commit(size_t n) {
  if (n == 0) return;
  const char* p = buf_.get() + fill_;
  fill_ += n;
  raw_size_ += n;
  if (raw_sha_) raw_sha_->update(p, n);
  if (opt_.aws_chunked)
    consume(p, n);
  else
    emit(p, n);
}

void BodyReceiver::put(const char* data, size_t n) {
  while (n > 0) {
    std::span<char> s = space();
    size_t k = std::min(n, s.size());
    std::memcpy(s.data(), data, k);
    commit(k);
    data += k;
    n -= k;
  }
}

void BodyReceiver::emit(const char* p, size_t n) {
  if (n == 0) return;
  decoded_stream_.update(p, n);
  if (!pending_.empty() && pending_.back().p + pending_.back().n == p)
    pending_.back().n += n;
  else
    pending_.push_back({p, n});
}

void BodyReceiver::flush() {
  size_t i = 0;
  while (i < pending_.size()) {
    iovec iov[64];
    int cnt = 0;
    for (size_t j = i; j < pending_.size() && cnt < 64; ++j, ++cnt)
      iov[cnt] = {const_cast<char*>(pending_[j].p), pending_[j].n};
    ssize_t w = ::writev(fd_, iov, cnt);
    if (w < 0) {
      if (errno == EINTR) continue;
      throw std::runtime_error(std::string("cannot spool the body: ") + std::strerror(errno));
    }
    // Drop what was written (a short write leaves the rest of a range for the next round).
    auto left = static_cast<size_t>(w);
    while (left > 0) {
      Range& r = pending_[i];
      size_t k = std::min(left, r.n);
      r.p += k;
      r.n -= k;
      left -= k;
      if (r.n == 0) ++i;
    }
  }
  pending_.clear();
  fill_ = 0;
}

void BodyReceiver::fail(S3Error e) {
  if (!error_) error_ = std::move(e);
  state_ = State::failed;
}

void BodyReceiver::consume(const char* p, size_t n) {
  while (n > 0) {
    switch (state_) {
      case State::failed:
        return;  // the first error stands; the rest of the body is only taken in
      case State::done:
        after_end_ = true;
        return;
      case State::data: {
        size_t k = static_cast<size_t>(std::min<uint64_t>(left_, n));
        if (chunk_sha_) chunk_sha_->update(p, k);
        emit(p, k);
        p += k;
        n -= k;
        left_ -= k;
        if (left_ == 0) end_chunk();
        break;
      }
      case State::size_line:
      case State::data_crlf:
      case State::trailer: {
        const char* nl = static_cast<const char*>(std::memchr(p, '\n', n));
        size_t k = nl ? static_cast<size_t>(nl - p) : n;
        if (line_.size() + k > kMaxLine) {
          fail(bad_chunking("chunk header too long"));
          return;
        }
        line_.append(p, k);
        p += k;
        n -= k;
        if (nl) {
          ++p;
          --n;
          if (!line_.empty() && line_.back() == '\r') line_.pop_back();
          on_line(true);
          line_.clear();
        }
        break;
      }
    }
  }
}

void BodyReceiver::on_line(bool terminated) {
  switch (state_) {
    case State::size_line: {
      std::string size_part = line_.substr(0, line_.find(';'));
      if (size_part.empty() || size_part.size() > 16 ||
          size_part.find_first_not_of("0123456789abcdefABCDEF") != std::string::npos)
        return fail(bad_chunking("chunk size '" + size_part.substr(0, 32) + "'"));
      left_ = std::stoull(size_part, nullptr, 16);
      given_sig_.clear();
      if (auto at = line_.find(";chunk-signature="); at != std::string::npos)
        given_sig_ = line_.substr(at + 17);
      if (left_ == 0)
        end_chunk();
      else
        state_ = State::data;
      return;
    }
    case State::data_crlf:
      if (!line_.empty() || !terminated) return fail(bad_chunking("chunk not followed by CRLF"));
      state_ = State::size_line;
      return;
    case State::trailer: {
      if (line_.empty()) {
        state_ = State::done;
        return;
      }
      if (!terminated) return fail(malformed_trailer());  // cut off in the middle of a line
      auto c = line_.find(':');
      if (c == std::string::npos || c == 0) return fail(malformed_trailer());
      std::string name = lower_ascii(line_.substr(0, c));
      std::string value = line_.substr(c + 1);
      while (!value.empty() && value.front() == ' ') value.erase(0, 1);
      while (!value.empty() && value.back() == ' ') value.pop_back();
      if (name == "x-amz-trailer-signature") return;
      if (!opt_.declared_trailers.count(name) || trailers_.count(name))
        return fail(malformed_trailer());
      trailers_[name] = value;
      return;
    }
    default:
      return;
  }
}

// The chunk's bytes are all in (or it is the final, empty chunk): check its signature.
void BodyReceiver::end_chunk() {
  const bool final_chunk = state_ == State::size_line;  // a 0 chunk never enters `data`
  if (opt_.signing) {
    static const std::string empty_hash = fe::aws::sha256_hex("");
    const ChunkSigning& s = *opt_.signing;
    std::string sts = "AWS4-HMAC-SHA256-PAYLOAD\n" + s.amz_date + "\n" + s.scope + "\n" +
                      prev_sig_ + "\n" + empty_hash + "\n" + chunk_sha_->final_hex();
    auto mac = fe::aws::hmac_sha256(
        std::string_view(reinterpret_cast<const char*>(s.key.data()), s.key.size()), sts);
    std::string expect = fe::aws::hex(mac.data(), mac.size());
    if (given_sig_ != expect)
      return fail(S3Error(403, "SignatureDoesNotMatch",
                          "The request signature we calculated does not match the signature you "
                          "provided. Check your key and signing method. (chunk signature)"));
    prev_sig_ = expect;
  }
  state_ = final_chunk ? State::trailer : State::data_crlf;
}

void BodyReceiver::finish() {
  if (finished_) return;
  finished_ = true;
  if (opt_.aws_chunked) {
    // End of input, judged as the old file decoder judged EOF: a last line without its LF is
    // still a line (a body may end right after "0" when it declares no trailers).
    if (state_ == State::size_line) {
      if (line_.empty())
        fail(bad_chunking("missing final chunk"));
      else
        on_line(false);
      line_.clear();
    }
    switch (state_) {
      case State::data:
        fail(bad_chunking("truncated chunk"));
        break;
      case State::data_crlf:
        fail(bad_chunking("chunk not followed by CRLF"));
        break;
      case State::trailer:
        if (!line_.empty()) {
          on_line(false);
          line_.clear();
          if (state_ == State::failed) break;
        }
        // No empty line ended the trailers: only a body that declared none may stop here.
        if (!(opt_.declared_trailers.empty() && trailers_.empty()))
          fail(malformed_trailer());
        else if (trailers_.size() != opt_.declared_trailers.size())
          fail(malformed_trailer());
        break;
      case State::done:
        if (trailers_.size() != opt_.declared_trailers.size())
          fail(malformed_trailer());
        else if (after_end_)
          fail(bad_chunking("data after the final chunk"));
        break;
      default:
        break;
    }
  }
  flush();
  if (::close(fd_) != 0) {
    fd_ = -1;
    throw std::runtime_error(std::string("cannot spool the body: ") + std::strerror(errno));
  }
  fd_ = -1;
  decoded_ = decoded_stream_.final();
  if (raw_sha_)
    raw_sha256_hex_ = raw_sha_->final_hex();
  else if (!opt_.aws_chunked && opt_.raw_sha256)
    raw_sha256_hex_ = hex(decoded_.sha256);
}

}  // namespace fe::hll
