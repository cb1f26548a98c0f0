#!/usr/bin/env bash
# Benchmark: fhir-edge's validator (single thread, Release build) against ajv 8 + the R4 JSON
# schema (Node 20) on the same files in the same run; then peak RSS on a ~1 GB generated file.
#
#   bench/validate/run.sh [REPEAT]     REPEAT: copies of the Synthea export in the corpus (10)
#
# Env: BUILD (default <repo>/build-validator-rel), SHARED (default <repo>/../shared),
#      BIG_MB (size of the generated file, default 1024), TMPDIR.
set -euo pipefail
repo=$(cd "$(dirname "$0")/../.." && pwd)
BUILD=${BUILD:-$repo/build-validator-rel}
SHARED=${SHARED:-$repo/../shared}
REPEAT=${1:-10}
BIG_MB=${BIG_MB:-1024}
synthea=$SHARED/fhir/synthea-10-patients
uscore=$SHARED/fhir/packages/hl7.fhir.us.core-3.1.0
[[ -d $synthea ]] || { echo "bench: $synthea not present" >&2; exit 2; }

cmake -S "$repo" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release -DFHIR_EDGE_SANITIZE=OFF >/dev/null
cmake --build "$BUILD" --target fhir-validate-bench -j2 >/dev/null
bench=$BUILD/bench/validate/fhir-validate-bench

work=$(mktemp -d "${TMPDIR:-/tmp}/fe-validate-bench.XXXXXX")
trap 'rm -rf "$work"' EXIT
files=()
for f in "$synthea"/*.ndjson; do [[ $(basename "$f") == log.ndjson ]] || files+=("$f"); done
for ((i = 0; i < REPEAT; i++)); do cat "${files[@]}"; done >"$work/synthea.ndjson"
corpus=$work/synthea.ndjson
echo "corpus: Synthea 10-patient export x$REPEAT = $(du -m "$corpus" | cut -f1) MB, $(wc -l <"$corpus") resources"
echo "machine: $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"

field() { sed -E "s/.*\"$1\":([0-9.]+).*/\1/" <<<"$2"; }

ajv=$(node "$repo/bench/validate/ajv_bench.js" "$corpus")
ajv_mbs=$(awk -v b="$(field bytes "$ajv")" -v s="$(field seconds "$ajv")" 'BEGIN{printf "%.1f", b/1e6/s}')
ajv_rps=$(awk -v r="$(field resources "$ajv")" -v s="$(field seconds "$ajv")" 'BEGIN{printf "%.0f", r/s}')
printf '\n%-32s %10s %12s %9s %9s\n' "validator (single thread)" "MB/s" "resources/s" "vs ajv" "vs ajv-validate-only"
printf '%-32s %10s %12s %9s\n' "ajv 8 + fhir.schema.json" "$ajv_mbs" "$ajv_rps" "1.0x"
ajv_vmbs=$(awk -v b="$(field bytes "$ajv")" -v s="$(field validateSeconds "$ajv")" 'BEGIN{printf "%.1f", b/1e6/s}')
printf '%-32s %10s %12s\n' "  (ajv validate only, no parse)" "$ajv_vmbs" "$(awk -v r="$(field resources "$ajv")" -v s="$(field validateSeconds "$ajv")" 'BEGIN{printf "%.0f", r/s}')"

run_level() {  # level label [extra args]
  local level=$1 label=$2
  shift 2
  local best=""
  for _ in 1 2 3; do  # best of three: the machine is shared
    local out
    out=$("$bench" --level "$level" "$@" "$corpus")
    local s
    s=$(field seconds "$out")
    if [[ -z $best ]] || awk -v a="$s" -v b="$(field seconds "$best")" 'BEGIN{exit !(a<b)}'; then best=$out; fi
  done
  local mbs rps
  mbs=$(awk -v b="$(field bytes "$best")" -v s="$(field seconds "$best")" 'BEGIN{printf "%.1f", b/1e6/s}')
  rps=$(awk -v r="$(field resources "$best")" -v s="$(field seconds "$best")" 'BEGIN{printf "%.0f", r/s}')
  printf '%-32s %10s %12s %8sx %8sx\n' "$label" "$mbs" "$rps" "$(awk -v a="$mbs" -v b="$ajv_mbs" 'BEGIN{printf "%.1f", a/b}')" "$(awk -v a="$mbs" -v b="$ajv_vmbs" 'BEGIN{printf "%.1f", a/b}')"
}
run_level minimal "fhir-edge minimal"
run_level structure-only "fhir-edge structure-only"
# strict = structure + the R4 error-severity FHIRPath invariants (daemon/fhir/fhirpath.hpp) + the
# built-in US Core 3.1.x (Synthea declares its profiles); first without the built-in set.
run_level strict "fhir-edge strict (no US Core)" --no-builtin-profiles
run_level strict "fhir-edge strict (US Core built in)"
if [[ -d $uscore ]]; then
  run_level strict "fhir-edge strict (+US Core package)" --package "$uscore"
fi
echo "(ajv: compile $(field compileSeconds "$ajv") s excluded; $(field removedDefinitions "$ajv") Medplum-only definitions removed; targets: structure-only >= 2x, minimal >= 5x)"

# Peak RSS must not grow with file size: the corpus vs a ~BIG_MB generated file.
big=$work/big.ndjson
while [[ $(stat -c %s "$big" 2>/dev/null || echo 0) -lt $((BIG_MB * 1000000)) ]]; do cat "$corpus" >>"$big"; done
echo
printf '%-16s %14s %14s\n' "peak RSS (KB)" "$(du -m "$corpus" | cut -f1) MB file" "$(du -m "$big" | cut -f1) MB file"
for level in minimal structure-only; do
  small=$(field peak_rss_kb "$("$bench" --level "$level" "$corpus")")
  large=$(field peak_rss_kb "$("$bench" --level "$level" "$big")")
  printf '%-16s %14s %14s\n' "$level" "$small" "$large"
done
