// The pipeline's upload part: the objects of an export → upload::ObjectUpload, merged outcomes,
// retry with backoff, park. See upload_stage.hpp for the contract.
#include "pipeline/upload_stage.hpp"

#include <algorithm>
#include <boost/asio/steady_timer.hpp>

#include "aws/crc32c.hpp"
#include "import/importer.hpp"
#include "import/s3_layout.hpp"
#include "pipeline/ingest.hpp"
#include "service/log.hpp"
#include "upload/cleanup.hpp"

namespace fe::pipeline {
namespace fs = std::filesystem;
namespace asio = boost::asio;
using journal::ExportState;
using journal::FileState;
using journal::PartKind;

UploadStage::UploadStage(Core& core) : c_(core) {
  std::weak_ptr<Core> weak = c_.weak_self;
  auto live = [weak] {
    auto self = weak.lock();
    return self && !self->stopping;
  };
  scheduler = std::make_unique<upload::PartScheduler>(c_.cfg.upload.concurrency);
  store = std::make_unique<upload::S3Store>([this] { return c_.s3; }, live);
  ledger = std::make_unique<upload::JournalLedger>(*c_.jr);
  bodies = std::make_unique<upload::SpoolBodies>(c_.io, *c_.reader, live);
}

UploadStage::~UploadStage() = default;

void UploadStage::clear() {
  scheduler->clear();
}

// ---------------------------------------------------------------- retry / park
void UploadStage::schedule_retry(std::shared_ptr<Run> run, const std::string& why) {
  if (c_.stopping) return;
  ++run->attempt;
  c_.stats.add(run->pipeline, &Counters::retries_scheduled);
  auto delay = c_.opt.retry_base;
  for (int i = 1; i < run->attempt && delay < c_.opt.retry_max; ++i) delay *= 2;
  delay = std::min(delay, c_.opt.retry_max);
  try {
    c_.jr->set_export_error(run->id, why);
  } catch (const std::exception&) {
  }
  log::warning("will retry export in " + std::to_string(delay.count()) + " ms: " + why,
               {{"EXPORT_ID", run->name},
                {"PIPELINE", run->pipeline},
                {"ATTEMPT", std::to_string(run->attempt)}});
  run->phase = Phase::waiting;
  run->timer = std::make_unique<asio::steady_timer>(c_.io, delay);
  std::weak_ptr<Core> weak = c_.weak_self;
  run->timer->async_wait([weak, run](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->stopping) return;
    try {
      self->upload->resume(run);
    } catch (const std::exception& e) {
      // The journal cannot be read or written (disk full, I/O error): wait and try again.
      ++self->stats.journal_errors;
      self->upload->schedule_retry(run, std::string("journal: ") + e.what());
    }
  });
  c_.changed();
}

void UploadStage::resume(std::shared_ptr<Run> run) {
  // A new attempt: the journal (and ListParts / HeadObject) decides what is still to upload.
  run->early_files.clear();
  run->early_failed.clear();
  auto row = c_.jr->get_export(run->id);
  switch (row.state) {
    case ExportState::complete:
    case ExportState::spooling:
      for (const auto& f : c_.jr->files(run->id))
        if (f.state == FileState::spooling) c_.jr->set_file_state(f.id, FileState::pending);
      c_.ingest->start_spool(run);
      break;
    case ExportState::spooled:
    case ExportState::uploading:
      start_upload(run);
      break;
    default:
      c_.runs.erase(run->id);
  }
}

void UploadStage::park(std::shared_ptr<Run> run, const std::string& why) {
  log::error("export parked: " + why, {{"MESSAGE_ID", std::string(log::message_id::export_parked)},
                                       {"EXPORT_ID", run->name},
                                       {"PIPELINE", run->pipeline}});
  try {
    c_.jr->park_export(run->id, why);
  } catch (const std::exception& e) {
    log::error(std::string("journal: ") + e.what(),
               {{"EXPORT_ID", run->name}, {"PIPELINE", run->pipeline}});
  }
  c_.stats.add(run->pipeline, &Counters::parked);
  c_.runs.erase(run->id);
  c_.changed();
}

