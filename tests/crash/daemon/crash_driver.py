#!/usr/bin/env python3
"""Crash harness: `fhir-edge run` against healthlake-local, SIGKILLed at seeded random moments.

Starts the emulator (small --min-part-size so a ~20 MB file is a multipart upload with 5 MiB
parts), drops several exports (one large single-file export, several multi-file ones, known
invalid lines), then kills the daemon with SIGKILL after a random 0.2-3 s and restarts it,
--kills times, and lets it finish. Then every invariant is checked from the emulator's request
log, data directory and ListFHIRImportJobs, and from the journal; any violation fails loudly.

Run with Debian's /usr/bin/python3 (botocore 1.29 for ListFHIRImportJobs).
"""
import argparse, collections, datetime, glob, json, os, random, signal, sqlite3, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../support"))
import harness  # noqa: E402  (tests/support: the emulator and the daemon config)

AK, SK = "AKIACRASHTEST0000001", "crash-test-secret-value"
DS = harness.DS
PART = 5 * 1024 * 1024
CONCURRENCY = 4
TERMINAL = {"imported", "import_failed", "nothing_to_import", "parked", "failed"}
# The AWS layer's retry policy (daemon/aws/retry.hpp, "standard" mode): attempts per request, and
# the full-jitter delay rand[0,1) x min(2^(n-1) s, 20 s) after failed attempt n.
MAX_ATTEMPTS = 3
MAX_BACKOFF = 20.0
# Errors the policy retries (the same request again within a burst); anything else is an answer.
RETRIED_ERRORS = {"InternalError", "InternalServerException", "SlowDown", "ThrottlingException",
                  "RequestTimeTooSkewed", "ServiceUnavailable", "RequestTimeout"}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fe", required=True)
    ap.add_argument("--hl", required=True)
    ap.add_argument("--gen", required=True)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--faults", default="", help="healthlake-local --faults spec (seed is appended)")
    ap.add_argument("--large", default="20MiB", help="size of the single-file export")
    ap.add_argument("--small-exports", type=int, default=3)
    ap.add_argument("--waves", type=int, default=1, help="drop the small exports in this many waves")
    ap.add_argument("--time-limit", type=float, default=200.0, help="seconds for the run after generation")
    ap.add_argument("--batch-wait", default="0s",
                    help="import.batch_max_wait: >0 makes the waves' exports share batch jobs")
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    return harness.run_in_scratch("fe-crash.", lambda work, procs: run(a, rng, work, procs), a.keep)


def log(msg):
    print(f"crash: {msg}", flush=True)


