#!/usr/bin/env python3
"""A large single-file export through `fhir-edge run`, SIGKILLed mid-upload, restarted.

Issue 6: "A 1 GiB single-file export with multipart; SIGKILL the daemon mid-upload at several
points, restart: the object is byte-identical and the bytes sent again are at most one part per
in-flight part (print them)."

What it does (loopback only):
  * builds one NDJSON file of --size bytes: a --chunk export from tools/fhir-export-gen, repeated
    (the chunk length is not a multiple of the part size, so no two parts of the object have the
    same bytes: a part sent to the wrong number would change the object's hash);
  * starts healthlake-local (strict S3: SigV4, CRC32C per part, 5 MiB minimum part size) with a
    request log, and `fhir-edge run` at validation level minimal (the upload is what is tested;
    structure-only would only make the run longer), part_size auto (8 MiB), concurrency 4;
  * drops the export; once the upload runs, SIGKILLs the daemon each time the request log shows
    the next kill point's number of completed UploadPart requests for the import object, restarts
    it, and lets the last run finish (export state past `uploaded`);
  * checks: the stored object (healthlake-local's data dir) has the SHA-256 of the input; every
    part was completed exactly once or re-sent within the bound; prints per kill the parts and
    bytes the server received again against the bound (parts in flight = concurrency, one part
    each).

The import job is held in SUBMITTED by --job-timing so the emulator does not import 1 GiB.
Exit status 0 = all checks passed.
"""
import argparse, collections, hashlib, json, os, shutil, signal, subprocess, sys, time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../support"))
import harness  # noqa: E402  (tests/support: the emulator and the daemon config)

AK, SK = "AKIALARGEUPLOAD00001", "large-upload-test-secret"
DS = harness.DS
BUCKET = "landing"
MIB = 1 << 20


def log(msg):
    print(f"large-upload: {msg}", flush=True)


