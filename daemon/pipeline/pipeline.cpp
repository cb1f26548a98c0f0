// The pipeline component: see pipeline.hpp for the contract. Everything in Impl runs on the
// control thread except what is explicitly posted to `pool` (validate + spool, digests) or
// `reader` (reading part bodies out of the spool); their results are posted back to `io`.
#include "pipeline/pipeline.hpp"

#include <fcntl.h>
#include <openssl/evp.h>
#include <unistd.h>
#include <zstd.h>

#include <algorithm>
#include <atomic>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/thread_pool.hpp>
#include <deque>
#include <map>
#include <set>

#include "aws/crc32c.hpp"
#include "aws/credentials.hpp"
#include "aws/healthlake.hpp"
#include "aws/http.hpp"
#include "aws/http_call.hpp"
#include "aws/s3.hpp"
#include "fhir/validator.hpp"
#include "journal/digest.hpp"
#include "journal/journal.hpp"
#include "pipeline/importer.hpp"
#include "pipeline/spooler.hpp"
#include "service/log.hpp"
#include "spool/spool.hpp"
#include "watch/from_config.hpp"
#include "watch/watcher.hpp"

namespace fe::pipeline {
namespace fs = std::filesystem;
namespace asio = boost::asio;
using journal::ExportState;
using journal::FileState;
using journal::PartKind;
using journal::PartState;

// ------------------------------------------------------------------ small helpers

std::uint64_t choose_part_size(std::optional<std::uint64_t> configured, std::uint64_t source_bytes,
                               const Options& options) {
  std::uint64_t size = configured ? *configured : options.auto_part_size;
  size = std::max(size, options.min_part_size);
  // S3 allows 10,000 parts; keep one spare so a file that grows by a line still fits.
  const std::uint64_t need = (source_bytes + 9998) / 9999;
  if (size < need) {
    const std::uint64_t mib = 1ull << 20;
    size = (need + mib - 1) / mib * mib;  // whole MiB: readable in logs and the index
  }
  return size;
}

namespace {
std::string join_key(std::string_view prefix, std::string_view export_name, std::string_view mid,
                     std::string_view leaf) {
  std::string k;
  if (!prefix.empty()) {
    k += prefix;
    k += '/';
  }
  k += export_name;
  k += '/';
  k += mid;
  if (!leaf.empty()) {
    k += '/';
    k += leaf;
  }
  return k;
}
std::string ndjson_name(std::string_view file_name) {
  // A compressed source (.ndjson.gz, .ndjson.zst) is read decompressed: its import object is the
  // plain NDJSON, named as HealthLake documents its input (.ndjson).
  std::string n = watch::Watcher::plain_name(file_name);
  if (!n.ends_with(".ndjson")) n += ".ndjson";
  return n;
}
}  // namespace

std::string import_key(std::string_view prefix, std::string_view export_name,
                       std::string_view file_name) {
  return join_key(prefix, export_name, "import", ndjson_name(file_name));
}
std::string archive_key(std::string_view prefix, std::string_view export_name,
                        std::string_view file_name) {
  return join_key(prefix, export_name, "archive", ndjson_name(file_name) + ".zst");
}
std::string rejected_key(std::string_view prefix, std::string_view export_name,
                         std::string_view file_name) {
  return join_key(prefix, export_name, "rejected", ndjson_name(file_name) + ".zst");
}
std::string report_key(std::string_view prefix, std::string_view export_name) {
  return join_key(prefix, export_name, "report.json", "");
}

namespace {

// A byte range of a file as an HTTP body, read with pread (no buffer beyond curl's).
aws::BodySource file_range_source(const fs::path& path, std::uint64_t offset,
                                  std::uint64_t length) {
  struct Range {
    int fd = -1;
    std::uint64_t off = 0, len = 0, pos = 0;
    ~Range() {
      if (fd >= 0) ::close(fd);
    }
  };
  auto r = std::make_shared<Range>();
  r->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  r->off = offset;
  r->len = length;
  aws::BodySource src;
  src.size = length;
  src.read = [r](std::span<char> buf) -> std::ptrdiff_t {
    if (r->fd < 0) return -1;
    std::uint64_t want = std::min<std::uint64_t>(buf.size(), r->len - r->pos);
    if (want == 0) return 0;
    ssize_t n = ::pread(r->fd, buf.data(), want, static_cast<off_t>(r->off + r->pos));
    if (n <= 0) return -1;
    r->pos += static_cast<std::uint64_t>(n);
    return n;
  };
  src.rewind = [r]() {
    r->pos = 0;
    return r->fd >= 0;
  };
  return src;
}

// Hex SHA-256 of a byte range of a file; "" when it cannot be read (the AWS layer then hashes the
// body itself, or the send fails with the read error).
std::string sha256_of_range(const fs::path& path, std::uint64_t offset, std::uint64_t length) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0) return "";
  EVP_MD_CTX* ctx = EVP_MD_CTX_new();
  bool ok = ctx && EVP_DigestInit_ex(ctx, EVP_sha256(), nullptr) == 1;
  std::vector<char> buf(1 << 17);
  std::uint64_t pos = 0;
  while (ok && pos < length) {
    const auto want = static_cast<size_t>(std::min<std::uint64_t>(buf.size(), length - pos));
    ssize_t n = ::pread(fd, buf.data(), want, static_cast<off_t>(offset + pos));
    if (n <= 0) {
      ok = false;
      break;
    }
    EVP_DigestUpdate(ctx, buf.data(), static_cast<size_t>(n));
    pos += static_cast<std::uint64_t>(n);
  }
  ::close(fd);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  ok = ok && EVP_DigestFinal_ex(ctx, md, &md_len) == 1 && md_len == 32;
  EVP_MD_CTX_free(ctx);
  if (!ok) return "";
  static constexpr char hex[] = "0123456789abcdef";
  std::string out(64, '0');
  for (unsigned i = 0; i < 32; ++i) {
    out[2 * i] = hex[md[i] >> 4];
    out[2 * i + 1] = hex[md[i] & 15];
  }
  return out;
}

// One spool frame decompressed on the fly as an HTTP body (rewind restarts the frame).
aws::BodySource frame_source(const fs::path& path, const spool::Frame& f) {
  struct Stream {
    int fd = -1;
    ZSTD_DCtx* d = nullptr;
    std::uint64_t c_off = 0, c_size = 0, c_pos = 0, u_size = 0, u_pos = 0;
    std::vector<char> in = std::vector<char>(ZSTD_DStreamInSize());
    size_t in_pos = 0, in_len = 0;
    ~Stream() {
      if (fd >= 0) ::close(fd);
      if (d) ZSTD_freeDCtx(d);
    }
  };
  auto st = std::make_shared<Stream>();
  st->fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  st->d = ZSTD_createDCtx();
  st->c_off = f.compressed_offset;
  st->c_size = f.compressed_size;
  st->u_size = f.uncompressed_size;
  aws::BodySource src;
  src.size = f.uncompressed_size;
  src.read = [st](std::span<char> buf) -> std::ptrdiff_t {
    if (st->fd < 0 || !st->d) return -1;
    if (st->u_pos == st->u_size) return 0;
    ZSTD_outBuffer ob{buf.data(), std::min<std::uint64_t>(buf.size(), st->u_size - st->u_pos), 0};
    while (ob.pos == 0) {
      if (st->in_pos == st->in_len) {
        std::uint64_t want = std::min<std::uint64_t>(st->in.size(), st->c_size - st->c_pos);
        if (want == 0) return -1;  // frame ended before its uncompressed size: damaged spool
        ssize_t n = ::pread(st->fd, st->in.data(), want, static_cast<off_t>(st->c_off + st->c_pos));
        if (n <= 0) return -1;
        st->c_pos += static_cast<std::uint64_t>(n);
        st->in_pos = 0;
        st->in_len = static_cast<size_t>(n);
      }
      ZSTD_inBuffer ib{st->in.data(), st->in_len, st->in_pos};
      size_t r = ZSTD_decompressStream(st->d, &ob, &ib);
      st->in_pos = ib.pos;
      if (ZSTD_isError(r)) return -1;
    }
    st->u_pos += ob.pos;
    return static_cast<std::ptrdiff_t>(ob.pos);
  };
  src.rewind = [st]() {
    if (st->fd < 0 || !st->d) return false;
    ZSTD_DCtx_reset(st->d, ZSTD_reset_session_only);
    st->c_pos = st->u_pos = 0;
    st->in_pos = st->in_len = 0;
    return true;
  };
  return src;
}

aws::CredentialSourceKind to_kind(config::CredentialSource s) {
  using C = config::CredentialSource;
  using K = aws::CredentialSourceKind;
  switch (s) {
    case C::automatic:
      return K::automatic;
    case C::env:
      return K::env;
    case C::profile:
      return K::profile;
    case C::process:
      return K::process;
    case C::imds:
      return K::imds;
    case C::container:
      return K::container;
    case C::systemd:
      return K::systemd;
  }
  return K::automatic;
}

// upload.bandwidth_schedule in the HTTP engine's form (unlimited = 0 on both sides).
std::vector<aws::BandwidthWindow> bandwidth_schedule(const config::Upload& u) {
  std::vector<aws::BandwidthWindow> out;
  for (const auto& w : u.bandwidth_schedule)
    out.push_back({w.from_minute, w.to_minute, w.limit.value_or(0)});
  return out;
}

