#!/usr/bin/env python3
"""Crash harness: `fhir-edge run` against healthlake-local, SIGKILLed at seeded random moments.

Starts the emulator (small --min-part-size so a ~20 MB file is a multipart upload with 5 MiB
parts), drops several exports (one large single-file export, several multi-file ones, known
invalid lines), then kills the daemon with SIGKILL after a random 0.2-3 s and restarts it,
--kills times, and lets it finish. Then every invariant is checked from the emulator's request
log, data directory and ListFHIRImportJobs, and from the journal; any violation fails loudly.

Run with Debian's /usr/bin/python3 (botocore 1.29 for ListFHIRImportJobs).
"""
import argparse, collections, glob, json, os, random, shutil, signal, subprocess, sys, tempfile, time

AK, SK = "AKIACRASHTEST0000001", "crash-test-secret-value"
DS = "0123456789abcdef0123456789abcdef"
PART = 5 * 1024 * 1024
CONCURRENCY = 4
TERMINAL = {"imported", "import_failed", "parked", "failed"}


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
    ap.add_argument("--keep", action="store_true", help="keep the work directory")
    a = ap.parse_args()
    rng = random.Random(a.seed)
    work = tempfile.mkdtemp(prefix="fe-crash.")
    procs = []
    ok = False
    try:
        ok = run(a, rng, work, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
        if ok and not a.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"crash: work directory kept: {work}", file=sys.stderr)
    return 0 if ok else 1


def log(msg):
    print(f"crash: {msg}", flush=True)


