#!/usr/bin/env bash
# The fleet soak at bench scale: 10 gateways, 100 exports dropped over 60 s, 20 seeded SIGKILLs
# (random daemons and the lease holder right after it claims a batch, during its copies and right
# after its Start), then the same invariants as the CI test crash.fleet_soak_10_gateways_fleet
# (tests/crash/fleet/fleet_soak.py): each valid resource once, every export imported on its own
# gateway, one job per batch, no export in two jobs or batches, jobs <= exports / 5, journals ok.
#   bench/fleet/soak.sh [BUILD_DIR] [SEED] [KILLS] [DRIVER ARGS...]   (default build/debug-asan, 1, 20)
# DRIVER ARGS replace --fleet (e.g. --max-jobs-ratio 1 for gateways that batch alone).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build/debug-asan} seed=${2:-1} kills=${3:-20}
shift $(($# < 3 ? $# : 3))
[ $# -gt 0 ] || set -- --fleet
cmake --build "$build" --target fhir-edge healthlake-local -j2 >/dev/null
start=$(date +%s)
AWS_EC2_METADATA_DISABLED=true /usr/bin/python3 "$root/tests/crash/fleet/fleet_soak.py" \
  --fe "$build/daemon/fhir-edge" --hl "$build/tools/healthlake-local/healthlake-local" \
  --gen "$root/tools/fhir-export-gen/fhir-export-gen" \
  --seed "$seed" --gateways 10 --exports 100 --kills "$kills" --drop-over 60 \
  --job-timing submitted=0.2s,queued=0.1s,run=4s --time-limit 600 "$@"
echo "fleet soak bench: seed $seed, $kills kills, $(($(date +%s) - start)) s wall on $(nproc) cores ($build)"
