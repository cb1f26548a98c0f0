#!/usr/bin/env bash
# The shipped unit's restrictions still let the daemon do its job. Reads systemd/fhir-edge.service
# (User=, StateDirectory=, ReadWritePaths=, ConfigurationDirectory=, UMask=, ExecStartPre=,
# ExecStart=...), creates its user with the shipped sysusers.d file and its watch root with the
# tmpfiles.d file (both in a scratch root: the host's /etc/passwd is never changed), and runs
# `fhir-edge run` in a private mount namespace built by sandbox.sh: the file system read-only
# except the unit's writable paths, private /tmp, no /home, as the unprivileged user with no
# capabilities and no_new_privs, credentials from a LoadCredential-style directory. healthlake-local
# serves S3 and HealthLake on 127.0.0.1. The demo export (../shared/fhir/synthea-10-patients, or a
# generated one when ../shared is absent) is dropped into the watch root as an exporter in group
# fhir-edge would, and must end `imported` (READY=1 and STOPPING=1 arrive on the notify socket),
# with every valid resource imported once and the source moved by after_upload inside the watch
# root. KEEP=1 keeps the scratch directory for debugging.
# Usage: unit_user_test.sh SOURCE_DIR FHIR_EDGE_EXE HEALTHLAKE_LOCAL_EXE EXPORT_GEN SHARED_DIR
# Exit 77 (CTest: skipped) with one line saying why when root or a tool is missing.
set -euo pipefail
src=$1 fe=$2 hl=$3 gen=$4 shared=$5
unit=$src/systemd/fhir-edge.service