def run(a, rng, work, procs):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK, AWS_EC2_METADATA_DISABLED="true")
    env.pop("AWS_SESSION_TOKEN", None)
    hl_args = [a.hl, "--data", f"{work}/emulator", "--listen", "127.0.0.1:0", "--port-file", f"{work}/port",
               "--access-key", AK, "--secret-key", SK, "--region", "us-east-1", "--datastore", DS,
               "--bucket", "landing", "--bucket", "results", "--request-log", f"{work}/requests.ndjson",
               "--min-part-size", str(64 * 1024), "--job-timing", "submitted=0.2s,queued=0.2s,run=0.5s"]
    if a.faults:
        hl_args += ["--faults", f"{a.faults},seed={a.seed}"]
    emu = subprocess.Popen(hl_args, stdout=open(f"{work}/emulator.out", "w"), stderr=subprocess.STDOUT)
    procs.append(emu)
    for _ in range(200):
        if os.path.getsize(f"{work}/port") if os.path.exists(f"{work}/port") else 0:
            break
        time.sleep(0.1)
    port = open(f"{work}/port").read().strip()
    incoming = f"{work}/incoming"
    os.makedirs(incoming)
    cfg = f"{work}/fhir-edge.yaml"
    with open(cfg, "w") as f:
        f.write(f"""aws:
  region: us-east-1
  credentials: {{ source: env }}
  endpoints: {{ s3: "http://127.0.0.1:{port}", healthlake: "http://127.0.0.1:{port}" }}
  s3_path_style: true
pipelines:
  - name: crash
    watch: {incoming}
    complete_when: {{ marker: .done, bulk_manifest: false, client_log: false }}
    validation_level: structure-only
    s3: {{ bucket: landing, prefix: exports }}
    healthlake:
      datastore_id: {DS}
      data_access_role_arn: arn:aws:iam::123456789012:role/HealthLakeImport
      output_s3_uri: s3://results/imports/
      output_kms_key_id: alias/healthlake
spool: {{ dir: {work}/spool }}
journal: {{ path: {work}/journal.db }}
metrics: {{ listen: off }}
upload: {{ part_size: 5MiB, concurrency: {CONCURRENCY} }}
import: {{ poll_min: 1s, poll_max: 2s }}
""")
    subprocess.run([a.fe, "check-config", "--config", cfg], check=True, env=env, stdout=subprocess.DEVNULL)

    # Exports: generated under a temporary name, renamed in (as bulk-data clients do).
    specs = [("large", ["--size", a.large, "--single-file", "Everything.ndjson", "--invalid-every", "997"])]
    for i in range(a.small_exports):
        specs.append((f"small{i}", ["--patients", str(rng.randint(5, 25)), "--invalid-every", str(rng.randint(7, 40))]))
    gens = {}
    t0 = time.monotonic()
    for i, (name, extra) in enumerate(specs):
        tmp = f"{incoming}/.tmp-{name}"
        out = subprocess.run([a.gen, tmp, "--seed", str(a.seed * 100 + i), "--complete", "marker"] + extra,
                             check=True, capture_output=True, text=True).stdout
        gens[name] = json.loads(out)
    log(f"generated {len(specs)} exports in {time.monotonic() - t0:.1f}s")

    def status():
        r = subprocess.run([a.fe, "status", "--json", "--journal", f"{work}/journal.db"], env=env,
                           capture_output=True, text=True)
        if r.returncode != 0:
            return None
        try:
            return json.loads(r.stdout)["exports"]
        except (ValueError, KeyError):
            return None

    def all_done(st):
        return st is not None and len(st) == len(specs) and all(e["state"] in TERMINAL for e in st)

    daemon_log = open(f"{work}/daemon.log", "a")

    def start():
        daemon_log.write(f"=== start {time.time():.3f}\n")
        daemon_log.flush()
        p = subprocess.Popen([a.fe, "run", "--config", cfg], env=env, stdout=daemon_log, stderr=subprocess.STDOUT)
        procs.append(p)
        # The kill delay counts from the end of start-up (seconds under ASan), so that kills
        # land in the work rather than in initialisation.
        started = time.monotonic() + 20
        while time.monotonic() < started and p.poll() is None:
            with open(f"{work}/daemon.log") as f:
                if f.read().rsplit("=== start", 1)[-1].find("fhir-edge started") >= 0:
                    break
            time.sleep(0.05)
        return p

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
    while kills < a.kills and time.monotonic() < deadline:
        delay = rng.uniform(0.2, 3.0)
        time.sleep(delay)
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
        st = status()
        states = collections.Counter(e["state"] for e in st) if st else {}
        log(f"kill {kills}/{a.kills} after {delay:.2f}s: {dict(states)}")
        d = start()
        if len(st or []) < dropped:
            # An export found by the start-up scan is taken only after the watcher's 5 s
            # scan_quiet, which every restart begins anew: wait until the dropped exports are
            # journaled, or kills every 0.2-3 s would only ever hit the watcher.
            while time.monotonic() < deadline and len(status() or []) < dropped and d.poll() is None:
                time.sleep(0.2)
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
    log(f"{kills} kills, run took {a.time_limit - (deadline - time.monotonic()):.1f}s; states: "
        + ", ".join(f"{e['name']}={e['state']}" for e in (st or [])))
    if rc != 0:
        return fail(work, f"daemon exited {rc} after SIGTERM")
    return check(a, work, port, env, specs, gens, st, kills)


