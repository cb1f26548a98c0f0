#!/usr/bin/env bash
# healthlake-local's receive path alone (issue 13, "the emulator's receive path"): the emulator's
# CPU-seconds per GB (user+sys from /proc/PID/stat, as run.sh) and MB/s while it receives
#   signed    bench/aws/fhir-upload-bench, multipart 16 MiB parts x 4 in flight, SHA-256 signed
#   trailer   the same, STREAMING-UNSIGNED-PAYLOAD-TRAILER (aws-chunked, CRC32C trailer)
#   curl      one `curl -T` PutObject of the whole file (UNSIGNED-PAYLOAD)
#   copy      one CopyObject of that object (server side)
# for one or more emulator binaries, interleaved (binary A run 1, B run 1, A run 2, ...), with the
# load average before each measurement (the machine is shared; CPU-s/GB is the load-proof column).
#
#   bench/stages/emulator.sh BUILD_DIR [MIB] [RUNS] [HLL_BINARY]...
# BUILD_DIR provides fhir-upload-bench (and healthlake-local when no HLL_BINARY is given).
set -euo pipefail
BUILD=${1:?usage: emulator.sh BUILD_DIR [MIB] [RUNS] [HLL_BINARY]...}
MIB=${2:-512}
RUNS=${3:-3}
shift $(($# < 3 ? $# : 3))
BINS=("$@")
[[ ${#BINS[@]} -gt 0 ]] || BINS=("$BUILD/tools/healthlake-local/healthlake-local")
UP=$BUILD/bench/aws/fhir-upload-bench
for f in "$UP" "${BINS[@]}"; do [[ -x $f ]] || { echo "missing $f (build it)"; exit 2; }; done
W=$(mktemp -d /tmp/fe-bench-emu.XXXXXX)
HLL_PID=
cleanup() {
  if [[ -n $HLL_PID ]]; then kill "$HLL_PID" 2> /dev/null || true; fi
  wait 2> /dev/null || true
  rm -rf "$W"
}
trap cleanup EXIT
AK=AKIDBENCHSTAGES00001 SK=bench-stages-secret-key-0123456789
head -c $((MIB << 20)) /dev/urandom > "$W/body"
BYTES=$((MIB << 20))
TCK=$(getconf CLK_TCK)
hll_cpu() { awk -v t="$TCK" '{printf "%.3f", ($14 + $15) / t}' "/proc/$HLL_PID/stat"; }
start_hll() {
  rm -rf "$W/emu" "$W/port"
  "$1" --data "$W/emu" --listen 127.0.0.1:0 --port-file "$W/port" --access-key "$AK" \
    --secret-key "$SK" --region us-east-1 --bucket landing > "$W/hll.log" 2>&1 &
  HLL_PID=$!
  for _ in $(seq 100); do [[ -s $W/port ]] && break; sleep 0.1; done
  [[ -s $W/port ]] || { echo "healthlake-local did not start"; cat "$W/hll.log"; exit 1; }
  EP=http://127.0.0.1:$(cat "$W/port")
}
stop_hll() { kill "$HLL_PID"; wait "$HLL_PID" 2> /dev/null || true; HLL_PID=; }
# "<MB/s> <emulator CPU-s per GB> <load1>" of one command
measure() {
  local load e0 t0 t1 e1
  load=$(cut -d' ' -f1 /proc/loadavg)
  e0=$(hll_cpu)
  t0=$(date +%s.%N)
  "$@" > "$W/out" 2> "$W/err" || { echo "failed: $*" >&2; cat "$W/err" "$W/out" >&2; exit 1; }
  t1=$(date +%s.%N)
  e1=$(hll_cpu)
  awk -v b="$BYTES" -v s="$(bc -l <<< "$t1 - $t0")" -v e="$(bc -l <<< "$e1 - $e0")" -v l="$load" \
    'BEGIN{printf "%6.0f MB/s %6.2f emu-CPU-s/GB load %s\n", b / 1e6 / s, e / (b / 1e9), l}'
}
signed() { "$UP" "$EP" "$AK" "$SK" landing "$MIB" 16 4; }
trailer() { FE_PAYLOAD_SIGNING=unsigned-trailer "$UP" "$EP" "$AK" "$SK" landing "$MIB" 16 4; }
curl_put() {
  curl -sS -f -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -T "$W/body" "$EP/landing/curl/body"
}
copy() {
  curl -sS -f -o /dev/null --aws-sigv4 "aws:amz:us-east-1:s3" --user "$AK:$SK" -X PUT \
    -H "x-amz-content-sha256: UNSIGNED-PAYLOAD" -H "x-amz-copy-source: /landing/curl/body" \
    "$EP/landing/curl/copy-$RANDOM"
}
cat "$W/body" > /dev/null
echo "body: $MIB MiB of random bytes; $(nproc) cores; binaries: ${BINS[*]}"
for ((r = 1; r <= RUNS; r++)); do
  for b in "${BINS[@]}"; do
    start_hll "$b"
    for op in signed trailer curl_put copy; do
      printf 'run %d %-8s %s  %s\n' "$r" "$op" "$(measure $op)" "$b"
    done
    stop_hll
  done
done
