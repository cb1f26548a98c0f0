#!/usr/bin/env bash
# Issue 15, defect 3: `journal compact` + `after_upload: keep` (the default) must not re-import an
# old export after a restart. Real binaries: `fhir-edge run` against healthlake-local started with
# --client-token-ttl 1s, so the emulator forgets the ClientToken as AWS may (AWS documents no
# retention); only the journal's tombstone can stop a second import.
#   1. export A is imported; `journal compact --older-than 0s` removes it (daemon running).
#   2. the daemon stops; the token's TTL passes; the daemon starts again and rescans: A is still in
#      the watched directory (kept) and must be recognised from its tombstone, not taken again.
#   3. a new export B, dropped after the restart, is still imported (the daemon works on).
# Checked: one successful StartFHIRImportJob for A, every resource of A imported exactly once,
# A's objects uploaded once, and the log says A was recognised.
set -euo pipefail
fe=$1 hl=$2 gen=$3
work=$(mktemp -d /tmp/fe-compact-keep.XXXXXX)
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
  tail -40 "$work/daemon.log" >&2 || true
  "$fe" status --journal "$work/journal.db" >&2 || true
  exit 1
}

export AWS_ACCESS_KEY_ID=AKIACOMPACTTEST00001 AWS_SECRET_ACCESS_KEY=compact-test-secret-value
ds=0123456789abcdef0123456789abcdef
"$hl" --data "$work/emulator" --listen 127.0.0.1:0 --port-file "$work/port" \
  --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" --region us-east-1 \
  --datastore "$ds" --bucket landing --bucket results --request-log "$work/requests.ndjson" \
  --client-token-ttl 1s \
  --job-timing submitted=0.1s,queued=0.1s,run=0.2s >"$work/emulator.log" 2>&1 &
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
  - name: keep
    watch: $work/incoming
    complete_when: { marker: .done, bulk_manifest: false, client_log: false }
    validation_level: structure-only
    s3: { bucket: landing, prefix: exports }
    healthlake:
      datastore_id: $ds
      data_access_role_arn: arn:aws:iam::123456789012:role/HealthLakeImport
      output_s3_uri: s3://results/imports/
      output_kms_key_id: alias/healthlake
    after_upload: keep
spool: { dir: $work/spool }
journal: { path: $work/journal.db }
metrics: { listen: off }
import: { poll_min: 1s, poll_max: 1s }
YAML
"$fe" check-config --config "$work/fhir-edge.yaml" >/dev/null || fail "config rejected"

start_daemon() {
  "$fe" run --config "$work/fhir-edge.yaml" >>"$work/daemon.log" 2>&1 &
  daemon=$!
  pids+=($daemon)
}
stop_daemon() {
  kill -TERM "$daemon"
  local rc=0
  wait "$daemon" || rc=$?
  [ "$rc" -eq 0 ] || fail "daemon exited $rc after SIGTERM"
}
state_of() {
  "$fe" status --json --journal "$work/journal.db" 2>/dev/null | python3 -c '
import json, sys
for e in json.load(sys.stdin)["exports"]:
    if e["name"] == sys.argv[1]: print(e["state"])' "$1" || true
}
wait_state() { # NAME STATE
  local s=""
  for _ in $(seq 240); do
    s=$(state_of "$1")
    [ "$s" = "$2" ] && return 0
    sleep 0.25
  done
  fail "$1 is '$s', expected $2"
}
drop() { # NAME SEED
  "$gen" "$work/incoming/.tmp-$1" --patients 4 --seed "$2" --complete marker >"$work/gen-$1.json"
  mv "$work/incoming/.tmp-$1" "$work/incoming/$1"
}

start_daemon
drop A 31
wait_state A imported
out=$("$fe" journal compact --older-than 0s --journal "$work/journal.db") || fail "compact: $out"
grep -q "removed 1 finished export(s)" <<<"$out" || fail "compact: $out"
[ -z "$(state_of A)" ] || fail "A still in the journal after compact"
stop_daemon
[ -d "$work/incoming/A" ] || fail "after_upload: keep did not keep A"

sleep 1.5 # longer than --client-token-ttl: the emulator no longer knows A's token
start_daemon
# A restart rescans the root; B shows the daemon is working (and that the scan has passed A).
drop B 32
wait_state B imported
for _ in $(seq 40); do
  grep -q "compacted from the journal" "$work/daemon.log" && break
  sleep 0.25
done
stop_daemon

python3 - "$work" "$ds" <<'PY' || fail "exactly-once check"
import json, sys, collections
work, ds = sys.argv[1], sys.argv[2]
log = [json.loads(l) for l in open(f"{work}/requests.ndjson")]
starts = [r for r in log if r["operation"] == "StartFHIRImportJob" and r["status"] == 200]
jobs = {r["job_id"] for r in starts}
assert len(jobs) == 2, f"{len(jobs)} import jobs for 2 exports (A imported again?)"
puts = collections.Counter(r["key"] for r in log
                           if r["operation"] in ("PutObject", "CompleteMultipartUpload")
                           and r["status"] == 200 and "/A/import/" in r.get("key", ""))
assert puts and max(puts.values()) == 1, f"A's import objects written more than once: {puts}"
imported = [json.loads(l) for l in open(f"{work}/emulator/healthlake/{ds}/resources.jsonl")]
per = collections.Counter(f'{r["resourceType"]}/{r["id"]}' for r in imported)
twice = [k for k, n in per.items() if n > 1]
assert not twice, f"{len(twice)} resources imported twice, e.g. {twice[:3]}"
print(f"compact+keep: {len(imported)} resources imported once each from {len(jobs)} jobs")
PY
grep -q "export already taken (identical content; compacted from the journal after it ended imported), not redone.*EXPORT_ID=A" "$work/daemon.log" ||
  fail "the restart did not say A was recognised from its tombstone"
echo "compact_keep: ok"