// ---------------------------------------------------------------- upload
// The export's upload pass. Each object is an upload::ObjectUpload (daemon/upload/: the state
// machine put / create / list_parts / send_parts / complete / head_settle); this component
// only decides which objects an export has, starts them, and gathers their outcomes.
//
// Front and trail (issue 13 item 5): the import job reads only the import objects, so they are
// the front and the export becomes `uploaded` when they are done (front_done); the archive
// copies, rejects and report.json trail: they are started in the same pass (archive parts queue
// behind every import part), and each file stays `uploading` until they are done (trail_done).
// An export without any import object (nothing valid: no job will start) has no trail: all its
// objects are the front, as before.
void UploadStage::start_upload(std::shared_ptr<Run> run) {
  run->phase = Phase::uploading;
  run->outcome = {};
  run->trail_outcome = {};
  run->decide_when_drained = false;
  run->importable = false;
  auto row = c_.jr->get_export(run->id);
  const Pipe* pipe = c_.pipe_of(row.pipeline);
  const auto& s3c = pipe->cfg.s3;
  if (row.state == ExportState::spooled) c_.jr->set_export_state(run->id, ExportState::uploading);
  Objects front, trail;
  bool early_import = false;  // an import object finished early in this attempt
  add_trailing_objects(
      run, s3c, row.name, c_.jr->files(run->id),
      [&](journal::FileRow& f, std::int64_t file_index, std::int64_t n_files) {
        if (f.state == FileState::spooled) {
          c_.jr->set_file_state(f.id, FileState::uploading);
          f.state = FileState::uploading;
        }
        // Import objects uploaded early in this attempt are done; the others (also those whose
        // early upload failed) are uploaded or resumed from the journal here.
        const bool early_done = run->early_files.count(f.id) && !run->early_failed.count(f.id);
        early_import = early_import || early_done;
        if (f.state == FileState::uploading && !early_done)
          add_file_objects(run, s3c, row.name, f, file_index, n_files, false, Kinds::import, front);
      },
      trail);
  if (front.empty() && !early_import) {
    // Nothing to import: no job waits for anything, everything is the front (as before).
    front.insert(front.end(), trail.begin(), trail.end());
    trail.clear();
  }
  run->ops = static_cast<int>(front.size());
  run->trail_ops = static_cast<int>(trail.size());
  c_.changed();
  for (auto& o : trail) launch(run, o, Role::trail);
  for (auto& o : front) launch(run, o, Role::front);
  if (front.empty()) front_done(run);
}

// The trailing objects of an export past `uploaded`: each file still `uploading` has an archive
// copy (and maybe rejects) not known to be done; report.json and the rejects of whole-file
// rejected files go with them (PutObject with If-None-Match: *, settled by checksum when they
// are there already). Their files become `uploaded` when every one is done.
void UploadStage::start_trailing(std::int64_t export_id) {
  if (c_.stopping) return;
  auto row = c_.jr->get_export(export_id);
  const Pipe* pipe = c_.pipe_of(row.pipeline);
  if (!pipe) return;
  const auto& s3c = pipe->cfg.s3;
  auto all_files = c_.jr->files(export_id);
  if (std::none_of(all_files.begin(), all_files.end(),
                   [](const auto& f) { return f.state == FileState::uploading; })) {
    c_.trailing.erase(export_id);
    c_.changed();
    return;
  }
  auto run = std::make_shared<Run>();
  run->id = row.id;
  run->name = row.name;
  run->pipeline = row.pipeline;
  run->phase = Phase::uploading;
  run->importable = true;
  if (auto it = c_.trailing.find(export_id); it != c_.trailing.end())
    run->attempt = it->second->attempt;
  c_.trailing[export_id] = run;
  Objects trail;
  add_trailing_objects(run, s3c, row.name, std::move(all_files), nullptr, trail);
  log::info(
      "uploading the trailing objects (archive copy, rejects, report.json) of an export "
      "past `uploaded`",
      {{"EXPORT_ID", row.name},
       {"PIPELINE", row.pipeline},
       {"OBJECTS", std::to_string(trail.size())}});
  run->trail_ops = static_cast<int>(trail.size());
  c_.changed();
  if (trail.empty()) return trail_done(run);
  for (auto& o : trail) launch(run, o, Role::trail);
}

