// SpoolWriter (contract in spool.hpp): the caller's side and the compressor thread.
#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>

#include <condition_variable>
#include <cstring>
#include <deque>
#include <exception>
#include <mutex>
#include <thread>

#include "common/hashing.hpp"
#include "spool/file_io.hpp"
#include "spool/spool.hpp"

namespace fe::spool {
namespace fs = std::filesystem;
using detail::sys_error;
using detail::write_all;
using detail::write_synced;

namespace {
struct CCtxDeleter {
  void operator()(ZSTD_CCtx* c) const { ZSTD_freeCCtx(c); }
};
}  // namespace

// ------------------------------------------------------------------ SpoolWriter

// The writer is two threads joined by a small queue of fixed chunks. The caller's side (write,
// begin/end_frame) keeps the uncompressed bookkeeping: frame sizes, CRC32C, the quota wait. The
// compressor thread owns the zstd context and the file descriptor: it compresses each chunk in
// order, ends a zstd frame where the caller ended a frame, writes the output and records each
// frame's compressed range, and its SHA-256 when asked for (on this side, not the caller's: the
// caller is the thread that reads and validates the file, the one a big file waits for; issue 13).
// Nothing else is shared, and finish() reads the compressor's results only after joining it.
struct SpoolWriter::Impl {
  static constexpr size_t kChunk = 256 * 1024;
  static constexpr size_t kChunks = 4;  // 1 MiB in flight per writer
  struct Chunk {
    std::unique_ptr<char[]> data{new char[kChunk]};
    size_t len = 0;
    bool end_frame = false;  // the caller ended a frame after these bytes
    bool known = false;      // its frame takes a known SHA-256 (Frame::sha256 at end_frame)
    Frame frame;             // end_frame: the frame as the caller knows it (no compressed range)
  };

  // Shared between the two threads (under mu).
  std::mutex mu;
  std::condition_variable ready_cv, free_cv;
  std::deque<Chunk*> ready;  // in order, for the compressor
  std::vector<Chunk*> spare;
  size_t pending = 0;         // chunks handed off and not yet compressed and written
  uint64_t queued_bytes = 0;  // their uncompressed bytes (not yet counted in the quota)
  bool closing = false;       // no more chunks: finish() or the destructor
  bool aborted = false;       // the destructor: drop what is queued
  std::exception_ptr error;

  // The caller's side.
  Chunk chunks[kChunks];
  Chunk* filling = nullptr;
  // The current frame's CRC32C, over filling's bytes up to crc_done. It is taken once per full
  // chunk and at the frame's end, while the chunk is hot in cache, not once per write: the
  // pipeline writes each line and its "\n" separately, and at FHIR's ~750-byte lines ISA-L's CRC
  // took twice as long per line as per chunk (bench/e2e/README.md, session 14).
  uint32_t crc = 0;
  size_t crc_done = 0;

  // The compressor's side (read by finish() after the join).
  std::unique_ptr<ZSTD_CCtx, CCtxDeleter> cctx;
  std::vector<char> out;
  int fd = -1;
  uint64_t written = 0;  // compressed bytes written to the .tmp file
  uint64_t charged = 0;  // bytes added to the quota for this file
  uint64_t frame_start = 0;
  struct Ended {
    uint64_t offset = 0, size = 0;  // compressed range
    std::string sha256;             // of the uncompressed bytes, when frame_sha256
  };
  std::vector<Ended> ended;   // each frame, in order
  bool frame_sha256 = false;  // WriterOptions::frame_sha256
  fe::Sha256 sha;             // of the current frame's uncompressed bytes
  std::thread thread;

  Impl() {
    for (auto& c : chunks) spare.push_back(&c);
  }

