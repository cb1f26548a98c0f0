#!/usr/bin/env bash
# Single-stage ceilings (issue 13): each stage of the daemon's path alone, on the same generated
# export as bench/e2e (tools/fhir-export-gen, seed 42), on this machine, against the e2e's time per
# GB. Shows how far the pipeline is from the sum (and the max) of its parts.
#
#   validate   `fhir-edge validate --level structure-only` over the export (one process)
#   zstd -3    `zstd -3 -T1` of every file to /dev/null (the spool's level, one thread)
#   curl PUT   `curl -T` of every file to healthlake-local on loopback (SigV4 by curl,
#              UNSIGNED-PAYLOAD), one PUT at a time: the loopback upload alone, emulator included
#   client     fhir-edge's S3 client (bench/aws/fhir-upload-bench), multipart 16 MiB parts, 4 in
#              flight: SHA-256 signed (hashed by the caller, as the spool does) and
#              STREAMING-UNSIGNED-PAYLOAD-TRAILER (aws-chunked, CRC32C trailer, no hash)
#
# Every file is read from the page cache (read once before). Each stage runs RUNS times (default
# 2); the best and the worst are printed. Prints MB/s, seconds per GB and CPU-seconds per GB (of
# the stage's processes, and of healthlake-local during the stage: +emu/GB), and
# each stage's seconds per GB as a ratio of the e2e's "drop -> import job started" per GB, read
# from E2E (default bench/e2e/result.txt, the last committed e2e run).
#
#   bench/stages/run.sh BUILD_DIR [SIZE] [RUNS]      SIZE default 1GB (as bench/e2e), RUNS 2
# BUILD_DIR: a Release (or the `release` preset's RelWithDebInfo) build with fhir-edge,
# healthlake-local and fhir-upload-bench built:
#   cmake --preset release && cmake --build --preset release -j2 \
#     --target fhir-edge healthlake-local fhir-upload-bench
set -euo pipefail
BUILD=${1:?usage: run.sh BUILD_DIR [SIZE] [RUNS]}
SIZE=${2:-1GB}
RUNS=${3:-2}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FE=$BUILD/daemon/fhir-edge
HLL=$BUILD/tools/healthlake-local/healthlake-local
UP=$BUILD/bench/aws/fhir-upload-bench
GEN=$ROOT/tools/fhir-export-gen/fhir-export-gen
E2E=${E2E:-$ROOT/bench/e2e/result.txt}
for f in "$FE" "$HLL" "$UP"; do [[ -x $f ]] || { echo "missing $f (build it)"; exit 2; }; done
for t in zstd curl bc /usr/bin/time; do
  command -v "$t" > /dev/null || { echo "missing $t (apt-get install zstd curl bc time)"; exit 2; }
done
W=$(mktemp -d /tmp/fe-bench-stages.XXXXXX)
HLL_PID=
cleanup() {
  [[ -n $HLL_PID ]] && kill "$HLL_PID" 2> /dev/null || true
  wait 2> /dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
AK=AKIDBENCHSTAGES00001 SK=bench-stages-secret-key-0123456789

echo "generating $SIZE export (seed 42)..."
python3 "$GEN" "$W/in" --size "$SIZE" --seed 42 --complete none > /dev/null
sync # the input's writeback is not what is measured (bench/e2e/README.md, session 15)
FILES=("$W"/in/*.ndjson)
BYTES=$(du -cb "${FILES[@]}" | tail -1 | cut -f1)
cat "${FILES[@]}" > /dev/null # into the page cache
MB=$(bc -l <<< "$BYTES / 1000000")
GB=$(bc -l <<< "$BYTES / 1000000000")
echo "input: $(printf %.1f "$MB") MB in ${#FILES[@]} files; $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')"

"$HLL" --data "$W/emulator" --listen 127.0.0.1:0 --port-file "$W/port" \
  --access-key "$AK" --secret-key "$SK" --region us-east-1 --bucket landing \
  > "$W/hll.log" 2>&1 &
HLL_PID=$!
for _ in $(seq 100); do [[ -s $W/port ]] && break; sleep 0.1; done
[[ -s $W/port ]] || { echo "healthlake-local did not start"; cat "$W/hll.log"; exit 1; }
EP=http://127.0.0.1:$(cat "$W/port")

# healthlake-local's CPU seconds so far (user + system), to charge the upload rows with the
# emulator's share: on loopback it runs on the same cores.
TCK=$(getconf CLK_TCK)
hll_cpu() { awk -v t="$TCK" '{printf "%.2f", ($14 + $15) / t}' "/proc/$HLL_PID/stat"; }
# One measurement: "<wall s> <user+sys s> <emulator user+sys s>" of a command (children included).
measure() {
  local e0
  e0=$(hll_cpu)
  /usr/bin/time -f "%e %U %S" -o "$W/t" "$@" > /dev/null 2> "$W/err" || {
    echo "failed: $*" >&2
    cat "$W/err" >&2
    exit 1
  }
  awk -v e="$(bc <<< "$(hll_cpu) - $e0")" '{printf "%s %.2f %.2f\n", $1, $2 + $3, e}' "$W/t"
}
# The stages, each one command line run by `bash -c` (so /usr/bin/time counts its children).
export FE UP W EP AK SK
export MIB=$(((BYTES + (1 << 19)) >> 20)) # fhir-upload-bench sends MiB; the export's size in MiB
declare -A STAGE=(
  [validate]='"$FE" validate --level structure-only "$W/in"'
  [zstd3]='for f in "$W"/in/*.ndjson; do zstd -3 -T1 -q -c "$f" > /dev/null; done'
  [curl_put]='for f in "$W"/in/*.ndjson; do curl -sS -f -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "$f" "$EP/landing/curl/${f##*/}" || exit 1; done'
  [client_signed]='"$UP" "$EP" "$AK" "$SK" landing "$MIB" 16 4'
  [client_trailer]='FE_PAYLOAD_SIGNING=unsigned-trailer "$UP" "$EP" "$AK" "$SK" landing "$MIB" 16 4'
)

