#!/usr/bin/env bash
# Benchmark: a multipart upload through fhir-edge's S3 client (libcurl multi on Asio, CRC32C on
# ISA-L) against the AWS SDK for JavaScript v3 doing the same upload, in the same run, to the same
# healthlake-local on loopback (which verifies every signature and payload hash and stores the
# bytes). Prints MB/s of each, the ratio, and peak RSS.
#
#   bench/aws/run.sh [SIZE_MIB] [PART_MIB] [CONCURRENCY]     defaults: 512 16 4
#
# Env: BUILD (default <repo>/build-aws-bench, a Release build), TMPDIR.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$repo/build-aws-bench}
SIZE=${1:-512}
PART=${2:-16}
CONC=${3:-4}

# -Wno-restrict: GCC 12's false positive on std::string concatenation at -O2 (GCC PR 105651)
# breaks -Werror Release builds of daemon/service/log.cpp.
cmake -S "$repo" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DFHIR_EDGE_SANITIZE=OFF \
  -DCMAKE_CXX_FLAGS=-Wno-restrict >/dev/null
cmake --build "$BUILD" --target fhir-upload-bench healthlake-local -j2 >/dev/null
bench=$BUILD/bench/aws/fhir-upload-bench
hll=$(find "$BUILD/tools/healthlake-local" -maxdepth 1 -type f -name healthlake-local -perm -u+x | head -1)

work=$(mktemp -d "${TMPDIR:-/tmp}/fe-aws-bench.XXXXXX")
ak=AKIABENCHMARK0000001 sk=bench-secret-key-000000000000000000000000
"$hll" --data "$work/data" --listen 127.0.0.1:0 --port-file "$work/port" --access-key $ak \
  --secret-key $sk --bucket bench >/dev/null 2>"$work/hll.log" &
hll_pid=$!
trap 'kill $hll_pid 2>/dev/null; wait $hll_pid 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 100); do [[ -s $work/port ]] && break; sleep 0.1; done
endpoint=http://127.0.0.1:$(cat "$work/port")

echo "upload: $SIZE MiB, $PART MiB parts, $CONC in flight, to healthlake-local on loopback"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
field() { sed -E "s/.*\"$1\":([0-9.]+).*/\1/" <<<"$2"; }
sdk=$(node --no-warnings "$repo/bench/aws/sdk_upload_bench.js" "$endpoint" $ak $sk bench "$SIZE" "$PART" "$CONC")
ours=$("$bench" "$endpoint" $ak $sk bench "$SIZE" "$PART" "$CONC")
mbs() { awk -v b="$(field bytes "$1")" -v s="$(field seconds "$1")" 'BEGIN{printf "%.1f", b/1e6/s}'; }
printf '\n%-34s %8s %8s %12s\n' "client" "MB/s" "ratio" "peak RSS MB"
printf '%-34s %8s %8s %12s\n' "AWS SDK JS v3 (@aws-sdk/client-s3)" "$(mbs "$sdk")" "1.00x" \
  "$(( $(field peak_rss_kb "$sdk") / 1024 ))"
printf '%-34s %8s %8s %12s\n' "fhir-edge S3Client" "$(mbs "$ours")" \
  "$(awk -v a="$(mbs "$ours")" -v b="$(mbs "$sdk")" 'BEGIN{printf "%.2fx", a/b}')" \
  "$(( $(field peak_rss_kb "$ours") / 1024 ))"