void UploadStage::resume_trailing() {
  for (const auto& e : c_.jr->exports(true)) {
    const ExportState st =
        e.state == ExportState::parked && e.parked_from ? *e.parked_from : e.state;
    switch (st) {
      case ExportState::uploaded:
      case ExportState::import_starting:
      case ExportState::importing:
      case ExportState::imported:
      case ExportState::import_failed:
        break;
      default:
        continue;
    }
    if (!c_.pipe_of(e.pipeline) || c_.trailing.count(e.id)) continue;
    try {
      start_trailing(e.id);
    } catch (const std::exception& ex) {
      ++c_.stats.journal_errors;
      log::error(std::string("journal: cannot resume the trailing objects: ") + ex.what(),
                 {{"EXPORT_ID", e.name}, {"PIPELINE", e.pipeline}});
    }
  }
}

upload::Ports UploadStage::ports() {
  return {*store, *ledger, *bodies, *scheduler};
}

// Counters, the orphan sweep's `creating` set, and whether a queued part is still wanted: an
// early object only while its export spools and was not superseded, the others while the
// export's upload pass runs.
upload::Hooks UploadStage::hooks_for(const std::shared_ptr<Run>& run, bool early) {
  upload::Hooks h;
  h.creating = [this](const std::string& key) { c_.cleanup->creating(key); };
  h.created = [this](const std::string& key, int attempts) { c_.cleanup->created(key, attempts); };
  const std::string pipeline = run->pipeline;
  h.part_sent = [this, pipeline](std::uint64_t bytes, bool part) {
    if (part) c_.stats.add(pipeline, &Counters::parts_sent);
    c_.stats.add(pipeline, &Counters::part_bytes_sent, bytes);
  };
  h.part_skipped = [this, pipeline] { c_.stats.add(pipeline, &Counters::parts_skipped); };
  h.settled = [this, pipeline] { c_.stats.add(pipeline, &Counters::settled); };
  h.journal_error = [this] { ++c_.stats.journal_errors; };
  const Phase want = early ? Phase::spooling : Phase::uploading;
  h.abandoned = [run, want, early] { return run->phase != want || (early && run->superseded); };
  return h;
}

// The one place the trailing objects of an export are listed, in the order they go up: for the
// first upload (start(), whose `each_file` also puts the import objects in the front) and for
// the trailing objects alone after a restart (start_trailing()).
void UploadStage::add_trailing_objects(const std::shared_ptr<Run>& run, const config::S3Target& s3c,
                                       const std::string& export_name,
                                       std::vector<journal::FileRow> files,
                                       const EachFile& each_file, Objects& trail) {
  const auto n_files = static_cast<std::int64_t>(files.size());
  std::int64_t file_index = -1;
  for (auto& f : files) {
    ++file_index;
    if (each_file) each_file(f, file_index, n_files);
    if (f.state == FileState::uploading)
      add_file_objects(run, s3c, export_name, f, file_index, n_files, false, Kinds::archive, trail);
    if (s3c.upload_rejects && f.state != FileState::uploaded) {
      auto rp = spool::rejected_path(c_.cfg.spool.dir, export_name, f.name);
      if (fs::exists(rp))
        trail.push_back(
            untracked_object(run, s3c, import::rejected_key(s3c.prefix, export_name, f.name), rp));
    }
  }
  if (s3c.upload_rejects) {
    auto rp = spool::report_path(c_.cfg.spool.dir, export_name);
    if (fs::exists(rp))
      trail.push_back(untracked_object(run, s3c, import::report_key(s3c.prefix, export_name), rp));
  }
}

// report.json and rejects: one PutObject each, not tracked part by part in the journal.
std::shared_ptr<upload::ObjectUpload> UploadStage::untracked_object(const std::shared_ptr<Run>& run,
                                                                    const config::S3Target& s3c,
                                                                    std::string key,
                                                                    fs::path file) {
  upload::ObjectSpec spec;
  spec.bucket = s3c.bucket;
  spec.content_type = key.ends_with(".json") ? "application/json" : "application/zstd";
  spec.key = std::move(key);
  spec.spool_file = std::move(file);
  spec.sse = aws::Sse{s3c.kms_key_id.value_or("")};
  return std::make_shared<upload::ObjectUpload>(ports(), std::move(spec), hooks_for(run, false));
}