  // Caller: a free chunk to fill; rethrows the compressor's error instead of waiting forever.
  Chunk* take_free(bool known) {
    std::unique_lock lk(mu);
    free_cv.wait(lk, [&] { return !spare.empty() || error; });
    if (error) std::rethrow_exception(error);
    Chunk* c = spare.back();
    spare.pop_back();
    c->len = 0;
    c->end_frame = false;
    c->known = known;
    return c;
  }
  void hand_off(Chunk* c) {
    {
      std::lock_guard lk(mu);
      ready.push_back(c);
      ++pending;
      queued_bytes += c->len;
    }
    ready_cv.notify_one();
  }
  uint64_t queued() {
    std::lock_guard lk(mu);
    return queued_bytes;
  }
  // Caller: waits until the compressor has written everything handed off.
  void drain() {
    std::unique_lock lk(mu);
    free_cv.wait(lk, [&] { return pending == 0 || error; });
    if (error) std::rethrow_exception(error);
  }
  // `known`: the frame these bytes belong to takes a known SHA-256 (a chunk holds one frame's
  // bytes only: every frame ends with mark_frame_end).
  void append(std::string_view bytes, bool known) {
    while (!bytes.empty()) {
      if (!filling) filling = take_free(known);
      size_t n = std::min(bytes.size(), kChunk - filling->len);
      std::memcpy(filling->data.get() + filling->len, bytes.data(), n);
      filling->len += n;
      bytes.remove_prefix(n);
      if (filling->len == kChunk) {
        fold_crc();
        hand_off(filling);
        filling = nullptr;
        crc_done = 0;
      }
    }
  }
  void fold_crc() {
    if (!filling) return;
    crc = fe::crc32c(filling->data.get() + crc_done, filling->len - crc_done, crc);
    crc_done = filling->len;
  }
  // Caller, at a frame's end: the frame's CRC32C; the next frame starts from 0.
  uint32_t take_frame_crc() {
    fold_crc();
    const uint32_t c = crc;
    crc = 0;
    return c;
  }
  void mark_frame_end(const Frame& f, bool known) {
    if (!filling) filling = take_free(known);
    filling->end_frame = true;
    filling->frame = f;
    hand_off(filling);
    filling = nullptr;
    crc_done = 0;
  }
  // Caller: no more chunks; waits for the compressor and rethrows its error.
  void close() {
    // finish() ended the last frame, so no chunk is half filled here.
    {
      std::lock_guard lk(mu);
      closing = true;
    }
    ready_cv.notify_one();
    if (thread.joinable()) thread.join();
    if (error) std::rethrow_exception(error);
  }
  void abort() {
    {
      std::lock_guard lk(mu);
      closing = aborted = true;
    }
    ready_cv.notify_one();
    if (thread.joinable()) thread.join();
  }

