#!/usr/bin/env bash
# End-to-end benchmark (issue 7): a generated export from the drop to the HealthLake import job
# started and to the import completed, against healthlake-local on 127.0.0.1, next to a baseline
# on the same data against the same emulator in the same run:
#   fhir-edge:  `fhir-edge run`: watch → validate (structure-only) → zstd spool → upload import/
#               (plain NDJSON) + archive/ (.zst) → StartFHIRImportJob → DescribeFHIRImportJob until
#               terminal → reconcile (manifest.json + FAILURE/ + SUCCESS/ outputs) → imported
#   baseline:   zstd -3 of every file (archive copy), `aws s3 cp --recursive` of the plain files and
#               of the .zst files, `aws healthlake start-fhir-import-job` on the plain files, then
#               `aws healthlake describe-fhir-import-job` until terminal. No validation, no journal,
#               no reconcile.
# Both poll DescribeFHIRImportJob every $POLL seconds (import.poll_min = poll_max on the daemon),
# so the polling interval does not decide the comparison. The emulator really imports (reads and
# validates every line) on both sides, identically.
#
# Prints both times, the ratios and CPU-seconds per GB of input, writes result.txt and draws
# result.png (gnuplot, Debian package gnuplot-nox) next to this script (or into OUT_DIR).
#
#   bench/e2e/run.sh BUILD_DIR [SIZE] [OUT_DIR]     SIZE default 1GB (e.g. 100MB for a quick run)
#   ONE_FILE=1 bench/e2e/run.sh ...                   the export is one file of SIZE
#   ZSTD_LEVEL=N bench/e2e/run.sh ...                 spool.zstd_level N (default: the daemon's)
#   KEEP=1 bench/e2e/run.sh ...                       keep the work directory (request log, journal)
#   ETAG=md5 bench/e2e/run.sh ...                     the emulator's ETags are MD5s (default opaque:
#       as S3 gives for SSE-KMS objects, so the emulator, which shares this machine's cores with
#       both sides, spends no MD5 pass on every body; real S3 does that work on its own machines)
#   SIGNING=unsigned bench/e2e/run.sh ...             both sides send upload bodies unsigned, as they
#       do over https (the daemon's payload_signing auto; botocore over https with a checksum):
#       payload_signing: unsigned-trailer on the daemon, s3.payload_signing_enabled = false for the
#       aws cli. Default (signed): over this loopback http both SHA-256 sign every body.
# Use a Release build without sanitizers:
#   cmake -S . -B build-release -DCMAKE_BUILD_TYPE=Release
#   cmake --build build-release --target fhir-edge healthlake-local -j2
# The baseline's `aws`: $AWS, else the first `aws` on PATH (aws-cli v1 or v2; Debian: awscli).
set -euo pipefail
BUILD=${1:?usage: run.sh BUILD_DIR [SIZE] [OUT_DIR]}
SIZE=${2:-1GB}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
# The tools this bench needs (gnuplot-nox, bc, time, awscli, ...): installed when missing.
"$ROOT/scripts/bootstrap" --bench >&2
OUT=${3:-$ROOT/bench/e2e}
POLL=${POLL:-2}
FE=$BUILD/daemon/fhir-edge
HLL=$BUILD/tools/healthlake-local/healthlake-local
GEN=$ROOT/tools/fhir-export-gen/fhir-export-gen
# pyenv shims resolved (bench/lib.sh): neither side pays for how this machine's PATH is set up,
# the baseline in its aws calls, the daemon in the journal poller started beside it.
. "$ROOT/bench/lib.sh"
PY=$(real_exe python3)
AWS=${AWS:-$(real_exe aws)}
for f in "$FE" "$HLL" "$AWS" "$PY"; do [[ -x $f ]] || { echo "missing $f (build it / install awscli)"; exit 2; }; done
for t in zstd gnuplot bc /usr/bin/time; do
  command -v "$t" > /dev/null || { echo "missing $t (apt-get install zstd gnuplot-nox bc time)"; exit 2; }
