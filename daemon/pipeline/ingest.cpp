// The pipeline's ingest part: watch → take → spool. See ingest.hpp for the contract.
#include "pipeline/ingest.hpp"

#include <algorithm>
#include <boost/asio/post.hpp>
#include <map>
#include <mutex>
#include <set>
#include <string_view>

#include "aws/crc32c.hpp"
#include "aws/s3.hpp"
#include "journal/digest.hpp"
#include "pipeline/upload_stage.hpp"
#include "service/log.hpp"
#include "upload/cleanup.hpp"

namespace fe::pipeline {
namespace fs = std::filesystem;
namespace asio = boost::asio;
using journal::ExportState;
using journal::FileState;
using journal::PartKind;

void Ingest::on_ready(const std::string& pname, const watch::ReadyExport& r) {
  if (c_.stopping) return;
  std::string key = pname + "\n" + r.path.string();
  if (digesting.count(key)) {
    again[key] = r;  // digest it again once the current pass is done
    return;
  }
  try {
    if (auto pending = c_.jr->pending_export(pname, r.path.string())) {
      // Taken before its digest, which its spool pass is hashing: the very files taken are not
      // taken again (the start-up rescan, a second event). Changed files are a new version: their
      // digest decides, as for any known path, and the spool pass of this one sees the change.
      std::map<std::string, journal::SourceIdentity> taken;
      for (const auto& f : c_.jr->files(pending->id)) taken.emplace(f.name, f.source);
      bool same = taken.size() == r.files.size();
      for (const auto& f : r.files) {
        auto it = taken.find(f.name);
        same = same && it != taken.end() && it->second.file_identity() == f.identity;
      }
      if (same) {
        c_.stats.add(pname, &Counters::exports_seen_again);
        if (!c_.runs.count(pending->id))
          log::info("export already taken (the same files; content digest pending), not redone",
                    {{"EXPORT_ID", pending->name},
                     {"PIPELINE", pname},
                     {"STATE", std::string(to_string(pending->state))}});
        return;
      }
    } else if (c_.opt.take_before_digest && !c_.jr->source_seen(pname, r.path.string())) {
      return take(pname, r, "");
    }
  } catch (const std::exception& e) {
    ++c_.stats.journal_errors;
    log::error(std::string("journal: cannot look up the export's source: ") + e.what(),
               {{"EXPORT_ID", r.name}, {"PIPELINE", pname}});
    return;
  }
  digest_and_take(pname, r);
}

void Ingest::digest_and_take(const std::string& pname, const watch::ReadyExport& r) {
  std::string key = pname + "\n" + r.path.string();
  // A path the journal holds with a digest of the legacy scheme is digested that way again, so an
  // export taken before the scheme changed is recognised (journal/digest.hpp).
  journal::DigestScheme scheme = journal::DigestScheme::pieces;
  try {
    if (c_.jr->has_legacy_digest(pname, r.path.string())) scheme = journal::DigestScheme::legacy;
  } catch (const std::exception& e) {
    // Without knowing the scheme an identical export could look new: not taken now; the
    // watcher reports it again.
    ++c_.stats.journal_errors;
    log::error(std::string("journal: cannot look up earlier digests: ") + e.what(),
               {{"EXPORT_ID", r.name}, {"PIPELINE", pname}});
    return;
  }
  digesting.insert(key);
  auto self = c_.weak_self.lock();
  using Files = std::vector<std::pair<std::string, journal::FileDigest>>;
  // Back on the control thread with the export's digest (or why it could not be computed).
  auto done = [self, pname, r, key](std::string digest, std::string error, Files files) {
    asio::post(self->io, [self, pname, r, key, digest, error, files = std::move(files)] {
      self->ingest->digesting.erase(key);
      if (self->stopping) return;
      if (!error.empty()) {
        // Usually a file replaced or removed while it was read; the watcher reports it again.
        log::warning("cannot digest export: " + error,
                     {{"EXPORT_ID", r.name}, {"PIPELINE", pname}});
      } else {
        self->ingest->take(pname, r, digest, files);
      }
      if (auto it = self->ingest->again.find(key); it != self->ingest->again.end()) {
        auto next = it->second;
        self->ingest->again.erase(it);
        self->ingest->on_ready(pname, next);
      }
    });
  };
  // The files are hashed on the pool in parallel (a 1 GB export's digest is on the way to its
  // import: the two workers halve it), a big file in ranges of its pieces so that one big file
  // is hashed by both workers too (journal::digest_pieces; Options::digest_range_pieces, 64 MiB),
  // and the digest is combined by the job that finishes last.
  const std::uint64_t range_pieces = std::max<std::uint64_t>(1, c_.opt.digest_range_pieces);
  struct Parts {
    std::mutex mu;
    Files files;
    std::map<std::string, std::vector<journal::PieceRange>> ranges;  // split files, in order
    std::string error;
    std::size_t left = 0;
  };
  auto parts = std::make_shared<Parts>();
  const fs::path dir = r.single_file ? r.path.parent_path() : r.path;
  struct Job {
    std::string name;
    std::size_t range = 0;    // index in Parts::ranges[name]
    std::uint64_t first = 0;  // first piece
    std::uint64_t count = 0;  // pieces; 0: to the end of the file
    bool whole = true;        // file_digest of the whole file
  };
  std::vector<Job> jobs;
  for (const auto& f : r.files) {
    const std::uint64_t pieces =
        (f.identity.size + journal::kDigestPiece - 1) / journal::kDigestPiece;
    if (scheme == journal::DigestScheme::legacy || pieces <= range_pieces ||
        pieces > journal::kPiecesKept) {
      jobs.push_back({f.name});
      continue;
    }
    const std::size_t n = static_cast<std::size_t>((pieces + range_pieces - 1) / range_pieces);
    parts->ranges[f.name].resize(n);
    for (std::size_t i = 0; i < n; ++i)
      jobs.push_back({f.name, i, i * range_pieces, i + 1 == n ? 0 : range_pieces, false});
  }
  parts->left = jobs.size();
  if (parts->left == 0) return done(journal::combine_digest({}, scheme), "", {});
  for (auto& job : jobs) {
    c_.help->job_posted(PoolHelp::Job::digest);
    asio::post(*c_.pool, [parts, done, scheme, dir, help = c_.help.get(), job = std::move(job)] {
      const fs::path path = dir / job.name;
      journal::FileDigest d;
      journal::PieceRange range;
      std::string error;
      try {
        if (job.whole)
          d = journal::file_digest(path, scheme);
        else
          range = journal::digest_pieces(path, job.first, job.count);
      } catch (const std::exception& e) {
        error = e.what();
      }
      help->job_done(PoolHelp::Job::digest);
      std::unique_lock lk(parts->mu);
      if (!error.empty() && parts->error.empty()) parts->error = error;
      if (job.whole)
        parts->files.emplace_back(job.name, std::move(d));
      else
        parts->ranges[job.name][job.range] = std::move(range);
      if (--parts->left > 0) return;
      lk.unlock();
      if (parts->error.empty()) {
        try {
          for (auto& [name, ranges] : parts->ranges)
            parts->files.emplace_back(
                name, journal::file_digest_of_pieces(dir / name, std::move(ranges)));
        } catch (const std::exception& e) {
          parts->error = e.what();
        }
      }
      if (!parts->error.empty()) return done("", parts->error, {});
      auto digest = journal::combine_digest(parts->files, scheme);
      done(std::move(digest), "", std::move(parts->files));
    });
  }
}

void Ingest::take(const std::string& pname, const watch::ReadyExport& r, const std::string& digest,
                  const std::vector<std::pair<std::string, journal::FileDigest>>& digested) {
  std::vector<std::pair<std::string, journal::SourceIdentity>> files;
  for (const auto& f : r.files)
    files.push_back({f.name, journal::SourceIdentity{f.identity.size, f.identity.mtime_ns,
                                                     f.identity.inode, f.identity.dev}});
  journal::Taken t;
  try {
    if (!digest.empty()) {
      t = c_.jr->take_export(pname, r.path.string(), digest, r.name, files);
    } else if (auto nt = c_.jr->take_new_source(pname, r.path.string(), r.name, files)) {
      t = std::move(*nt);
    } else {
      return digest_and_take(pname, r);  // known after all: its digest decides
    }
  } catch (const std::exception& e) {
    log::error(std::string("journal: cannot take export: ") + e.what(),
               {{"EXPORT_ID", r.name}, {"PIPELINE", pname}});
    return;
  }
  if (t.existing) {
    c_.stats.add(pname, &Counters::exports_seen_again);
    if (t.compacted)
      log::info(
          "export already taken (identical content; compacted from the journal after it "
          "ended " +
              std::string(to_string(t.row.state)) + "), not redone",
          {{"EXPORT_ID", t.row.name},
           {"PIPELINE", t.row.pipeline},
           {"STATE", std::string(to_string(t.row.state))}});
    else if (!c_.runs.count(t.row.id))
      log::info("export already taken (identical content), not redone",
                {{"EXPORT_ID", t.row.name},
                 {"PIPELINE", t.row.pipeline},
                 {"STATE", std::string(to_string(t.row.state))}});
    return;
  }
  c_.stats.add(pname, &Counters::exports_taken);
  log::info("export taken", {{"MESSAGE_ID", std::string(log::message_id::export_taken)},
                             {"EXPORT_ID", t.row.name},
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
      c_.jr->set_export_state(t.row.id, ExportState::complete, "complete: " + r.rule);
      c_.jr->park_export(t.row.id, held);
      log::warning(held, {{"EXPORT_ID", t.row.name}, {"PIPELINE", pname}});
    } catch (const std::exception& e) {
      ++c_.stats.journal_errors;
      log::error(std::string("journal: cannot hold export: ") + e.what(),
                 {{"EXPORT_ID", t.row.name}, {"PIPELINE", t.row.pipeline}});
    }
    c_.changed();
    return;
  }
  auto run = c_.make_run(t.row);
  // Piece digests only of a file that was, when its digest was read, the very file taken (one
  // lookup by name each: an export may have 10,000 files).
  std::map<std::string_view, const FileIdentity*> taken;
  for (const auto& f : r.files) taken.emplace(f.name, &f.identity);
  for (const auto& [name, d] : digested) {
    auto it = taken.find(name);
    if (d.pieces && it != taken.end() && *it->second == d.identity)
      run->source_pieces[name] = d.pieces;
  }
  try {
    // What the watcher did not take stays visible in `status --export` (the log said it once).
    for (const auto& sk : r.skipped)
      c_.jr->add_event(t.row.id, std::nullopt, "skipped",
                       sk.reason + "\t" + sk.path.filename().string());
  } catch (const std::exception& e) {
    ++c_.stats.journal_errors;
    log::error(std::string("journal: ") + e.what(),
               {{"EXPORT_ID", t.row.name}, {"PIPELINE", t.row.pipeline}});
  }
  if (!r.nested.empty()) {
    // Files below a subdirectory are not taken (the spool and S3 layout are flat): importing
    // the top level alone would report the export imported without them. Parked, saying which.
    run->source_pieces.clear();  // a retry imports the top level; it hashes as it spools
    std::string list;
    for (const auto& n : r.nested) list += (list.empty() ? "" : ", ") + n;
    return c_.upload->park(run,
                           "export has files in subdirectories, which are not taken: " + list +
                               "; move them to the top level of the export (or into exports of "
                               "their own); `fhir-edge retry` imports the top-level files only");
  }
  try {
    c_.jr->set_export_state(t.row.id, ExportState::complete, "complete: " + r.rule);
    start_spool(run);
  } catch (const std::exception& e) {
    // Taken (journaled) but not started: the retry timer resumes it from the journal.
    ++c_.stats.journal_errors;
    c_.upload->schedule_retry(run, std::string("journal: ") + e.what());
  }
}

// on_changed: hold (issue 18). A new version of a source whose earlier version already got
// past spooling (spooled, uploading, uploaded, importing, imported; parked from one of those)
// would import the whole export a second time; it is parked for the operator instead, with
// what changed. Empty: go on (on_changed: reimport, a first version, or earlier versions that
// never got that far: superseded, failed, spooling).
std::string Ingest::hold_reason(const std::string& pname, const journal::ExportRow& row,
                                const watch::ReadyExport& r) {
  const Pipe* pipe = c_.pipe_of(pname);
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
  for (const auto& e : c_.jr->exports(true)) {
    if (e.id == row.id || e.pipeline != row.pipeline || e.source_path != row.source_path) continue;
    const ExportState st =
        e.state == ExportState::parked && e.parked_from ? *e.parked_from : e.state;
    if (!past_spool(st)) continue;
    if (!earlier || e.version > earlier->version) earlier = e;
  }
  if (!earlier) return {};
  // What changed, file by file: the journal's identity of the earlier version against the
  // files just taken (size; else modification time).
  std::map<std::string, journal::SourceIdentity> before;
  for (const auto& f : c_.jr->files(earlier->id)) before[f.name] = f.source;
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
    } else if (it->second.mtime_ns != f.identity.mtime_ns || it->second.inode != f.identity.inode) {
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
void Ingest::start_spool(std::shared_ptr<Run> run) {
  run->phase = Phase::spooling;
  run->digest_tried = false;
  run->superseded = false;
  run->fail.clear();
  run->outcome = {};
  auto row = c_.jr->get_export(run->id);
  const Pipe* pipe = c_.pipe_of(row.pipeline);
  if (row.state == ExportState::complete) c_.jr->set_export_state(run->id, ExportState::spooling);
  fs::path src(row.source_path);
  std::error_code ec;
  const bool dir = fs::is_directory(fs::symlink_status(src, ec));
  auto self = c_.weak_self.lock();
  // Largest file first: the pool then ends the export's spooling as early as it can (the big
  // file does not start last), and the smaller files are spooled, and uploaded early, while the
  // big one is still being validated. A 1 GB export is usually one large Observation file.
  auto files = c_.jr->files(run->id);
  std::stable_sort(files.begin(), files.end(),
                   [](const auto& a, const auto& b) { return a.source.size > b.source.size; });
  for (const auto& f : files) {
    if (f.state != FileState::pending) continue;
    try {
      c_.jr->set_file_state(f.id, FileState::spooling);
    } catch (const std::exception& e) {
      // Files already posted finish first; spool_done then schedules the retry.
      ++c_.stats.journal_errors;
      run->outcome.merge(upload::Outcome::retry_later(std::string("journal: ") + e.what()));
      break;
    }
    SpoolJob job;
    job.spool_dir = c_.cfg.spool.dir;
    job.export_name = row.name;
    job.pipeline = row.pipeline;
    job.file_name = f.name;
    job.source.name = f.name;
    job.source.path = dir ? src / f.name : src;
    job.source.identity = f.source.file_identity();
    job.validator = pipe->validator;
    job.on_invalid = pipe->cfg.on_invalid;
    job.part_size = choose_part_size(c_.cfg.upload.part_size, f.source.size, c_.opt);
    job.zstd_level = c_.cfg.spool.zstd_level;
    // Parts that go with the unsigned-payload trailer (https, aws.payload_signing) need no
    // SHA-256; the last, smaller part may be signed, and the upload then hashes it itself.
    job.frame_sha256 = !c_.s3 || c_.s3->payload_mode_for(pipe->cfg.s3.bucket, job.part_size) ==
                                     aws::PayloadMode::signed_sha256;
    if (auto it = run->source_pieces.find(f.name); it != run->source_pieces.end())
      job.source_pieces = it->second;  // used only with frame_sha256 (WriterOptions)
    job.digest_source = run->digest_pending && !run->digests.count(f.name);
    job.quota = c_.quota.get();
    job.cancel = &c_.cancel;
    job.help = c_.help.get();
    std::int64_t file_id = f.id;
    if (streams(*pipe, f, job.part_size)) {
      // Per-part overlap: each import frame goes to the upload as soon as it is written.
      job.on_import_frame = [self, run, file_id, source = job.source](
                                std::size_t n, const spool::Frame& frame, const fs::path& tmp) {
        asio::post(self->io, [self, run, file_id, n, frame, tmp, source] {
          if (!self->stopping) self->upload->stream_part(run, file_id, n, frame, tmp, source);
        });
      };
    }
    ++run->ops;
    c_.help->job_posted(PoolHelp::Job::spool);
    asio::post(*c_.pool, [self, run, job, file_id] {
      auto res = spool_file(job);
      job.help->job_done(PoolHelp::Job::spool);
      asio::post(self->io,
                 [self, run, file_id, where = job.source.path.string(), res = std::move(res)] {
                   self->ingest->on_spooled(run, file_id, where, res);
                 });
    });
  }
  run->source_pieces.clear();  // each job holds its own until its file is spooled
  c_.changed();
  if (run->ops == 0) spool_done(run);
}

// Whether a file's import parts are streamed while it spools (per-part overlap, issue 13
// item 5) instead of starting its import object once it is spooled (start_early_upload):
// - only with on_invalid: reject-resource: with reject-file the whole file may still turn out
//   rejected, with fail-export nothing may be uploaded before every file is validated;
// - only for a file of more than one part (a smaller one is one PutObject after it is spooled,
//   and spooling it takes a moment);
// - only when the journal holds no upload of the file's import object: a file spooled again
//   after a crash or a stop resumes its multipart upload once it is spooled (ListParts adopts
//   the parts S3 has), so the parts sent before the crash are not sent again.
bool Ingest::streams(const Pipe& pipe, const journal::FileRow& f, std::uint64_t part_size) const {
  return c_.s3 && pipe.cfg.on_invalid == config::OnInvalid::reject_resource &&
         f.source.size > part_size && f.import_key.empty() && f.import_upload_id.empty();
}

void Ingest::on_spooled(std::shared_ptr<Run> run, std::int64_t file_id, const std::string& where,
                        const SpoolResult& res) {
  if (c_.stopping) return;
  --run->ops;
  bool stream_complete = false;  // the file's streamed import object may be completed
  try {
    auto f = c_.jr->get_file(file_id);
    if (res.digest && run->digest_pending && !res.changed) {
      auto d = *res.digest;
      d.pieces.reset();  // the export's digest needs the root and size only
      run->digests[f.name] = std::move(d);
    }
    if (res.cancelled) {
      run->outcome.merge(upload::Outcome::retry_later("spooling cancelled"));
    } else if (res.changed) {
      run->superseded = true;
      run->fail = res.error;
    } else if (res.fail_export) {
      if (run->fail.empty()) run->fail = res.error;
      c_.jr->set_file_state(file_id, FileState::failed, res.error);
    } else if (!res.ok) {
      // I/O trouble (disk full, source unreadable): keep the export and try again later. A
      // source replaced mid-read is reported as `changed` above.
      run->outcome.merge(upload::Outcome::retry_later(res.error));
      c_.jr->set_file_state(file_id, FileState::pending, res.error);
      c_.jr->set_file_error(file_id, res.error);
    } else if (res.file_rejected) {
      // The counts go with the state: `status` shows what report.json says.
      c_.jr->record_file_rejected(file_id, res.rejected,
                                  std::to_string(res.rejected) +
                                      " invalid line(s); whole file rejected (on_invalid: "
                                      "reject-file)");
      c_.stats.add(run->pipeline, &Counters::files_spooled);
      c_.stats.add(run->pipeline, &Counters::resources_rejected,
                   static_cast<std::uint64_t>(res.rejected));
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
      c_.jr->plan_parts(file_id, PartKind::import, ip, true);
      c_.jr->plan_parts(file_id, PartKind::archive, ap, true);
      journal::SpoolOutcome out;
      out.resources_valid = res.valid;
      out.resources_rejected = res.rejected;
      out.bytes_uncompressed = static_cast<std::int64_t>(res.bytes_uncompressed);
      out.bytes_spooled = static_cast<std::int64_t>(res.bytes_spooled);
      out.checksum = aws::crc32c_base64(res.crc32c);
      if (res.line_map.empty()) {
        c_.jr->record_spooled(file_id, out);
      } else {
        // Import line -> source line anchors, streamed from the spool into the same journal
        // transaction; the importer reports FAILURE/ lines as source lines with them.
        LineMapReader map(res.line_map);
        c_.jr->record_spooled(file_id, out, [&map](journal::LineAnchor& a) {
          return map.next(a.import_line, a.source_line);
        });
        std::error_code ec;
        fs::remove(res.line_map, ec);
      }
      c_.stats.add(run->pipeline, &Counters::files_spooled);
      c_.stats.add(run->pipeline, &Counters::resources_valid,
                   static_cast<std::uint64_t>(res.valid));
      c_.stats.add(run->pipeline, &Counters::resources_rejected,
                   static_cast<std::uint64_t>(res.rejected));
      log::info("file spooled", {{"EXPORT_ID", run->name},
                                 {"PIPELINE", run->pipeline},
                                 {"FHIR_FILE", where},
                                 {"VALID", std::to_string(res.valid)},
                                 {"REJECTED", std::to_string(res.rejected)},
                                 {"PARTS", std::to_string(res.import_parts.size())}});
      if (run->streams.count(file_id)) {
        // Its parts went up while it was spooled: complete the object (unless the attempt went
        // wrong meanwhile: then the upload pass resumes it from the journal).
        if (run->attempt_ok()) {
          c_.jr->set_file_state(file_id, FileState::uploading);
          stream_complete = true;
        }
      } else {
        // Also for the export's last file: its import object starts now, not after the other
        // files' early objects finished (spool_done waits for those before the upload pass).
        c_.upload->start_early_upload(run, file_id);
      }
    }
  } catch (const std::exception& e) {
    run->outcome.merge(upload::Outcome::retry_later(e.what()));
  }
  // A stream of a file that was not spooled completely stops (its object is not completed).
  c_.upload->end_stream(run, file_id, stream_complete);
  if (run->ops == 0) spool_done(run);
}

void Ingest::spool_done(std::shared_ptr<Run> run) {
  if (c_.stopping) return;
  if (run->early_ops > 0) {
    // Early objects are in flight: the export moves on once they finished (object_done).
    run->spool_waiting = true;
    return;
  }
  try {
    auto row = c_.jr->get_export(run->id);
    if (run->superseded) {
      log::warning("source changed after it was taken; a new version will be taken: " + run->fail,
                   {{"EXPORT_ID", run->name}, {"PIPELINE", run->pipeline}});
      c_.jr->set_export_state(run->id, ExportState::superseded, run->fail);
      spool::remove_export(c_.cfg.spool.dir, run->name, c_.quota.get());
      c_.runs.erase(run->id);
      // Early multipart uploads of this version will never be completed: abort them; and
      // delete the early objects that were completed. The journal says which (also those of an
      // earlier process: this run's early_files start empty after a restart).
      bool uploaded_any = !run->early_files.empty();
      for (const auto& f : c_.jr->files(run->id))
        if (!f.import_key.empty() || !f.archive_key.empty()) uploaded_any = true;
      if (uploaded_any) {
        c_.cleanup->sweep_orphans();
        c_.cleanup->delete_superseded_objects();
      }
      c_.changed();
      return;
    }
    // Once per attempt: a digest read that failed is tried again with the attempt (retry).
    if (run->digest_pending && !run->digest_tried) {
      run->digest_tried = true;
      if (!resolve_digest(run)) return;
    }
    std::vector<std::string> names;
    for (const auto& f : c_.jr->files(run->id)) names.push_back(f.name);
    if (!run->fail.empty()) {
      write_report(c_.cfg.spool.dir, run->name, run->pipeline,
                   config::to_string(c_.pipe_of(run->pipeline)->cfg.validation_level), names);
      log::error("export failed: " + run->fail,
                 {{"EXPORT_ID", run->name}, {"PIPELINE", run->pipeline}});
      c_.jr->fail_export(run->id, run->fail);
      c_.runs.erase(run->id);
      c_.changed();
      return;
    }
    // An early upload was refused (park), or something is to be tried again.
    if (run->outcome.parked()) return c_.upload->park(run, run->outcome.reason);
    if (run->outcome.retrying()) {
      c_.upload->schedule_retry(run, run->outcome.reason);
      return;
    }
    if (run->digest_pending) {
      // Never `spooled` (and so never imported) without the digest that names its content.
      c_.upload->schedule_retry(run, "content digest not recorded yet");
      return;
    }
    write_report(c_.cfg.spool.dir, run->name, run->pipeline,
                 config::to_string(c_.pipe_of(run->pipeline)->cfg.validation_level), names);
    c_.jr->set_export_state(run->id, ExportState::spooled);
    c_.upload->start_upload(run);
  } catch (const std::exception& e) {
    c_.upload->schedule_retry(run, e.what());
  }
}

// ---------------------------------------------------------------- the pending digest
// An export taken before its content digest (docs/pipeline.md "One pass") gets it here, after its
// spool pass and before any decision that ends or advances it: from every file's SpoolResult
// digest, or, for a file spooled by an earlier process (a restart while the digest was pending),
// from a read of that file now, which must still be the file taken.
bool Ingest::resolve_digest(const std::shared_ptr<Run>& run) {
  auto row = c_.jr->get_export(run->id);
  if (!journal::is_pending_digest(row.digest)) {
    run->digest_pending = false;
    return true;
  }
  auto files = c_.jr->files(run->id);
  std::error_code ec;
  const fs::path src(row.source_path);
  const bool dir = fs::is_directory(fs::symlink_status(src, ec));
  auto self = c_.weak_self.lock();
  for (const auto& f : files) {
    if (run->digests.count(f.name)) continue;
    ++run->digest_reads;
    c_.help->job_posted(PoolHelp::Job::digest);
    asio::post(*c_.pool, [self, run, name = f.name, path = dir ? src / f.name : src,
                          taken = f.source, help = c_.help.get()] {
      journal::FileDigest d;
      std::string error;
      try {
        d = journal::file_digest(path);
      } catch (const std::exception& e) {
        error = e.what();
      }
      help->job_done(PoolHelp::Job::digest);
      asio::post(self->io, [self, run, name, d = std::move(d), error, taken] {
        if (!self->stopping) self->ingest->digest_read(run, name, d, error, taken);
      });
    });
  }
  if (run->digest_reads > 0) return false;  // digest_read calls spool_done again
  std::vector<std::pair<std::string, journal::FileDigest>> all;
  for (const auto& f : files) all.emplace_back(f.name, run->digests[f.name]);
  const std::string digest = journal::combine_digest(std::move(all));
  if (!c_.jr->record_digest(run->id, digest)) {
    // The same content was taken meanwhile as a later version (its files replaced by an
    // identical copy): that version imports it, this one does not.
    run->superseded = true;
    run->fail = "the same content (" + digest + ") was taken meanwhile as a later version";
    spool_done(run);
    return false;
  }
  run->digest_pending = false;
  run->digests.clear();
  log::info("content digest recorded",
            {{"EXPORT_ID", run->name}, {"PIPELINE", run->pipeline}, {"DIGEST", digest}});
  return true;
}

void Ingest::digest_read(const std::shared_ptr<Run>& run, const std::string& name,
                         const journal::FileDigest& d, const std::string& error,
                         const journal::SourceIdentity& taken) {
  --run->digest_reads;
  if (!error.empty()) {
    // Gone or unreadable: a changed source supersedes (identity), anything else is retried.
    run->outcome.merge(upload::Outcome::retry_later("content digest: " + error));
  } else if (!(d.identity == taken.file_identity())) {
    run->superseded = true;
    run->fail = name + " changed after it was taken (read again for the content digest)";
  } else {
    auto kept = d;
    kept.pieces.reset();
    run->digests[name] = std::move(kept);
  }
  if (run->digest_reads > 0) return;
  // Every file read: record the digest now (resolve_digest again), unless the attempt went wrong
  // (then spool_done retries or supersedes, with the digest still pending).
  if (run->attempt_ok()) run->digest_tried = false;
  spool_done(run);
}

}  // namespace fe::pipeline