// What must not change at run time (a restart is needed): everything this component set up.
// The bandwidth cap and schedule are not here: reload() hands them to the HTTP engine.
std::string restart_fingerprint(const config::Config& c) {
  std::string s;
  auto add = [&](std::string_view k, const std::string& v) {
    s += k;
    s += '=';
    s += v;
    s += '\n';
  };
  add("aws.region", c.aws.region.value_or(""));
  add("aws.source", std::string(config::to_string(c.aws.credential_source)));
  add("aws.profile", c.aws.profile.value_or(""));
  add("aws.s3", c.aws.endpoints.s3.value_or(""));
  add("aws.path_style", c.aws.s3_path_style ? "1" : "0");
  add("aws.proxy", c.aws.proxy ? "=" + *c.aws.proxy : "");  // "" (direct) differs from unset
  add("aws.no_proxy", c.aws.no_proxy ? "=" + *c.aws.no_proxy : "");
  add("aws.ca", c.aws.ca_bundle ? c.aws.ca_bundle->string() : "");
  for (const auto& p : c.pipelines) {
    add("p", p.name);
    add("watch", p.watch.string());
    for (const auto& pat : p.patterns) add("pattern", pat);
    add("marker", p.complete_when.marker);
    add("manifest", p.complete_when.bulk_manifest ? "1" : "0");
    add("client_log", p.complete_when.client_log ? "1" : "0");
    add("settle", std::to_string(p.complete_when.settle.count()));
    add("level", std::string(config::to_string(p.validation_level)));
    add("on_invalid", std::string(config::to_string(p.on_invalid)));
    add("max_line_bytes", std::to_string(p.max_line_bytes));
    add("on_changed", std::string(config::to_string(p.on_changed)));
    for (const auto& pk : p.fhir_packages) add("package", pk.string());
    add("bucket", p.s3.bucket);
    add("prefix", p.s3.prefix);
    add("kms", p.s3.kms_key_id.value_or(""));
    add("archive", p.s3.archive ? "1" : "0");
    add("rejects", p.s3.upload_rejects ? "1" : "0");
  }
  add("spool.dir", c.spool.dir.string());
  add("spool.max", std::to_string(c.spool.max_bytes));
  add("spool.level", std::to_string(c.spool.zstd_level));
  add("journal", c.journal.path.string());
  add("part_size", c.upload.part_size ? std::to_string(*c.upload.part_size) : "auto");
  add("concurrency", std::to_string(c.upload.concurrency));
  add("watch.rescan", std::to_string(c.watch.rescan_interval.count()));
  add("watch.quiet", std::to_string(c.watch.scan_quiet.count()));
  return s;
}

bool is_retry_later(const aws::AwsError& e) {
  return e.retryable() || e.category == aws::ErrorCategory::conflict;
}

}  // namespace

// ------------------------------------------------------------------ Impl

struct Pipeline::Impl : std::enable_shared_from_this<Impl> {
  enum class Phase { digest, spooling, uploading, waiting };

  // One export being worked on (control thread only).
  struct Run {
    std::int64_t id = 0;
    std::string name;
    std::string pipeline;
    Phase phase = Phase::spooling;
    int ops = 0;  // outstanding async work of the current phase
    bool superseded = false;
    std::string fail;   // fail-export message
    std::string retry;  // retry-later reason
    std::string park;   // park reason
    int attempt = 0;
    std::unique_ptr<asio::steady_timer> timer;
    // Upload overlapping the spool: a file's import and archive objects start as soon as that
    // file is spooled and journaled, while the export's later files are still being validated.
    // Such "early" objects exist only while the export is in Phase::spooling: spool_done waits
    // for them (spool_waiting), so every export-level decision (uploaded, retry, park, failed,
    // superseded) is taken with no early object in flight.
    int early_ops = 0;                    // early objects not finished yet
    std::set<std::int64_t> early_files;   // files whose objects were started early (this attempt)
    std::set<std::int64_t> early_failed;  // ... and one of them did not succeed
    bool spool_waiting = false;           // spool_done deferred until early_ops is 0
  };

  // One object of an export's upload.
  struct Obj {
    std::shared_ptr<Run> run;
    std::int64_t file_id = 0;  // 0: extra object (report, rejects) not tracked part by part
    PartKind kind = PartKind::import;
    std::string key;
    fs::path spool_file;
    std::vector<journal::PartRow> parts;
    std::string upload_id;
    std::string journaled_key;  // the file row's import_key / archive_key as last recorded
    bool early = false;         // started while the export was spooling (Run::early_ops)
    int outstanding = 0;
    bool failed = false;
    // Extras: whole file as one PutObject.
    std::uint64_t extra_size = 0;
    std::uint32_t extra_crc = 0;
  };

  struct Pipe {
    config::Pipeline cfg;
    std::shared_ptr<const fhir::Validator> validator;
    std::unique_ptr<watch::Watcher> watcher;
  };

  asio::io_context& io;
  config::Config cfg;
  Options opt;
  std::optional<journal::Journal> jr;
  std::unique_ptr<spool::Quota> quota;
  std::unique_ptr<asio::thread_pool> pool;
  std::unique_ptr<asio::thread_pool> reader;
  std::unique_ptr<aws::CredentialsProvider> creds;
  std::unique_ptr<aws::HttpEngine> http;
  std::unique_ptr<aws::AwsCaller> caller;
  std::unique_ptr<aws::S3Client> s3;
  std::unique_ptr<aws::HealthLakeClient> hl;
  std::unique_ptr<Importer> importer;  // null when Options::import_jobs is false
  std::unique_ptr<asio::steady_timer> retention_timer;
  std::map<std::string, Pipe> pipes;
  std::map<std::int64_t, std::shared_ptr<Run>> runs;
  std::set<std::string> digesting;                  // pipeline \n path
  std::map<std::string, watch::ReadyExport> again;  // reported again while digesting
  std::deque<std::function<void()>> part_queue;
  int in_flight = 0;
  // Orphaned multipart uploads (sweep_orphans): keys with a CreateMultipartUpload in flight in
  // this process, whose upload the journal cannot name yet.
  std::map<std::string, int> creating;
  bool sweeping = false;
  bool sweep_again = false;        // asked for while a sweep was listing
  bool sweep_deferred = false;     // an unowned upload was spared because its key was being created
  std::set<std::string> deleting;  // bucket/key DeleteObjects in flight (superseded versions)
  std::atomic<bool> cancel{false};
  bool stopping = false;
  bool started = false;
  bool quota_full_logged = false;
  bool evict_timer_armed = false;
  Stats stats;
  std::function<void(std::int64_t)> uploaded_hook;

  Impl(asio::io_context& io_, const config::Config& c, Options o)
      : io(io_), cfg(c), opt(std::move(o)) {}

  void changed() {
    if (opt.on_change) opt.on_change();
  }

  const Pipe* pipe_of(const std::string& name) const {
    auto it = pipes.find(name);
    return it == pipes.end() ? nullptr : &it->second;
  }

  // ---------------------------------------------------------------- start / stop
  void start() {
    fs::create_directories(cfg.spool.dir);
    jr.emplace(journal::Journal::open(cfg.journal.path));
    quota = std::make_unique<spool::Quota>(cfg.spool.max_bytes);
    quota->set_used(spool::disk_usage(cfg.spool.dir));
    std::weak_ptr<Impl> weak = shared_from_this();
    quota->on_full([weak, this] {
      // Called on a pool thread: hop to the control thread to evict uploaded spools.
      if (auto self = weak.lock()) asio::post(io, [self] { self->evict(); });
    });
    pool = std::make_unique<asio::thread_pool>(std::max(1, opt.worker_threads));
    reader = std::make_unique<asio::thread_pool>(1);

    aws::CredentialsOptions co;
    co.source = to_kind(cfg.aws.credential_source);
    co.profile = cfg.aws.profile;
    aws::ClientConfig cc;
    cc.region = cfg.aws.region ? *cfg.aws.region
                               : aws::resolve_region(co).value_or(std::string("us-east-1"));
    cc.s3_endpoint = cfg.aws.endpoints.s3;
    cc.healthlake_endpoint = cfg.aws.endpoints.healthlake;
    cc.s3_path_style = cfg.aws.s3_path_style;
    cc.http.proxy = cfg.aws.proxy;
    cc.http.no_proxy = cfg.aws.no_proxy;
    if (cfg.aws.ca_bundle) cc.http.ca_bundle = cfg.aws.ca_bundle->string();
    if (cfg.upload.bandwidth_limit) cc.http.max_send_bytes_per_second = *cfg.upload.bandwidth_limit;
    cc.http.bandwidth_schedule = bandwidth_schedule(cfg.upload);
    cc.http.max_per_endpoint = static_cast<std::size_t>(cfg.upload.concurrency) + 4;
    creds = std::make_unique<aws::CredentialsProvider>(co);
    try {
      creds->start();
    } catch (const aws::CredentialsError& e) {
      // Not fatal: exports are still taken, validated and spooled (offline buffering), and every
      // upload attempt asks the chain again, so fixing the credentials needs no restart.
      log::warning(std::string("no AWS credentials yet; exports will be spooled and uploaded once "
                               "credentials are available: ") +
                   e.what());
    }
    http = std::make_unique<aws::HttpEngine>(io, cc.http);
    caller = std::make_unique<aws::AwsCaller>(*http, cc, creds->as_function());
    s3 = std::make_unique<aws::S3Client>(*caller);

    for (const auto& p : cfg.pipelines) {
      fhir::Options fo;
      fo.level = fhir::parse_level(config::to_string(p.validation_level))
                     .value_or(fhir::Level::structure_only);
      fo.packages = p.fhir_packages;
      fo.max_line_bytes = static_cast<std::size_t>(p.max_line_bytes);
      fhir::LoadReport lr;
      auto v = fhir::Validator::create(fo, lr);
      if (!v) {
        std::string why;
        for (const auto& e : lr.errors) why += (why.empty() ? "" : "; ") + e;
        throw std::runtime_error("pipeline " + p.name + ": cannot load FHIR packages: " + why);
      }
      for (const auto& w : lr.warnings) log::warning(w, {{"PIPELINE", p.name}});
      pipes[p.name] = Pipe{p, std::move(v), nullptr};
    }
    started = true;
    if (opt.import_jobs) {
      // Before recover(): an upload that recover() resumes may finish and kick the importer.
      hl = std::make_unique<aws::HealthLakeClient>(*caller);
      ImporterOptions io_opt = importer_options(cfg);
      io_opt.poll_min = opt.import_poll_min;
      io_opt.poll_max = opt.import_poll_max;
      io_opt.on_change = opt.on_change;
      io_opt.max_files_per_job = opt.max_files_per_import_job;
      std::weak_ptr<Impl> weak_self = shared_from_this();
      io_opt.on_imported = [weak_self](std::int64_t id) {
        if (auto self = weak_self.lock()) {
          self->apply_after_upload(id);
          self->retention();  // keep_for may be 0: the spool goes at once
        }
      };
      // `fhir-edge retry` of an export parked before `uploaded`: continue it now, not at the
      // next start.
      std::weak_ptr<Impl> weak_resume = shared_from_this();
      io_opt.on_resumed = [weak_resume](std::int64_t id) {
        if (auto self = weak_resume.lock()) self->resume_one(id);
      };
      importer = std::make_unique<Importer>(io, *jr, *hl, *s3, std::move(io_opt));
    }
    recover();
    // After recovery: resumed uploads have their ids in the journal already, and new ones are
    // tracked in `creating` until their answer is journaled.
    sweep_orphans();
    // What a superseded version uploaded and a crash (or a failed delete) left behind.
    delete_superseded_objects();
    if (importer) {
      // Problems (data store not ACTIVE, unknown, no access) are logged by the importer; exports
      // that hit them are parked with the same message when their Start is refused.
      importer->check_datastores([](const std::vector<std::string>&) {});
      importer->resume();
    }
    retention_timer = std::make_unique<asio::steady_timer>(io);
    retention();
    for (auto& [name, pipe] : pipes) {
      watch::WatchOptions wo = watch::watch_options(cfg, pipe.cfg);
      wo.pipeline = name;
      if (opt.scan_quiet) wo.scan_quiet = *opt.scan_quiet;  // tests lower it
      // The root is not created here: a typo would be watched forever as an empty directory, and
      // one created with the service's UMask shuts out the exporting system. A missing root is
      // logged and waited for by the watcher (issue 17); the package creates the default one.
      std::string pname = name;
      pipe.watcher =
          std::make_unique<watch::Watcher>(io, wo, [weak, pname](const watch::ReadyExport& r) {
            if (auto self = weak.lock()) self->on_ready(pname, r);
          });
      pipe.watcher->start();
    }
    log::info("pipeline started", {{"PIPELINES", std::to_string(pipes.size())},
                                   {"SPOOL_USED", std::to_string(quota->used())}});
  }