E2E_S=
if [[ -f $E2E ]]; then
  # "fhir-edge: drop -> import job started 12.02 s" and "input: 1000.0 MB"
  e_s=$(sed -nE 's/^fhir-edge: drop -> import job started ([0-9.]+) s.*/\1/p' "$E2E" | head -1)
  e_mb=$(sed -nE 's/^input: ([0-9.]+) MB.*/\1/p' "$E2E" | head -1)
  [[ -n $e_s && -n $e_mb ]] && E2E_S=$(bc -l <<< "$e_s / ($e_mb / 1000)")
fi

printf '\nload average before: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
printf '%-44s %9s %7s %9s %9s %9s %7s\n' "stage (best / worst of $RUNS)" "MB/s" "s/GB" \
  "CPU-s/GB" "MB/CPU-s" "+emu/GB" "x e2e"
row() { # name, then "wall cpu emulator-cpu" lines
  local name=$1 best= worst= bcpu= bemu=
  shift
  for m in "$@"; do
    read -r wall cpu emu <<< "$m"
    if [[ -z $best ]] || (($(bc <<< "$wall < $best"))); then best=$wall bcpu=$cpu bemu=$emu; fi
    if [[ -z $worst ]] || (($(bc <<< "$wall > $worst"))); then worst=$wall; fi
  done
  local spg cpg ratio="-"
  spg=$(bc -l <<< "$best / $GB")
  cpg=$(bc -l <<< "$bcpu / $GB")
  [[ -n $E2E_S ]] && ratio=$(printf %.2f "$(bc -l <<< "$spg / $E2E_S")")
  printf '%-44s %9s %7.2f %9.2f %9s %9.2f %7s\n' "$name" \
    "$(printf '%.0f / %.0f' "$(bc -l <<< "$MB / $best")" "$(bc -l <<< "$MB / $worst")")" \
    "$spg" "$cpg" \
    "$(if (($(bc <<< "$bcpu > 0"))); then printf %.0f "$(bc -l <<< "$MB / $bcpu")"; else echo -; fi)" \
    "$(bc -l <<< "$bemu / $GB")" "$ratio"
}
for stage in validate zstd3 curl_put client_signed client_trailer; do
  ms=()
  for ((r = 0; r < RUNS; r++)); do ms+=("$(measure bash -c "${STAGE[$stage]}")"); done
  case $stage in
    validate) name="fhir-edge validate (structure-only)" ;;
    zstd3) name="zstd -3 -T1" ;;
    curl_put) name="curl PUT -> healthlake-local (loopback)" ;;
    client_signed) name="S3 client, SHA-256 signed (caller hashes)" ;;
    client_trailer) name="S3 client, unsigned + CRC32C trailer" ;;
  esac
  row "$name" "${ms[@]}"
done
printf 'load average after: %s\n' "$(cut -d' ' -f1-3 /proc/loadavg)"
if [[ -n $E2E_S ]]; then
  printf '\ne2e (%s): drop -> import job started %.2f s/GB; "x e2e" = stage s/GB / that.\n' \
    "$E2E" "$E2E_S"
fi
echo "CPU-s/GB: the stage's own processes; +emu/GB: healthlake-local's CPU during the stage (it"
echo "decodes, hashes and stores every byte on the same cores): the upload rows are this machine's"
echo "loopback ceiling, emulator included, not S3's."
