#!/usr/bin/env bash
# The crash harness at bench scale: 200 SIGKILLs (seeded) of `fhir-edge run` against
# healthlake-local, then the same invariants as the CI test (tests/crash/daemon/crash_driver.py):
# one import job per export, every valid resource imported once, no open multipart upload,
# journal integrity, re-sent bytes bounded by one part per in-flight part per kill.
#   bench/crash/run.sh [BUILD_DIR] [SEED] [KILLS]      (default build-crash, 1, 200)
#   BATCH_WAIT=5s bench/crash/run.sh ...   exports of several waves share batch jobs (import.batch_max_wait)
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build-crash} seed=${2:-1} kills=${3:-200}
cmake --build "$build" --target fhir-edge healthlake-local -j2 >/dev/null
start=$(date +%s)
AWS_EC2_METADATA_DISABLED=true /usr/bin/python3 "$root/tests/crash/daemon/crash_driver.py" \
  --fe "$build/daemon/fhir-edge" --hl "$build/tools/healthlake-local/healthlake-local" \
  --gen "$root/tools/fhir-export-gen/fhir-export-gen" \
  --seed "$seed" --kills "$kills" --large 30MiB --small-exports 8 --waves 8 --time-limit $((kills * 4 + 300)) --batch-wait "${BATCH_WAIT:-0s}"
echo "crash bench: seed $seed, $kills kills, $(($(date +%s) - start)) s wall on $(nproc) cores ($build)"