  void stop() {
    if (stopping) return;
    stopping = true;
    cancel = true;
    for (auto& [n, p] : pipes)
      if (p.watcher) p.watcher->stop();
    for (auto& [id, r] : runs)
      if (r->timer) r->timer->cancel();
    if (quota) quota->shutdown();
    part_queue.clear();
    // The importer first: it uses the journal and the clients below. Jobs in flight keep
    // running in HealthLake; the journal holds their token and id, and resume() follows them.
    if (retention_timer) retention_timer->cancel();
    importer.reset();
    hl.reset();
    // Destroying the engine aborts transfers without callbacks; parts in flight stay "uploading"
    // in the journal and are reconciled with ListParts at the next start.
    s3.reset();
    caller.reset();
    http.reset();
    if (pool) pool->join();
    if (reader) reader->join();
    for (auto& [n, p] : pipes) p.watcher.reset();
    if (creds) creds->stop();
    runs.clear();
    jr.reset();
  }

  // ---------------------------------------------------------------- orphaned multipart uploads
  // A CreateMultipartUpload answered (or given up): the key is no longer being created. When an
  // earlier attempt's answer may have been lost (attempts > 1), or a sweep spared an upload of a
  // key being created, sweep again. Posted, so it runs after the caller journaled the new id.
  void created(const std::string& key, int attempts) {
    auto it = creating.find(key);
    if (it != creating.end() && --it->second <= 0) creating.erase(it);
    if (attempts > 1 || (sweep_deferred && creating.empty())) {
      sweep_deferred = false;
      auto self = shared_from_this();
      asio::post(io, [self] { self->sweep_orphans(); });
    }
  }

  // Lists each pipeline's (bucket, prefix) once and aborts the uploads nobody owns (see the
  // header's "orphans"). S3 lifecycle rules (AbortIncompleteMultipartUpload, docs/install.md)
  // remain the backstop for anything this leaves.
  void sweep_orphans() {
    if (stopping || !s3) return;
    if (sweeping) {
      sweep_again = true;
      return;
    }
    std::set<std::pair<std::string, std::string>> where;
    for (const auto& [name, pipe] : pipes) where.emplace(pipe.cfg.s3.bucket, pipe.cfg.s3.prefix);
    if (where.empty()) return;
    sweeping = true;
    sweep_again = false;
    auto left = std::make_shared<std::size_t>(where.size());
    auto self = shared_from_this();
    for (const auto& [bucket, prefix] : where) {
      aws::ListUploadsRequest req;
      req.bucket = bucket;
      req.prefix = prefix.empty() ? "" : prefix + "/";
      s3->list_all_multipart_uploads(
          req, [self, left, bucket, prefix](aws::S3Result<aws::ListUploadsResult> r) {
            if (self->stopping) return;
            if (!r.ok()) {
              // Not fatal: a bucket policy may not grant s3:ListBucketMultipartUploads; the
              // lifecycle rule then cleans up.
              log::warning("cannot list incomplete multipart uploads: " + r.describe(),
                           {{"S3_BUCKET", bucket}, {"S3_PREFIX", prefix}});
            } else {
              self->abort_orphans(bucket, prefix, r.value->uploads);
            }
            if (--*left == 0) {
              self->sweeping = false;
              if (self->sweep_again) self->sweep_orphans();
            }
          });
    }
  }

  // The export an upload key belongs to when it has this pipeline layout's shape
  // (<prefix>/<export>/import/... or .../archive/...), else empty.
  static std::string export_of_key(const std::string& prefix, const std::string& key) {
    std::string_view rest = key;
    if (!prefix.empty()) {
      if (!rest.starts_with(prefix) || rest.size() <= prefix.size() || rest[prefix.size()] != '/')
        return {};
      rest.remove_prefix(prefix.size() + 1);
    }
    auto slash = rest.find('/');
    if (slash == std::string_view::npos || slash == 0) return {};
    auto mid = rest.substr(slash + 1);
    if (!mid.starts_with("import/") && !mid.starts_with("archive/")) return {};
    return std::string(rest.substr(0, slash));
  }

  void abort_orphans(const std::string& bucket, const std::string& prefix,
                     const std::vector<aws::UploadInfo>& uploads) {
    if (uploads.empty()) return;
    // Ownership is read now, on the control thread, after the listing: an id journaled since
    // the listing started is seen, and a CreateMultipartUpload still in flight is in `creating`.
    std::set<std::string> owned;
    try {
      for (const auto& e : jr->exports(true)) {
        // Nothing ever resumes the uploads of a superseded or failed export (an early upload of
        // a version whose source changed mid-spool): they are orphans too.
        if (e.state == ExportState::superseded || e.state == ExportState::failed) continue;
        for (const auto& f : jr->files(e.id)) {
          if (!f.import_upload_id.empty()) owned.insert(f.import_upload_id);
          if (!f.archive_upload_id.empty()) owned.insert(f.archive_upload_id);
        }
      }
    } catch (const std::exception& e) {
      ++stats.journal_errors;
      log::warning(std::string("journal: cannot check multipart upload ownership: ") + e.what());
      return;  // when in doubt, abort nothing
    }
    for (const auto& u : uploads) {
      if (u.upload_id.empty() || owned.count(u.upload_id)) continue;
      const std::string name = export_of_key(prefix, u.key);
      if (name.empty()) continue;  // not a key this daemon writes
      try {
        if (!jr->find_export(name)) continue;  // not an export of this journal
      } catch (const std::exception&) {
        continue;
      }
      if (creating.count(u.key)) {
        sweep_deferred = true;  // may be the one being created right now: look again later
        continue;
      }
      log::warning("aborting an incomplete multipart upload the journal does not own",
                   {{"S3_BUCKET", bucket},
                    {"S3_KEY", u.key},
                    {"UPLOAD_ID", u.upload_id},
                    {"INITIATED", u.initiated}});
      auto self = shared_from_this();
      s3->abort_multipart_upload(
          bucket, u.key, u.upload_id, [self, key = u.key](aws::S3Result<aws::Empty> r) {
            if (self->stopping) return;
            if (r.ok() || (r.error && r.error->code == "NoSuchUpload")) {
              ++self->stats.orphan_uploads_aborted;
              self->changed();
            } else {
              log::warning("cannot abort an orphaned multipart upload: " + r.describe(),
                           {{"S3_KEY", key}});
            }
          });
    }
  }

  // ---------------------------------------------------------------- superseded objects
  // A superseded version is never imported, so the objects it uploaded early are deleted: only
  // the keys its file rows recorded (what this journal itself uploaded), never a prefix listing.
  // A key is cleared in the journal once S3 said it is gone (404 too); what is left is retried at
  // the next start or supersede. Failures are logged and never hold another export.
  void delete_superseded_objects() {
    if (stopping || !s3) return;
    std::vector<std::pair<std::int64_t, journal::FileRow>> todo;
    std::map<std::int64_t, std::string> bucket_of_export, name_of_export;
    try {
      for (const auto& e : jr->exports(true)) {
        if (e.state != ExportState::superseded) continue;
        const Pipe* pipe = pipe_of(e.pipeline);
        if (!pipe) continue;  // pipeline no longer configured: its bucket is unknown, left as is
        for (const auto& f : jr->files(e.id))
          if (!f.import_key.empty() || !f.archive_key.empty()) {
            todo.emplace_back(e.id, f);
            bucket_of_export[e.id] = pipe->cfg.s3.bucket;
            name_of_export[e.id] = e.name;
          }
      }
    } catch (const std::exception& e) {
      ++stats.journal_errors;
      log::warning(std::string("journal: cannot list the objects of superseded versions: ") +
                   e.what());
      return;
    }
    auto self = shared_from_this();
    for (const auto& [export_id, f] : todo) {
      for (PartKind kind : {PartKind::import, PartKind::archive}) {
        const std::string& key = kind == PartKind::import ? f.import_key : f.archive_key;
        if (key.empty()) continue;
        const std::string bucket = bucket_of_export[export_id];
        if (!deleting.insert(bucket + "/" + key).second) continue;  // already in flight
        s3->delete_object(
            bucket, key,
            [self, bucket, key, kind, file_id = f.id,
             name = name_of_export[export_id]](aws::S3Result<aws::Empty> r) {
              if (self->stopping) return;
              self->deleting.erase(bucket + "/" + key);
              if (!r.ok() && !(r.error && r.error->category == aws::ErrorCategory::not_found)) {
                log::warning(
                    "cannot delete an object of a superseded version (retried at the "
                    "next start): " +
                        r.describe(),
                    {{"EXPORT_ID", name}, {"S3_BUCKET", bucket}, {"S3_KEY", key}});
                return;
              }
              try {
                self->jr->record_object_deleted(file_id, kind, bucket);
              } catch (const std::exception& e) {
                ++self->stats.journal_errors;  // deleted again (404) at the next start
                log::warning(std::string("journal: ") + e.what(), {{"EXPORT_ID", name}});
                return;
              }
              ++self->stats.superseded_objects_deleted;
              log::info("deleted an object of a superseded version (never imported)",
                        {{"EXPORT_ID", name}, {"S3_BUCKET", bucket}, {"S3_KEY", key}});
              self->changed();
            });
      }
    }
  }

