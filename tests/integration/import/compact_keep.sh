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
source "$(dirname "$0")/../../support/harness.sh"
fe_harness keep
fe_start_emulator --client-token-ttl 1s --job-timing submitted=0.1s,queued=0.1s,run=0.2s
fe_write_config keep "after_upload: keep"

fe_start_daemon
fe_drop A 31
fe_wait_state A imported
# Compaction keeps the newest imported export of a pipeline (the last-successful-import gauge
# reads it): Z, imported after A, is that one, so A is compacted.
fe_drop Z 33
fe_wait_state Z imported
out=$("$fe" journal compact --older-than 0s --journal "$work/journal.db") || fail "compact: $out"
grep -q "removed 1 finished export(s)" <<<"$out" || fail "compact: $out"
[ -z "$(fe_state_of A)" ] || fail "A still in the journal after compact"
[ "$(fe_state_of Z)" = imported ] || fail "Z, the newest import, was compacted"
fe_stop_daemon
[ -d "$work/incoming/A" ] || fail "after_upload: keep did not keep A"

sleep 1.5 # longer than --client-token-ttl: the emulator no longer knows A's token
fe_start_daemon
# A restart rescans the root; B shows the daemon is working (and that the scan has passed A).
fe_drop B 32
fe_wait_state B imported
fe_wait_log "compacted from the journal"
fe_stop_daemon

python3 - "$work" "$ds" <<'PY' || fail "exactly-once check"
import json, sys, collections
work, ds = sys.argv[1], sys.argv[2]
log = [json.loads(l) for l in open(f"{work}/requests.ndjson")]
starts = [r for r in log if r["operation"] == "StartFHIRImportJob" and r["status"] == 200]
jobs = {r["job_id"] for r in starts}
assert len(jobs) == 3, f"{len(jobs)} import jobs for 3 exports (A imported again?)"
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
