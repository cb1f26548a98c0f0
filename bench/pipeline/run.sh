#!/usr/bin/env bash
# Pipeline benchmark (issue 6): a generated export from drop to all objects in healthlake-local
# (loopback), at structure-only, next to a baseline on the same data in the same run:
#   fhir-edge:  watch → validate → zstd spool → upload import/ (plain) + archive/ (.zst)
#   baseline:   zstd -3 of every file, then `aws s3 cp --recursive` of the plain files and the .zst
#               files to the same emulator (no validation, no journal)
# Prints MB/s of input, CPU-seconds per GB, the ratio, and the daemon's peak RSS (the goal: under
# 64 MiB with default settings whatever the file size).
#
#   bench/pipeline/run.sh BUILD_DIR [SIZE]     SIZE default 1GB (e.g. 200MiB for a quick run)
# Use a Release build without sanitizers:
#   cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release
#   cmake --build build-release --target pipeline-driver healthlake-local -j2
set -euo pipefail
BUILD=${1:?usage: run.sh BUILD_DIR [SIZE]}
SIZE=${2:-1GB}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# The tools this bench needs (gnuplot-nox, bc, time, awscli, ...): installed when missing.
"$ROOT/scripts/bootstrap" --bench >&2
DRIVER=$BUILD/tests/integration/pipeline/pipeline-driver
HLL=$BUILD/tools/healthlake-local/healthlake-local
GEN=$ROOT/tools/fhir-export-gen/fhir-export-gen
# pyenv shims resolved (bench/lib.sh): the journal poll below starts python every 0.2 s while the
# daemon runs, and through a shim each start cost ~0.3 CPU-s of the same 2 cores.
. "$ROOT/bench/lib.sh"
PY=$(real_exe python3)
AWS=$(real_exe aws)
for f in "$DRIVER" "$HLL" "$PY" "$AWS"; do [[ -x $f ]] || { echo "missing $f (build it / scripts/bootstrap --bench)"; exit 2; }; done
W=$(mktemp -d /tmp/fe-bench-pipeline.XXXXXX)
trap 'kill $HLL_PID 2>/dev/null || true; rm -rf "$W"' EXIT
export AWS_ACCESS_KEY_ID=AKIDBENCH AWS_SECRET_ACCESS_KEY=bench-secret-key-0123456789
export AWS_EC2_METADATA_DISABLED=true AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1