// The import and archive objects of one spooled file. The one place object keys of a file are
// built (first upload, early upload, resume): an export over max_files_per_import_job files is
// laid out in import/part-NNNN/ folders, one import job each, and the importer derives the
// jobs from the keys journaled here. Each object is loaded from the journal (its upload id and
// parts); one without parts (a file with no valid line has no import object) is left out.
void UploadStage::add_file_objects(const std::shared_ptr<Run>& run, const config::S3Target& s3c,
                                   const std::string& export_name, const journal::FileRow& f,
                                   std::int64_t file_index, std::int64_t n_files, bool early,
                                   Kinds kinds,
                                   std::vector<std::shared_ptr<upload::ObjectUpload>>& objs) {
  auto add = [&](PartKind kind) {
    auto o = std::make_shared<upload::ObjectUpload>(
        ports(), file_spec(s3c, export_name, f, file_index, n_files, kind), hooks_for(run, early));
    if (!o->empty()) objs.push_back(std::move(o));
  };
  if (kinds != Kinds::archive) add(PartKind::import);
  if (kinds != Kinds::import && s3c.archive) add(PartKind::archive);
}

upload::ObjectSpec UploadStage::file_spec(const config::S3Target& s3c,
                                          const std::string& export_name, const journal::FileRow& f,
                                          std::int64_t file_index, std::int64_t n_files,
                                          PartKind kind) {
  upload::ObjectSpec spec;
  spec.file_id = f.id;
  spec.kind = kind;
  spec.bucket = s3c.bucket;
  spec.key = kind == PartKind::import
                 ? import::import_key(s3c.prefix, export_name,
                                      import::import_part_dir(file_index, n_files,
                                                              c_.opt.max_files_per_import_job) +
                                          f.name)
                 : import::archive_key(s3c.prefix, export_name, f.name);
  spec.spool_file = spool::import_path(c_.cfg.spool.dir, export_name, f.name);
  spec.content_type = kind == PartKind::import ? "application/fhir+ndjson" : "application/zstd";
  spec.sse = aws::Sse{s3c.kms_key_id.value_or("")};
  spec.background = kind == PartKind::archive;  // queues behind every import part
  return spec;
}

std::optional<UploadStage::FileAt> UploadStage::file_at(std::int64_t export_id,
                                                        std::int64_t file_id) {
  auto files = c_.jr->files(export_id);
  for (std::size_t i = 0; i < files.size(); ++i)
    if (files[i].id == file_id)
      return FileAt{std::move(files[i]), static_cast<std::int64_t>(i),
                    static_cast<std::int64_t>(files.size())};
  return std::nullopt;
}

void UploadStage::start_early_upload(std::shared_ptr<Run> run, std::int64_t file_id) {
  if (c_.stopping || !run->attempt_ok()) return;
  const Pipe* pipe = c_.pipe_of(run->pipeline);
  if (!pipe || pipe->cfg.on_invalid == config::OnInvalid::fail_export) return;
  const auto f = file_at(run->id, file_id);
  if (!f || f->row.state != FileState::spooled) return;
  std::vector<std::shared_ptr<upload::ObjectUpload>> objs;
  add_file_objects(run, pipe->cfg.s3, run->name, f->row, f->index, f->count, true, Kinds::import,
                   objs);
  if (objs.empty()) return;
  c_.jr->set_file_state(file_id, FileState::uploading);
  run->early_files.insert(file_id);
  run->early_ops += static_cast<int>(objs.size());
  for (auto& o : objs) launch(run, o, Role::early);
}

void UploadStage::launch(const std::shared_ptr<Run>& run,
                         const std::shared_ptr<upload::ObjectUpload>& o, Role role,
                         bool streaming) {
  std::weak_ptr<Core> weak = c_.weak_self;
  auto done = [weak, run, role, file_id = o->spec().file_id](const upload::Outcome& out) {
    if (auto self = weak.lock(); self && !self->stopping)
      self->upload->object_done(run, role, file_id, out);
  };
  if (streaming)
    o->start_streaming(std::move(done));
  else
    o->start(std::move(done));
}