  // ---------------------------------------------------------------- recovery
  void recover() {
    for (const auto& row : jr->exports(false)) resume_row(row);
  }

  // One export unparked by `fhir-edge retry` (importer's on_resumed): resumed like at start-up
  // unless it is already being worked on.
  void resume_one(std::int64_t id) {
    if (stopping || runs.count(id)) return;
    try {
      if (auto row = jr->find_export(id)) resume_row(*row);
    } catch (const std::exception& e) {
      // The journal cannot be read or written: a run already made waits and is retried.
      ++stats.journal_errors;
      if (auto it = runs.find(id); it != runs.end())
        schedule_retry(it->second, std::string("journal: ") + e.what());
      else
        log::error(std::string("journal: cannot resume export: ") + e.what(),
                   {{"EXPORT_ID", std::to_string(id)}});
    }
  }

  // Continues one non-terminal export from the state the journal records.
  void resume_row(const journal::ExportRow& row) {
    if (!pipe_of(row.pipeline)) return;  // pipeline no longer configured: left as it is
    switch (row.state) {
      case ExportState::discovered:
      case ExportState::complete:
      case ExportState::spooling: {
        spool::remove_partials(spool::export_dir(cfg.spool.dir, row.name), quota.get());
        for (const auto& f : jr->files(row.id))
          if (f.state == FileState::spooling)
            jr->set_file_state(f.id, FileState::pending, "redo after restart");
        if (row.state == ExportState::discovered)
          jr->set_export_state(row.id, ExportState::complete);
        log::info("resuming spool after restart", {{"EXPORT_ID", row.name}});
        start_spool(make_run(row));
        break;
      }
      case ExportState::spooled:
      case ExportState::uploading:
        log::info("resuming upload after restart", {{"EXPORT_ID", row.name}});
        start_upload(make_run(row));
        break;
      default:
        break;  // parked waits for an operator; uploaded and later belong to the import stage
    }
  }

  std::shared_ptr<Run> make_run(const journal::ExportRow& row) {
    auto r = std::make_shared<Run>();
    r->id = row.id;
    r->name = row.name;
    r->pipeline = row.pipeline;
    runs[row.id] = r;
    return r;
  }

  // ---------------------------------------------------------------- take
  void on_ready(const std::string& pname, const watch::ReadyExport& r) {
    if (stopping) return;
    std::string key = pname + "\n" + r.path.string();
    if (digesting.count(key)) {
      again[key] = r;  // digest it again once the current pass is done
      return;
    }
    digesting.insert(key);
    auto self = shared_from_this();
    asio::post(*pool, [self, pname, r, key] {
      std::string digest, error;
      try {
        std::vector<std::string> names;
        for (const auto& f : r.files) names.push_back(f.name);
        fs::path dir = r.single_file ? r.path.parent_path() : r.path;
        digest = journal::content_digest(dir, names);
      } catch (const std::exception& e) {
        error = e.what();
      }
      asio::post(self->io, [self, pname, r, key, digest, error] {
        self->digesting.erase(key);
        if (self->stopping) return;
        if (!error.empty()) {
          // Usually a file replaced or removed while it was read; the watcher reports it again.
          log::warning("cannot digest export: " + error, {{"EXPORT_ID", r.name}});
        } else {
          self->take(pname, r, digest);
        }
        if (auto it = self->again.find(key); it != self->again.end()) {
          auto next = it->second;
          self->again.erase(it);
          self->on_ready(pname, next);
        }
      });
    });
  }

  void take(const std::string& pname, const watch::ReadyExport& r, const std::string& digest) {
    std::vector<std::pair<std::string, journal::SourceIdentity>> files;
    for (const auto& f : r.files)
      files.push_back({f.name, journal::SourceIdentity{f.identity.size, f.identity.mtime_ns,
                                                       f.identity.inode, f.identity.dev}});
    journal::Taken t;
    try {
      t = jr->take_export(pname, r.path.string(), digest, r.name, files);
    } catch (const std::exception& e) {
      log::error(std::string("journal: cannot take export: ") + e.what(), {{"EXPORT_ID", r.name}});
      return;
    }
    if (t.existing) {
      ++stats.exports_seen_again;
      if (t.compacted)
        log::info(
            "export already taken (identical content; compacted from the journal after it "
            "ended " +
                std::string(to_string(t.row.state)) + "), not redone",
            {{"EXPORT_ID", t.row.name}, {"STATE", std::string(to_string(t.row.state))}});
      else if (!runs.count(t.row.id))
        log::info("export already taken (identical content), not redone",
                  {{"EXPORT_ID", t.row.name}, {"STATE", std::string(to_string(t.row.state))}});
      return;
    }
    ++stats.exports_taken;
    log::info("export taken", {{"EXPORT_ID", t.row.name},
                               {"PIPELINE", pname},
                               {"RULE", r.rule},
                               {"FILES", std::to_string(r.files.size())}});
    std::string held;
    try {
      held = hold_reason(pname, t.row, r);
    } catch (const std::exception& e) {
      // Cannot tell whether an earlier version is being imported: hold, never import twice.
      held = std::string("held: cannot check earlier versions: ") + e.what();
    }
    if (!held.empty()) {
      try {
        jr->set_export_state(t.row.id, ExportState::complete, "complete: " + r.rule);
        jr->park_export(t.row.id, held);
        log::warning(held, {{"EXPORT_ID", t.row.name}, {"PIPELINE", pname}});
      } catch (const std::exception& e) {
        ++stats.journal_errors;
        log::error(std::string("journal: cannot hold export: ") + e.what(),
                   {{"EXPORT_ID", t.row.name}});
      }
      changed();
      return;
    }
    auto run = make_run(t.row);
    try {
      // What the watcher did not take stays visible in `status --export` (the log said it once).
      for (const auto& sk : r.skipped)
        jr->add_event(t.row.id, std::nullopt, "skipped",
                      sk.reason + "\t" + sk.path.filename().string());
    } catch (const std::exception& e) {
      ++stats.journal_errors;
      log::error(std::string("journal: ") + e.what(), {{"EXPORT_ID", t.row.name}});
    }
    if (!r.nested.empty()) {
      // Files below a subdirectory are not taken (the spool and S3 layout are flat): importing
      // the top level alone would report the export imported without them. Parked, saying which.
      std::string list;
      for (const auto& n : r.nested) list += (list.empty() ? "" : ", ") + n;
      return park(run, "export has files in subdirectories, which are not taken: " + list +
                           "; move them to the top level of the export (or into exports of "
                           "their own); `fhir-edge retry` imports the top-level files only");
    }
    try {
      jr->set_export_state(t.row.id, ExportState::complete, "complete: " + r.rule);
      start_spool(run);
    } catch (const std::exception& e) {
      // Taken (journaled) but not started: the retry timer resumes it from the journal.
      ++stats.journal_errors;
      schedule_retry(run, std::string("journal: ") + e.what());
    }
  }

  // on_changed: hold (issue 18). A new version of a source whose earlier version already got
  // past spooling (spooled, uploading, uploaded, importing, imported; parked from one of those)
  // would import the whole export a second time; it is parked for the operator instead, with
  // what changed. Empty: go on (on_changed: reimport, a first version, or earlier versions that
  // never got that far: superseded, failed, spooling).
  std::string hold_reason(const std::string& pname, const journal::ExportRow& row,
                          const watch::ReadyExport& r) {
    const Pipe* pipe = pipe_of(pname);
    if (!pipe || pipe->cfg.on_changed == config::OnChanged::reimport || row.version < 2) return {};
    auto past_spool = [](ExportState st) {
      switch (st) {
        case ExportState::spooled:
        case ExportState::uploading:
        case ExportState::uploaded:
        case ExportState::import_starting:
        case ExportState::importing:
        case ExportState::imported:
          return true;
        default:
          return false;
      }
    };
    std::optional<journal::ExportRow> earlier;
    for (const auto& e : jr->exports(true)) {
      if (e.id == row.id || e.pipeline != row.pipeline || e.source_path != row.source_path)
        continue;
      const ExportState st =
          e.state == ExportState::parked && e.parked_from ? *e.parked_from : e.state;
      if (!past_spool(st)) continue;
      if (!earlier || e.version > earlier->version) earlier = e;
    }
    if (!earlier) return {};
    // What changed, file by file: the journal's identity of the earlier version against the
    // files just taken (size; else modification time).
    std::map<std::string, journal::SourceIdentity> before;
    for (const auto& f : jr->files(earlier->id)) before[f.name] = f.source;
    std::string what;
    int listed = 0, more = 0;
    auto note = [&](const std::string& s) {
      if (listed < 5) {
        what += (what.empty() ? "" : "; ") + s;
        ++listed;
      } else {
        ++more;
      }
    };
    std::set<std::string> now;
    for (const auto& f : r.files) {
      now.insert(f.name);
      auto it = before.find(f.name);
      if (it == before.end()) {
        note(f.name + " added (" + std::to_string(f.identity.size) + " bytes)");
      } else if (it->second.size != f.identity.size) {
        note(f.name + " size " + std::to_string(it->second.size) + " -> " +
             std::to_string(f.identity.size) + " bytes");
      } else if (it->second.mtime_ns != f.identity.mtime_ns ||
                 it->second.inode != f.identity.inode) {
        note(f.name + " rewritten (same size " + std::to_string(f.identity.size) + " bytes)");
      }
    }
    for (const auto& [name, id] : before)
      if (!now.count(name)) note(name + " removed");
    if (more > 0) what += "; and " + std::to_string(more) + " more";
    if (what.empty()) what = "content digest " + earlier->digest + " -> " + row.digest;
    const ExportState st = earlier->state == ExportState::parked && earlier->parked_from
                               ? *earlier->parked_from
                               : earlier->state;
    return "held: changed after version " + earlier->name + " was taken (" +
           std::string(to_string(st)) + "): " + what +
           "; not imported twice (on_changed: hold); `fhir-edge retry " + row.name +
           "` imports this version";
  }