echo "generating $SIZE export..."
"$PY" "$GEN" "$W/gen/bench" --size "$SIZE" --seed 42 --complete none > /dev/null
sync # the input's writeback is not what is measured (bench/e2e/README.md, session 15)
INPUT_BYTES=$(du -cb "$W"/gen/bench/*.ndjson | tail -1 | cut -f1)

"$HLL" --data "$W/s3" --listen 127.0.0.1:0 --port-file "$W/port" --access-key "$AWS_ACCESS_KEY_ID" \
  --secret-key "$AWS_SECRET_ACCESS_KEY" --bucket bench-landing --request-log /dev/null \
  > "$W/hll.log" 2>&1 &
HLL_PID=$!
for _ in $(seq 100); do [[ -s $W/port ]] && break; sleep 0.1; done
PORT=$(cat "$W/port")
EP=http://127.0.0.1:$PORT

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
    s3: { bucket: bench-landing, prefix: fhir-edge, archive: true, upload_rejects: true }
    healthlake:
      datastore_id: 0123456789abcdef0123456789abcdef
      data_access_role_arn: arn:aws:iam::123456789012:role/HealthLakeImport
      output_s3_uri: s3://bench-results/imports/
      output_kms_key_id: arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab
spool: { dir: $W/spool, max_bytes: 20GiB }
journal: { path: $W/journal.db }
upload: { part_size: auto, concurrency: 4 }
metrics: { listen: off }
log: { level: warning }
YAML
mkdir -p "$W/watch"

echo "fhir-edge pipeline..."
/usr/bin/time -f "%e %U %S %M" -o "$W/fe.time" "$DRIVER" "$W/fhir-edge.yaml" > "$W/driver.log" 2>&1 &
DRV_PID=$!
sleep 1
# The drop, as bulk-data clients do it: the export directory is created, each finished file is
# renamed into it, then the marker. (Renaming the whole directory in at once also works, but its
# files are then found by a scan and must stay unchanged for the watcher's scan_quiet, 5 s, before
# they are taken: DROP=dir measures that variant.)
if [[ ${DROP:-files} == dir ]]; then
  T0=$(date +%s.%N)
  mv "$W/gen/bench" "$W/watch/bench"
else
  mkdir "$W/watch/bench"
  sleep 1  # the watcher puts its watch on the new directory
  T0=$(date +%s.%N)
  mv "$W"/gen/bench/*.ndjson "$W/watch/bench/"
fi
touch "$W/watch/bench/.done"
state() { "$PY" - "$W/journal.db" <<'PY'
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
T1=$(date +%s.%N)
DRV_PIDS=$(pgrep -P $DRV_PID || true)
kill -TERM ${DRV_PIDS:-$DRV_PID} 2>/dev/null || true
wait $DRV_PID || true
read -r _ FE_USER FE_SYS FE_RSS_KB < "$W/fe.time"
# Where the daemon's time went: the export's state changes, from the journal's event log.
"$PY" - "$W/journal.db" "$T0" <<'PY'
import sqlite3, sys
c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
t0 = float(sys.argv[2]) * 1000
rows = c.execute("SELECT time, message FROM events WHERE kind='state' ORDER BY id").fetchall()
print("fhir-edge phases (s after the drop): " +
      "; ".join(f"{(t - t0) / 1000:.1f} {m.split(' (')[0][:40]}" for t, m in rows))
PY
FE_WALL=$(echo "$T1 - $T0" | bc -l)

echo "baseline: zstd -3 + aws s3 cp --recursive..."
mkdir -p "$W/base"
cat > "$W/aws.cfg" <<CFG
[default]
region = us-east-1
s3 =
    addressing_style = path
CFG
export AWS_CONFIG_FILE=$W/aws.cfg
/usr/bin/time -f "%e %U %S %M" -o "$W/base.time" bash -c "
  set -e
  for f in '$W'/watch/bench/*.ndjson; do zstd -q -3 \"\$f\" -o '$W'/base/\$(basename \"\$f\").zst; done
  '$AWS' s3 cp --recursive --quiet --endpoint-url '$EP' '$W/watch/bench' s3://bench-landing/baseline/import/ --exclude '.done'
  '$AWS' s3 cp --recursive --quiet --endpoint-url '$EP' '$W/base' s3://bench-landing/baseline/archive/
"
read -r BASE_WALL BASE_USER BASE_SYS _ < "$W/base.time"

"$PY" - "$INPUT_BYTES" "$FE_WALL" "$FE_USER" "$FE_SYS" "$FE_RSS_KB" "$BASE_WALL" "$BASE_USER" "$BASE_SYS" <<'PY'
import sys
b, fw, fu, fs, rss, bw, bu, bs = map(float, sys.argv[1:])
gb = b / 1e9
print(f"input: {b/1e6:.1f} MB")
print(f"fhir-edge: {fw:.2f} s wall, {b/1e6/fw:.1f} MB/s, {(fu+fs)/gb:.1f} CPU-s/GB, peak RSS {rss/1024:.1f} MiB"
      " (includes the driver's whole lifetime)")
print(f"baseline : {bw:.2f} s wall, {b/1e6/bw:.1f} MB/s, {(bu+bs)/gb:.1f} CPU-s/GB")
print(f"ratio (fhir-edge MB/s / baseline MB/s): {bw/fw:.2f}; CPU ratio: {(fu+fs)/(bu+bs):.2f}")
print(f"RSS under 64 MiB: {'yes' if rss/1024 < 64 else 'NO'}")
PY
