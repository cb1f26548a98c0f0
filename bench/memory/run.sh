#!/usr/bin/env bash
# Long-line memory benchmark (issue 18 defect 7): the daemon's peak RSS while it validates and
# spools valid lines close to pipelines[].max_line_bytes, against the documented bound
# (docs/configuration.md, max_line_bytes):
#     bound = 64 MiB + workers (2) x 16 x max_line_bytes
# Two files with one long valid line each, so both worker threads hold a long line at once (the
# worst case), plus short lines around them. Prints the peak RSS, the bound and their ratio
# (must stay under 1). Not a timed test: run it by hand, on a Release build without sanitizers
# for the real number (ASan adds shadow memory and a quarantine of freed blocks).
#
#   bench/memory/run.sh BUILD_DIR [LINE_MIB] [MAX_LINE_BYTES]   defaults 60 and 64MiB
#   cmake --build build-release --target pipeline-driver healthlake-local -j2
set -euo pipefail
BUILD=${1:?usage: run.sh BUILD_DIR [LINE_MIB] [MAX_LINE_BYTES]}
LINE_MIB=${2:-60}
MAX_LINE=${3:-64MiB}
DRIVER=$BUILD/tests/integration/pipeline/pipeline-driver
HLL=$BUILD/tools/healthlake-local/healthlake-local
for f in "$DRIVER" "$HLL"; do [[ -x $f ]] || { echo "missing $f (build it first)"; exit 2; }; done
W=$(mktemp -d /tmp/fe-bench-memory.XXXXXX)
trap 'kill $HLL_PID 2>/dev/null || true; rm -rf "$W"' EXIT
export AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-secret-key-0123456789
export AWS_EC2_METADATA_DISABLED=true AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
# Under ASan, freed blocks would otherwise stay resident in the quarantine.
export ASAN_OPTIONS=${ASAN_OPTIONS:-quarantine_size_mb=0:detect_leaks=0}

mkdir -p "$W/gen/long" "$W/watch"
python3 - "$W/gen/long" "$LINE_MIB" <<'PY'
import sys
d, mib = sys.argv[1], int(sys.argv[2])
short = lambda i: '{"resourceType":"Patient","id":"s%d","gender":"male"}\n' % i
for n in ("A", "B"):
    head = ('{"resourceType":"Binary","id":"long-%s","contentType":"text/plain","data":"' % n)
    body = mib * 1024 * 1024 - len(head) - 2
    with open("%s/%s.ndjson" % (d, n), "w") as f:
        f.write(short(1))
        f.write(head)
        chunk = "QUFB" * (1 << 18)  # base64, 1 MiB
        left = body - body % 4
        while left > 0:
            k = min(left, len(chunk)); f.write(chunk[:k]); left -= k
        f.write('"}\n')
        f.write(short(3))
PY

"$HLL" --data "$W/s3" --listen 127.0.0.1:0 --port-file "$W/port" --access-key "$AWS_ACCESS_KEY_ID" \
  --secret-key "$AWS_SECRET_ACCESS_KEY" --bucket bench-landing --request-log /dev/null \
  > "$W/hll.log" 2>&1 &
HLL_PID=$!
for _ in $(seq 100); do [[ -s $W/port ]] && break; sleep 0.1; done
EP=http://127.0.0.1:$(cat "$W/port")

cat > "$W/fhir-edge.yaml" <<YAML
aws:
  region: us-east-1
  credentials: { source: env }
  endpoints: { s3: $EP }
  s3_path_style: true
pipelines:
  - name: bench
    watch: $W/watch
    complete_when: { marker: .done, bulk_manifest: false, client_log: false, settle_seconds: 0 }
    validation_level: structure-only
    max_line_bytes: $MAX_LINE
    s3: { bucket: bench-landing, prefix: fhir-edge, archive: true, upload_rejects: true }
    healthlake:
      datastore_id: 0123456789abcdef0123456789abcdef
      data_access_role_arn: arn:aws:iam::123456789012:role/HealthLakeImport
      output_s3_uri: s3://bench-results/imports/
      output_kms_key_id: arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab
spool: { dir: $W/spool, max_bytes: 20GiB }
journal: { path: $W/journal.db }
metrics: { listen: off }
log: { level: warning }
YAML

/usr/bin/time -f "%e %M" -o "$W/fe.time" "$DRIVER" "$W/fhir-edge.yaml" > "$W/driver.log" 2>&1 &
DRV_PID=$!
sleep 1
mv "$W/gen/long" "$W/watch/long"
touch "$W/watch/long/.done"
state() { python3 - "$W/journal.db" <<'PY'
import sqlite3, sys
try:
    c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
    print(",".join(r[0] for r in c.execute("SELECT state FROM exports")))
except Exception:
    print("")
PY
}
while :; do
  s=$(state)
  [[ $s == uploaded ]] && break
  [[ $s == parked || $s == failed ]] && { echo "export $s"; cat "$W/driver.log"; exit 1; }
  kill -0 $DRV_PID 2>/dev/null || { echo "driver died"; cat "$W/driver.log"; exit 1; }
  sleep 0.2
done
DRV_PIDS=$(pgrep -P $DRV_PID || true)
kill -TERM ${DRV_PIDS:-$DRV_PID} 2>/dev/null || true
wait $DRV_PID || true
read -r _ RSS_KB < "$W/fe.time"
python3 - "$RSS_KB" "$MAX_LINE" "$LINE_MIB" <<'PY'
import re, sys
rss = int(sys.argv[1]) / 1024
m = re.fullmatch(r"(\d+)\s*(KiB|MiB|GiB)?", sys.argv[2])
mult = {"KiB": 1 / 1024, "MiB": 1, "GiB": 1024, None: 1 / 1048576}[m.group(2)]
max_mib = int(m.group(1)) * mult
bound = 64 + 2 * 16 * max_mib
print(f"two valid lines of {sys.argv[3]} MiB, max_line_bytes {max_mib:.0f} MiB")
print(f"peak RSS {rss:.0f} MiB; bound 64 + 2 x 16 x {max_mib:.0f} = {bound:.0f} MiB; "
      f"ratio {rss / bound:.2f} ({'within' if rss <= bound else 'OVER'} the bound)")
PY
