#!/usr/bin/env bash
# Drain time of a fleet through HealthLake's one import slot: the fleet soak's set-up
# (tests/crash/fleet/fleet_soak.py: G `fhir-edge run` gateways, one healthlake-local with the
# one-slot quota and a fixed per-job overhead, E small exports dropped over D seconds, each into a
# random gateway) without kills, run twice with the same seed:
#   fleet : the gateways form one fleet (`fleet: {name: soak, ...}`): the lease holder batches
#           what the whole fleet has ready into one job;
#   single: no fleet and `import.batch_max_exports: 1`: one import job per export (fhir-edge
#           before issue 16).
# Both runs check the soak's invariants (each valid resource once, every export imported on its
# own gateway, one job per batch, no export in two jobs); it prints the drain times (first drop
# to the last export `imported`), the jobs, and the ratios. FE_MODES="fleet single" skips alone. Results: bench/fleet/README.md.
#   bench/fleet/run.sh [BUILD_DIR] [SEED]     (default build/release, 1)
# Environment: FE_GATEWAYS (10), FE_EXPORTS (100), FE_DROP_OVER (20 s),
#   FE_JOB_TIMING (submitted=0.2s,queued=0.1s,run=2s: AWS's ~80 s per job scaled down 40x).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
build=${1:-$root/build/release} seed=${2:-1}
gateways=${FE_GATEWAYS:-10} exports=${FE_EXPORTS:-100} drop=${FE_DROP_OVER:-20}
timing=${FE_JOB_TIMING:-submitted=0.2s,queued=0.1s,run=2s}
cmake --build "$build" --target fhir-edge healthlake-local -j2 >/dev/null
out=$(mktemp -d /tmp/fe-fleet-bench.XXXXXX)
trap 'rm -rf "$out"' EXIT
run() {  # run NAME DRIVER-ARGS...
  local name=$1
  shift
  echo "== $name"
  AWS_EC2_METADATA_DISABLED=true /usr/bin/python3 "$root/tests/crash/fleet/fleet_soak.py" \
    --fe "$build/daemon/fhir-edge" --hl "$build/tools/healthlake-local/healthlake-local" \
    --gen "$root/tools/fhir-export-gen/fhir-export-gen" --seed "$seed" --gateways "$gateways" \
    --exports "$exports" --drop-over "$drop" --job-timing "$timing" --kills 0 \
    --summary-json "$out/$name.json" "$@"
}
load0=$(cut -d' ' -f1-3 /proc/loadavg)
modes=${FE_MODES:-fleet alone single}
for m in $modes; do
  case $m in
    fleet) run fleet --fleet --time-limit 900 ;;
    alone) run alone --max-jobs-ratio 1 --time-limit 900 ;;
    single) run single --batch-max-exports 1 --max-jobs-ratio 1 --time-limit 1800 ;;
  esac
done
load1=$(cut -d' ' -f1-3 /proc/loadavg)
/usr/bin/python3 - "$out" $modes <<'PY'
import json, sys
runs = {m: json.load(open(f"{sys.argv[1]}/{m}.json")) for m in sys.argv[2:]}
label = {"fleet": "fleet", "alone": "gateways alone", "single": "one job per export"}
r0 = next(iter(runs.values()))
print(f"fleet bench: {r0['gateways']} gateways, {r0['exports']} exports ({r0['resources']} resources) dropped "
      f"over {r0['drop_over_s']:g}s, healthlake-local --job-timing {r0['job_timing']}, one import slot")
for m, r in runs.items():
    print(f"  {label[m]:<19}: {r['jobs']:>4} jobs, drain {r['drain_s']:7.1f}s "
          f"(last job ended at {r['last_job_end_s']:.1f}s), {60 * r['exports'] / r['drain_s']:.1f} exports/min, "
          f"largest batch {max(r['batch_sizes'])}")
if "fleet" in runs:
    f = runs["fleet"]
    for m in ("single", "alone"):
        if m in runs:
            print(f"  ratio drain({label[m]}) / drain(fleet): {runs[m]['drain_s'] / f['drain_s']:.1f}x "
                  f"(jobs {runs[m]['jobs']} / {f['jobs']})")
PY
echo "  machine: $(nproc) cores, load average before $load0, after $load1; build $build"