skip() {
  echo "SKIP: $*"
  exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root (mount namespace, switching to the unit's user)"
for tool in unshare setpriv findmnt systemd-sysusers systemd-tmpfiles python3; do
  command -v "$tool" >/dev/null || skip "$tool is not installed"
done

unshare -m true 2>/dev/null || skip "cannot create a mount namespace here"
grep -qw overlay /proc/filesystems || skip "no overlayfs in this kernel"

source "$(dirname "$0")/../../support/harness.sh"
fe_harness unit-user
chmod 0755 "$work"  # the service user reaches its bound directories through it
# The daemon reads its credentials the systemd way only (LoadCredential-style directory below).
ak=$AWS_ACCESS_KEY_ID sk=$AWS_SECRET_ACCESS_KEY
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY

# --- the unit's settings ---------------------------------------------------------------------
# Every value of KEY in [Service] (keys may repeat), in order.
unit_values() {
  awk -v key="$1" -F= '
    /^\[/ { section = $0; next }
    section == "[Service]" && $1 == key { sub(/^[^=]*=/, ""); print }' "$unit"
}
unit_value() { unit_values "$1" | tail -n 1; }
user=$(unit_value User) group=$(unit_value Group)
[ -n "$user" ] && [ -n "$group" ] || fail "the unit names no User=/Group="
[ "$(unit_value ProtectSystem)" = strict ] || fail "the unit is not ProtectSystem=strict"
[ "$(unit_value PrivateTmp)" = yes ] || fail "the unit has no PrivateTmp=yes"
[ "$(unit_value NoNewPrivileges)" = yes ] || fail "the unit has no NoNewPrivileges=yes"
[ -z "$(unit_value CapabilityBoundingSet)" ] || fail "the unit keeps capabilities"
state=/var/lib/$(unit_value StateDirectory)
state_mode=$(unit_value StateDirectoryMode)
config_dir=/etc/$(unit_value ConfigurationDirectory)
umask_value=$(unit_value UMask)
writable=("$state")
while read -r line; do
  for p in $line; do writable+=("${p#-}"); done  # "-" only means "ignore if missing"
done < <(unit_values ReadWritePaths)
# The two command lines, with this build's binary in place of the installed one.
read -r -a exec_start_pre <<<"$(unit_value ExecStartPre)"
read -r -a exec_start <<<"$(unit_value ExecStart)"
exec_start_pre[0]=$fe
exec_start[0]=$fe
config=${exec_start[*]}
config=${config##*--config }
config=${config%% *}
case "$config" in "$config_dir"/*) ;; *) fail "ExecStart= reads $config, not inside $config_dir" ;; esac
echo "unit: User=$user StateDirectory=$state ($state_mode) writable: ${writable[*]}" \
  "config: $config UMask=$umask_value"

# --- the user and the directories, in a scratch root -----------------------------------------
root=$work/root
mkdir -p "$root/etc"
# This host's users and groups, so systemd-sysusers picks ids that are free here.
cp /etc/passwd /etc/group "$root/etc/"
systemd-sysusers --root="$root" "$src/systemd/fhir-edge.sysusers" >"$work/sysusers.log" 2>&1 ||
  fail "systemd-sysusers: $(cat "$work/sysusers.log")"
entry=$(grep "^$user:" "$root/etc/passwd") || fail "sysusers created no user $user"
uid=$(cut -d: -f3 <<<"$entry")
gid=$(grep "^$group:" "$root/etc/group" | cut -d: -f3)
[ "$uid" -gt 0 ] && [ "$uid" -lt 1000 ] || fail "$user is not a system user: uid $uid"
systemd-tmpfiles --root="$root" --create "$src/systemd/fhir-edge.tmpfiles" >"$work/tmpfiles.log" 2>&1 ||
  fail "systemd-tmpfiles: $(cat "$work/tmpfiles.log")"
# StateDirectory=: systemd creates it at start, owned by the user, with StateDirectoryMode.
install -d -o "$uid" -g "$gid" -m "${state_mode:-0755}" "$root$state"
for d in "${writable[@]}"; do
  [ -d "$root$d" ] || fail "$d (writable in the unit) was not created by tmpfiles.d or the state directory"
done
watch_root=${writable[1]:?the unit has no ReadWritePaths= watch root}

# --- healthlake-local (outside the sandbox, on loopback) --------------------------------------
AWS_ACCESS_KEY_ID=$ak AWS_SECRET_ACCESS_KEY=$sk fe_start_emulator --job-timing submitted=0.2s,queued=0.2s,run=0.5s

# --- configuration and credentials, as an operator installs them -------------------------------
# spool.dir and journal.path are left at their defaults, which must lie in the state directory.
mkdir -p "$root$config_dir"
cat >"$root$config" <<YAML
aws:
  region: us-east-1
  credentials: { source: systemd }
  endpoints: { s3: "http://127.0.0.1:$port", healthlake: "http://127.0.0.1:$port" }
  s3_path_style: true
pipelines:
  - name: demo
    watch: $watch_root/demo
    complete_when: { marker: .done, bulk_manifest: false, client_log: false }
    validation_level: structure-only
    s3: { bucket: landing, prefix: exports }
    healthlake:
      datastore_id: $ds
      data_access_role_arn: arn:aws:iam::123456789012:role/HealthLakeImport
      output_s3_uri: s3://results/imports/
      output_kms_key_id: alias/healthlake
    after_upload: move:$watch_root/done
metrics: { listen: off }
import: { poll_min: 1s, poll_max: 2s }
YAML
chmod 0644 "$root$config"
printf '[default]\naws_access_key_id = %s\naws_secret_access_key = %s\n' "$ak" "$sk" >"$work/aws-credentials"
chmod 0600 "$work/aws-credentials"
# The exporting system's directory in the watch root (group fhir-edge through the setgid bit).
(umask 0007 && mkdir "$root$watch_root/demo")

# --- start the daemon in the sandbox ----------------------------------------------------------
# Type=notify: systemd's notification socket, here an abstract AF_UNIX socket (reachable from the
# sandbox's mount namespace) whose datagrams are logged one per line.
notify_socket="@fe-unit-user-$$-$RANDOM"
python3 -u - "${notify_socket#@}" >"$work/notify.log" 2>&1 <<'PY' &
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind("\0" + sys.argv[1])
while True:
    print(s.recv(65536).decode(errors="replace").replace("\n", " "))
PY
pids+=($!)
{
  echo "work=$(printf %q "$work") root=$(printf %q "$root") user=$(printf %q "$user")"
  echo "group=$(printf %q "$group") umask_value=$(printf %q "$umask_value")"
  echo "config_dir=$(printf %q "$config_dir") unit_name=fhir-edge.service"
  echo "credentials=$(printf %q "$work/aws-credentials") notify_socket=$(printf %q "$notify_socket")"
  echo "writable=($(printf '%q ' "${writable[@]}"))"
  echo "exec_start_pre=($(printf '%q ' "${exec_start_pre[@]}"))"
  echo "exec_start=($(printf '%q ' "${exec_start[@]}"))"
} >"$work/settings"
unshare -m --propagation private bash "$src/tests/integration/unit-user/sandbox.sh" \
  "$work/settings" >"$work/daemon.log" 2>&1 &
daemon=$!
pids+=($daemon)

# The daemon is up once it says READY=1, as systemd would wait for it.
for _ in $(seq 300); do
  grep -q 'READY=1' "$work/notify.log" && break
  kill -0 "$daemon" 2>/dev/null || fail "the daemon exited during start-up"
  sleep 0.1
done
grep -q 'READY=1' "$work/notify.log" || fail "no READY=1 after 30 s: $(cat "$work/notify.log")"
echo "sd_notify: $(grep -m1 'READY=1' "$work/notify.log")"
[ -e "$root$state/journal.db" ] || fail "READY=1 but no journal in $state"
grep -q '^sandbox: read-only except' "$work/daemon.log" || fail "the sandbox was not set up"
grep -qx ok "$work/daemon.log" || fail "ExecStartPre= check-config did not print ok"

# What the kernel says about the running daemon: the unit's user, no capabilities, no_new_privs.
st=/proc/$daemon/status
[ "$(awk '/^Uid:/ {print $2 $3 $4 $5}' "$st")" = "$uid$uid$uid$uid" ] || fail "daemon uid: $(grep ^Uid: "$st")"
[ "$(awk '/^Gid:/ {print $2 $3 $4 $5}' "$st")" = "$gid$gid$gid$gid" ] || fail "daemon gid: $(grep ^Gid: "$st")"
[ -z "$(awk '/^Groups:/ {print $2}' "$st")" ] || fail "daemon has supplementary groups: $(grep ^Groups: "$st")"
for cap in CapInh CapPrm CapEff CapBnd CapAmb; do
  [ "$(awk -v c="$cap:" '$1 == c {print $2}' "$st")" = 0000000000000000 ] ||
    fail "daemon $cap: $(grep "^$cap:" "$st")"
done
[ "$(awk '/^NoNewPrivs:/ {print $2}' "$st")" = 1 ] || fail "daemon without no_new_privs"
echo "daemon pid $daemon: uid $uid gid $gid, no capabilities, no_new_privs"

# --- the demo export ---------------------------------------------------------------------------
staging=$root$watch_root/demo/.synthea.tmp
if [ -d "$shared/fhir/synthea-10-patients" ]; then
  src_export=$shared/fhir/synthea-10-patients
  (umask 0007 && mkdir "$staging" && cp "$src_export"/*.ndjson "$staging/")
  echo "export: $src_export"
else
  (umask 0007 && python3 "$gen" "$staging" --patients 20 --seed 7 --complete none >/dev/null)
  echo "export: generated by fhir-export-gen (../shared is absent)"
fi
chmod -R g+rwX "$staging"
lines=$(find "$staging" -name '*.ndjson' ! -name log.ndjson -exec cat {} + | grep -c .)
# Written under a temporary name, renamed in, then the marker: as bulk-data clients do.
mv "$staging" "$root$watch_root/demo/synthea"
(umask 0007 && touch "$root$watch_root/demo/synthea/.done")

status() {
  setpriv --reuid="$uid" --regid="$gid" --clear-groups "$fe" status --json --journal "$root$state/journal.db"
}
export_state=""
for _ in $(seq 480); do
  export_state=$(status 2>/dev/null | python3 -c \
    'import json,sys; e=json.load(sys.stdin)["exports"]; print(e[0]["state"] if e else "")' || true)
  case "$export_state" in imported | import_failed | nothing_to_import | parked | failed) break ;; esac
  kill -0 "$daemon" 2>/dev/null || fail "the daemon exited while the export was '$export_state'"
  sleep 0.5
done
[ "$export_state" = imported ] || fail "export ended '$export_state', expected imported"
status >"$work/status.json"

python3 - "$work" "$ds" "$lines" <<'PY' || fail "outcome check"
import collections, json, sys
work, ds, lines = sys.argv[1], sys.argv[2], int(sys.argv[3])
exp = json.load(open(f"{work}/status.json"))["exports"][0]
valid, rejected = exp["resources_valid"], exp["resources_rejected"]
assert valid > 0 and valid + rejected == lines, (valid, rejected, lines)
imported = [json.loads(l) for l in open(f"{work}/emulator/healthlake/{ds}/resources.jsonl")]
counts = collections.Counter((r["resourceType"], r["id"]) for r in imported)
assert len(counts) == valid, (len(counts), valid)
assert all(n == 1 for n in counts.values()), "a resource was imported twice"
print(f"imported: {valid} resources once each ({rejected} rejected by validation) of {lines} lines")
PY

# after_upload: move, inside the watch root (a ReadWritePaths= path).
for _ in $(seq 100); do [ -d "$root$watch_root/done/synthea" ] && break; sleep 0.1; done
[ -d "$root$watch_root/done/synthea" ] || fail "after_upload did not move the export to $watch_root/done"
[ ! -e "$root$watch_root/demo/synthea" ] || fail "the source is still in the watched directory"
# Everything the daemon wrote is its own and private (UMask=).
bad=$(find "$root$state" "$root$watch_root/done" -newer "$work/settings" \
  \( ! -user "$uid" -o -perm /0007 \) -print | grep -v "^$root$watch_root/done/synthea" || true)
[ -z "$bad" ] || fail "files not owned by $user or readable by others: $bad"
echo "after_upload moved the export to $watch_root/done; state files $(stat -c 'uid %u gid %g mode %a' "$root$state/journal.db")"

kill -TERM "$daemon"
rc=0
wait "$daemon" || rc=$?
[ "$rc" -eq 0 ] || fail "daemon exited $rc after SIGTERM"
grep -q 'STOPPING=1' "$work/notify.log" || fail "no STOPPING=1 on SIGTERM"
echo "unit-user: ok"