def parse_size(s):
    units = {"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30, "KB": 10**3, "MB": 10**6, "GB": 10**9}
    for u, m in units.items():
        if s.endswith(u):
            return int(float(s[: -len(u)]) * m)
    return int(s)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fe", required=True)
    ap.add_argument("--hl", required=True)
    ap.add_argument("--gen", required=True)
    ap.add_argument("--size", default="1GiB", help="size of the single file (at least)")
    ap.add_argument("--chunk", default="61MiB", help="generated chunk repeated to --size")
    ap.add_argument("--kills", default="0.2,0.45,0.7",
                    help="kill points as fractions of the import object's parts")
    ap.add_argument("--concurrency", type=int, default=4)
    ap.add_argument("--time-limit", type=float, default=600)
    ap.add_argument("--keep", action="store_true")
    a = ap.parse_args()
    return harness.run_in_scratch("fe-large-upload.", lambda work, procs: run(a, work, procs), a.keep,
                                  stop_wait=20)


def build_input(a, work, path):
    """One file of at least --size bytes; returns (size, sha256 hex)."""
    t0 = time.monotonic()
    chunk_dir = f"{work}/chunk"
    subprocess.run([a.gen, chunk_dir, "--size", a.chunk, "--seed", "6", "--single-file", "All.ndjson",
                    "--complete", "none"], check=True, stdout=subprocess.DEVNULL)
    chunk = open(f"{chunk_dir}/All.ndjson", "rb").read()
    shutil.rmtree(chunk_dir)
    want = parse_size(a.size)
    h = hashlib.sha256()
    size = 0
    with open(path, "wb") as out:
        while size < want:
            out.write(chunk)
            h.update(chunk)
            size += len(chunk)
    log(f"input {size} bytes ({size / MIB:.0f} MiB, {len(chunk)}-byte chunk x {size // len(chunk)}) "
        f"built in {time.monotonic() - t0:.1f}s")
    return size, h.hexdigest()


def requests(work):
    out = []
    try:
        with open(f"{work}/requests.jsonl") as f:
            for line in f:
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass  # a line being written
    except FileNotFoundError:
        pass
    return out


def journal_state(fe, work, env):
    r = subprocess.run([fe, "status", "--json", "--journal", f"{work}/journal.db"], env=env,
                       capture_output=True, text=True)
    if r.returncode != 0:
        return None
    try:
        ex = json.loads(r.stdout)["exports"]
        return ex[0]["state"] if ex else None
    except (ValueError, KeyError, IndexError):
        return None


def run(a, work, procs):
    env = dict(os.environ, AWS_ACCESS_KEY_ID=AK, AWS_SECRET_ACCESS_KEY=SK, AWS_EC2_METADATA_DISABLED="true")
    env.pop("AWS_SESSION_TOKEN", None)
    incoming = f"{work}/incoming"
    os.makedirs(f"{work}/staging/big")
    os.makedirs(incoming)
    src = f"{work}/staging/big/All.ndjson"
    size, digest = build_input(a, work, src)
    part = 8 * MIB  # part_size auto for a file under 78 GiB
    nparts = (size + part - 1) // part
    kill_points = sorted({max(1, min(nparts - 1, int(float(x) * nparts))) for x in a.kills.split(",") if x})

    try:
        port = harness.start_emulator(a.hl, work, procs, AK, SK, request_log="requests.jsonl",
                                      buckets=(BUCKET, "results"),
                                      args=["--job-timing", "submitted=3600s,queued=1s,run=1s"])
    except RuntimeError as e:
        log(str(e))
        return False
    cfg = harness.write_config(work, port, "large", validation_level="minimal", bucket=BUCKET,
                               rest=f"""metrics: {{ listen: off }}
upload: {{ part_size: auto, concurrency: {a.concurrency} }}
log: {{ level: info }}
""")
    key = "exports/big/import/All.ndjson"
    daemon_log = open(f"{work}/daemon.log", "a")

    def start():
        daemon_log.write(f"=== start {time.time():.3f}\n")
        daemon_log.flush()
        p = subprocess.Popen([a.fe, "run", "--config", cfg], env=env, stdout=daemon_log, stderr=subprocess.STDOUT)
        procs.append(p)
        return p

    def parts_done():
        return sum(1 for r in requests(work)
                   if r.get("operation") == "UploadPart" and r.get("key") == key and r.get("status") == 200)

    deadline = time.monotonic() + a.time_limit
    t0 = time.monotonic()
    d = start()
    os.rename(f"{work}/staging/big", f"{incoming}/big")
    open(f"{incoming}/big/.done", "w").close()
    kills = []
    for target in kill_points:
        while parts_done() < target:
            if d.poll() is not None:
                log(f"daemon exited {d.returncode} on its own (see {work}/daemon.log)")
                return False
            if time.monotonic() > deadline:
                log(f"time limit before kill point {target}; parts done {parts_done()}")
                return False
            time.sleep(0.02)
        d.send_signal(signal.SIGKILL)
        d.wait()
        seen = parts_done()
        kills.append((target, seen, len(requests(work))))
        log(f"SIGKILL after {seen} completed import parts (kill point {target}) at {time.monotonic() - t0:.1f}s")
        d = start()
    while True:
        st = journal_state(a.fe, work, env)
        if st in ("uploaded", "import_starting", "importing", "imported"):
            break
        if st in ("parked", "failed"):
            log(f"export {st} (see {work}/daemon.log)")
            return False
        if d.poll() is not None:
            log(f"daemon exited {d.returncode} on its own (see {work}/daemon.log)")
            return False
        if time.monotonic() > deadline:
            log(f"time limit; export state {st}")
            return False
        time.sleep(0.5)
    elapsed = time.monotonic() - t0
    d.send_signal(signal.SIGTERM)
    try:
        rc = d.wait(60)
    except subprocess.TimeoutExpired:
        d.kill()
        log("daemon did not stop within 60 s of SIGTERM")
        return False
    if rc != 0:
        log(f"daemon exited {rc} after SIGTERM")
        return False

    # Byte identity: the stored object is a file named by the SHA-256 of its key.
    obj = f"{work}/emulator/s3/buckets/{BUCKET}/" + hashlib.sha256(key.encode()).hexdigest()
    if not os.path.exists(obj):
        cands = [os.path.join(dp, fn) for dp, _, fns in os.walk(f"{work}/emulator") for fn in fns
                 if fn == hashlib.sha256(key.encode()).hexdigest()]
        obj = cands[0] if cands else obj
    h = hashlib.sha256()
    stored = 0
    with open(obj, "rb") as f:
        while True:
            b = f.read(MIB * 8)
            if not b:
                break
            h.update(b)
            stored += len(b)
    ok = True
    if stored != size or h.hexdigest() != digest:
        log(f"FAIL: stored object {stored} bytes sha256 {h.hexdigest()}, input {size} bytes sha256 {digest}")
        ok = False
    else:
        log(f"object byte-identical: {stored} bytes, sha256 {digest}")

    # Re-sent parts, per kill: a completed UploadPart for a part the server had already completed
    # counts against the kill whose restart window it falls in (a part cut off by the kill but
    # completed by the server just after it lands in that window too).
    reqs = requests(work)
    up = [(i, r) for i, r in enumerate(reqs) if r.get("operation") == "UploadPart" and r.get("key") == key]
    total_bytes = sum(r.get("bytes_in", 0) for _, r in up)
    completed = collections.Counter(r["part_number"] for _, r in up if r.get("status") == 200)
    bound_parts = a.concurrency
    starts = [at for _, _, at in kills]
    again = collections.defaultdict(list)
    seen = set()
    for i, r in up:
        if r.get("status") != 200:
            continue
        if r["part_number"] in seen:
            window = sum(1 for s in starts if s <= i)  # 0: before the first kill
            again[window].append(r)
        seen.add(r["part_number"])
    if again.get(0):
        log(f"FAIL: {len(again[0])} part(s) completed twice before any kill")
        ok = False
    for n, (target, seen_parts, at) in enumerate(kills, 1):
        resent_bytes = sum(r.get("bytes_in", 0) for r in again[n])
        log(f"kill {n} (after {seen_parts} parts): {len(again[n])} part(s), {resent_bytes} bytes received "
            f"again; bound {bound_parts} part(s) in flight = {bound_parts * part} bytes")
        if len(again[n]) > bound_parts or resent_bytes > bound_parts * part:
            log(f"FAIL: kill {n} re-sent more than one part per in-flight part")
            ok = False
    dup = sum(c - 1 for c in completed.values())
    extra = max(0, total_bytes - size)
    log(f"total: {len(completed)} parts of {nparts}, {total_bytes} part bytes read by the server for a "
        f"{size}-byte object ({extra} more), {dup} part(s) completed twice; bound over {len(kills)} kills: "
        f"{len(kills) * bound_parts} parts / {len(kills) * bound_parts * part} bytes; run {elapsed:.1f}s")
    if len(completed) != nparts:
        log(f"FAIL: {len(completed)} distinct parts completed, expected {nparts}")
        ok = False
    if dup > len(kills) * bound_parts or extra > len(kills) * bound_parts * part:
        log("FAIL: more re-sent than the bound")
        ok = False
    if len(kills) != len(kill_points):
        ok = False
    return ok


if __name__ == "__main__":
    sys.exit(main())
