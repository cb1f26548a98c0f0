"""Python test kit for the integration scripts written in Python (tests/crash/daemon/crash_driver.py,
tests/integration/large-upload/large_upload.py, tests/integration/metrics/daemon_metrics_test.py):
the Python twin of harness.sh (shell) and healthlake_local.hpp (C++), so that each of them starts
the emulator and writes the daemon's config in one place.

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../support"))
    import harness
    port = harness.start_emulator(hl, work, procs, AK, SK, args=[...], request_log="requests.jsonl")
    cfg = harness.write_config(work, port, "name", rest="metrics: { listen: off }\\n")
"""
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

DS = "0123456789abcdef0123456789abcdef"


def start_emulator(hl, work, procs, access_key, secret_key, args=(), request_log="requests.ndjson",
                   buckets=("landing", "results"), limit=60):
    """healthlake-local on 127.0.0.1:<free port> (--port-file) with data store DS, the buckets, its
    data in WORK/emulator, its output in WORK/emulator.log and its request log in WORK/REQUEST_LOG;
    ARGS are added (--faults, --job-timing, ...). Appends the process to PROCS (the caller stops
    it). Returns the port once it listens; raises RuntimeError if it exits or does not start."""
    port_file = f"{work}/port"
    cmd = [hl, "--data", f"{work}/emulator", "--listen", "127.0.0.1:0", "--port-file", port_file,
           "--access-key", access_key, "--region", "us-east-1", "--datastore", DS]
    for b in buckets:
        cmd += ["--bucket", b]
    cmd += ["--request-log", f"{work}/{request_log}", *args]
    log = f"{work}/emulator.log"
    # The secret goes through the environment, not argv (ps would show it).
    p = subprocess.Popen(cmd, env=dict(os.environ, HEALTHLAKE_LOCAL_SECRET_KEY=secret_key),
                         stdout=open(log, "w"), stderr=subprocess.STDOUT)
    procs.append(p)
    end = time.monotonic() + limit
    while time.monotonic() < end:
        # Written atomically once the emulator listens.
        if os.path.exists(port_file) and os.path.getsize(port_file):
            return int(open(port_file).read())
        if p.poll() is not None:
            raise RuntimeError("healthlake-local exited: " + open(log, errors="replace").read())
        time.sleep(0.1)
    raise RuntimeError(f"healthlake-local did not start within {limit}s")


def write_config(work, port, name, credentials="{ source: env }", validation_level="structure-only",
                 bucket="landing", spool=None, rest="", prefix="exports"):
    """WORK/fhir-edge.yaml: one pipeline NAME watching WORK/incoming (marker .done) that uploads to
    BUCKET (under PREFIX) and imports into data store DS through the emulator on PORT, the spool
    (default: WORK/spool) and the journal (WORK/journal.db) in WORK; REST is added as is
    (metrics, upload, import, log sections). Returns the path."""
    spool = spool or f"{{ dir: {work}/spool }}"
    path = f"{work}/fhir-edge.yaml"
    with open(path, "w") as f:
        f.write(f"""aws:
  region: us-east-1
  credentials: {credentials}
  endpoints: {{ s3: "http://127.0.0.1:{port}", healthlake: "http://127.0.0.1:{port}" }}
  s3_path_style: true
pipelines:
  - name: {name}
    watch: {work}/incoming
    complete_when: {{ marker: .done, bulk_manifest: false, client_log: false }}
    validation_level: {validation_level}
    s3: {{ bucket: {bucket}, prefix: {prefix} }}
    healthlake:
      datastore_id: {DS}
      data_access_role_arn: arn:aws:iam::123456789012:role/HealthLakeImport
      output_s3_uri: s3://results/imports/
      output_kms_key_id: alias/healthlake
spool: {spool}
journal: {{ path: {work}/journal.db }}
{rest}""")
    return path


def run_in_scratch(prefix, run, keep=False, stop_wait=10):
    """Calls run(work, procs) with a fresh scratch directory /tmp/<prefix>XXXXXX and a list for the
    processes it starts; afterwards stops each of them (SIGTERM, SIGKILL after STOP_WAIT s) and
    removes the directory if run returned true and KEEP is not set (else says where it is).
    Returns the exit status: 0 if run returned true, else 1."""
    work = tempfile.mkdtemp(prefix=prefix)
    procs = []
    ok = False
    try:
        ok = run(work, procs)
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(stop_wait)
                except subprocess.TimeoutExpired:
                    p.kill()
        if ok and not keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"{prefix.rstrip('.-')}: work directory kept: {work}", file=sys.stderr)
    return 0 if ok else 1


# --- Driving real daemons and checking from the emulator's side (crash_driver.py, fleet_soak.py) ---

_generators = {}


