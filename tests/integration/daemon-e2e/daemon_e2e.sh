#!/usr/bin/env bash
# End to end through the real binaries: healthlake-local (S3 + HealthLake, SigV4 checked),
# `fhir-edge run`, a generated export with known invalid lines dropped into the watched directory.
# Asserts: the export ends `imported`; status counts equal the generator's; HealthLake imported
# every valid resource exactly once from exactly one StartFHIRImportJob; after_upload moved the
# source out of the watched directory; spool retention removed its spool; SIGTERM exits 0.
set -euo pipefail
fe=$1 hl=$2 gen=$3
source "$(dirname "$0")/../../support/harness.sh"
fe_harness e2e
fe_start_emulator --job-timing submitted=0.2s,queued=0.2s,run=0.5s
FE_SPOOL="{ dir: $work/spool, keep_for: 0s }" FE_IMPORT="{ poll_min: 1s, poll_max: 2s }" \
  fe_write_config e2e "after_upload: move:$work/done"
fe_start_daemon
fe_drop exp 11 --patients 15 --invalid-every 13
cp "$work/gen-exp.json" "$work/gen.json"

fe_wait_state exp imported import_failed nothing_to_import parked failed
state=$(fe_state_of exp)
[ "$state" = imported ] || fail "export ended '$state', expected imported"
"$fe" status --json --journal "$work/journal.db" >"$work/status-final.json"

python3 - "$work" "$ds" <<'PY' || fail "outcome check"
import json, sys, collections
work, ds = sys.argv[1], sys.argv[2]
gen = json.load(open(f"{work}/gen.json"))
valid = gen["resources"] - len(gen["invalid"])
exp = json.loads(open(f"{work}/status-final.json").read())["exports"][0]
assert exp["resources_valid"] == valid, (exp["resources_valid"], valid)
assert exp["resources_rejected"] == len(gen["invalid"]), (exp["resources_rejected"], gen["invalid"])
imported = [json.loads(l) for l in open(f"{work}/emulator/healthlake/{ds}/resources.jsonl")]
counts = collections.Counter((r["resourceType"], r["id"]) for r in imported)
assert len(counts) == valid, (len(counts), valid)
dups = [k for k, n in counts.items() if n != 1]
assert not dups, f"imported more than once: {dups[:5]}"
starts = [json.loads(l) for l in open(f"{work}/requests.ndjson")]
starts = [r for r in starts if r["operation"] == "StartFHIRImportJob" and r["status"] == 200]
assert len(starts) == 1, f"{len(starts)} StartFHIRImportJob calls"
print(f"e2e: {valid} valid resources imported once each, {len(gen['invalid'])} rejected, 1 import job")
PY

# after_upload: move — applied once the import was accepted: the whole export directory moves.
fe_wait_until "the export directory moved to $work/done" test -d "$work/done/exp"
[ ! -e "$work/incoming/exp" ] || fail "source still in the watched directory after the move"
n=$(find "$work/done/exp" -name '*.ndjson' | wc -l)
[ "$n" -eq "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["files"])' "$work/gen.json")" ] ||
  fail "moved export has $n NDJSON files"

# spool.keep_for 0s: the spool of the imported export is removed at once.
fe_wait_until "the imported export's spool removed (keep_for: 0s)" test ! -e "$work/spool/exp"

fe_stop_daemon
echo "e2e: ok"
