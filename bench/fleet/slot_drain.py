#!/usr/bin/python3
"""How many exports a day one account's import slot takes, one job per export vs batched.

    /usr/bin/python3 bench/fleet/slot_drain.py <healthlake-local> [--exports N] [--scale S]
        [--run SECONDS] [--per-mb SECONDS] [--batch B]

HealthLake runs one StartFHIRImportJob at a time per account and Region (quota 1, not adjustable;
docs.aws.amazon.com/healthlake/latest/devguide/quotas.html) and each job costs a fixed overhead
whatever its size. healthlake-local models both (--job-timing, one IN_PROGRESS job, FIFO queue).
This bench starts the emulator with the AWS-like per-job cost divided by --scale (so a run takes
seconds, not hours), uploads N small exports, and drains them twice through the one slot:
  A. one import job per export (what fhir-edge did before issue 16),
  B. batches of B exports per job (a batch prefix naming B exports).
It measures the wall time of each from the first Start to the last terminal status, scales it
back up, and prints exports/day for the slot. Nothing is asserted: this is a measurement.
Defaults: run=80 s per job (the AWS guide's one-file example import took 83 s end to end,
importing-fhir-data-list.html), per_mb=0.5 s, scale 100, 40 exports, batches of 20.
"""
import argparse
import os
import shutil
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "../../tests/support"))
import harness  # noqa: E402

import botocore.session
from botocore.config import Config

AK = "AKIAHLLOCALFLEETBENCH"
SK = "fleet-bench-secret-00000000000000000000"
ROLE = "arn:aws:iam::123456789012:role/HealthLakeImport"
KMS = "arn:aws:kms:us-east-1:123456789012:key/0a1b2c3d-1111-2222-3333-444455556666"
TERMINAL = {"COMPLETED", "COMPLETED_WITH_ERRORS", "FAILED"}


def clients(endpoint):
    s = botocore.session.get_session()
    kw = dict(region_name="us-east-1", endpoint_url=endpoint, aws_access_key_id=AK,
              aws_secret_access_key=SK,
              config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 3}))
    return s.create_client("s3", **kw), s.create_client("healthlake", **kw)


def drain(hl, tag, prefixes):
    """Start one job per prefix (in order), wait until all are terminal; seconds elapsed."""
    t0 = time.monotonic()
    jobs = []
    for i, p in enumerate(prefixes):
        r = hl.start_fhir_import_job(
            JobName=f"{tag}-{i}", DatastoreId=harness.DS, DataAccessRoleArn=ROLE,
            ClientToken=f"{tag}-{i}", InputDataConfig={"S3Uri": f"s3://landing/{p}"},
            JobOutputDataConfig={"S3Configuration": {"S3Uri": "s3://results/out/", "KmsKeyId": KMS}})
        jobs.append(r["JobId"])
    pending = set(jobs)
    while pending:
        for j in list(pending):
            st = hl.describe_fhir_import_job(DatastoreId=harness.DS, JobId=j)
            if st["ImportJobProperties"]["JobStatus"] in TERMINAL:
                pending.discard(j)
        time.sleep(0.05)
    return time.monotonic() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("binary")
    ap.add_argument("--exports", type=int, default=40)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--scale", type=float, default=100.0)
    ap.add_argument("--run", type=float, default=80.0, help="AWS-like fixed seconds per job")
    ap.add_argument("--per-mb", type=float, default=0.5, help="AWS-like seconds per MB")
    a = ap.parse_args()
    timing = (f"submitted=0s,queued=0s,run={a.run / a.scale:.3f}s,"
              f"per_mb={a.per_mb / a.scale:.4f}s")
    work = tempfile.mkdtemp(prefix="fleet-bench-")
    procs = []
    try:
        port = harness.start_emulator(a.binary, work, procs, AK, SK,
                                      args=["--job-timing", timing])
        s3, hl = clients(f"http://127.0.0.1:{port}")
        line = b'{"resourceType":"Patient","id":"p%d","gender":"female"}\n'
        for i in range(a.exports):
            body = b"".join(line % (i * 100 + k) for k in range(100))
            s3.put_object(Bucket="landing", Key=f"single/e{i:03}/import/Patient.ndjson", Body=body)
            # The same export under a batch prefix that names B exports (how the importer names
            # a batch is its business; the slot sees one prefix per job either way).
            b = i // a.batch * a.batch
            s3.put_object(Bucket="landing", Key=f"batched/b{b}/e{i:03}/Patient.ndjson", Body=body)
        one = drain(hl, "single", [f"single/e{i:03}/" for i in range(a.exports)])
        batches = [f"batched/b{b}/" for b in range(0, a.exports, a.batch)]
        batched = drain(hl, "batched", batches)
        real_one, real_batched = one * a.scale, batched * a.scale
        per_job = real_one / a.exports
        print(f"healthlake-local --job-timing {timing} (AWS-like x{a.scale:g}: run={a.run}s, "
              f"per_mb={a.per_mb}s)")
        print(f"A one job per export : {a.exports} jobs drained in {one:.2f}s "
              f"= {real_one:.0f}s at AWS scale, {per_job:.1f}s per job "
              f"-> {86400 / per_job:.0f} exports/day")
        print(f"B batches of {a.batch:<4}    : {len(batches)} jobs drained in {batched:.2f}s "
              f"= {real_batched:.0f}s at AWS scale "
              f"-> {86400 / (real_batched / a.exports):.0f} exports/day")
        print(f"ratio A/B drain time : {one / batched:.1f}x")
    finally:
        for p in procs:
            p.terminate()
            p.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
