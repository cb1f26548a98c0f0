#!/usr/bin/env bash
# `fhir-edge retry` through the real binaries: `fhir-edge run` against healthlake-local, whose
# StartFHIRImportJob answers AccessDeniedException to its 1st and 3rd call (a permission missing
# until someone fixes it), so two exports get parked at import_starting.
#   A: parked while the daemon runs; `retry A` goes through the journal's request table, the
#      daemon applies it (same ClientToken) and A ends imported.
#   B: parked; the daemon is stopped; `retry B` applies it to the journal itself; the next start
#      continues B with the same token to imported.
#   `retry A` (imported) is refused without --reimport; with --reimport A gets a new attempt,
#   a new token and a second job, and every resource of A is imported twice.
#   `retry` of an unknown export, and `journal compact` with and without a daemon, are checked too.
set -euo pipefail
fe=$1 hl=$2 gen=$3
source "$(dirname "$0")/../../support/harness.sh"
fe_harness retry
fe_start_emulator --faults 'StartFHIRImportJob:AccessDeniedException=@1,StartFHIRImportJob:AccessDeniedException=@3' \
  --job-timing submitted=0.1s,queued=0.1s,run=0.2s
fe_write_config retry
starts_ok() { # StartFHIRImportJob calls answered 200 for an input containing /NAME/
  python3 - "$work/requests.ndjson" "$1" <<'PY'
import json, sys
n = 0
for l in open(sys.argv[1]):
    r = json.loads(l)
    if r["operation"] == "StartFHIRImportJob" and r["status"] == 200:
        n += 1
print(n)
PY
}

fe_start_daemon
fe_drop A 21
fe_wait_state A parked
"$fe" status --export A --journal "$work/journal.db" | grep -q AccessDenied || fail "A's park reason"

# Retry while the daemon runs: request → daemon → same token → imported.
out=$("$fe" retry A --journal "$work/journal.db" --wait 30) || fail "retry A: $out"
echo "$out"
grep -q "applied by the running daemon" <<<"$out" || fail "retry A not applied by the daemon: $out"
grep -q "same ClientToken" <<<"$out" || fail "retry A does not say the token is kept: $out"
fe_wait_state A imported

# B: parked (3rd Start), then the daemon stops; retry applies it directly; restart finishes it.
fe_drop B 22
fe_wait_state B parked
fe_stop_daemon
out=$("$fe" retry B --config "$work/fhir-edge.yaml") || fail "retry B: $out"
echo "$out"
grep -q "no daemon running" <<<"$out" || fail "retry B without a daemon: $out"
[ "$(fe_state_of B)" = import_starting ] || fail "B is $(fe_state_of B) after retry, expected import_starting"
fe_start_daemon
fe_wait_state B imported

# An imported export is not re-imported by accident.
rc=0
out=$("$fe" retry A --journal "$work/journal.db" 2>&1) || rc=$?
[ "$rc" -eq 1 ] || fail "retry of imported A exited $rc: $out"
grep -q -- "--reimport" <<<"$out" || fail "refusal does not name --reimport: $out"
out=$("$fe" retry A --reimport --journal "$work/journal.db") || fail "retry --reimport A: $out"
echo "$out"
grep -q "NEW import job" <<<"$out" || fail "reimport does not say a new job starts: $out"
fe_wait_state A imported
rc=0
"$fe" retry no-such-export --journal "$work/journal.db" >/dev/null 2>&1 || rc=$?
[ "$rc" -eq 1 ] || fail "retry of an unknown export exited $rc"

"$fe" status --json --journal "$work/journal.db" >"$work/status.json"
python3 - "$work" "$ds" <<'PY' || fail "outcome check"
import json, sys, collections
work, ds = sys.argv[1], sys.argv[2]
exps = {e["name"]: e for e in json.load(open(f"{work}/status.json"))["exports"]}
a, b = exps["A"], exps["B"]
assert a["import_attempt"] == 2 and b["import_attempt"] == 1, (a["import_attempt"], b["import_attempt"])
assert a["import_jobs"][0]["job_name"] == "A.retry2", a["import_jobs"]
log = [json.loads(l) for l in open(f"{work}/requests.ndjson")]
starts = [r for r in log if r["operation"] == "StartFHIRImportJob"]
ok = [r for r in starts if r["status"] == 200]
denied = [r for r in starts if r["status"] != 200]
assert len(denied) == 2, f"{len(denied)} refused Starts"
# A's first token was refused once and then accepted; B's likewise; A.retry2 has a new token.
tokens = collections.Counter(r["client_token"] for r in ok)
assert len(ok) == 3 and len(tokens) == 3, (len(ok), tokens)
assert {r["client_token"] for r in denied} <= set(tokens), "a retried Start used another token"
jobs = {r["job_id"] for r in ok}
assert len(jobs) == 3, jobs
imported = [json.loads(l) for l in open(f"{work}/emulator/healthlake/{ds}/resources.jsonl")]
by_job = collections.Counter(r["jobId"] for r in imported)
assert set(by_job) == jobs, (by_job, jobs)
print(f"retry: 2 parked exports resumed with their tokens, 1 re-import as a new job; "
      f"{len(imported)} resources imported from {len(jobs)} jobs")
PY

# journal compact: with the daemon running it goes through a request.
out=$("$fe" journal compact --older-than 0s --journal "$work/journal.db") || fail "compact: $out"
echo "$out"
# A (re-imported last) is the pipeline's newest import, which compaction keeps (the
# last-successful-import metric reads it); B goes.
grep -q "removed 1 finished export(s)" <<<"$out" || fail "compact while running: $out"
grep -q "applied by the running daemon" <<<"$out" || fail "compact not applied by the daemon: $out"
[ -z "$(fe_state_of B)" ] || fail "B still in the journal after compact"
[ "$(fe_state_of A)" = imported ] || fail "A, the newest import, was compacted"
fe_stop_daemon
out=$("$fe" journal compact --older-than 90d --journal "$work/journal.db") || fail "compact: $out"
grep -q "removed 0 finished export(s)" <<<"$out" || fail "compact without a daemon: $out"
echo "retry_cli: ok"