  // ---------------------------------------------------------------- spool
  void start_spool(std::shared_ptr<Run> run) {
    run->phase = Phase::spooling;
    run->superseded = false;
    run->fail.clear();
    run->retry.clear();
    run->park.clear();
    auto row = jr->get_export(run->id);
    const Pipe* pipe = pipe_of(row.pipeline);
    if (row.state == ExportState::complete) jr->set_export_state(run->id, ExportState::spooling);
    fs::path src(row.source_path);
    std::error_code ec;
    const bool dir = fs::is_directory(fs::symlink_status(src, ec));
    auto self = shared_from_this();
    // Largest file first: the pool then ends the export's spooling as early as it can (the big
    // file does not start last), and the smaller files are spooled, and uploaded early, while the
    // big one is still being validated. A 1 GB export is usually one large Observation file.
    auto files = jr->files(run->id);
    std::stable_sort(files.begin(), files.end(),
                     [](const auto& a, const auto& b) { return a.source.size > b.source.size; });
    for (const auto& f : files) {
      if (f.state != FileState::pending) continue;
      try {
        jr->set_file_state(f.id, FileState::spooling);
      } catch (const std::exception& e) {
        // Files already posted finish first; spool_done then schedules the retry.
        ++stats.journal_errors;
        run->retry = std::string("journal: ") + e.what();
        break;
      }
      SpoolJob job;
      job.spool_dir = cfg.spool.dir;
      job.export_name = row.name;
      job.file_name = f.name;
      job.source.name = f.name;
      job.source.path = dir ? src / f.name : src;
      job.source.identity =
          watch::FileIdentity{f.source.dev, f.source.inode, f.source.size, f.source.mtime_ns};
      job.validator = pipe->validator;
      job.on_invalid = pipe->cfg.on_invalid;
      job.part_size = choose_part_size(cfg.upload.part_size, f.source.size, opt);
      job.zstd_level = cfg.spool.zstd_level;
      job.quota = quota.get();
      job.cancel = &cancel;
      std::int64_t file_id = f.id;
      ++run->ops;
      asio::post(*pool, [self, run, job, file_id] {
        auto res = spool_file(job);
        asio::post(self->io, [self, run, file_id, res = std::move(res)] {
          self->on_spooled(run, file_id, res);
        });
      });
    }
    changed();
    if (run->ops == 0) spool_done(run);
  }

  void on_spooled(std::shared_ptr<Run> run, std::int64_t file_id, const SpoolResult& res) {
    if (stopping) return;
    --run->ops;
    try {
      auto f = jr->get_file(file_id);
      if (res.cancelled) {
        run->retry = "spooling cancelled";
      } else if (res.changed) {
        run->superseded = true;
        run->fail = res.error;
      } else if (res.fail_export) {
        if (run->fail.empty()) run->fail = res.error;
        jr->set_file_state(file_id, FileState::failed, res.error);
      } else if (!res.ok) {
        // I/O trouble (disk full, source unreadable): keep the export and try again later. A
        // source replaced mid-read is reported as `changed` above.
        run->retry = res.error;
        jr->set_file_state(file_id, FileState::pending, res.error);
        jr->set_file_error(file_id, res.error);
      } else if (res.file_rejected) {
        // The counts go with the state: `status` shows what report.json says.
        jr->record_file_rejected(file_id, res.rejected,
                                 std::to_string(res.rejected) +
                                     " invalid line(s); whole file rejected (on_invalid: "
                                     "reject-file)");
        std::error_code ec;
        if (!res.line_map.empty()) fs::remove(res.line_map, ec);
      } else {
        std::vector<journal::PartPlan> ip, ap;
        for (const auto& p : res.import_parts)
          ip.push_back({p.number, static_cast<std::int64_t>(p.offset),
                        static_cast<std::int64_t>(p.length), aws::crc32c_base64(p.crc32c)});
        for (const auto& p : res.archive_parts)
          ap.push_back({p.number, static_cast<std::int64_t>(p.offset),
                        static_cast<std::int64_t>(p.length), aws::crc32c_base64(p.crc32c)});
        jr->plan_parts(file_id, PartKind::import, ip);
        jr->plan_parts(file_id, PartKind::archive, ap);
        journal::SpoolOutcome out;
        out.resources_valid = res.valid;
        out.resources_rejected = res.rejected;
        out.bytes_uncompressed = static_cast<std::int64_t>(res.bytes_uncompressed);
        out.bytes_spooled = static_cast<std::int64_t>(res.bytes_spooled);
        out.checksum = aws::crc32c_base64(res.crc32c);
        if (res.line_map.empty()) {
          jr->record_spooled(file_id, out);
        } else {
          // Import line -> source line anchors, streamed from the spool into the same journal
          // transaction; the importer reports FAILURE/ lines as source lines with them.
          LineMapReader map(res.line_map);
          jr->record_spooled(file_id, out, [&map](journal::LineAnchor& a) {
            return map.next(a.import_line, a.source_line);
          });
          std::error_code ec;
          fs::remove(res.line_map, ec);
        }
        log::info("file spooled", {{"EXPORT_ID", run->name},
                                   {"FHIR_FILE", f.name},
                                   {"VALID", std::to_string(res.valid)},
                                   {"REJECTED", std::to_string(res.rejected)},
                                   {"PARTS", std::to_string(res.import_parts.size())}});
        // Not for the export's last file: spool_done starts the upload at once anyway.
        if (run->ops > 0) start_early_upload(run, file_id);
      }
    } catch (const std::exception& e) {
      run->retry = e.what();
    }
    if (run->ops == 0) spool_done(run);
  }

  void spool_done(std::shared_ptr<Run> run) {
    if (stopping) return;
    if (run->early_ops > 0) {
      // Early objects are in flight: the export moves on once they finished (object_done).
      run->spool_waiting = true;
      return;
    }
    try {
      auto row = jr->get_export(run->id);
      if (run->superseded) {
        log::warning("source changed after it was taken; a new version will be taken: " + run->fail,
                     {{"EXPORT_ID", run->name}});
        jr->set_export_state(run->id, ExportState::superseded, run->fail);
        spool::remove_export(cfg.spool.dir, run->name, quota.get());
        runs.erase(run->id);
        // Early multipart uploads of this version will never be completed: abort them; and
        // delete the early objects that were completed. The journal says which (also those of an
        // earlier process: this run's early_files start empty after a restart).
        bool uploaded_any = !run->early_files.empty();
        for (const auto& f : jr->files(run->id))
          if (!f.import_key.empty() || !f.archive_key.empty()) uploaded_any = true;
        if (uploaded_any) {
          sweep_orphans();
          delete_superseded_objects();
        }
        changed();
        return;
      }
      std::vector<std::string> names;
      for (const auto& f : jr->files(run->id)) names.push_back(f.name);
      if (!run->fail.empty()) {
        write_report(cfg.spool.dir, run->name, run->pipeline,
                     config::to_string(pipe_of(run->pipeline)->cfg.validation_level), names);
        log::error("export failed: " + run->fail, {{"EXPORT_ID", run->name}});
        jr->fail_export(run->id, run->fail);
        runs.erase(run->id);
        changed();
        return;
      }
      if (!run->park.empty()) return park(run, run->park);  // an early upload was refused
      if (!run->retry.empty()) {
        schedule_retry(run, run->retry);
        return;
      }
      write_report(cfg.spool.dir, run->name, run->pipeline,
                   config::to_string(pipe_of(run->pipeline)->cfg.validation_level), names);
      jr->set_export_state(run->id, ExportState::spooled);
      start_upload(run);
    } catch (const std::exception& e) {
      schedule_retry(run, e.what());
    }
  }

  // ---------------------------------------------------------------- retry / park
  void schedule_retry(std::shared_ptr<Run> run, const std::string& why) {
    if (stopping) return;
    ++run->attempt;
    ++stats.retries_scheduled;
    auto delay = opt.retry_base;
    for (int i = 1; i < run->attempt && delay < opt.retry_max; ++i) delay *= 2;
    delay = std::min(delay, opt.retry_max);
    try {
      jr->set_export_error(run->id, why);
    } catch (const std::exception&) {
    }
    log::warning("will retry export in " + std::to_string(delay.count()) + " ms: " + why,
                 {{"EXPORT_ID", run->name}, {"ATTEMPT", std::to_string(run->attempt)}});
    run->phase = Phase::waiting;
    run->timer = std::make_unique<asio::steady_timer>(io, delay);
    std::weak_ptr<Impl> weak = shared_from_this();
    run->timer->async_wait([weak, run](const boost::system::error_code& ec) {
      auto self = weak.lock();
      if (ec || !self || self->stopping) return;
      try {
        self->resume(run);
      } catch (const std::exception& e) {
        // The journal cannot be read or written (disk full, I/O error): wait and try again.
        ++self->stats.journal_errors;
        self->schedule_retry(run, std::string("journal: ") + e.what());
      }
    });
    changed();
  }

  void resume(std::shared_ptr<Run> run) {
    // A new attempt: the journal (and ListParts / HeadObject) decides what is still to upload.
    run->early_files.clear();
    run->early_failed.clear();
    auto row = jr->get_export(run->id);
    switch (row.state) {
      case ExportState::complete:
      case ExportState::spooling:
        for (const auto& f : jr->files(run->id))
          if (f.state == FileState::spooling) jr->set_file_state(f.id, FileState::pending);
        start_spool(run);
        break;
      case ExportState::spooled:
      case ExportState::uploading:
        start_upload(run);
        break;
      default:
        runs.erase(run->id);
    }
  }

  void park(std::shared_ptr<Run> run, const std::string& why) {
    log::error("export parked: " + why, {{"EXPORT_ID", run->name}});
    try {
      jr->park_export(run->id, why);
    } catch (const std::exception& e) {
      log::error(std::string("journal: ") + e.what(), {{"EXPORT_ID", run->name}});
    }
    ++stats.parked;
    runs.erase(run->id);
    changed();
  }