done
W=$(mktemp -d /tmp/fe-bench-e2e.XXXXXX)
aws_validation_level "$AWS" "$W/aws-models" # Debian 12's awscli predates --validation-level
HLL_PID=
FE_PID=
cleanup() {
  [[ -n $FE_PID ]] && kill "$FE_PID" 2> /dev/null || true
  [[ -n $HLL_PID ]] && kill "$HLL_PID" 2> /dev/null || true
  wait 2> /dev/null || true
  [[ -n ${EMU:-} && $EMU != "$W/emulator" && ${KEEP:-0} != 1 ]] && rm -rf "$EMU"
  if [[ ${KEEP:-0} == 1 ]]; then echo "kept $W ${EMU:-}"; else rm -rf "$W"; fi
}
trap cleanup EXIT
export AWS_ACCESS_KEY_ID=AKIDBENCHE2E00000001 AWS_SECRET_ACCESS_KEY=bench-e2e-secret-key-0123456789
export AWS_EC2_METADATA_DISABLED=true AWS_DEFAULT_REGION=us-east-1 AWS_REGION=us-east-1
unset AWS_SESSION_TOKEN AWS_PROFILE
DS=0123456789abcdef0123456789abcdef
# The baseline imports into a data store of its own: the emulator indexes every resource it
# imports, and a resource already in a data store is cheaper to update than a new one to insert,
# so a shared data store made the second import (the baseline's) faster than the first.
DS_BASE=fedcba9876543210fedcba9876543210
ROLE=arn:aws:iam::123456789012:role/HealthLakeImport
KMS=arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab

