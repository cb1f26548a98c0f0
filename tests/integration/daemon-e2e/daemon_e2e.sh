#!/usr/bin/env bash
# End to end through the real binaries: healthlake-local (S3 + HealthLake, SigV4 checked),
# `fhir-edge run`, a generated export with known invalid lines dropped into the watched directory.
# Asserts: the export ends `imported`; status counts equal the generator's; HealthLake imported
# every valid resource exactly once from exactly one StartFHIRImportJob; after_upload moved the
# source out of the watched directory; spool retention removed its spool; SIGTERM exits 0.
set -euo pipefail
fe=$1 hl=$2 gen=$3
work=$(mktemp -d /tmp/fe-e2e.XXXXXX)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
fail() {
  echo "FAIL: $*" >&2
  echo "--- daemon log" >&2
  cat "$work/daemon.log" >&2 || true
  exit 1
}

export AWS_ACCESS_KEY_ID=AKIAE2ETEST000000001 AWS_SECRET_ACCESS_KEY=e2e-test-secret-value
ds=0123456789abcdef0123456789abcdef
"$hl" --data "$work/emulator" --listen 127.0.0.1:0 --port-file "$work/port" \
  --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" --region us-east-1 \
  --datastore "$ds" --bucket landing --bucket results --request-log "$work/requests.ndjson" \
  --job-timing submitted=0.2s,queued=0.2s,run=0.5s >"$work/emulator.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do [ -s "$work/port" ] && break; sleep 0.1; done
[ -s "$work/port" ] || fail "healthlake-local did not start: $(cat "$work/emulator.log")"
port=$(cat "$work/port")

mkdir -p "$work/incoming"
cat >"$work/fhir-edge.yaml" <<YAML
aws:
  region: us-east-1
  credentials: { source: env }
  endpoints: { s3: "http://127.0.0.1:$port", healthlake: "http://127.0.0.1:$port" }
  s3_path_style: true
pipelines:
  - name: e2e
    watch: $work/incoming
    complete_when: { marker: .done, bulk_manifest: false, client_log: false }
    validation_level: structure-only
    s3: { bucket: landing, prefix: exports }
    healthlake:
      datastore_id: $ds
      data_access_role_arn: arn:aws:iam::123456789012:role/HealthLakeImport
      output_s3_uri: s3://results/imports/
      output_kms_key_id: alias/healthlake
    after_upload: move:$work/done
spool: { dir: $work/spool, keep_for: 0s }
journal: { path: $work/journal.db }
metrics: { listen: off }
import: { poll_min: 1s, poll_max: 2s }
YAML
"$fe" check-config --config "$work/fhir-edge.yaml" >/dev/null || fail "config rejected"

"$fe" run --config "$work/fhir-edge.yaml" >"$work/daemon.log" 2>&1 &
daemon=$!
pids+=($daemon)

# The export is written under a temporary name and renamed in, as bulk-data clients do.
"$gen" "$work/incoming/.tmp-exp" --patients 15 --seed 11 --invalid-every 13 --complete marker \
  >"$work/gen.json"
mv "$work/incoming/.tmp-exp" "$work/incoming/exp"

state=""
for _ in $(seq 240); do
  state=$("$fe" status --json --journal "$work/journal.db" 2>/dev/null |
    python3 -c 'import json,sys; e=json.load(sys.stdin)["exports"]; print(e[0]["state"] if e else "")' ||
    true)
  case "$state" in imported | import_failed | nothing_to_import | parked | failed) break ;; esac
  sleep 0.5
done
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
for _ in $(seq 50); do [ -d "$work/done/exp" ] && break; sleep 0.1; done
[ -d "$work/done/exp" ] || fail "export directory was not moved to $work/done"
[ ! -e "$work/incoming/exp" ] || fail "source still in the watched directory after the move"
n=$(find "$work/done/exp" -name '*.ndjson' | wc -l)
[ "$n" -eq "$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["files"])' "$work/gen.json")" ] ||
  fail "moved export has $n NDJSON files"

# spool.keep_for 0s: the spool of the imported export is removed at once.
for _ in $(seq 50); do [ -e "$work/spool/exp" ] || break; sleep 0.1; done
[ ! -e "$work/spool/exp" ] || fail "spool of the imported export kept despite keep_for: 0s"

kill -TERM "$daemon"
rc=0
wait "$daemon" || rc=$?
[ "$rc" -eq 0 ] || fail "daemon exited $rc after SIGTERM"
echo "e2e: ok"