  // ---------------------------------------------------------------- upload
  void start_upload(std::shared_ptr<Run> run) {
    run->phase = Phase::uploading;
    run->retry.clear();
    run->park.clear();
    auto row = jr->get_export(run->id);
    const Pipe* pipe = pipe_of(row.pipeline);
    const auto& s3c = pipe->cfg.s3;
    if (row.state == ExportState::spooled) jr->set_export_state(run->id, ExportState::uploading);
    std::vector<std::shared_ptr<Obj>> objs;
    const auto all_files = jr->files(run->id);
    const auto n_files = static_cast<std::int64_t>(all_files.size());
    std::int64_t file_index = -1;
    for (const auto& f : all_files) {
      ++file_index;
      if (f.state == FileState::spooled) jr->set_file_state(f.id, FileState::uploading);
      // Files uploaded early in this attempt are done; the others (also those whose early
      // upload failed) are uploaded or resumed from the journal here.
      const bool early_done = run->early_files.count(f.id) && !run->early_failed.count(f.id);
      if ((f.state == FileState::spooled || f.state == FileState::uploading) && !early_done)
        add_file_objects(run, s3c, row.name, f, file_index, n_files, false, objs);
      if (s3c.upload_rejects && f.state != FileState::uploaded) {
        auto rp = spool::rejected_path(cfg.spool.dir, row.name, f.name);
        if (fs::exists(rp)) {
          auto o = std::make_shared<Obj>();
          o->run = run;
          o->key = rejected_key(s3c.prefix, row.name, f.name);
          o->spool_file = rp;
          objs.push_back(o);
        }
      }
    }
    if (s3c.upload_rejects) {
      auto o = std::make_shared<Obj>();
      o->run = run;
      o->key = report_key(s3c.prefix, row.name);
      o->spool_file = spool::report_path(cfg.spool.dir, row.name);
      if (fs::exists(o->spool_file)) objs.push_back(o);
    }
    run->ops = static_cast<int>(objs.size());
    changed();
    if (objs.empty()) return upload_done(run);
    for (auto& o : objs) upload_object(o);
  }

  // The import and archive objects of one spooled file. The one place object keys of a file are
  // built (first upload, early upload, resume): an export over max_files_per_import_job files is
  // laid out in import/part-NNNN/ folders, one import job each, and the importer derives the
  // jobs from the keys journaled here.
  void add_file_objects(const std::shared_ptr<Run>& run, const config::S3Target& s3c,
                        const std::string& export_name, const journal::FileRow& f,
                        std::int64_t file_index, std::int64_t n_files, bool early,
                        std::vector<std::shared_ptr<Obj>>& objs) {
    auto ip = spool::import_path(cfg.spool.dir, export_name, f.name);
    auto add = [&](PartKind kind, std::string key, const std::string& upload_id) {
      auto o = std::make_shared<Obj>();
      o->run = run;
      o->file_id = f.id;
      o->kind = kind;
      o->key = std::move(key);
      o->spool_file = ip;
      o->parts = jr->parts(f.id, kind);
      o->upload_id = upload_id;
      o->journaled_key = kind == PartKind::import ? f.import_key : f.archive_key;
      o->early = early;
      if (!o->parts.empty()) objs.push_back(o);
    };
    add(PartKind::import,
        import_key(s3c.prefix, export_name,
                   import_part_dir(file_index, n_files, opt.max_files_per_import_job) + f.name),
        f.import_upload_id);
    if (s3c.archive)
      add(PartKind::archive, archive_key(s3c.prefix, export_name, f.name), f.archive_upload_id);
  }

  // A file of an export that is still spooling is durable and journaled: start its import and
  // archive objects now (they share the global part limit with every other upload). Not with
  // on_invalid: fail-export, where an invalid line in a later file means nothing is uploaded and
  // the export fails (as before). A crash meanwhile is resumed like any upload: the file is
  // `uploading` in the journal and start_upload picks it up (ListParts / HeadObject) once the
  // export's spooling is redone. Throws on a journal error (on_spooled turns it into a retry).
  void start_early_upload(std::shared_ptr<Run> run, std::int64_t file_id) {
    if (stopping || run->superseded || !run->fail.empty() || !run->retry.empty() ||
        !run->park.empty())
      return;
    const Pipe* pipe = pipe_of(run->pipeline);
    if (!pipe || pipe->cfg.on_invalid == config::OnInvalid::fail_export) return;
    const auto all_files = jr->files(run->id);
    const auto n_files = static_cast<std::int64_t>(all_files.size());
    std::int64_t file_index = -1;
    const journal::FileRow* f = nullptr;
    for (const auto& r : all_files) {
      ++file_index;
      if (r.id == file_id) {
        f = &r;
        break;
      }
    }
    if (!f || f->state != FileState::spooled) return;
    std::vector<std::shared_ptr<Obj>> objs;
    add_file_objects(run, pipe->cfg.s3, run->name, *f, file_index, n_files, true, objs);
    if (objs.empty()) return;
    jr->set_file_state(f->id, FileState::uploading);
    run->early_files.insert(f->id);
    run->early_ops += static_cast<int>(objs.size());
    for (auto& o : objs) upload_object(o);
  }

  std::string bucket_of(const Run& run) const { return pipe_of(run.pipeline)->cfg.s3.bucket; }
  aws::Sse sse_of(const Run& run) const {
    return aws::Sse{pipe_of(run.pipeline)->cfg.s3.kms_key_id.value_or("")};
  }

  void upload_object(std::shared_ptr<Obj> o) {
    if (o->file_id == 0) return upload_extra(o);
    bool all = std::all_of(o->parts.begin(), o->parts.end(),
                           [](const auto& p) { return p.state == PartState::uploaded; });
    if (o->parts.size() == 1) {
      if (all) {
        ++stats.parts_skipped;
        return object_done(o);
      }
      if (o->journaled_key != o->key) {
        // A single PutObject has no upload id, but the journal still names the object's key
        // (status, the importer and an operator read it from the file row).
        try {
          jr->set_file_upload(o->file_id, o->kind, o->key, "");
          o->journaled_key = o->key;
        } catch (const std::exception& e) {
          journal_failed(o, e);
          return object_done(o);
        }
      }
      return send_part(o, 0, true);
    }
    if (o->upload_id.empty()) {
      aws::CreateMultipartRequest req;
      req.bucket = bucket_of(*o->run);
      req.key = o->key;
      req.sse = sse_of(*o->run);
      req.content_type =
          o->kind == PartKind::import ? "application/fhir+ndjson" : "application/zstd";
      auto self = shared_from_this();
      ++creating[o->key];
      s3->create_multipart_upload(req, [self, o](aws::S3Result<aws::CreateMultipartResult> r) {
        if (self->stopping) return;
        self->created(o->key, r.attempts);
        if (!r.ok()) return self->object_failed(o, r.error, r.describe());
        o->upload_id = r.value->upload_id;
        try {
          self->jr->set_file_upload(o->file_id, o->kind, o->key, o->upload_id);
        } catch (const std::exception& e) {
          // The upload id is not journaled: the retry creates a new upload (this one stays
          // incomplete on the server; S3 lifecycle rules abort such uploads).
          self->journal_failed(o, e);
          return self->object_done(o);
        }
        self->send_missing(o);
      });
      return;
    }
    // Resume: what does the server already have? (ListParts; the journal alone when the server
    // does not implement it.)
    auto self = shared_from_this();
    s3->list_all_parts(bucket_of(*o->run), o->key, o->upload_id,
                       [self, o](aws::S3Result<std::vector<aws::PartInfo>> r) {
                         if (self->stopping) return;
                         if (!r.ok()) {
                           const auto& e = *r.error;
                           if (e.code == "NoSuchUpload")
                             return self->settle(o);  // completed before the crash
                           if (e.http_status == 501 || e.code == "NotImplemented") {
                             log::info("server lacks ListParts; resuming from the journal alone",
                                       {{"S3_KEY", o->key}});
                             return self->send_missing(o);
                           }
                           return self->object_failed(o, r.error, r.describe());
                         }
                         try {
                           self->adopt_listed_parts(*o, *r.value);
                         } catch (const std::exception& e) {
                           self->journal_failed(o, e);
                           return self->object_done(o);
                         }
                         self->send_missing(o);
                       });
  }

  // Parts ListParts reports with our size and CRC32C count as uploaded (never sent again).
  void adopt_listed_parts(Obj& o, const std::vector<aws::PartInfo>& listed) {
    for (auto& p : o.parts) {
      if (p.state == PartState::uploaded) continue;
      for (const auto& s : listed) {
        if (s.part_number == p.part_number && s.size == static_cast<std::uint64_t>(p.length) &&
            (s.checksum_crc32c.empty() || s.checksum_crc32c == p.crc32c)) {
          if (p.state == PartState::uploading)
            jr->set_part_state(o.file_id, o.kind, p.part_number, PartState::pending);
          jr->record_part_uploaded(o.file_id, o.kind, p.part_number, s.etag, p.crc32c);
          p.state = PartState::uploaded;
          p.etag = s.etag;
        }
      }
    }
  }

  void send_missing(std::shared_ptr<Obj> o) {
    bool any = false;
    for (size_t i = 0; i < o->parts.size(); ++i) {
      if (o->parts[i].state == PartState::uploaded) {
        ++stats.parts_skipped;
        continue;
      }
      any = true;
      send_part(o, i, false);
    }
    if (!any) complete(o);
  }

  // Queues one part (or the single PutObject) under the global concurrency limit.
  void send_part(std::shared_ptr<Obj> o, size_t idx, bool single) {
    ++o->outstanding;
    part_queue.push_back([this, o, idx, single] { run_part(o, idx, single); });
    pump();
  }

  void pump() {
    while (!stopping && in_flight < cfg.upload.concurrency && !part_queue.empty()) {
      auto job = std::move(part_queue.front());
      part_queue.pop_front();
      job();
    }
  }

  void part_finished(std::shared_ptr<Obj> o) {
    --in_flight;
    --o->outstanding;
    pump();
  }