  void write_out(const void* data, size_t size, const fs::path& tmp, Quota* quota) {
    if (size == 0) return;
    write_all(fd, data, size, tmp);
    written += size;
    if (quota) {
      quota->add(size);
      charged += size;
    }
  }
  void compress(std::string_view in_bytes, bool end, const fs::path& final_path,
                const fs::path& tmp, Quota* quota) {
    ZSTD_inBuffer in{in_bytes.data(), in_bytes.size(), 0};
    for (;;) {
      ZSTD_outBuffer o{out.data(), out.size(), 0};
      size_t rc = ZSTD_compressStream2(cctx.get(), &o, &in, end ? ZSTD_e_end : ZSTD_e_continue);
      if (ZSTD_isError(rc))
        throw Error("spool: zstd compression of " + final_path.string() +
                    " failed: " + ZSTD_getErrorName(rc));
      write_out(out.data(), o.pos, tmp, quota);
      if (end ? rc == 0 : in.pos == in.size) break;
    }
  }
  // The compressor thread.
  void run(const fs::path& final_path, const fs::path& tmp, Quota* quota,
           const std::function<void(size_t, const Frame&)>& on_frame) {
    for (;;) {
      Chunk* c = nullptr;
      {
        std::unique_lock lk(mu);
        ready_cv.wait(lk, [&] { return !ready.empty() || closing; });
        if (aborted || ready.empty()) return;  // closing with everything done
        c = ready.front();
        ready.pop_front();
      }
      if (!error) {
        try {
          compress({c->data.get(), c->len}, false, final_path, tmp, quota);
          if (frame_sha256 && !c->known) sha.update(c->data.get(), c->len);
          if (c->end_frame) {
            compress({}, true, final_path, tmp, quota);
            auto& e = ended.emplace_back(Ended{frame_start, written - frame_start, {}});
            if (c->known)
              e.sha256 = c->frame.sha256;  // the piece's digest, or "" (not the piece after all)
            else if (frame_sha256)
              e.sha256 = sha.final_hex();  // final_hex starts the next afresh
            if (on_frame) {
              c->frame.compressed_offset = e.offset;
              c->frame.compressed_size = e.size;
              c->frame.sha256 = e.sha256;
              on_frame(ended.size() - 1, c->frame);
            }
            frame_start = written;
          }
        } catch (...) {
          std::lock_guard lk(mu);
          error = std::current_exception();
        }
      }
      {
        std::lock_guard lk(mu);
        spare.push_back(c);
        --pending;
        queued_bytes -= c->len;
      }
      free_cv.notify_one();
    }
  }
};

SpoolWriter::SpoolWriter(fs::path final_path, WriterOptions options)
    : final_(std::move(final_path)), opt_(options), impl_(std::make_unique<Impl>()) {
  if (opt_.part_size == 0) throw Error("spool: part size must be positive");
  if (!final_.has_parent_path()) final_ = fs::path(".") / final_;  // a bare name: the cwd
  tmp_ = final_;
  tmp_ += ".tmp";
  std::error_code ec;
  fs::create_directories(final_.parent_path(), ec);
  if (ec)
    throw Error("spool: cannot create " + final_.parent_path().string() + ": " + ec.message());
  // A previous committed copy (an export being redone) is invalid from now on.
  fs::remove(index_path(final_), ec);
  impl_->cctx.reset(ZSTD_createCCtx());
  if (!impl_->cctx) throw Error("spool: cannot allocate a zstd context");
  ZSTD_CCtx_setParameter(impl_->cctx.get(), ZSTD_c_compressionLevel, opt_.zstd_level);
  ZSTD_CCtx_setParameter(impl_->cctx.get(), ZSTD_c_checksumFlag, 1);
  impl_->out.resize(ZSTD_CStreamOutSize());
  impl_->frame_sha256 = opt_.frame_sha256;
  impl_->fd = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0640);
  if (impl_->fd < 0) throw Error(sys_error("spool: cannot create", tmp_));
  index_.part_size = opt_.part_size;
  impl_->thread = std::thread([impl = impl_.get(), fin = final_, tmp = tmp_, q = opt_.quota,
                               cb = opt_.on_frame] { impl->run(fin, tmp, q, cb); });
}

SpoolWriter::~SpoolWriter() {
  if (!impl_) return;
  impl_->abort();
  if (impl_->fd >= 0) ::close(impl_->fd);
  if (!finished_) {
    std::error_code ec;
    fs::remove(tmp_, ec);
    // finish() may have failed while writing the index (disk full): its temporary goes too.
    auto idx_tmp = index_path(final_);
    idx_tmp += ".tmp";
    fs::remove(idx_tmp, ec);
    if (opt_.quota && impl_->charged) opt_.quota->release(impl_->charged);
  }
}

void SpoolWriter::begin_frame() {
  if (opt_.quota) {
    // Up to kChunks of this writer's bytes may still be on their way to disk, not yet counted in
    // the quota. When they could fill it, let them land first, so the check below sees them and
    // the spool still exceeds max by at most about one frame per writer.
    if (opt_.quota->used() + impl_->queued() >= opt_.quota->max_bytes()) impl_->drain();
    opt_.quota->wait_for_room();
  }
  frame_in_ = 0;
  in_frame_ = true;
}

void SpoolWriter::end_frame() {
  Frame f;  // its compressed range comes from the compressor thread (on_frame, finish())
  f.uncompressed_offset = index_.uncompressed_size;
  f.uncompressed_size = frame_in_;
  f.crc32c = impl_->take_frame_crc();
  f.source_offset = frame_source_;  // sha256: the compressor's (on_frame, finish())
  if (frame_known_) {
    // Began at piece k of the source: its digest if the frame is that piece verbatim, else none
    // (its bytes went by unhashed; the upload hashes this one part).
    const std::uint64_t k = static_cast<std::uint64_t>(frame_source_) / opt_.part_size;
    if (frame_source_ >= 0 && k < opt_.source_pieces->size() &&
        frame_in_ == std::min(opt_.part_size, opt_.source_size - k * opt_.part_size))
      f.sha256 = fe::to_hex((*opt_.source_pieces)[k]);
  }
  impl_->mark_frame_end(f, frame_known_);
  // The whole content's CRC32C from the frame's (crc32c_combine): each byte is CRC'd once, on the
  // thread that reads and validates the file, not twice.
  index_.crc32c = fe::crc32c_combine(index_.crc32c, f.crc32c, frame_in_);
  index_.frames.push_back(f);
  index_.uncompressed_size += frame_in_;
  frame_in_ = 0;
  in_frame_ = false;
}

