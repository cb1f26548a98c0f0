"""Python test kit for the integration scripts written in Python (tests/crash/daemon/crash_driver.py,
tests/integration/large-upload/large_upload.py, tests/integration/metrics/daemon_metrics_test.py):
the Python twin of harness.sh (shell) and healthlake_local.hpp (C++), so that each of them starts
the emulator and writes the daemon's config in one place.

    sys.path.insert(0, os.path.join(os.path.dirname(__file__), "../../support"))
    import harness
    port = harness.start_emulator(hl, work, procs, AK, SK, args=[...], request_log="requests.jsonl")
    cfg = harness.write_config(work, port, "name", rest="metrics: { listen: off }\\n")
"""
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
                 bucket="landing", spool=None, rest=""):
    """WORK/fhir-edge.yaml: one pipeline NAME watching WORK/incoming (marker .done) that uploads to
    BUCKET (prefix exports) and imports into data store DS through the emulator on PORT, the spool
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
    s3: {{ bucket: {bucket}, prefix: exports }}
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