def generate_export(gen, out_dir, seed, args=(), complete="marker", in_process=False):
    """tools/fhir-export-gen into OUT_DIR (a name the watcher ignores until the caller renames it
    in, as bulk-data clients do); returns the generator's summary ({"resources", "invalid": [{file,
    line, defect}], ...}). IN_PROCESS runs the generator's main() here instead of a new Python
    (the same script and output, without ~0.5 s of interpreter start per export on a loaded
    machine; not thread-safe: it swaps sys.argv and sys.stdout)."""
    argv = [gen, out_dir, "--seed", str(seed), "--complete", complete, *args]
    if not in_process:
        return json.loads(subprocess.run(argv, check=True, capture_output=True, text=True).stdout)
    import contextlib, io, runpy
    if gen not in _generators:
        _generators[gen] = runpy.run_path(gen, run_name="fhir_export_gen")["main"]
    out, saved = io.StringIO(), sys.argv
    try:
        sys.argv = argv
        with contextlib.redirect_stdout(out):
            _generators[gen]()
    finally:
        sys.argv = saved
    return json.loads(out.getvalue())


def valid_resources(export_dir, summary):
    """The (resourceType, id) of every valid line of a generated export: every line but those the
    generator's summary lists as invalid. What HealthLake must import, once each."""
    bad = {(i["file"], i["line"]) for i in summary["invalid"]}
    out = []
    for name in sorted(os.listdir(export_dir)):
        if not name.endswith(".ndjson"):
            continue
        with open(os.path.join(export_dir, name)) as f:
            for n, line in enumerate(f, 1):
                if line.strip() and (name, n) not in bad:
                    r = json.loads(line)
                    out.append((r["resourceType"], r["id"]))
    return out


def status(fe, env, config=None, journal=None, export=None):
    """`fhir-edge status --json` (of CONFIG's journal, or JOURNAL; one EXPORT in detail): the parsed
    document, or None when it fails (journal not there yet, locked, ...)."""
    cmd = [fe, "status", "--json"]
    cmd += ["--config", config] if config else ["--journal", journal]
    if export:
        cmd += ["--export", export]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if r.returncode != 0:
        return None
    try:
        return json.loads(r.stdout)
    except ValueError:
        return None


def start_daemon(fe, config, env, log_path, procs, wait=20.0):
    """`fhir-edge run --config CONFIG`, output appended to LOG_PATH after a line "=== start <time>";
    waits (up to WAIT s; 0: not at all, ask daemon_started() later) until it logs "fhir-edge
    started" so that kills land in the work rather than in initialisation (seconds under ASan).
    Appends the process to PROCS; returns it."""
    with open(log_path, "a") as f:
        f.write(f"=== start {time.time():.3f}\n")
        offset = f.tell()
    out = open(log_path, "a")
    p = subprocess.Popen([fe, "run", "--config", config], env=env, stdout=out, stderr=subprocess.STDOUT)
    out.close()
    p.log_path, p.log_offset = log_path, offset
    procs.append(p)
    end = time.monotonic() + wait
    while time.monotonic() < end and p.poll() is None and not daemon_started(p):
        time.sleep(0.05)
    return p


def daemon_started(p):
    """Whether a daemon from start_daemon() has logged "fhir-edge started" since it was started."""
    with open(p.log_path, errors="replace") as f:
        f.seek(p.log_offset)
        return "fhir-edge started" in f.read()


def log_tail(path, n=60):
    try:
        return "\n".join(open(path, errors="replace").read().splitlines()[-n:])
    except OSError:
        return ""


def read_requests(path):
    """The emulator's request log, one dict per request."""
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def journal_integrity(path):
    """PRAGMA integrity_check of a journal with the sqlite3 CLI: "ok", or what it says."""
    r = subprocess.run(["sqlite3", path, "PRAGMA integrity_check"], capture_output=True, text=True)
    return (r.stdout.strip() + " " + r.stderr.strip()).strip()


def list_import_jobs(port, access_key, secret_key, datastore=DS):
    """Every ListFHIRImportJobs page of DATASTORE (botocore: Debian's /usr/bin/python3)."""
    import botocore.session
    c = botocore.session.get_session().create_client(
        "healthlake", region_name="us-east-1", endpoint_url=f"http://127.0.0.1:{port}",
        aws_access_key_id=access_key, aws_secret_access_key=secret_key)
    out, token = [], None
    while True:
        kw = {"DatastoreId": datastore, "MaxResults": 500}
        if token:
            kw["NextToken"] = token
        r = c.list_fhir_import_jobs(**kw)
        out += r["ImportJobPropertiesList"]
        token = r.get("NextToken")
        if not token:
            return out


def resource_counts(port, datastore=DS):
    """The emulator's count of imports per resource ({"Patient/p1": 2, ...}), from its unsigned
    loopback debug endpoint."""
    import urllib.request
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_healthlake-local/datastores/{datastore}/resources",
                                timeout=30) as r:
        return json.loads(r.read())


def imported_resources(work, datastore=DS):
    """Every import the emulator recorded ({"resourceType","id","jobId","file","line"} each)."""
    path = f"{work}/emulator/healthlake/{datastore}/resources.jsonl"
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [json.loads(l) for l in f if l.strip()]


def object_body(work, bucket, key):
    """The stored body of an object in the emulator's data directory (its objects are renamed into
    place whole, so a reader never sees half a write), or None."""
    import hashlib
    try:
        with open(f"{work}/emulator/s3/buckets/{bucket}/{hashlib.sha256(key.encode()).hexdigest()}", "rb") as f:
            return f.read()
    except OSError:
        return None
