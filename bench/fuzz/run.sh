#!/usr/bin/env bash
# Fuzzing bench: builds every libFuzzer target and runs each for SECONDS (default 60), then prints
# per target the executions, exec/s and coverage (cov = covered edges, ft = features, from
# libFuzzer's final line and -print_final_stats), next to the coverage the seed corpus alone
# reaches (a -runs=0 pass over the same corpus in the same script): the ratio says how much the
# fuzzing found beyond the hand-made seeds.
#
#   bench/fuzz/run.sh [SECONDS] [--parallel N] [--build-dir D] [target...]
#
# PARALLEL defaults to 1 (the machine may be shared); the runs are nice'd.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
secs=60
if [[ $# -gt 0 && "$1" =~ ^[0-9]+$ ]]; then secs="$1"; shift; fi
build="$repo/build/fuzz"
pass=()
while (($#)); do
  case "$1" in
    --build-dir) build="$2"; pass+=("$1" "$2"); shift ;;
    *) pass+=("$1") ;;
  esac
  shift
done
targets=()
for a in "${pass[@]}"; do [[ "$a" =~ ^[a-z0-9_]+$ && ! "$a" =~ ^[0-9]+$ ]] && targets+=("$a"); done
((${#targets[@]})) || targets=(validator config s3_xml s3_responses healthlake_responses manifest sigv4)

# Build once (scripts/fuzz configures the clang build).
"$repo/scripts/fuzz" --build-only "${pass[@]}"

# Baseline: coverage of the seed corpus alone.
declare -A seed_cov seed_ft
for t in "${targets[@]}"; do
  rm -rf "$build/seedonly/$t" && mkdir -p "$build/seedonly/$t"
  cp -f "$repo/tests/fuzz/corpus/$t/"* "$build/seedonly/$t/"
  line="$("$build/tests/fuzz/fuzz_$t" "$build/seedonly/$t" -runs=0 -max_len=8192 2>&1 | grep -E 'INITED|DONE' | tail -1 || true)"
  seed_cov[$t]="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$line")"
  seed_ft[$t]="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$line")"
done

set +e
"$repo/scripts/fuzz" --no-build --time "$secs" "${pass[@]}" | tee "$build/bench.txt"
rc=${PIPESTATUS[0]}
set -e

echo
echo "coverage against the seed corpus alone (same binaries, -runs=0):"
printf '%-22s %9s %9s %9s %9s %8s\n' target seed-cov fuzz-cov seed-ft fuzz-ft ft-ratio
for t in "${targets[@]}"; do
  row="$(grep -E "^$t " "$build/bench.txt" | tail -1)"
  cov="$(awk '{print $4}' <<<"$row")"
  ft="$(awk '{print $5}' <<<"$row")"
  ratio="?"
  if [[ "${seed_ft[$t]:-}" =~ ^[0-9]+$ && "$ft" =~ ^[0-9]+$ && "${seed_ft[$t]}" -gt 0 ]]; then
    ratio="$(awk -v a="$ft" -v b="${seed_ft[$t]}" 'BEGIN{printf "%.2f", a/b}')"
  fi
  printf '%-22s %9s %9s %9s %9s %8s\n' "$t" "${seed_cov[$t]:-?}" "$cov" "${seed_ft[$t]:-?}" "$ft" "$ratio"
done
exit "$rc"
