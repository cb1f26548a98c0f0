#pragma once
// How healthlake-local takes in a request body: one pass over the bytes as they arrive. The
// server reads from the socket straight into this receiver's buffer (large reads); each piece is
// hashed at once by every digest the request needs (while it is in cache), aws-chunked framing is
// decoded and its chunk signatures checked on the fly, and the (decoded) bytes go to the spool
// file in large writes. Nothing re-reads the file afterwards.
//
// The aws-chunked rules are exactly those S3 applies (and that this emulator applied when it
// decoded a spooled file after the fact): a chunk size is 1-16 hex digits, each chunk is followed
// by CRLF, the body ends with a 0 chunk, then the trailer lines and an empty line, and nothing
// after it (IncompleteBody otherwise); the trailers must be exactly the ones x-amz-trailer
// declared, each a "name:value" line (MalformedTrailerError otherwise); a chunk whose signature
// does not chain from the seed signature is SignatureDoesNotMatch. The first violation in stream
// order is kept, not thrown, and the rest of the body is still taken in (so the connection stays in
// step): the server raises it where S3 would, after the request's signature and faults were judged.
// Where the bytes were cut into TCP segments changes nothing (tests feed them one byte at a time).
#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <span>
#include <string>

#include "s3_store.hpp"
#include "util.hpp"

namespace fe::hll {

// What the chunk-signature chain of STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER] needs.
struct ChunkSigning {
  std::array<unsigned char, 32> key{};
  std::string amz_date, scope, seed_signature;
};

S3Error malformed_trailer();

class BodyReceiver {
 public:
  struct Options {
    bool aws_chunked = false;             // decode aws-chunked (x-amz-content-sha256 STREAMING-*)
    std::optional<ChunkSigning> signing;  // verify chunk signatures (signed streaming)
    std::set<std::string> declared_trailers;  // x-amz-trailer names, lower case
    bool raw_sha256 = false;        // SHA-256 of the bytes as received (the SigV4 payload hash)
    unsigned decoded = kDigestMd5;  // digests of the stored (decoded) bytes (DigestBits)
    size_t buffer_size = 1 << 20;
  };
  // Creates (truncates) `out`, where the decoded bytes go.
  BodyReceiver(const std::filesystem::path& out, Options options);
  ~BodyReceiver();
  BodyReceiver(const BodyReceiver&) = delete;
  BodyReceiver& operator=(const BodyReceiver&) = delete;

  // Where the next bytes go (never empty), and how many were put there.
  std::span<char> space();
  void commit(size_t n);
  // Copies bytes in (what the HTTP parser had already buffered).
  void put(const char* data, size_t n);
  // End of the body: the framing's end-of-input checks, and everything written to the file.
  void finish();

  uint64_t raw_size() const { return raw_size_; }
  std::string raw_sha256_hex() const { return raw_sha256_hex_; }  // "" unless asked for
  const Digests& decoded() const { return decoded_; }             // after finish()
  const std::map<std::string, std::string>& trailers() const { return trailers_; }
  // The first framing or chunk-signature error (aws-chunked only).
  const std::optional<S3Error>& error() const { return error_; }

 private:
  enum class State { size_line, data, data_crlf, trailer, done, failed };
  void consume(const char* p, size_t n);  // aws-chunked state machine
  void on_line(bool terminated);
  void end_chunk();
  void emit(const char* p, size_t n);  // decoded bytes
  void flush();
  void fail(S3Error e);

  Options opt_;
  int fd_ = -1;
  std::unique_ptr<char[]> buf_;
  size_t fill_ = 0;
  struct Range {
    const char* p;
    size_t n;
  };
  std::vector<Range> pending_;  // decoded bytes in buf_ not yet written
  uint64_t raw_size_ = 0;
  std::optional<fe::Sha256> raw_sha_;
  std::string raw_sha256_hex_;
  DigestStream decoded_stream_;
  Digests decoded_;
  bool finished_ = false;
  // aws-chunked
  State state_ = State::size_line;
  std::string line_;
  uint64_t left_ = 0;
  std::string given_sig_, prev_sig_;
  std::optional<fe::Sha256> chunk_sha_;
  bool after_end_ = false;  // bytes after the final empty line
  std::map<std::string, std::string> trailers_;
  std::optional<S3Error> error_;
};

}  // namespace fe::hll