// Frame n of a file that is still being spooled (Ingest chose to stream it: see
// Ingest::start_spool). The first frame opens the file's import object; each frame is journaled
// as a planned part before it is handed over, so the part is in the ledger before it is sent.
void UploadStage::stream_part(const std::shared_ptr<Run>& run, std::int64_t file_id, std::size_t n,
                              const spool::Frame& frame, const fs::path& tmp_file,
                              const watch::TakenFile& source) {
  if (c_.stopping) return;
  auto it = run->streams.find(file_id);
  if (it == run->streams.end()) {
    // Opened at the first frame only, and not once the attempt went wrong (as early uploads).
    if (n != 0 || !run->attempt_ok()) return;
    const Pipe* pipe = c_.pipe_of(run->pipeline);
    if (!pipe) return;
    const auto f = file_at(run->id, file_id);
    if (!f) return;
    auto o = std::make_shared<upload::ObjectUpload>(
        ports(), file_spec(pipe->cfg.s3, run->name, f->row, f->index, f->count, PartKind::import),
        hooks_for(run, true));
    it = run->streams.emplace(file_id, o).first;
    run->early_files.insert(file_id);
    ++run->early_ops;
    launch(run, o, Role::early, true);
  }
  const auto& o = it->second;
  journal::PartRow row;
  row.file_id = file_id;
  row.kind = PartKind::import;
  row.part_number = static_cast<int>(n) + 1;
  row.offset = static_cast<std::int64_t>(frame.uncompressed_offset);
  row.length = static_cast<std::int64_t>(frame.uncompressed_size);
  row.crc32c = aws::crc32c_base64(frame.crc32c);
  try {
    c_.jr->plan_parts(file_id, PartKind::import,
                      {{row.part_number, row.offset, row.length, row.crc32c}});
  } catch (const std::exception& e) {
    // Not journaled = not sent: the stream stops; the file's parts go up after it is spooled,
    // from the journal (the early_failed path of start_upload).
    ++c_.stats.journal_errors;
    log::warning(std::string("journal: cannot plan a streamed part, the file is uploaded after "
                             "it is spooled: ") +
                     e.what(),
                 {{"EXPORT_ID", run->name}, {"PIPELINE", run->pipeline}});
    o->close(false);
    return;
  }
  o->add_part(std::move(row), frame, tmp_file, source.path, source.identity);
}

bool UploadStage::end_stream(const std::shared_ptr<Run>& run, std::int64_t file_id, bool complete) {
  auto it = run->streams.find(file_id);
  if (it == run->streams.end()) return false;
  auto o = it->second;
  run->streams.erase(it);
  o->close(complete);
  return true;
}

void UploadStage::object_done(const std::shared_ptr<Run>& run, Role role, std::int64_t file_id,
                              const upload::Outcome& out) {
  switch (role) {
    case Role::early:
      run->outcome.merge(out);
      if (!out.ok()) run->early_failed.insert(file_id);
      if (--run->early_ops > 0) return;
      // The export's spooling ended while they were in flight: move on now.
      if (run->spool_waiting) {
        run->spool_waiting = false;
        c_.ingest->spool_done(run);
      }
      return;
    case Role::front:
      run->outcome.merge(out);
      if (--run->ops == 0) front_done(run);
      return;
    case Role::trail:
      run->trail_outcome.merge(out);
      if (--run->trail_ops == 0) trail_done(run);
      return;
  }
}

// The import objects are done. An export whose import objects all succeeded is `uploaded` now and
// handed to the import stage, whether or not its trailing objects are done; one whose import
// objects did not succeed waits for its trailing objects to end (one pass at a time) and is then
// retried or parked as a whole (upload_done).
void UploadStage::front_done(std::shared_ptr<Run> run) {
  if (c_.stopping) return;
  if (!run->outcome.ok()) {
    if (run->trail_ops > 0) {
      run->decide_when_drained = true;
      return;
    }
    run->outcome.merge(run->trail_outcome);
    return upload_done(run);
  }
  const bool all_done = run->trail_ops == 0 && run->trail_outcome.ok();
  if (all_done) return upload_done(run);
  try {
    // The files stay `uploading` until their trailing objects are done (trail_done).
    c_.jr->set_export_state(run->id, ExportState::uploaded);
  } catch (const std::exception& e) {
    run->outcome.merge(upload::Outcome::retry_later(std::string("journal: ") + e.what()));
    if (run->trail_ops > 0) {
      run->decide_when_drained = true;
      return;
    }
    return schedule_retry(run, e.what());
  }
  run->importable = true;
  c_.stats.add(run->pipeline, &Counters::exports_uploaded);
  log::info("export uploaded (import objects; archive copy, rejects and report.json go on)",
            {{"MESSAGE_ID", std::string(log::message_id::export_uploaded)},
             {"EXPORT_ID", run->name},
             {"PIPELINE", run->pipeline}});
  c_.runs.erase(run->id);
  c_.trailing[run->id] = run;
  c_.changed();
  c_.events->emit(ExportEvent::uploaded, run->id);
  if (run->trail_ops == 0) trail_done(run);  // they already failed: retry them
}