def run(a, rng, work, procs):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK, AWS_EC2_METADATA_DISABLED="true")
    env.pop("AWS_SESSION_TOKEN", None)
    hl_args = ["--min-part-size", str(64 * 1024), "--job-timing", "submitted=0.2s,queued=0.2s,run=0.5s"]
    if a.faults:
        hl_args += ["--faults", f"{a.faults},seed={a.seed}"]
    port = harness.start_emulator(a.hl, work, procs, AK, SK, args=hl_args)
    incoming = f"{work}/incoming"
    os.makedirs(incoming)
    cfg = harness.write_config(work, port, "crash", rest=f"""metrics: {{ listen: off }}
upload: {{ part_size: 5MiB, concurrency: {CONCURRENCY} }}
import: {{ poll_min: 1s, poll_max: 2s, batch_max_wait: {a.batch_wait} }}
""")
    subprocess.run([a.fe, "check-config", "--config", cfg], check=True, env=env, stdout=subprocess.DEVNULL)

    # Exports: generated under a temporary name, renamed in (as bulk-data clients do).
    specs = [("large", ["--size", a.large, "--single-file", "Everything.ndjson", "--invalid-every", "997"])]
    for i in range(a.small_exports):
        specs.append((f"small{i}", ["--patients", str(rng.randint(5, 25)), "--invalid-every", str(rng.randint(7, 40))]))
    gens = {}
    t0 = time.monotonic()
    for i, (name, extra) in enumerate(specs):
        gens[name] = harness.generate_export(a.gen, f"{incoming}/.tmp-{name}", a.seed * 100 + i, extra)
    log(f"generated {len(specs)} exports in {time.monotonic() - t0:.1f}s")

    def status():
        return (harness.status(a.fe, env, journal=f"{work}/journal.db") or {}).get("exports")

    def journal_query(sql, default):
        # The daemon's journal, read-only, between kills (default: not there yet, or locked).
        try:
            c = sqlite3.connect(f"file:{work}/journal.db?mode=ro", uri=True)
            try:
                return c.execute(sql).fetchall()
            finally:
                c.close()
        except sqlite3.Error:
            return default

    def trailing():
        # Files still `uploading`: an imported export's archive copy, rejects or report.json are
        # still going (they trail the import objects, issue 13 item 5).
        return journal_query("SELECT count(*) FROM files WHERE state='uploading'", [(1,)])[0][0]

    def pending_digests():
        # Exports taken before their content digest whose spool pass has not recorded it yet
        # (docs/pipeline.md "One pass"): the window between the take and `spooled`.
        return [r[0] for r in journal_query(
            "SELECT name FROM exports WHERE substr(digest,1,8)='pending:' AND "
            "state IN ('discovered','complete','spooling')", [])]

    def journaled():
        return journal_query("SELECT count(*) FROM exports", [(0,)])[0][0]

    def all_done(st):
        return (st is not None and len(st) == len(specs) and all(e["state"] in TERMINAL for e in st)
                and trailing() == 0)

    def start():
        # The kill delay counts from the end of start-up (seconds under ASan), so that kills
        # land in the work rather than in initialisation.
        return harness.start_daemon(a.fe, cfg, env, f"{work}/daemon.log", procs)

    deadline = time.monotonic() + a.time_limit
    d = start()
    # Small exports first, the large one a moment later, so kills land in every phase. With
    # --waves W the small exports come in W waves spread over the kills (the bench: 200 kills
    # would otherwise mostly hit an idle daemon).
    smalls = [n for n, _ in specs[1:]]
    per_wave = -(-len(smalls) // a.waves)
    waves = [smalls[i:i + per_wave] for i in range(0, len(smalls), per_wave)]
    every = max(1, a.kills // max(1, len(waves)))
    dropped = 0
    for name in waves.pop(0) if waves else []:
        os.rename(f"{incoming}/.tmp-{name}", f"{incoming}/{name}")
        dropped += 1
    dropped_large = False
    kills = 0
    pending_kills = collections.Counter()  # per export: kills inside its pending-digest window
    window_kills = 0  # kills with at least one export in that window
    while kills < a.kills and time.monotonic() < deadline:
        delay = rng.uniform(0.2, 3.0)
        # A kill lands in the pending-digest window as soon as one is seen (up to 3 per export,
        # so each still gets through): random delays of 0.2 s and more would almost never hit it.
        t_wait = time.monotonic()
        end = t_wait + delay
        while time.monotonic() < end:
            window = [n for n in pending_digests() if pending_kills[n] < 3]
            if window:
                time.sleep(rng.uniform(0, 0.03))
                break
            time.sleep(0.01)
        waited = time.monotonic() - t_wait
        if not dropped_large:
            os.rename(f"{incoming}/.tmp-large", f"{incoming}/large")
            dropped_large = True
            dropped += 1
        elif waves and kills % every == 0:
            for name in waves.pop(0):
                os.rename(f"{incoming}/.tmp-{name}", f"{incoming}/{name}")
                dropped += 1
            log(f"dropped a wave of exports ({dropped} of {len(specs)} dropped)")
        if d.poll() is not None:
            return fail(work, f"daemon exited {d.returncode} on its own before kill {kills + 1} (see daemon.log)")
        d.send_signal(signal.SIGKILL)
        d.wait()
        kills += 1
        inside = pending_digests()  # still pending once the daemon is dead: the kill was inside
        for n in inside:
            pending_kills[n] += 1
        window_kills += 1 if inside else 0
        st = status()
        states = collections.Counter(e["state"] for e in st) if st else {}
        log(f"kill {kills}/{a.kills} after {waited:.2f}s: {dict(states)}")
        d = start()
        if len(st or []) < dropped:
            # An export found by the start-up scan is taken only after the watcher's 5 s
            # scan_quiet, which every restart begins anew: wait until the dropped exports are
            # journaled, or kills every 0.2-3 s would only ever hit the watcher.
            while time.monotonic() < deadline and journaled() < dropped and d.poll() is None:
                time.sleep(0.01)
            log(f"{dropped} exports journaled; kills hit spool, upload and import")
    for name in sum(waves, []):
        os.rename(f"{incoming}/.tmp-{name}", f"{incoming}/{name}")
    if not dropped_large:
        os.rename(f"{incoming}/.tmp-large", f"{incoming}/large")
    st = None
    while time.monotonic() < deadline:
        st = status()
        if all_done(st):
            break
        if d.poll() is not None:
            return fail(work, f"daemon exited {d.returncode} on its own after the kills (see daemon.log)")
        time.sleep(0.5)
    d.send_signal(signal.SIGTERM)
    try:
        rc = d.wait(30)
    except subprocess.TimeoutExpired:
        d.kill()
        return fail(work, "daemon did not stop within 30 s of SIGTERM")
    st = status()
    log(f"{window_kills} of the kills hit exports with their content digest pending (kills per "
        f"export: {dict(pending_kills)})")
    log(f"{kills} kills, run took {a.time_limit - (deadline - time.monotonic()):.1f}s; states: "
        + ", ".join(f"{e['name']}={e['state']}" for e in (st or [])))
    if rc != 0:
        return fail(work, f"daemon exited {rc} after SIGTERM")
    return check(a, work, port, env, specs, gens, st, kills)


def fail(work, msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    print("--- daemon log (last 60 lines)", file=sys.stderr)
    print(harness.log_tail(f"{work}/daemon.log"), file=sys.stderr)
    return False


def check(a, work, port, env, specs, gens, st, kills):
    errors = []
    names = [n for n, _ in specs]
    by_name = {e["name"]: e for e in (st or [])}
    # 1. Every export imported.
    for n in names:
        e = by_name.get(n)
        if e is None:
            errors.append(f"export {n} missing from status")
        elif e["state"] != "imported":
            errors.append(f"export {n} ended '{e['state']}' (last_error: {e['last_error']})")
    if errors:
        return fail(work, "; ".join(errors))

    reqs = harness.read_requests(f"{work}/requests.ndjson")
    # 2. Exactly one job per export, one per batch: an export may share its job with the other
    #    exports of its batch (docs/import.md, Batches), but successful Starts map to one JobId per
    #    ClientToken, ListFHIRImportJobs shows one job per JobName (no batch started twice), every
    #    export's status names a job HealthLake has, and no job was started that no export follows.
    jobs_by_token = collections.defaultdict(set)
    for r in reqs:
        if r["operation"] == "StartFHIRImportJob" and r["status"] == 200:
            jobs_by_token[r.get("client_token")].add(r.get("job_id"))
    for tok, ids in jobs_by_token.items():
        if len(ids) != 1:
            errors.append(f"ClientToken {tok} got {len(ids)} JobIds: {sorted(ids)}")
    all_job_ids = set().union(*jobs_by_token.values()) if jobs_by_token else set()
    listed = harness.list_import_jobs(port, AK, SK)
    per_name = collections.Counter(j["JobName"] for j in listed)
    for jn, c in per_name.items():
        if c != 1:
            errors.append(f"ListFHIRImportJobs shows {c} jobs named {jn}")
    by_id = {j["JobId"]: j for j in listed}
    job_of = {}
    for n in names:
        jid = (by_name[n].get("import_job") or {}).get("job_id")
        j = by_id.get(jid)
        if j is None:
            errors.append(f"status says {n} job {jid}, which ListFHIRImportJobs does not show")
            continue
        job_of[n] = j
        if j["JobStatus"] != "COMPLETED_WITH_ERRORS" and j["JobStatus"] != "COMPLETED":
            errors.append(f"job for {n} ended {j['JobStatus']}")
    followed = {j["JobId"] for j in job_of.values()}
    if all_job_ids != followed or len(listed) != len(followed):
        errors.append(f"{len(all_job_ids)} import jobs started, {len(listed)} listed, {len(followed)} "
                      f"followed by the {len(names)} exports (tokens: {sorted(jobs_by_token)})")
    members = collections.defaultdict(list)  # job id → the exports it imports
    for n, j in job_of.items():
        members[j["JobId"]].append(n)

    # 3. Imported resources == the valid input lines, once each.
    imported = harness.imported_resources(work)
    counts = collections.Counter((r["resourceType"], r["id"]) for r in imported)
    dups = [k for k, c in counts.items() if c != 1]
    if dups:
        errors.append(f"{len(dups)} resources imported more than once, e.g. {dups[:3]}")
    per_job = collections.Counter(r["jobId"] for r in imported)
    total_valid = 0
    for n in names:
        g = gens[n]
        valid = g["resources"] - len(g["invalid"])
        total_valid += valid
        e = by_name[n]
        if e["resources_valid"] != valid or e["resources_rejected"] != len(g["invalid"]):
            errors.append(f"{n}: status valid/rejected {e['resources_valid']}/{e['resources_rejected']}, "
                          f"generator {valid}/{len(g['invalid'])}")
    for jid, ns in members.items():  # a batch's job imports exactly its members' valid lines
        want = sum(gens[n]["resources"] - len(gens[n]["invalid"]) for n in ns)
        if per_job.get(jid, 0) != want:
            errors.append(f"job {jid} ({', '.join(sorted(ns))}) imported {per_job.get(jid, 0)} "
                          f"resources, {want} valid lines")
    if len(counts) != total_valid:
        errors.append(f"{len(counts)} distinct resources imported, {total_valid} valid input lines")

    # 4. No multipart upload left open (the emulator keeps unfinished uploads in s3/uploads/).
    open_uploads = [os.path.basename(p) for p in glob.glob(f"{work}/emulator/s3/uploads/*")]
    if open_uploads:
        errors.append(f"{len(open_uploads)} multipart uploads left open: {open_uploads[:3]}")
    creates = sum(1 for r in reqs if r["operation"] == "CreateMultipartUpload" and r["status"] == 200)
    completes = {(r["key"]) for r in reqs if r["operation"] == "CompleteMultipartUpload" and r["status"] == 200}

    # 5. Journal integrity, and status --json agrees with the store.
    ic = harness.journal_integrity(f"{work}/journal.db")
    if ic != "ok":
        errors.append(f"journal integrity_check: {ic}")
    objects = {}
    for meta in glob.glob(f"{work}/emulator/s3/buckets/landing/*.json"):
        m = json.load(open(meta))
        body = meta[:-5]
        objects[m.get("key")] = os.path.getsize(body) if os.path.exists(body) else -1
    for n in names:
        files = (harness.status(a.fe, env, journal=f"{work}/journal.db", export=n) or {}).get("files")
        if files is None:
            errors.append(f"status --export {n} --json failed")
            continue
        for f in files:
            if f["import_key"] and f["import_key"] not in objects:
                errors.append(f"{n}/{f['name']}: import object {f['import_key']} not in S3")
            elif f["import_key"] and f["bytes_uncompressed"] and objects[f["import_key"]] != f["bytes_uncompressed"]:
                errors.append(f"{n}/{f['name']}: S3 object {objects[f['import_key']]} bytes, "
                              f"journal {f['bytes_uncompressed']}")

    # 5b. Every export's content digest is that of its files (journal/digest.hpp, sha256-pieces),
    #     never left pending: exports at new paths are taken before their digest, which the spool
    #     pass hashes and records before `spooled`, also across kills (docs/pipeline.md "One pass").
    for n in names:
        e = by_name[n]
        files = (harness.status(a.fe, env, journal=f"{work}/journal.db", export=n) or {}).get("files") or []
        src = e.get("source_path") or ""
        paths = {f["name"]: (os.path.join(src, f["name"]) if os.path.isdir(src) else src) for f in files}
        if not files or not all(os.path.isfile(p) for p in paths.values()):
            errors.append(f"{n}: cannot check the digest (source {src} not all there)")
        elif e.get("digest") != content_digest(paths):
            errors.append(f"{n}: journal digest {e.get('digest')}, content {content_digest(paths)}")

    # 6. Bytes re-sent are bounded by one part per in-flight part per kill (plus, with faults,
    #    one part per failed request).
    sent = collections.Counter()
    failed_uploads = 0
    for r in reqs:
        if r["operation"] in ("UploadPart", "PutObject") and r.get("bucket") == "landing":
            sent[r["key"]] += r.get("bytes_in") or 0
            if r["status"] != 200 and r.get("faults"):
                failed_uploads += 1  # an injected fault: the client must send that part again
    resent = 0
    for key, b in sent.items():
        size = objects.get(key)
        if size is None:
            errors.append(f"{key}: uploaded but no object")
            continue
        resent += max(0, b - size)
    bound = (kills * CONCURRENCY + failed_uploads) * PART
    log(f"bytes uploaded {sum(sent.values())}, objects {sum(v for k, v in objects.items() if k in sent)}, "
        f"re-sent {resent} (bound {bound}: {kills} kills x {CONCURRENCY} in flight + {failed_uploads} injected "
        f"faults, x {PART} B); {creates} CreateMultipartUpload, {len(completes)} objects completed")
    if resent > bound:
        errors.append(f"re-sent {resent} bytes > bound {bound}")

    # 7. The request rate stays within the retry policy.
    errors += check_request_rate(work, reqs)
    if errors:
        return fail(work, "invariants violated:\n  " + "\n  ".join(errors))
    log(f"ok: {len(names)} exports imported, each by exactly one job ({len(members)} jobs, batches "
        f"{sorted(len(ns) for ns in members.values())}), {total_valid} resources once each, "
        f"no open uploads, journal ok")
    return True


def content_digest(paths):
    """journal::content_digest, pieces scheme: per file the SHA-256 of its 8 MiB pieces' SHA-256s;
    then over the files in byte-wise name order: name, NUL, size (8 bytes big-endian), root."""
    import hashlib
    piece = 8 << 20
    top = hashlib.sha256()
    for name in sorted(paths, key=lambda s: s.encode()):
        root, size = hashlib.sha256(), 0
        with open(paths[name], "rb") as f:
            while True:
                b = f.read(piece)
                if not b:
                    break
                size += len(b)
                root.update(hashlib.sha256(b).digest())
        top.update(name.encode() + b"\0" + size.to_bytes(8, "big") + root.digest())
    return "sha256-pieces:" + top.hexdigest()


def check_request_rate(work, reqs):
    """Retries per request <= MAX_ATTEMPTS, backoff really applied, no request storm.

    A request's identity is what it addresses (operation, bucket, key, upload id, part number,
    client token, job id). The next request with the same identity after a failure the policy
    retries (5xx, throttling, skew, dropped connection), starting within MAX_BACKOFF + 1 s of it
    and with no daemon (re)start in between, is a retry of the same logical request: a burst.
    A later one (the pipeline's own retry minutes later, or after a kill) starts a new burst.
    """
    errors = []
    starts = []
    for line in open(f"{work}/daemon.log", errors="replace"):
        if line.startswith("=== start "):
            starts.append(float(line.split()[2]))

    def t_end(r):
        return datetime.datetime.strptime(r["time"], "%Y-%m-%dT%H:%M:%S.%fZ").replace(
            tzinfo=datetime.timezone.utc).timestamp()

    def t_start(r):
        return t_end(r) - r.get("ms", 0) / 1000.0

    def describe(burst):  # each attempt of a burst: what failed it and the wait before the next
        out = []
        for x, nxt in zip(burst, burst[1:] + [None]):
            why = x.get("error") or x.get("faults") or str(x["status"])
            if nxt:
                why += f", next after {t_start(nxt) - t_end(x):.3f}s"
            out.append(f"{x['status']} {why}")
        return "; ".join(out)

    def failed(r):
        return (r["status"] >= 500 or r["status"] == 429 or r.get("error") in RETRIED_ERRORS
                or "drop" in (r.get("faults") or ""))

    by_id = collections.defaultdict(list)
    for r in reqs:
        key = (r["operation"], r.get("bucket"), r.get("key"), r.get("upload_id"), r.get("part_number"),
               r.get("client_token"), r.get("job_id") if r["operation"] != "StartFHIRImportJob" else None)
        by_id[key].append(r)
    bursts = 0
    longest = 0
    gaps = collections.defaultdict(list)  # failed attempt n -> seconds until the retry started
    retry_times = []
    for key, rs in by_id.items():
        rs.sort(key=t_end)
        attempts = 1
        skew_retries = 0  # a retry after a clock-skew correction is free (aws/retry.cpp, as the SDKs)
        burst = [rs[0]]
        for p, r in zip(rs, rs[1:]):
            start_r = t_start(r)
            gap = start_r - t_end(p)
            restarted = any(t_end(p) - 0.5 <= s <= start_r + 0.5 for s in starts)
            if failed(p) and not restarted and gap <= MAX_BACKOFF + 1.0:
                attempts += 1
                burst.append(r)
                retry_times.append(start_r)
                if p.get("error") != "RequestTimeTooSkewed":  # corrected clock: retried at once
                    gaps[attempts - 1].append(max(0.0, gap))
                else:
                    skew_retries += 1
                if attempts - skew_retries > MAX_ATTEMPTS:
                    errors.append(f"{key[0]} {key[2] or key[5] or key[6] or ''}: {attempts} attempts in one "
                                  f"burst (policy: {MAX_ATTEMPTS}): {describe(burst)}")
            else:
                burst = [r]
                if attempts > 1:
                    bursts += 1
                attempts = 1
                skew_retries = 0
            longest = max(longest, attempts)
        if attempts > 1:
            bursts += 1
    # Backoff: the mean wait after failed attempt n must be a good part of the policy's mean
    # (0.5 x min(2^(n-1), 20) s); an immediate-retry loop would sit near 0. Full jitter has no
    # minimum per wait, so the check is on the mean of several.
    summary = []
    for n in sorted(gaps):
        g = gaps[n]
        expected = 0.5 * min(2 ** (n - 1), MAX_BACKOFF)
        mean = sum(g) / len(g)
        summary.append(f"after attempt {n}: {len(g)} retries, mean wait {mean:.3f}s (policy mean {expected:.2f}s, "
                       f"min {min(g):.3f}s, max {max(g):.3f}s)")
        if len(g) >= 8 and mean < 0.15 * expected:
            errors.append(f"retries after attempt {n} waited {mean:.3f}s on average, policy mean {expected:.2f}s: "
                          "no real backoff")
    # Storm: retries started in any 1 s window, and HealthLake calls in any 1 s window.
    def max_per_second(times):
        times = sorted(times)
        best, i = 0, 0
        for j, t in enumerate(times):
            while t - times[i] > 1.0:
                i += 1
            best = max(best, j - i + 1)
        return best
    hl_ops = {"StartFHIRImportJob", "DescribeFHIRImportJob", "ListFHIRImportJobs", "DescribeFHIRDatastore"}
    hl_times = [t_end(r) for r in reqs if r["operation"] in hl_ops]
    retry_peak = max_per_second(retry_times)
    hl_peak = max_per_second(hl_times)
    # Bounds far above what the policy produces (a few per second) and far below a retry loop
    # without backoff on loopback (hundreds per second).
    retry_bound = 4 * CONCURRENCY * MAX_ATTEMPTS
    hl_bound = 10
    firsts = len(reqs) - len(retry_times)
    log(f"request rate: {len(reqs)} requests, {len(retry_times)} retries in {bursts} bursts "
        f"({100.0 * len(retry_times) / max(1, firsts):.1f}% of first attempts), longest burst {longest} "
        f"attempts (policy {MAX_ATTEMPTS}); peak {retry_peak} retries/s (bound {retry_bound}), "
        f"peak {hl_peak} HealthLake calls/s (bound {hl_bound})")
    for line in summary:
        log("  backoff " + line)
    if retry_peak > retry_bound:
        errors.append(f"retry storm: {retry_peak} retries started within 1 s (bound {retry_bound})")
    if hl_peak > hl_bound:
        errors.append(f"HealthLake request storm: {hl_peak} calls within 1 s (bound {hl_bound})")
    return errors


if __name__ == "__main__":
    sys.exit(main())