void SpoolWriter::write(std::string_view bytes, std::int64_t source_offset) {
  if (finished_) throw Error("spool: write after finish on " + final_.string());
  while (!bytes.empty()) {
    if (!in_frame_) {
      begin_frame();
      frame_source_ = source_offset;
      frame_known_ =
          opt_.frame_sha256 && opt_.source_pieces && source_offset >= 0 &&
          static_cast<std::uint64_t>(source_offset) % opt_.part_size == 0 &&
          static_cast<std::uint64_t>(source_offset) < opt_.source_size &&
          static_cast<std::uint64_t>(source_offset) / opt_.part_size <
              (opt_.source_pieces_live ? opt_.source_pieces_max : opt_.source_pieces->size());
    } else if (frame_source_ < 0 || source_offset < 0 ||
               source_offset != frame_source_ + static_cast<std::int64_t>(frame_in_)) {
      frame_source_ = -1;  // a gap (a line not kept, a changed terminator): not verbatim
    }
    size_t n = static_cast<size_t>(std::min<uint64_t>(bytes.size(), opt_.part_size - frame_in_));
    auto chunk = bytes.substr(0, n);
    if (source_offset >= 0) source_offset += static_cast<std::int64_t>(n);
    impl_->append(chunk, frame_known_);
    frame_in_ += n;
    bytes.remove_prefix(n);
    if (frame_in_ == opt_.part_size) end_frame();
  }
}

void SpoolWriter::write_line(std::string_view line, std::int64_t source_offset) {
  write(line, source_offset);
  write("\n", source_offset < 0 ? -1 : source_offset + static_cast<std::int64_t>(line.size()));
}

const FrameIndex& SpoolWriter::finish() {
  if (finished_) return index_;
  if (in_frame_) end_frame();
  impl_->close();  // every frame compressed and written, or the compressor's error
  if (impl_->ended.size() != index_.frames.size())
    throw Error("spool: " + final_.string() + ": compressor ended " +
                std::to_string(impl_->ended.size()) + " frames, expected " +
                std::to_string(index_.frames.size()));
  for (size_t i = 0; i < index_.frames.size(); ++i) {
    index_.frames[i].compressed_offset = impl_->ended[i].offset;
    index_.frames[i].compressed_size = impl_->ended[i].size;
    index_.frames[i].sha256 = std::move(impl_->ended[i].sha256);
  }
  index_.compressed_size = impl_->written;
  if (opt_.fsync && ::fsync(impl_->fd) != 0) throw Error(sys_error("spool: cannot fsync", tmp_));
  ::close(impl_->fd);
  impl_->fd = -1;
  impl_->cctx.reset();

  // Index first, data file last: the data rename is the commit point, and SpoolFile::open
  // requires both to agree, so any crash in between leaves a detectably incomplete file.
  auto idx_final = index_path(final_);
  auto idx_tmp = idx_final;
  idx_tmp += ".tmp";
  std::string idx_text = index_.serialize();
  write_synced(idx_tmp, idx_text, opt_.fsync);
  if (opt_.quota) {
    opt_.quota->add(idx_text.size());
    impl_->charged += idx_text.size();
  }
  std::error_code ec;
  fs::rename(idx_tmp, idx_final, ec);
  if (!ec) fs::rename(tmp_, final_, ec);
  if (ec) throw Error("spool: cannot commit " + final_.string() + ": " + ec.message());
  if (opt_.fsync) fsync_path(final_.parent_path());
  finished_ = true;
  return index_;
}

}  // namespace fe::spool