void UploadStage::trail_done(std::shared_ptr<Run> run) {
  if (c_.stopping) return;
  if (!run->importable) {
    if (run->ops > 0) return;  // front_done decides
    if (run->decide_when_drained) {
      run->decide_when_drained = false;
      run->outcome.merge(run->trail_outcome);
      upload_done(run);
    }
    return;
  }
  if (run->trail_outcome.ok()) {
    try {
      for (const auto& f : c_.jr->files(run->id))
        if (f.state == FileState::uploading) c_.jr->set_file_state(f.id, FileState::uploaded);
    } catch (const std::exception& e) {
      ++c_.stats.journal_errors;
      run->trail_outcome.merge(upload::Outcome::retry_later(std::string("journal: ") + e.what()));
      return retry_trailing(run);
    }
    if (auto it = c_.trailing.find(run->id); it != c_.trailing.end() && it->second == run)
      c_.trailing.erase(it);
    log::info("trailing objects uploaded (archive copy, rejects, report.json)",
              {{"EXPORT_ID", run->name}, {"PIPELINE", run->pipeline}});
    c_.changed();
    if (c_.opt.on_trailing_done) c_.opt.on_trailing_done();
    return;
  }
  retry_trailing(run);
}

// Trailing objects that failed are tried again after the export backoff (a refusal, e.g. other
// content at the archive key, after the longest one): they never park the export, which the
// import stage owns from `uploaded` on; the error is logged and each attempt counted.
void UploadStage::retry_trailing(std::shared_ptr<Run> run) {
  if (c_.stopping) return;
  ++run->attempt;
  c_.stats.add(run->pipeline, &Counters::retries_scheduled);
  auto delay = c_.opt.retry_base;
  for (int i = 1; i < run->attempt && delay < c_.opt.retry_max; ++i) delay *= 2;
  delay = std::min(delay, c_.opt.retry_max);
  if (run->trail_outcome.parked()) delay = c_.opt.retry_max;
  log::warning(
      "trailing objects (archive copy, rejects, report.json) not uploaded, will retry in " +
          std::to_string(delay.count()) + " ms: " + run->trail_outcome.reason,
      {{"EXPORT_ID", run->name},
       {"PIPELINE", run->pipeline},
       {"ATTEMPT", std::to_string(run->attempt)}});
  run->phase = Phase::waiting;
  run->timer = std::make_unique<asio::steady_timer>(c_.io, delay);
  std::weak_ptr<Core> weak = c_.weak_self;
  const std::int64_t id = run->id;
  run->timer->async_wait([weak, run, id](const boost::system::error_code& ec) {
    auto self = weak.lock();
    if (ec || !self || self->stopping) return;
    try {
      self->upload->start_trailing(id);
    } catch (const std::exception& e) {
      ++self->stats.journal_errors;
      run->trail_outcome = upload::Outcome::retry_later(std::string("journal: ") + e.what());
      self->upload->retry_trailing(run);
    }
  });
  c_.changed();
}

void UploadStage::upload_done(std::shared_ptr<Run> run) {
  if (c_.stopping) return;
  try {
    if (run->outcome.parked()) return park(run, run->outcome.reason);
    if (run->outcome.retrying()) return schedule_retry(run, run->outcome.reason);
    for (const auto& f : c_.jr->files(run->id))
      if (f.state == FileState::uploading) c_.jr->set_file_state(f.id, FileState::uploaded);
    c_.jr->set_export_state(run->id, ExportState::uploaded);
    c_.stats.add(run->pipeline, &Counters::exports_uploaded);
    log::info("export uploaded", {{"MESSAGE_ID", std::string(log::message_id::export_uploaded)},
                                  {"EXPORT_ID", run->name},
                                  {"PIPELINE", run->pipeline}});
    c_.runs.erase(run->id);
    c_.changed();
    // The import stage takes it from here (wired by the composition root, daemon/app/).
    c_.events->emit(ExportEvent::uploaded, run->id);
  } catch (const std::exception& e) {
    schedule_retry(run, e.what());
  }
}

}  // namespace fe::pipeline