  void run_part(std::shared_ptr<Obj> o, size_t idx, bool single) {
    // An early object of a superseded export is abandoned (its spool goes once it stopped).
    const Phase want = o->early ? Phase::spooling : Phase::uploading;
    if (o->failed || o->run->phase != want || (o->early && o->run->superseded)) {
      if (o->early) o->failed = true;  // not sent: not done (the next attempt redoes it)
      --o->outstanding;
      if (o->outstanding == 0) object_done(o);
      return;
    }
    ++in_flight;
    auto& p = o->parts[idx];
    if (p.state == PartState::pending) {
      try {
        jr->set_part_state(o->file_id, o->kind, p.part_number, PartState::uploading);
      } catch (const std::exception& e) {
        part_finished(o);
        journal_failed(o, e);
        if (o->outstanding == 0) object_done(o);
        return;
      }
      p.state = PartState::uploading;
    }
    auto self = shared_from_this();
    // sha256: the body's hex SHA-256 when known (signed payload without a read pass), else "".
    auto send = [self, o, idx, single](std::shared_ptr<std::string> buf,
                                       std::optional<aws::BodySource> src, std::string sha256) {
      if (self->stopping) return;
      auto& p = o->parts[idx];
      std::uint32_t crc = 0;
      aws::crc32c_from_base64(p.crc32c, crc);
      aws::BodySource body = buf ? aws::BodySource::from_view(*buf) : *src;
      const std::uint64_t len = static_cast<std::uint64_t>(p.length);
      auto on_ok = [self, o, idx, len](const std::string& etag) {
        auto& p = o->parts[idx];
        ++self->stats.parts_sent;
        self->stats.part_bytes_sent += len;
        try {
          self->jr->record_part_uploaded(o->file_id, o->kind, p.part_number, etag, p.crc32c);
        } catch (const std::exception& e) {
          // Not journaled = not done: the retry finds the part with ListParts (or the object
          // with HeadObject) and records it then; it is not sent again.
          self->journal_failed(o, e);
          return;
        }
        p.state = PartState::uploaded;
        p.etag = etag;
      };
      if (single) {
        aws::PutObjectRequest req;
        req.bucket = self->bucket_of(*o->run);
        req.key = o->key;
        req.body = body;
        req.crc32c = crc;
        req.payload_sha256 = sha256;
        req.sse = self->sse_of(*o->run);
        req.if_none_match = true;
        req.content_type =
            o->kind == PartKind::import ? "application/fhir+ndjson" : "application/zstd";
        self->s3->put_object(req, [self, o, buf, on_ok](aws::S3Result<aws::PutObjectResult> r) {
          if (self->stopping) return;
          self->part_finished(o);
          if (r.ok()) {
            on_ok(r.value->etag);
            return self->object_done(o);
          }
          if (r.error->category == aws::ErrorCategory::conflict) return self->settle(o);
          self->object_failed(o, r.error, r.describe());
        });
      } else {
        aws::UploadPartRequest req;
        req.bucket = self->bucket_of(*o->run);
        req.key = o->key;
        req.upload_id = o->upload_id;
        req.part_number = p.part_number;
        req.body = body;
        req.crc32c = crc;
        req.payload_sha256 = sha256;
        self->s3->upload_part(req, [self, o, buf, on_ok](aws::S3Result<aws::UploadPartResult> r) {
          if (self->stopping) return;
          self->part_finished(o);
          if (r.ok()) {
            on_ok(r.value->etag);
          } else {
            o->failed = true;
            if (r.error->code == "NoSuchUpload")
              o->run->park = r.describe() +
                             " (the multipart upload was aborted outside fhir-edge; unpark to "
                             "start it again)";
            else
              self->note_error(o->run, *r.error, r.describe());
          }
          if (o->outstanding == 0) {
            if (o->failed) return self->object_done(o);
            self->complete(o);
          }
        });
      }
    };
    if (o->kind == PartKind::archive) {
      // Raw bytes of the .zst, streamed straight from the file. Their SHA-256 (the signed payload
      // hash) is computed on the reader thread first, so the control thread never hashes a part.
      const fs::path file = o->spool_file;
      const auto off = static_cast<std::uint64_t>(p.offset);
      const auto len = static_cast<std::uint64_t>(p.length);
      asio::post(*reader, [self, o, send, file, off, len] {
        std::string sha = sha256_of_range(file, off, len);
        asio::post(self->io, [self, o, send, file, off, len, sha] {
          if (self->stopping) return;
          send(nullptr, file_range_source(file, off, len), sha);
        });
      });
      return;
    }
    // Import part: frame N decompressed while curl reads it (a ZSTD_DStream per part, bounded
    // buffers), so a part in flight costs ~200 KiB whatever the part size. S3 checks the CRC32C
    // from the frame index; zstd checks its own frame checksum.
    try {
      auto sf = spool::SpoolFile::open(o->spool_file);
      const auto idx = static_cast<size_t>(p.part_number - 1);
      if (idx >= sf.frame_count()) throw spool::Error("no frame " + std::to_string(idx));
      const auto& frame = sf.index().frames[idx];
      send(nullptr, frame_source(o->spool_file, frame), frame.sha256);
    } catch (const std::exception& e) {
      part_finished(o);
      o->failed = true;
      if (o->run->park.empty())
        o->run->park = std::string("spool file damaged, cannot upload: ") + e.what();
      if (o->outstanding == 0) object_done(o);
    }
  }

  void note_error(std::shared_ptr<Run> run, const aws::AwsError& e, const std::string& what) {
    if (is_retry_later(e)) {
      if (run->retry.empty()) run->retry = what;
    } else if (run->park.empty()) {
      run->park = what;
    }
  }

  // A journal write failed inside an upload callback (disk full under the journal, read-only or
  // failing file system). What the journal did not record is not lost: the part or object is
  // simply not counted as done, the export waits for its retry timer, and the retry reconciles
  // with S3 (ListParts, or HeadObject's checksum for an object that is already there). The
  // exception never escapes into the event loop.
  void journal_failed(std::shared_ptr<Obj> o, const std::exception& e) {
    ++stats.journal_errors;
    o->failed = true;
    o->run->retry = std::string("journal write failed, will retry: ") + e.what();
  }

  void object_failed(std::shared_ptr<Obj> o, const std::optional<aws::AwsError>& e,
                     const std::string& what) {
    o->failed = true;
    if (e)
      note_error(o->run, *e, what);
    else
      o->run->retry = what;
    object_done(o);
  }

  void complete(std::shared_ptr<Obj> o) {
    aws::CompleteMultipartRequest req;
    req.bucket = bucket_of(*o->run);
    req.key = o->key;
    req.upload_id = o->upload_id;
    for (const auto& p : o->parts) req.parts.push_back({p.part_number, p.etag, p.crc32c});
    req.if_none_match = true;
    auto self = shared_from_this();
    s3->complete_multipart_upload(req, [self, o](aws::S3Result<aws::CompleteMultipartResult> r) {
      if (self->stopping) return;
      if (r.ok()) return self->object_done(o);
      if (r.error->category == aws::ErrorCategory::conflict || r.error->code == "NoSuchUpload")
        return self->settle(o);
      self->object_failed(o, r.error, r.describe());
    });
  }

  // The object may already be there (412 on If-None-Match, or the upload was completed before a
  // crash): compare its checksum with what we would have written; never upload blindly again.
  void settle(std::shared_ptr<Obj> o) {
    std::string expect;
    if (o->file_id == 0) {
      expect = aws::crc32c_base64(o->extra_crc);
    } else if (o->parts.size() == 1) {
      expect = o->parts[0].crc32c;
    } else {
      std::vector<std::uint32_t> crcs;
      for (const auto& p : o->parts) {
        std::uint32_t c = 0;
        aws::crc32c_from_base64(p.crc32c, c);
        crcs.push_back(c);
      }
      expect = aws::composite_crc32c(crcs);
    }
    auto self = shared_from_this();
    s3->head_object(
        bucket_of(*o->run), o->key, [self, o, expect](aws::S3Result<aws::HeadObjectResult> r) {
          if (self->stopping) return;
          if (!r.ok()) return self->object_failed(o, r.error, r.describe());
          if (r.value->checksum_crc32c != expect) {
            o->failed = true;
            o->run->park = "s3://" + self->bucket_of(*o->run) + "/" + o->key +
                           " already exists with other content (CRC32C " +
                           r.value->checksum_crc32c + ", expected " + expect +
                           "); fhir-edge never overwrites or deletes objects";
            return self->object_done(o);
          }
          ++self->stats.settled;
          log::info("object already in S3 with the expected checksum (settled)",
                    {{"S3_KEY", o->key}});
          try {
            for (auto& p : o->parts) {
              if (p.state == PartState::uploaded) continue;
              if (p.state == PartState::uploading)
                self->jr->set_part_state(o->file_id, o->kind, p.part_number, PartState::pending);
              self->jr->record_part_uploaded(o->file_id, o->kind, p.part_number, r.value->etag,
                                             p.crc32c);
              p.state = PartState::uploaded;
            }
          } catch (const std::exception& e) {
            self->journal_failed(o, e);
          }
          self->object_done(o);
        });
  }

  // Report and rejects: one PutObject each, CRC32C computed on the reader thread.
  void upload_extra(std::shared_ptr<Obj> o) {
    auto self = shared_from_this();
    asio::post(*reader, [self, o] {
      std::string error;
      std::uint32_t crc = 0;
      std::uint64_t size = 0;
      try {
        int fd = ::open(o->spool_file.c_str(), O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) throw std::runtime_error("cannot open " + o->spool_file.string());
        std::vector<char> buf(1 << 16);
        for (;;) {
          ssize_t n = ::read(fd, buf.data(), buf.size());
          if (n < 0) {
            ::close(fd);
            throw std::runtime_error("cannot read " + o->spool_file.string());
          }
          if (n == 0) break;
          crc = aws::crc32c(buf.data(), static_cast<size_t>(n), crc);
          size += static_cast<std::uint64_t>(n);
        }
        ::close(fd);
      } catch (const std::exception& e) {
        error = e.what();
      }
      std::string sha = error.empty() ? sha256_of_range(o->spool_file, 0, size) : "";
      asio::post(self->io, [self, o, crc, size, error, sha] {
        if (self->stopping) return;
        if (!error.empty()) {
          o->failed = true;
          o->run->retry = error;
          return self->object_done(o);
        }
        o->extra_crc = crc;
        o->extra_size = size;
        aws::PutObjectRequest req;
        req.bucket = self->bucket_of(*o->run);
        req.key = o->key;
        req.body = file_range_source(o->spool_file, 0, size);
        req.crc32c = crc;
        req.payload_sha256 = sha;
        req.sse = self->sse_of(*o->run);
        req.if_none_match = true;
        req.content_type = o->key.ends_with(".json") ? "application/json" : "application/zstd";
        self->s3->put_object(req, [self, o](aws::S3Result<aws::PutObjectResult> r) {
          if (self->stopping) return;
          if (r.ok()) {
            self->stats.part_bytes_sent += o->extra_size;
            return self->object_done(o);
          }
          if (r.error->category == aws::ErrorCategory::conflict) return self->settle(o);
          self->object_failed(o, r.error, r.describe());
        });
      });
    });
  }

  void object_done(std::shared_ptr<Obj> o) {
    auto run = o->run;
    if (o->failed && run->retry.empty() && run->park.empty()) run->retry = "upload of " + o->key;
    if (o->early) {
      if (o->failed) run->early_failed.insert(o->file_id);
      if (--run->early_ops > 0) return;
      // The export's spooling ended while they were in flight: move on now.
      if (run->spool_waiting) {
        run->spool_waiting = false;
        spool_done(run);
      }
      return;
    }
    if (--run->ops == 0) upload_done(run);
  }

