# Shell test kit for the integration scripts that drive the real binaries (source it; bash only).
# One place for what every such script needs: a scratch directory removed on exit with every
# process started from it, a fail() that shows the daemon's log and the journal, healthlake-local
# on a free loopback port, and the daemon config those scripts share.
#
#   source "$(dirname "$0")/../../support/harness.sh"
#   fe_harness NAME                 work=/tmp/fe-NAME.XXXXXX, pids=(), cleanup trap, fail()
#   fe_start_emulator [ARGS...]     healthlake-local with the test keys, data store $ds, buckets
#                                   landing and results, request log $work/requests.ndjson; ARGS
#                                   are added (faults, --job-timing, ...). Sets $port.
#   fe_write_config PIPELINE [LINES] writes $work/fhir-edge.yaml (pipeline PIPELINE watching
#                                   $work/incoming), LINES are extra pipeline keys, one per line
#                                   (e.g. "after_upload: keep"). FE_SPOOL / FE_IMPORT override
#                                   the spool and import sections. check-config must accept it.
#   fe_start_daemon                 `fhir-edge run` appending to $work/daemon.log; sets $daemon.
#   fe_stop_daemon                  SIGTERM; fails unless it exits 0.
#   fe_state_of NAME                the export's state from `status --json` (empty: unknown).
#   fe_wait_state NAME STATE...     waits up to FE_WAIT_SECONDS (120) for one of the states, else
#                                   fails.
#   fe_wait_until WHAT CMD [ARGS]   runs CMD every 0.1 s until it succeeds, up to FE_WAIT_SECONDS
#                                   (120); else fails with "WHAT". The way to wait for an event
#                                   (a file, a log line, a state), never a fixed sleep.
#   fe_wait_log TEXT [FILE]         fe_wait_until the daemon's log (or FILE) holds TEXT (fixed
#                                   string).
#   fe_drop NAME SEED [GEN ARGS]    a generated export (default 4 patients) with a .done marker,
#                                   written under a temporary name and renamed in, as bulk-data
#                                   clients do.
# Callers set fe (the fhir-edge binary), hl (healthlake-local) and gen (tools/fhir-export-gen).
# KEEP=1 keeps the scratch directory for debugging.

# The test credentials: fixed, loopback-only, never a real key.
export AWS_ACCESS_KEY_ID=AKIAHARNESSTEST00001 AWS_SECRET_ACCESS_KEY=harness-test-secret-value
unset AWS_SESSION_TOKEN AWS_PROFILE
export AWS_EC2_METADATA_DISABLED=true
ds=0123456789abcdef0123456789abcdef

fe_harness() {
  work=$(mktemp -d "/tmp/fe-$1.XXXXXX")
  pids=()
  trap fe_cleanup EXIT
}

fe_cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  [ -n "${KEEP:-}" ] || rm -rf "$work"
}

fail() {
  echo "FAIL: $*" >&2
  echo "--- daemon log (last 60 lines)" >&2
  tail -60 "$work/daemon.log" >&2 2>/dev/null || true
  if [ -f "$work/journal.db" ]; then
    echo "--- status" >&2
    "$fe" status --journal "$work/journal.db" >&2 || true
  fi
  exit 1
}

fe_start_emulator() {
  # The secret goes through the environment, not argv (ps would show it).
  HEALTHLAKE_LOCAL_SECRET_KEY=$AWS_SECRET_ACCESS_KEY "$hl" --data "$work/emulator" \
    --listen 127.0.0.1:0 --port-file "$work/port" --access-key "$AWS_ACCESS_KEY_ID" \
    --region us-east-1 --datastore "$ds" --bucket landing --bucket results \
    --request-log "$work/requests.ndjson" "$@" >"$work/emulator.log" 2>&1 &
  pids+=($!)
  # The port file is written (atomically) once it listens.
  FE_WAIT_SECONDS=60 fe_wait_until "healthlake-local to start (log: $work/emulator.log)" \
    test -s "$work/port"
  port=$(cat "$work/port")
}

fe_write_config() {
  local name=$1 extra=${2:-} line
  local spool=${FE_SPOOL:-"{ dir: $work/spool }"} import=${FE_IMPORT:-"{ poll_min: 1s, poll_max: 1s }"}
  mkdir -p "$work/incoming"
  {
    cat <<YAML
aws:
  region: us-east-1
  credentials: { source: env }
  endpoints: { s3: "http://127.0.0.1:$port", healthlake: "http://127.0.0.1:$port" }
  s3_path_style: true
pipelines:
  - name: $name
    watch: $work/incoming
    complete_when: { marker: .done, bulk_manifest: false, client_log: false }
    validation_level: structure-only
    s3: { bucket: landing, prefix: exports }
    healthlake:
      datastore_id: $ds
      data_access_role_arn: arn:aws:iam::123456789012:role/HealthLakeImport
      output_s3_uri: s3://results/imports/
      output_kms_key_id: alias/healthlake
YAML
    while IFS= read -r line; do [ -n "$line" ] && echo "    $line"; done <<<"$extra"
    cat <<YAML
spool: $spool
journal: { path: $work/journal.db }
metrics: { listen: off }
import: $import
YAML
  } >"$work/fhir-edge.yaml"
  "$fe" check-config --config "$work/fhir-edge.yaml" >/dev/null ||
    fail "config rejected: $("$fe" check-config --config "$work/fhir-edge.yaml" 2>&1)"
}

fe_start_daemon() {
  "$fe" run --config "$work/fhir-edge.yaml" >>"$work/daemon.log" 2>&1 &
  daemon=$!
  pids+=($daemon)
}

fe_stop_daemon() {
  kill -TERM "$daemon"
  local rc=0
  wait "$daemon" || rc=$?
  [ "$rc" -eq 0 ] || fail "daemon exited $rc after SIGTERM"
}

fe_state_of() {
  "$fe" status --json --journal "$work/journal.db" 2>/dev/null | python3 -c '
import json, sys
for e in json.load(sys.stdin)["exports"]:
    if e["name"] == sys.argv[1]: print(e["state"])' "$1" || true
}

fe_wait_state() {
  local name=$1 s="" want
  shift
  for _ in $(seq $((${FE_WAIT_SECONDS:-120} * 4))); do
    s=$(fe_state_of "$name")
    for want in "$@"; do [ "$s" = "$want" ] && return 0; done
    sleep 0.25
  done
  fail "$name is '$s', expected $*"
}

fe_wait_until() {
  local what=$1 i
  shift
  for ((i = 0; i < ${FE_WAIT_SECONDS:-120} * 10; i++)); do
    "$@" && return 0
    sleep 0.1
  done
  fail "waited ${FE_WAIT_SECONDS:-120} s for: $what"
}

fe_wait_log() {
  fe_wait_until "'$1' in ${2:-$work/daemon.log}" grep -qF -- "$1" "${2:-$work/daemon.log}"
}

fe_drop() {
  local name=$1 seed=$2
  shift 2
  [ $# -gt 0 ] || set -- --patients 4
  "$gen" "$work/incoming/.tmp-$name" "$@" --seed "$seed" --complete marker >"$work/gen-$name.json"
  mv "$work/incoming/.tmp-$name" "$work/incoming/$name"
}