echo "generating $SIZE export..."
# ONE_FILE=1: the export is a single file of SIZE (issue 13 item 3: one big file).
GEN_ONE=()
[[ ${ONE_FILE:-0} == 1 ]] && GEN_ONE=(--single-file All.ndjson)
"$PY" "$GEN" "$W/gen/bench" --size "$SIZE" --seed 42 --complete none "${GEN_ONE[@]}" > "$W/gen.json"
INPUT_BYTES=$(du -cb "$W"/gen/bench/*.ndjson | tail -1 | cut -f1)
FILES=$(ls "$W"/gen/bench/*.ndjson | wc -l)
# The baseline's copy of the same files (the daemon's copy is moved into its watched directory).
cp -r "$W/gen/bench" "$W/base-in"
# Both copies to disk now: the ~1.9 GB just written is otherwise flushed while the sides run (30 s
# dirty expiry), ~1.1 GB of it during the daemon's run and the rest during the baseline's import,
# on the same 2 cores (session 15). The input's writeback is neither side's cost.
sync

# The emulator's store (the stand-in for S3's disks, which are not the gateway's) goes in memory
# (/dev/shm) when it has room for four copies of the input (both sides' objects and the parts
# being assembled): its page-cache writes and their writeback to this machine's disk are not a
# cost the daemon or the baseline has against real S3. EMU_DIR=DIR to choose; EMU_DIR=disk for $W.
EMU=$W/emulator
if [[ ${EMU_DIR:-auto} == auto ]]; then
  if [[ -d /dev/shm && -w /dev/shm ]] &&
    (($(df -B1 --output=avail /dev/shm | tail -1) > 4 * INPUT_BYTES)); then
    EMU=$(mktemp -d /dev/shm/fe-bench-e2e-emu.XXXXXX)
  fi
elif [[ $EMU_DIR != disk ]]; then
  EMU=$(mktemp -d "$EMU_DIR/fe-bench-e2e-emu.XXXXXX")
fi
"$HLL" --data "$EMU" --listen 127.0.0.1:0 --port-file "$W/port" \
  --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" --region us-east-1 \
  --datastore "$DS" --datastore "$DS_BASE" --bucket landing --bucket results --request-log "$W/requests.ndjson" \
  --etag "${ETAG:-opaque}" \
  --job-timing submitted=0.5s,queued=0.5s,run=1s > "$W/hll.log" 2>&1 &
HLL_PID=$!
for _ in $(seq 100); do [[ -s $W/port ]] && break; sleep 0.1; done
[[ -s $W/port ]] || { echo "healthlake-local did not start"; cat "$W/hll.log"; exit 1; }
EP=http://127.0.0.1:$(cat "$W/port")

mkdir -p "$W/watch"
SIGNING_FE= SIGNING_CLI=
case ${SIGNING:-signed} in
  signed) ;;
  unsigned)
    SIGNING_FE=$'  payload_signing: unsigned-trailer\n'
    SIGNING_CLI='    payload_signing_enabled = false'
    ;;
  *) echo "SIGNING must be signed or unsigned"; exit 2 ;;
esac
cat > "$W/fhir-edge.yaml" << YAML
aws:
  region: us-east-1
  credentials: { source: env }
  endpoints: { s3: "$EP", healthlake: "$EP" }
  s3_path_style: true
${SIGNING_FE}pipelines:
  - name: bench
    watch: $W/watch
    complete_when: { marker: .done, bulk_manifest: false, client_log: false }
    validation_level: structure-only
    s3: { bucket: landing, prefix: fhir-edge, archive: true }
    healthlake:
      datastore_id: $DS
      data_access_role_arn: $ROLE
      output_s3_uri: s3://results/fhir-edge/
      output_kms_key_id: $KMS
spool: { dir: $W/spool, max_bytes: 20GiB${ZSTD_LEVEL:+, zstd_level: $ZSTD_LEVEL} }
journal: { path: $W/journal.db }
upload: { part_size: auto, concurrency: 4 }
import: { poll_min: ${POLL}s, poll_max: ${POLL}s }
metrics: { listen: off }
log: { level: warning }
YAML
chmod 600 "$W/fhir-edge.yaml"
"$FE" check-config --config "$W/fhir-edge.yaml" > /dev/null

now() { date +%s.%N; }
journal() { # SQL → first column of the first row ("" while the journal is not there yet)
  "$PY" - "$W/journal.db" "$1" << 'PY'
import sqlite3, sys
try:
    c = sqlite3.connect("file:%s?mode=ro" % sys.argv[1], uri=True)
    r = c.execute(sys.argv[2]).fetchone()
    print(r[0] if r and r[0] is not None else "")
except Exception:
    print("")
PY
}

echo "fhir-edge run ($FILES files, $((INPUT_BYTES / 1000000)) MB)..."
/usr/bin/time -f "%e %U %S %M" -o "$W/fe.time" "$FE" run --config "$W/fhir-edge.yaml" \
  > "$W/daemon.log" 2>&1 &
FE_PID=$!
for _ in $(seq 100); do [[ -e $W/journal.db ]] && break; sleep 0.1; done
# FE_PERF=1: `perf record -g` on the daemon (all its threads) from the drop to the import's end;
# the report (per thread, then per symbol) goes to $OUT/perf.txt (bench/e2e/README.md, Profile).
# One section of a perf report: "# TITLE", then its first N rows. Through a file: `head` on a
# pipe would SIGPIPE perf, which pipefail turns into a failure.
perf_section() { # DATA SORT N TITLE [more perf report options]
  local data=$1 sort=$2 n=$3 title=$4
  shift 4
  perf report -i "$data" --stdio --no-children -g none --sort "$sort" "$@" \
    > "$data.$sort.txt" 2> /dev/null || true
  echo "# $title"
  grep -v '^#' "$data.$sort.txt" | grep -v '^$' | head -"$n" || true
}
PERF_PID=
if [[ ${FE_PERF:-0} == 1 ]]; then
  perf record -F 499 -g -p "$(pgrep -P "$FE_PID" -x fhir-edge)" -o "$W/perf.data" \
    > "$W/perf.log" 2>&1 &
  PERF_PID=$!
fi
# HLL_PERF=1: healthlake-local from the drop to StartFHIRImportJob (its receive path shares the 2
# cores with the daemon) → $OUT/perf-hll.txt.
HLL_PERF_PID=
if [[ ${HLL_PERF:-0} == 1 ]]; then
  perf record -F 499 -g -p "$HLL_PID" -o "$W/perf-hll.data" > "$W/perf-hll.log" 2>&1 &
  HLL_PERF_PID=$!
fi
stop_hll_perf() { # the receive path only: stopped when the job has started
  if [[ -n $HLL_PERF_PID ]]; then
    kill -INT "$HLL_PERF_PID"
    wait "$HLL_PERF_PID" || true
    mkdir -p "$OUT"
    { perf_section "$W/perf-hll.data" dso 12 \
        "healthlake-local from the drop to StartFHIRImportJob, per library"
      perf_section "$W/perf-hll.data" dso,sym 40 "per symbol (>= 0.5 %)" --percent-limit 0.5
    } > "$OUT/perf-hll.txt"
  fi
  HLL_PERF_PID=
}
# One python process polls the journal every 0.1 s and prints each new state with its time (a
# poll that started a process every 0.1 s took ~25 % of a core from the daemon it measures). It
# is started, and has printed its first line, before the drop: its start-up (~0.07 CPU-s, 0.35
# through a pyenv shim) landed in the daemon's first 0.7 s, while both cores hashed the input
# (session 16, `perf record -a`).
poll_states() {
  "$PY" - "$W/journal.db" "$FE_PID" << 'PY'
import os, sqlite3, sys, time
db, pid = sys.argv[1], int(sys.argv[2])
c, last = None, None
while True:
    s = ""
    try:
        if c is None:
            c = sqlite3.connect("file:%s?mode=ro" % db, uri=True)
        r = c.execute("SELECT state FROM export_view").fetchone()
        s = r[0] if r and r[0] is not None else ""
    except Exception:
        c = None
    try:
        os.kill(pid, 0)
    except OSError:
        s = "died"
    if s != last:
        print("%.6f %s" % (time.time(), s or "-"), flush=True)
        last = s
        if s in ("imported", "import_failed", "parked", "failed", "died"):
            break
    time.sleep(0.1)
PY
}
exec 3< <(poll_states)
read -r _ _ <&3 || { echo "the journal poller did not start"; exit 1; } # "<time> -": it is up
# The drop, as bulk-data clients do it: the directory, the finished files renamed in, the marker.
mkdir "$W/watch/bench"
sleep 1 # the watcher puts its watch on the new directory
# The daemon's CPU (user + system, all threads) at the drop and at the import's end: the
# window's share of the whole run's CPU, which also holds start-up and the idle wait.
fe_cpu() { awk '{ print ($14 + $15) / '"$(getconf CLK_TCK)"' }' "/proc/$(pgrep -P "$FE_PID" -x fhir-edge)/stat"; }
CPU_AT_DROP=$(fe_cpu)
T0=$(now)
mv "$W"/gen/bench/*.ndjson "$W/watch/bench/"
touch "$W/watch/bench/.done"
T_STARTED= T_DONE= s= CPU_AT_START=
while read -r t s; do
  if [[ -z $T_STARTED && ($s == importing || $s == imported || $s == import_failed) ]]; then
    T_STARTED=$t
    CPU_AT_START=$(fe_cpu) # within ~0.1 s of the Start (the journal poll's period)
    stop_hll_perf
  fi
  [[ $s == imported || $s == import_failed ]] && { T_DONE=$t; break; }
  [[ $s == parked || $s == failed ]] && { echo "export $s"; tail -20 "$W/daemon.log"; exit 1; }
  [[ $s == died ]] && { echo "daemon died"; tail -20 "$W/daemon.log"; exit 1; }
done <&3
[[ -n $T_DONE ]] || { echo "journal poll ended without an outcome"; exit 1; }
CPU_IN_WINDOW=$(echo "$(fe_cpu) - $CPU_AT_DROP" | bc -l)
CPU_TO_START=$(echo "$CPU_AT_START - $CPU_AT_DROP" | bc -l)
if [[ -n $PERF_PID ]]; then
  kill -INT "$PERF_PID"
  wait "$PERF_PID" || true
  mkdir -p "$OUT"
  { perf_section "$W/perf.data" pid 20 "per thread, % of the daemon's samples"
    perf_section "$W/perf.data" dso 12 "per library"
    perf_section "$W/perf.data" pid,dso,sym 60 "per thread and symbol (>= 0.5 %)" --percent-limit 0.5
  } > "$OUT/perf.txt"
fi
FE_STATE=$s
FE_JOB=$(journal "SELECT job_id FROM import_jobs")
FE_IMPORTED=$(journal "SELECT json_extract(outcome,'\$.resources_imported') FROM import_jobs")
FE_VALID=$(journal "SELECT resources_valid FROM exports")
# Phases from the journal's event log (ms since the epoch).
ev() { journal "SELECT time FROM events WHERE message LIKE '%-> $1%' ORDER BY id LIMIT 1"; }
E_SPOOLED=$(ev spooled) E_UPLOADED=$(ev uploaded) E_IMPORTING=$(ev importing) E_IMPORTED=$(ev imported)
# The timeline from the drop (journal events + the emulator's request log): bench/e2e/timeline.py.
mkdir -p "$OUT"
"$PY" "$ROOT/bench/e2e/timeline.py" "$W/journal.db" "$W/requests.ndjson" "$T0" fhir-edge/ \
  > "$OUT/timeline.txt" 2>&1 || true
echo "$T0" > "$OUT/t0.txt" # the drop (s since the epoch), to line up other samples with the timeline
# SIGTERM to fhir-edge itself (the child of /usr/bin/time), which then reports its usage.
kill -TERM "$(pgrep -P "$FE_PID")"
wait "$FE_PID" || true
FE_PID=
read -r _ FE_USER FE_SYS FE_RSS_KB < <(tail -1 "$W/fe.time")
FE_TO_START=$(echo "$T_STARTED - $T0" | bc -l)
FE_TO_DONE=$(echo "$T_DONE - $T0" | bc -l)

echo "baseline: zstd -3 + aws s3 cp --recursive + aws healthlake start/describe..."
cat > "$W/aws.cfg" << CFG
[default]
region = us-east-1
s3 =
    addressing_style = path
${SIGNING_CLI}
CFG
export AWS_CONFIG_FILE=$W/aws.cfg
mkdir -p "$W/base-zst"
cat > "$W/baseline.sh" << SH
set -euo pipefail
for f in "$W"/base-in/*.ndjson; do zstd -q -3 "\$f" -o "$W/base-zst/\$(basename "\$f").zst"; done
"$AWS" s3 cp --recursive --quiet --endpoint-url "$EP" "$W/base-in" s3://landing/baseline/import/
"$AWS" s3 cp --recursive --quiet --endpoint-url "$EP" "$W/base-zst" s3://landing/baseline/archive/
job=\$("$AWS" healthlake start-fhir-import-job --endpoint-url "$EP" --datastore-id $DS_BASE \
  --job-name baseline --input-data-config S3Uri=s3://landing/baseline/import/ \
  --job-output-data-config '{"S3Configuration":{"S3Uri":"s3://results/baseline/","KmsKeyId":"$KMS"}}' \
  --data-access-role-arn $ROLE --validation-level structure-only --query JobId --output text)
date +%s.%N > "$W/base.started"
echo "\$job" > "$W/base.job"
while :; do
  sleep $POLL
  st=\$("$AWS" healthlake describe-fhir-import-job --endpoint-url "$EP" --datastore-id $DS_BASE \
    --job-id "\$job" --query ImportJobProperties.JobStatus --output text)
  case "\$st" in COMPLETED|COMPLETED_WITH_ERRORS|FAILED|CANCEL_COMPLETED|CANCEL_FAILED) break ;; esac
done
echo "\$st" > "$W/base.status"
SH
B0=$(now)
/usr/bin/time -f "%e %U %S %M" -o "$W/base.time" bash "$W/baseline.sh"
B_DONE=$(now)
read -r _ BASE_USER BASE_SYS _ < <(tail -1 "$W/base.time")
BASE_TO_START=$(echo "$(cat "$W/base.started") - $B0" | bc -l)
BASE_TO_DONE=$(echo "$B_DONE - $B0" | bc -l)
BASE_STATUS=$(cat "$W/base.status")

# The emulator's own work (reading and validating every line of the import) is the same on both
# sides; its CPU time is not in either column. Its job times come from the request log.
mkdir -p "$OUT"
AWS_VERSION=$("$AWS" --version 2>&1 | cut -d' ' -f1) FE_WINDOW_CPU=$CPU_IN_WINDOW FE_START_CPU=$CPU_TO_START EMU_STORE=$(df --output=fstype "$EMU" | tail -1) "$PY" - "$OUT" "$INPUT_BYTES" "$FILES" "$FE_TO_START" "$FE_TO_DONE" "$FE_USER" "$FE_SYS" \
  "$FE_RSS_KB" "$BASE_TO_START" "$BASE_TO_DONE" "$BASE_USER" "$BASE_SYS" "$FE_STATE" \
  "$BASE_STATUS" "$FE_VALID" "$FE_IMPORTED" "$T0" "$E_SPOOLED" "$E_UPLOADED" "$E_IMPORTING" \
  "$E_IMPORTED" "$POLL" << 'PY'
import os, sys
out = sys.argv[1]
b, files = float(sys.argv[2]), int(sys.argv[3])
fs_, fd, fu, fsy, rss, bs_, bd, bu, bsy = map(float, sys.argv[4:13])
fe_state, base_status, valid, imported = sys.argv[13:17]
t0 = float(sys.argv[17])
phases = [x for x in sys.argv[18:22]]
poll = sys.argv[22]
gb = b / 1e9
load = open("/proc/loadavg").read().split()[:3]
cpu = next((l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name")), "?")
lines = [
    f"input: {b/1e6:.1f} MB in {files} files (fhir-export-gen --size, seed 42); poll interval {poll} s on both sides; "
    f"upload bodies {os.environ.get('SIGNING', 'signed')} on both sides; emulator ETags {os.environ.get('ETAG', 'opaque')}",
    f"machine: {os.cpu_count()} cores, {cpu}, load average {' '.join(load)} at the end; emulator store {os.environ.get('EMU_STORE', '?')}",
    f"fhir-edge: drop -> import job started {fs_:.2f} s, -> import completed (reconciled, {fe_state}) {fd:.2f} s; "
    f"{(fu+fsy):.1f} CPU-s = {(fu+fsy)/gb:.1f} CPU-s/GB; peak RSS {rss/1024:.1f} MiB; "
    f"{valid} resources validated, {imported} imported",
    f"baseline : drop -> import job started {bs_:.2f} s, -> import completed ({base_status}) {bd:.2f} s; "
    f"{(bu+bsy):.1f} CPU-s = {(bu+bsy)/gb:.1f} CPU-s/GB (zstd + {os.environ.get('AWS_VERSION', 'aws cli')})",
    f"ratio fhir-edge / baseline: to job started {fs_/bs_:.2f}, to import completed {fd/bd:.2f}, "
    f"CPU {(fu+fsy)/max(1e-9, bu+bsy):.2f}  (< 1 = fhir-edge faster / cheaper)",
]
win = float(os.environ.get("FE_WINDOW_CPU") or "nan")
lines.append(f"fhir-edge CPU from the drop to the import completed: {win:.1f} CPU-s = {win/gb:.1f} CPU-s/GB "
             f"(the rest of its {(fu+fsy):.1f} CPU-s: start-up before the drop, stop after)")
to_start = float(os.environ.get("FE_START_CPU") or "nan")
lines.append(f"fhir-edge CPU from the drop to the job started: {to_start:.1f} CPU-s; after it "
             f"(archive copies, polling, reconcile): {win - to_start:.1f} CPU-s")
if all(phases):
    sp, up, im, dn = (float(x) / 1000.0 - t0 for x in phases)
    lines.append(f"fhir-edge phases from the drop: spooled {sp:.2f} s, uploaded {up:.2f} s, "
                 f"job accepted {im:.2f} s, imported {dn:.2f} s")
print("\n".join(lines))
with open(os.path.join(out, "result.txt"), "w") as f:
    f.write("\n".join(lines) + "\n")
# Columns: label, fhir-edge, baseline (no header line: gnuplot numbers the rows from 0).
with open(os.path.join(out, "result.dat"), "w") as f:
    f.write(f'"to job started" {fs_:.3f} {bs_:.3f}\n')
    f.write(f'"to import completed" {fd:.3f} {bd:.3f}\n')
with open(os.path.join(out, "cpu.dat"), "w") as f:
    f.write(f'"CPU-s per GB" {(fu+fsy)/gb:.3f} {(bu+bsy)/gb:.3f}\n')
with open(os.path.join(out, "title.txt"), "w") as f:
    f.write(f"{b/1e9:.2f} GB export, {os.cpu_count()} cores, load {load[0]}")
PY

gnuplot << GP
set terminal pngcairo size 1000,480 font "sans,11"
set output "$OUT/result.png"
set multiplot layout 1,2 title "fhir-edge vs zstd + aws s3 cp + aws healthlake (healthlake-local, loopback): $(cat "$OUT/title.txt")"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.85 border -1
set boxwidth 0.9
set key below
set grid ytics
set yrange [0:*]
set offsets 0, 0, graph 0.12, 0
set xrange [-0.6:1.6]
set ylabel "seconds from the drop"
set title "Time from the drop (lower is better)"
plot "$OUT/result.dat" using 2:xtic(1) title "fhir-edge (validates, journals)" lc rgb "#1f77b4", \
     '' using 3 title "baseline (no validation)" lc rgb "#ff7f0e", \
     '' using (\$0-0.15):(\$2):(sprintf("%.1f s",\$2)) with labels offset 0,0.7 notitle, \
     '' using (\$0+0.15):(\$3):(sprintf("%.1f s",\$3)) with labels offset 0,0.7 notitle
set title "CPU per GB of input (lower is better)"
set xrange [-0.6:0.6]
set ylabel "CPU-seconds per GB"
plot "$OUT/cpu.dat" using 2:xtic(1) title "fhir-edge" lc rgb "#1f77b4", \
     '' using 3 title "baseline" lc rgb "#ff7f0e", \
     '' using (\$0-0.15):(\$2):(sprintf("%.1f",\$2)) with labels offset 0,0.7 notitle, \
     '' using (\$0+0.15):(\$3):(sprintf("%.1f",\$3)) with labels offset 0,0.7 notitle
unset multiplot
GP
rm -f "$OUT/title.txt"
echo "timeline (s from the drop): $OUT/timeline.txt"
grep -E "export |spooling -> spooled|summary" "$OUT/timeline.txt" || true
echo "chart: $OUT/result.png"