  void upload_done(std::shared_ptr<Run> run) {
    if (stopping) return;
    try {
      if (!run->park.empty()) return park(run, run->park);
      if (!run->retry.empty()) return schedule_retry(run, run->retry);
      for (const auto& f : jr->files(run->id))
        if (f.state == FileState::uploading) jr->set_file_state(f.id, FileState::uploaded);
      jr->set_export_state(run->id, ExportState::uploaded);
      ++stats.exports_uploaded;
      log::info("export uploaded", {{"EXPORT_ID", run->name}});
      runs.erase(run->id);
      changed();
      if (importer) importer->kick(run->id);
      if (uploaded_hook) uploaded_hook(run->id);
    } catch (const std::exception& e) {
      schedule_retry(run, e.what());
    }
  }

  // ---------------------------------------------------------------- after_upload
  // keep | delete | move:DIR, once the import reached a status the pipeline accepts (the
  // importer calls this). Only the files that were taken are touched, and only while each is
  // still the file that was taken (identity): a file replaced since belongs to a newer export and
  // is left alone, as is everything when any file changed. Failures are logged and journaled;
  // the source then simply stays where it is.
  void apply_after_upload(std::int64_t export_id) {
    if (stopping) return;
    std::string name;
    try {
      auto row = jr->get_export(export_id);
      name = row.name;
      const Pipe* pipe = pipe_of(row.pipeline);
      if (!pipe) return;
      const auto& policy = pipe->cfg.after_upload;
      if (policy.kind == config::AfterUploadKind::keep) return;
      fs::path src(row.source_path);
      std::error_code ec;
      const bool dir = fs::is_directory(fs::symlink_status(src, ec));
      std::vector<watch::TakenFile> taken;
      for (const auto& f : jr->files(export_id)) {
        taken.push_back(
            {f.name, dir ? src / f.name : src,
             watch::FileIdentity{f.source.dev, f.source.inode, f.source.size, f.source.mtime_ns}});
      }
      if (auto changes = watch::changed_after_taken(taken); !changes.empty()) {
        std::string why = "source left in place: " + changes.front().name + " " +
                          changes.front().what + " since the export was taken";
        log::warning("after_upload skipped: " + why, {{"EXPORT_ID", name}});
        jr->add_event(export_id, std::nullopt, "after_upload", why);
        return;
      }
      std::string done;
      if (policy.kind == config::AfterUploadKind::remove) {
        for (const auto& f : taken) fs::remove(f.path);
        if (dir) {
          // The export's own metadata goes with it; anything else keeps the directory.
          const auto& rules = pipe->cfg.complete_when;
          for (const std::string& meta :
               {rules.marker, std::string("manifest.json"), std::string("log.ndjson")})
            if (!meta.empty()) fs::remove(src / meta, ec);
          if (fs::is_empty(src, ec)) fs::remove(src, ec);
        }
        done = "deleted " + std::to_string(taken.size()) + " source file(s)";
      } else {
        fs::create_directories(policy.move_to);
        fs::path dest = policy.move_to / src.filename();
        if (fs::exists(fs::symlink_status(dest, ec))) dest = policy.move_to / row.name;
        if (fs::exists(fs::symlink_status(dest, ec)))
          dest = policy.move_to / (row.name + "." + std::to_string(journal::now_ms()));
        fs::rename(src, dest);  // same file system only: EXDEV is reported, nothing is copied
        done = "moved to " + dest.string();
      }
      log::info("after_upload: " + done, {{"EXPORT_ID", name}});
      jr->add_event(export_id, std::nullopt, "after_upload", done);
    } catch (const std::exception& e) {
      log::error(std::string("after_upload failed, source left in place: ") + e.what(),
                 {{"EXPORT_ID", name}});
      try {
        jr->add_event(export_id, std::nullopt, "after_upload", std::string("failed: ") + e.what());
      } catch (const std::exception&) {
      }
    }
  }

  // ---------------------------------------------------------------- spool retention
  // spool.keep_for: the spool of a finished export (imported, nothing_to_import, failed or
  // superseded) stays for replay and inspection, then goes. Exports still in flight, parked or
  // import_failed keep it. Runs at start, after each accepted import, and every 10 minutes.
  void retention() {
    if (stopping || !jr) return;
    try {
      auto removed = spool::remove_expired(
          cfg.spool.dir, cfg.spool.keep_for,
          [this](const std::string& name) {
            auto e = jr->find_export(name);
            return e && (e->state == ExportState::imported || e->state == ExportState::failed ||
                         e->state == ExportState::superseded ||
                         e->state == ExportState::nothing_to_import);
          },
          quota.get());
      for (const auto& n : removed)
        log::info("spool retention: removed the spool of a finished export", {{"EXPORT_ID", n}});
    } catch (const std::exception& e) {
      log::warning(std::string("spool retention: ") + e.what());
    }
    retention_timer->expires_after(std::chrono::minutes(10));
    std::weak_ptr<Impl> weak = shared_from_this();
    retention_timer->async_wait([weak](const boost::system::error_code& ec) {
      if (auto self = weak.lock(); self && !ec) self->retention();
    });
  }

  // ---------------------------------------------------------------- quota
  // The spool is full: free the spool of exports whose upload is finished (oldest first), so
  // waiting writers can go on. Exports not yet uploaded are never evicted.
  void evict() {
    if (stopping) return;
    std::vector<journal::ExportRow> all;
    try {
      all = jr->exports(true);
    } catch (const std::exception& e) {
      log::warning(std::string("spool full, cannot read the journal to evict: ") + e.what());
    }
    std::reverse(all.begin(), all.end());  // oldest first
    for (const auto& e : all) {
      if (!quota->full()) break;
      switch (e.state) {
        case ExportState::uploaded:
        case ExportState::import_starting:
        case ExportState::importing:
        case ExportState::imported:
        case ExportState::import_failed:
        case ExportState::nothing_to_import:
        case ExportState::failed:
        case ExportState::superseded: {
          auto dir = spool::export_dir(cfg.spool.dir, e.name);
          std::error_code ec;
          if (!fs::exists(dir, ec)) break;
          auto freed = spool::remove_export(cfg.spool.dir, e.name, quota.get());
          stats.evicted_bytes += freed;
          log::info("spool full: evicted the spool of an uploaded export",
                    {{"EXPORT_ID", e.name}, {"BYTES", std::to_string(freed)}});
          break;
        }
        default:
          break;
      }
    }
    if (quota->full()) {
      if (!quota_full_logged) {
        quota_full_logged = true;
        log::notice("spool quota reached: new exports wait until uploads finish",
                    {{"SPOOL_USED", std::to_string(quota->used())},
                     {"SPOOL_MAX", std::to_string(quota->max_bytes())}});
      }
      if (evict_timer_armed) return;
      evict_timer_armed = true;
      // Uploads that finish later make more room evictable: look again then.
      auto t = std::make_shared<asio::steady_timer>(io, std::chrono::seconds(1));
      std::weak_ptr<Impl> weak = shared_from_this();
      t->async_wait([weak, t](const boost::system::error_code& ec) {
        if (auto self = weak.lock(); self && !ec) {
          self->evict_timer_armed = false;
          self->evict();
        }
      });
    } else if (quota_full_logged) {
      quota_full_logged = false;
      log::notice("spool has room again; ingest continues",
                  {{"SPOOL_USED", std::to_string(quota->used())}});
    }
  }

  std::string status_line() const {
    if (!jr) return "not started";
    int spooling = 0, uploading = 0, queued = 0, parked = 0, waiting = 0;
    for (const auto& e : jr->exports(false)) {
      if (!pipe_of(e.pipeline)) continue;
      switch (e.state) {
        case ExportState::discovered:
        case ExportState::complete:
        case ExportState::spooled:
          ++queued;
          break;
        case ExportState::spooling:
          ++spooling;
          break;
        case ExportState::uploading:
          ++uploading;
          break;
        case ExportState::parked:
          ++parked;
          break;
        default:
          break;
      }
    }
    for (const auto& [id, r] : runs)
      if (r->phase == Phase::waiting) ++waiting;
    std::string s = std::to_string(uploading) + " exports uploading, " + std::to_string(spooling) +
                    " spooling, " + std::to_string(queued) + " queued, " + std::to_string(parked) +
                    " parked";
    if (waiting) s += ", " + std::to_string(waiting) + " waiting to retry";
    if (quota && quota->full()) s += ", spool full";
    if (importer) s += "; imports: " + importer->status_line();
    return s;
  }
};

// ------------------------------------------------------------------ Pipeline

Pipeline::Pipeline(asio::io_context& io, const config::Config& config, Options options)
    : impl_(std::make_shared<Impl>(io, config, std::move(options))) {}

Pipeline::~Pipeline() {
  if (impl_ && impl_->started && !impl_->stopping) impl_->stop();
}

void Pipeline::start(const config::Config& config) {
  impl_->cfg = config;
  impl_->start();
}

bool Pipeline::reload(const config::Config& old_config, const config::Config& new_config,
                      std::string& why) {
  if (restart_fingerprint(old_config) != restart_fingerprint(new_config)) {
    why =
        "pipeline, spool, journal, upload, watch or aws settings changed: restart fhir-edge to "
        "apply";
    return false;
  }
  impl_->cfg = new_config;
  // upload.bandwidth_limit / bandwidth_schedule apply at once, also to parts in flight (the
  // Service calls reload(new, old) to roll back when another component refuses, which restores
  // the old cap the same way).
  if (impl_->http)
    impl_->http->set_bandwidth(new_config.upload.bandwidth_limit.value_or(0),
                               bandwidth_schedule(new_config.upload));
  return true;
}

void Pipeline::stop(std::function<void()> done) {
  impl_->stop();
  boost::asio::post(impl_->io, std::move(done));
}

std::string Pipeline::status_line() const {
  return impl_->status_line();
}
const Stats& Pipeline::stats() const {
  auto& st = impl_->stats;
  st.unwatched_roots.clear();
  for (const auto& [name, pipe] : impl_->pipes)
    if (pipe.watcher)
      if (auto why = pipe.watcher->unwatched_reason(); !why.empty())
        st.unwatched_roots.push_back("pipeline " + name + ": " + pipe.cfg.watch.string() + " " +
                                     why);
  return st;
}
void Pipeline::on_uploaded(std::function<void(std::int64_t)> f) {
  impl_->uploaded_hook = std::move(f);
}

std::shared_ptr<service::Component> make_pipeline(asio::io_context& io,
                                                  const config::Config& config, Options options) {
  return std::make_shared<Pipeline>(io, config, std::move(options));
}

}  // namespace fe::pipeline