def fail(work, msg):
    print(f"FAIL: {msg}", file=sys.stderr)
    try:
        lines = open(f"{work}/daemon.log").read().splitlines()
        print("--- daemon log (last 60 lines)", file=sys.stderr)
        print("\n".join(lines[-60:]), file=sys.stderr)
    except OSError:
        pass
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

    reqs = [json.loads(l) for l in open(f"{work}/requests.ndjson") if l.strip()]
    # 2. Exactly one job per export: successful Starts map to one JobId per ClientToken, one
    #    token per export, and ListFHIRImportJobs shows one job per JobName.
    jobs_by_token = collections.defaultdict(set)
    for r in reqs:
        if r["operation"] == "StartFHIRImportJob" and r["status"] == 200:
            jobs_by_token[r.get("client_token")].add(r.get("job_id"))
    for tok, ids in jobs_by_token.items():
        if len(ids) != 1:
            errors.append(f"ClientToken {tok} got {len(ids)} JobIds: {sorted(ids)}")
    all_job_ids = set().union(*jobs_by_token.values()) if jobs_by_token else set()
    if len(all_job_ids) != len(names):
        errors.append(f"{len(all_job_ids)} distinct import jobs started for {len(names)} exports "
                      f"(tokens: {sorted(jobs_by_token)})")
    listed = list_import_jobs(port)
    per_name = collections.Counter(j["JobName"] for j in listed)
    for n in names:
        if per_name.get(n, 0) != 1:
            errors.append(f"ListFHIRImportJobs shows {per_name.get(n, 0)} jobs named {n}")
    job_of = {j["JobName"]: j for j in listed}
    for n in names:
        e, j = by_name[n], job_of.get(n)
        if j and (e.get("import_job") or {}).get("job_id") != j["JobId"]:
            errors.append(f"status says {n} job {(e.get('import_job') or {}).get('job_id')}, HealthLake {j['JobId']}")
        if j and j["JobStatus"] != "COMPLETED_WITH_ERRORS" and j["JobStatus"] != "COMPLETED":
            errors.append(f"job for {n} ended {j['JobStatus']}")

    # 3. Imported resources == the valid input lines, once each.
    imported = [json.loads(l) for l in open(f"{work}/emulator/healthlake/{DS}/resources.jsonl") if l.strip()]
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
        j = job_of.get(n)
        if j and per_job.get(j["JobId"], 0) != valid:
            errors.append(f"{n}: job {j['JobId']} imported {per_job.get(j['JobId'], 0)} resources, {valid} valid lines")
    if len(counts) != total_valid:
        errors.append(f"{len(counts)} distinct resources imported, {total_valid} valid input lines")

    # 4. No multipart upload left open (the emulator keeps unfinished uploads in s3/uploads/).
    open_uploads = [os.path.basename(p) for p in glob.glob(f"{work}/emulator/s3/uploads/*")]
    if open_uploads:
        errors.append(f"{len(open_uploads)} multipart uploads left open: {open_uploads[:3]}")
    creates = sum(1 for r in reqs if r["operation"] == "CreateMultipartUpload" and r["status"] == 200)
    completes = {(r["key"]) for r in reqs if r["operation"] == "CompleteMultipartUpload" and r["status"] == 200}

    # 5. Journal integrity, and status --json agrees with the store.
    ic = subprocess.run(["sqlite3", f"{work}/journal.db", "PRAGMA integrity_check"], capture_output=True, text=True)
    if ic.stdout.strip() != "ok":
        errors.append(f"journal integrity_check: {ic.stdout.strip()} {ic.stderr.strip()}")
    objects = {}
    for meta in glob.glob(f"{work}/emulator/s3/buckets/landing/*.json"):
        m = json.load(open(meta))
        body = meta[:-5]
        objects[m.get("key")] = os.path.getsize(body) if os.path.exists(body) else -1
    for n in names:
        r = subprocess.run([a.fe, "status", "--export", n, "--json", "--journal", f"{work}/journal.db"],
                           env=env, capture_output=True, text=True)
        try:
            files = json.loads(r.stdout)["files"]
        except (ValueError, KeyError):
            errors.append(f"status --export {n} --json failed: {r.stderr.strip()[:200]}")
            continue
        for f in files:
            if f["import_key"] and f["import_key"] not in objects:
                errors.append(f"{n}/{f['name']}: import object {f['import_key']} not in S3")
            elif f["import_key"] and f["bytes_uncompressed"] and objects[f["import_key"]] != f["bytes_uncompressed"]:
                errors.append(f"{n}/{f['name']}: S3 object {objects[f['import_key']]} bytes, "
                              f"journal {f['bytes_uncompressed']}")

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
    if errors:
        return fail(work, "invariants violated:\n  " + "\n  ".join(errors))
    log(f"ok: {len(names)} exports imported by one job each, {total_valid} resources once each, "
        f"no open uploads, journal ok")
    return True


def list_import_jobs(port):
    import botocore.session
    s = botocore.session.get_session()
    c = s.create_client("healthlake", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
                        aws_access_key_id=AK, aws_secret_access_key=SK)
    out, token = [], None
    while True:
        kw = {"DatastoreId": DS, "MaxResults": 500}
        if token:
            kw["NextToken"] = token
        r = c.list_fhir_import_jobs(**kw)
        out += r["ImportJobPropertiesList"]
        token = r.get("NextToken")
        if not token:
            return out


if __name__ == "__main__":
    sys.exit(main())
