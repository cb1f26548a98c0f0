#!/usr/bin/env bash
# The Debian packages, end to end: CPack builds fhir-edge and fhir-edge-tools from this build's
# binaries (packaging/CMakeLists.txt: the rules of cmake/Packaging.cmake without rebuilding the
# tree); lintian reports no errors (warnings are printed); the Depends are satisfiable on this
# host (apt-get --simulate); dpkg installs both into a throwaway root (dpkg --root, maintainer
# scripts run chrootless with DPKG_ROOT, so systemd-sysusers/-tmpfiles act on that root only);
# then, in a private mount namespace whose /usr is the installed /usr layered over the host's,
# `fhir-edge --version`, `check-config` of the shipped conffile, the bash completion, `man fhir-edge`,
# `systemd-analyze verify fhir-edge.service` (silent) and `systemd-analyze security` (exposure at
# most 1.5) run against the installed files; the installed daemon runs as user fhir-edge under
# the unit's UMask with an export waiting for its marker, and a member of group fhir-edge (not
# root) runs `status` (which shows the waiting export) and `check-config` while it runs and after
# it stopped, and someone outside the group is told which group to join; finally
# `dpkg --purge` removes everything again.
# hardening-check (devscripts) runs on both packaged binaries: PIE, stack protector, FORTIFY,
# RELRO, BIND_NOW, stack clash protection and CET, as cmake/Hardening.cmake builds them. HARDENING
# says what this build has: `all` (release builds), `nofortify` (an optimised sanitizer build:
# FORTIFY would blind ASan), `none` (Debug builds such as debug-asan, which never ship, or
# FHIR_EDGE_HARDENING=OFF: hardening-check is then not run, and the test says so).
# Usage: package_test.sh SOURCE_DIR FHIR_EDGE_EXE HEALTHLAKE_LOCAL_EXE CPACK [CMAKE [HARDENING]]
# Exit 77 (CTest: skipped) with one line saying why when a tool or root is missing.
set -euo pipefail
src=$1 fe_exe=$2 hl_exe=$3 cpack=$4 cmake=${5:-cmake} hardening=${6:-all}

skip() {
  echo "SKIP: $*"
  exit 77
}
[ "$(id -u)" -eq 0 ] || skip "needs root (dpkg --root with maintainer scripts, mount namespaces)"
for tool in dpkg dpkg-deb dpkg-shlibdeps lintian unshare systemd-analyze systemd-sysusers \
  systemd-tmpfiles apt-get man hardening-check; do
  command -v "$tool" >/dev/null || skip "$tool is not installed (scripts/bootstrap installs it)"
done

unshare -m true 2>/dev/null || skip "cannot create a mount namespace here"
grep -qw overlay /proc/filesystems || skip "no overlayfs in this kernel"

work=$(mktemp -d /tmp/fe-package.XXXXXX)
trap 'rm -rf "$work"' EXIT
fail() {
  echo "FAIL: $*" >&2
  exit 1
}
version=$("$fe_exe" --version | awk '{print $2}')
[ -n "$version" ] || fail "fhir-edge --version printed no version"

# --- build the packages ----------------------------------------------------------------------
"$cmake" -S "$src/packaging" -B "$work/build" -DFHIR_EDGE_EXE="$fe_exe" \
  -DHEALTHLAKE_LOCAL_EXE="$hl_exe" >"$work/configure.log" 2>&1 ||
  fail "configuring packaging/ failed: $(cat "$work/configure.log")"
(cd "$work/build" && "$cpack" -G DEB -B "$work/out") >"$work/cpack.log" 2>&1 ||
  fail "cpack failed: $(cat "$work/cpack.log")"
arch=$(dpkg --print-architecture)
deb=$work/out/fhir-edge_${version}_${arch}.deb
tools=$work/out/fhir-edge-tools_${version}_${arch}.deb
[ -f "$deb" ] && [ -f "$tools" ] || fail "expected $deb and $tools; cpack made: $(ls "$work/out")"
echo "built $(basename "$deb") ($(stat -c %s "$deb") bytes), $(basename "$tools") ($(stat -c %s "$tools") bytes)"

# Contents: what the package promises, at the paths Debian expects.
dpkg-deb -c "$deb" | awk '{print $1, $2, $6}' >"$work/contents"
for want in "-rwxr-xr-x root/root ./usr/bin/fhir-edge" \
  "-rw-r--r-- root/root ./lib/systemd/system/fhir-edge.service" \
  "-rw-r--r-- root/root ./usr/lib/sysusers.d/fhir-edge.conf" \
  "-rw-r--r-- root/root ./usr/lib/tmpfiles.d/fhir-edge.conf" \
  "-rw-r--r-- root/root ./etc/fhir-edge/fhir-edge.yaml" \
  "-rw-r--r-- root/root ./usr/share/man/man1/fhir-edge.1.gz" \
  "-rw-r--r-- root/root ./usr/share/bash-completion/completions/fhir-edge" \
  "-rw-r--r-- root/root ./usr/share/doc/fhir-edge/copyright" \
  "-rw-r--r-- root/root ./usr/share/doc/fhir-edge/changelog.gz" \
  "-rw-r--r-- root/root ./usr/share/doc/fhir-edge/install.md" \
  "-rw-r--r-- root/root ./usr/share/fhir-edge/fhir-edge.rules.yml" \
  "-rw-r--r-- root/root ./usr/share/fhir-edge/fhir-edge-dashboard.json" \
  "-rw-r--r-- root/root ./usr/lib/systemd/catalog/fhir-edge.catalog"; do
  grep -qxF -- "$want" "$work/contents" || fail "fhir-edge package lacks '$want'"
done
! grep -q healthlake-local "$work/contents" || fail "healthlake-local is in the fhir-edge package"
dpkg-deb -c "$tools" | awk '{print $6}' >"$work/tools-contents"
grep -qx './usr/bin/healthlake-local' "$work/tools-contents" || fail "fhir-edge-tools lacks healthlake-local"
grep -qx './usr/share/man/man1/healthlake-local.1.gz' "$work/tools-contents" ||
  fail "fhir-edge-tools lacks healthlake-local(1)"
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" = /etc/fhir-edge/fhir-edge.yaml ] ||
  fail "conffiles is not exactly /etc/fhir-edge/fhir-edge.yaml"
depends=$(dpkg-deb -f "$deb" Depends)
# dpkg-shlibdeps found the libraries the binary links (not a hand-written list).
for lib in libc6 libcurl4 libsqlite3-0 libzstd1 libsystemd0 libyaml-cpp; do
  grep -q "$lib" <<<"$depends" || fail "Depends lacks $lib: $depends"
done
echo "Depends: $depends"

# --- lintian: no errors ----------------------------------------------------------------------
lintian --no-cfg --pedantic --display-info "$deb" "$tools" >"$work/lintian.txt" 2>&1 || true
grep -v '^running with root privileges' "$work/lintian.txt" | sed 's/^/lintian: /' || true
if grep -q '^E: ' "$work/lintian.txt"; then fail "lintian reported errors"; fi
echo "lintian: no errors ($(grep -c '^W: ' "$work/lintian.txt" || true) warnings)"

# --- hardening-check on the packaged binaries ---------------------------------------------------
dpkg-deb -x "$deb" "$work/deb-files" && dpkg-deb -x "$tools" "$work/deb-files"
# --nocfprotection: Debian 12's C start files (Scrt1.o, crti.o, crtn.o) carry no IBT/SHSTK
# property, so the linker marks no Debian 12 binary for CET (not /usr/bin/ls either), whatever
# -fcf-protection did to our own code. Every other check applies.
case "$hardening" in
all) hc_opts=(--nocfprotection) ;;
nofortify)
  hc_opts=(--nocfprotection --nofortify)
  echo "hardening-check: FORTIFY not required (a sanitizer build; the release build has it)"
  ;;
none) hc_opts=() ;;
*) fail "unknown HARDENING '$hardening'" ;;
esac
if [ "$hardening" = none ]; then
  echo "hardening-check: not run (a Debug build or FHIR_EDGE_HARDENING=OFF: no hardening flags;" \
    "ctest --preset release runs it on the release binaries)"
else
  for bin in usr/bin/fhir-edge usr/bin/healthlake-local; do
    hardening-check "${hc_opts[@]}" "$work/deb-files/$bin" >"$work/hardening.txt" 2>&1 ||
      fail "hardening-check /$bin: $(cat "$work/hardening.txt")"
    sed "s|$work/deb-files/||" "$work/hardening.txt"
  done
fi

# --- Depends satisfiable here (simulation: installs nothing) ------------------------------------
apt-get -s -o Debug::NoLocking=1 install "$deb" "$tools" >"$work/apt.txt" 2>&1 ||
  fail "apt-get cannot install the packages: $(cat "$work/apt.txt")"
inst=$(grep '^Inst ' "$work/apt.txt" | awk '{print $2}' | sort | tr '\n' ' ')
[ "$inst" = "fhir-edge fhir-edge-tools " ] ||
  fail "installing would also need: $inst ($(cat "$work/apt.txt"))"

# --- install into a throwaway root -----------------------------------------------------------
root=$work/root
mkdir -p "$root/usr/bin" "$root/usr/sbin" "$root/usr/lib" "$root/etc" \
  "$root/var/lib/dpkg/info" "$root/var/lib/dpkg/updates"
# Merged /usr as on Debian 12, so /lib/systemd/system lands in /usr/lib/systemd/system.
ln -s usr/bin "$root/bin" && ln -s usr/sbin "$root/sbin" && ln -s usr/lib "$root/lib"
touch "$root/var/lib/dpkg/status"
# This host's users, so systemd-sysusers picks ids that are free here (the checks below run
# with the host's /etc).
cp /etc/passwd /etc/group "$root/etc/"
dpkg --root="$root" --force-script-chrootless --force-depends -i "$deb" "$tools" \
  >"$work/dpkg.log" 2>&1 || fail "dpkg -i failed: $(cat "$work/dpkg.log")"
for p in fhir-edge fhir-edge-tools; do
  dpkg-query --admindir="$root/var/lib/dpkg" -W -f='${Status}\n' "$p" | grep -qx 'install ok installed' ||
    fail "$p is not 'install ok installed': $(cat "$work/dpkg.log")"
done
grep -A2 '^Conffiles:' "$root/var/lib/dpkg/status" | grep -q ' /etc/fhir-edge/fhir-edge.yaml ' ||
  fail "/etc/fhir-edge/fhir-edge.yaml is not registered as a conffile"
# postinst ran systemd-sysusers and systemd-tmpfiles on the throwaway root.
user=$(grep '^fhir-edge:' "$root/etc/passwd") || fail "postinst created no fhir-edge user"
[[ "$user" =~ ^fhir-edge:x:([0-9]+):([0-9]+):[^:]*:/var/lib/fhir-edge:/usr/sbin/nologin$ ]] ||
  fail "unexpected user entry: $user"
uid=${BASH_REMATCH[1]}
[ "$(grep -c '^fhir-edge:' "$root/etc/passwd")" -eq 1 ] || fail "duplicate user"
[ "$(stat -c '%a %u' "$root/var/spool/fhir-edge")" = "2770 $uid" ] ||
  fail "watch root is $(stat -c '%a %u' "$root/var/spool/fhir-edge"), expected 2770 owned by $uid"
# The root the shipped config watches (issue 17: check-config errs and the daemon waits without it).
[ "$(stat -c '%a %u' "$root/var/spool/fhir-edge/epic")" = "2770 $uid" ] ||
  fail "default watch root is $(stat -c '%a %u' "$root/var/spool/fhir-edge/epic" 2>&1), expected 2770 owned by $uid"
gid=${BASH_REMATCH[2]}
[ "$(stat -c '%a %u %g' "$root/etc/fhir-edge/fhir-edge.yaml")" = "640 0 $gid" ] ||
  fail "config is $(stat -c '%a %u %g' "$root/etc/fhir-edge/fhir-edge.yaml"), expected 640 root:fhir-edge"
echo "installed into $root: user fhir-edge uid $uid, /var/spool/fhir-edge{,/epic} 2770, config 0640 root:fhir-edge"

# --- run the installed files -----------------------------------------------------------------
# A private mount namespace whose /usr is the installed /usr over the host's (overlayfs, read
# only): /usr/bin/fhir-edge, /lib/systemd/system/fhir-edge.service and the man page are where the
# package put them, and the host's /bin/kill, targets and libraries are there too. Nothing on the
# host changes.
cat >"$work/installed.sh" <<'SH'
set -euo pipefail
root=$1
mount -t overlay fe-package -o "lowerdir=$root/usr:/usr" /usr
# The installed /var/spool too, so check-config sees the watch root the package created.
mount --bind "$root/var/spool" /var/spool
echo "--version: $(/usr/bin/fhir-edge --version)"
echo "check-config: $(/usr/bin/fhir-edge check-config --config "$root/etc/fhir-edge/fhir-edge.yaml" 2>&1)"
echo "man: $(man -w fhir-edge) $(man -w healthlake-local)"
man fhir-edge >"$root/../man.txt" 2>/dev/null
grep -q 'check-config' "$root/../man.txt" || { echo "man fhir-edge does not render" >&2; exit 1; }
# The installed bash completion completes a subcommand and its options.
source /usr/share/bash-completion/completions/fhir-edge
COMP_WORDS=(fhir-edge check-c) COMP_CWORD=1 && _fhir_edge && echo "completion: ${COMPREPLY[*]}"
COMP_WORDS=(fhir-edge status --ac) COMP_CWORD=2 && _fhir_edge && echo "completion: ${COMPREPLY[*]}"
/usr/bin/healthlake-local --help >"$root/../hll-help.txt"
echo "healthlake-local --help: $(head -1 "$root/../hll-help.txt")"
systemd-analyze verify fhir-edge.service 2>"$root/../verify.err"
echo "systemd-analyze verify fhir-edge.service: exit 0, stderr: '$(cat "$root/../verify.err")'"
systemd-analyze security --offline=true --no-pager /lib/systemd/system/fhir-edge.service \
  >"$root/../security.txt" 2>&1 || true
echo "security: $(grep -o 'Overall exposure level for fhir-edge.service: [0-9.]*' "$root/../security.txt" | awk '{print $NF}')"

# Group access (issue 17): the service's files as systemd and the unit make them - the state
# directory (StateDirectory=, 0750 fhir-edge:fhir-edge) and a journal the daemon writes as user
# fhir-edge under UMask=0027 - read by a member of group fhir-edge who is not root. The daemon
# runs with the shipped config, its state moved into the throwaway root, metrics off and AWS on a
# closed loopback port (it starts without AWS; exports wait). The package's users resolve by name.
uid=$2 gid=$3 work=$root/..
mount --bind "$root/etc/passwd" /etc/passwd
mount --bind "$root/etc/group" /etc/group
state=$root/var/lib/fhir-edge
install -d -m 0750 -o "$uid" -g "$gid" "$state"
sed -e "s|/var/lib/fhir-edge|$state|g" -e "s|s3: null|s3: http://127.0.0.1:9|" \
  -e "s|healthlake: null|healthlake: http://127.0.0.1:9|" -e "s|listen: 127.0.0.1:10464|listen: off|" \
  "$root/etc/fhir-edge/fhir-edge.yaml" >"$work/service.yaml"
chown "root:$gid" "$work/service.yaml" && chmod 0640 "$work/service.yaml"
mkdir /var/spool/fhir-edge/epic/2026-12-06-epic
echo '{"resourceType":"Patient","id":"p1"}' >/var/spool/fhir-edge/epic/2026-12-06-epic/Patient.ndjson
AWS_ACCESS_KEY_ID=AKIAPACKAGETEST00001 AWS_SECRET_ACCESS_KEY=package-test-secret \
  AWS_EC2_METADATA_DISABLED=true setpriv --reuid="$uid" --regid="$gid" --clear-groups \
  --inh-caps=-all -- bash -c 'umask 0027; exec /usr/bin/fhir-edge run --config "$1"' _ \
  "$work/service.yaml" >"$work/service.log" 2>&1 &
daemon=$!
member=61900
while getent passwd "$member" >/dev/null; do member=$((member + 1)); done
outsider=$((member + 1))
as_member=(setpriv --reuid="$member" --regid="$member" --groups="$gid" --inh-caps=-all --)
as_outsider=(setpriv --reuid="$outsider" --regid="$outsider" --clear-groups --inh-caps=-all --)
status=""
for _ in $(seq 300); do  # the daemon's watcher reports the export within a second of its start
  kill -0 "$daemon" 2>/dev/null || { echo "the daemon exited: $(cat "$work/service.log")" >&2; exit 1; }
  if [ -e "$state/journal.db" ]; then
    status=$("${as_member[@]}" /usr/bin/fhir-edge status --journal "$state/journal.db" 2>&1) ||
      { echo "status as a member of fhir-edge failed: $status" >&2; exit 1; }
    grep -q '^2026-12-06-epic .*marker' <<<"$status" && break
  fi
  sleep 0.1
done
grep -q '^2026-12-06-epic .*marker' <<<"$status" ||
  { echo "status as a member shows no waiting export: $status ($(cat "$work/service.log"))" >&2; exit 1; }
echo "journal: $(stat -c '%a %U:%G' "$state/journal.db"), state directory: $(stat -c '%a %U:%G' "$state")"
echo "status as a member (daemon running): $(grep -c . <<<"$status") lines, export waiting for its marker"
echo "check-config as a member: $("${as_member[@]}" /usr/bin/fhir-edge check-config --config "$root/etc/fhir-edge/fhir-edge.yaml" 2>&1)"
kill -TERM "$daemon" && wait "$daemon" || { echo "daemon exited $? after SIGTERM: $(cat "$work/service.log")" >&2; exit 1; }
"${as_member[@]}" /usr/bin/fhir-edge status --json --journal "$state/journal.db" >"$work/status.json" ||
  { echo "status --json as a member after the daemon stopped failed" >&2; exit 1; }
python3 -c 'import json,sys; w=json.load(open(sys.argv[1]))["waiting"]; assert [x["name"] for x in w] == ["2026-12-06-epic"], w' \
  "$work/status.json" || { echo "status --json (daemon stopped): $(cat "$work/status.json")" >&2; exit 1; }
echo "status --json as a member (daemon stopped): the export still waiting"
if out=$("${as_outsider[@]}" /usr/bin/fhir-edge status --journal "$state/journal.db" 2>&1); then
  echo "status worked for a user outside group fhir-edge: $out" >&2; exit 1
fi
echo "status outside the group: $out"
rm -r /var/spool/fhir-edge/epic/2026-12-06-epic  # purge removes an empty watch root only
SH
chmod 0711 "$work"  # the throwaway root's files are read by the users below, as from /
unshare -m --propagation private bash "$work/installed.sh" "$root" "$uid" "$gid" >"$work/installed.log" 2>&1 ||
  fail "running the installed package failed: $(cat "$work/installed.log")"
cat "$work/installed.log"
grep -qx "\-\-version: fhir-edge $version" "$work/installed.log" || fail "wrong --version output"
grep -qx "check-config: ok" "$work/installed.log" || fail "the shipped configuration is not valid"
grep -qx "completion: check-config" "$work/installed.log" || fail "bash completion of a subcommand"
grep -qx "completion: --active" "$work/installed.log" || fail "bash completion of an option"
grep -qx "check-config as a member: ok" "$work/installed.log" ||
  fail "check-config as a member of group fhir-edge did not say ok"
grep -q "^status outside the group: .*usermod -aG fhir-edge" "$work/installed.log" ||
  fail "status outside group fhir-edge does not say which group to join"
[ ! -s "$work/verify.err" ] || fail "systemd-analyze verify warned: $(cat "$work/verify.err")"
exposure=$(sed -n 's/^security: //p' "$work/installed.log")
[ -n "$exposure" ] || fail "no exposure level: $(cat "$work/security.txt")"
awk -v e="$exposure" 'BEGIN { exit !(e <= 1.5) }' || fail "installed unit's exposure $exposure > 1.5"

# --- reinstall over an edited configuration ---------------------------------------------------
# The operator's edit of the conffile survives (dpkg keeps it: the shipped copy did not change),
# and postinst runs again without creating a second user.
echo "# edited by the operator" >>"$root/etc/fhir-edge/fhir-edge.yaml"
dpkg --root="$root" --force-script-chrootless --force-depends -i "$deb" >"$work/reinstall.log" 2>&1 ||
  fail "reinstalling failed: $(cat "$work/reinstall.log")"
tail -n 1 "$root/etc/fhir-edge/fhir-edge.yaml" | grep -qx '# edited by the operator' ||
  fail "reinstalling replaced the edited /etc/fhir-edge/fhir-edge.yaml"
[ "$(grep -c '^fhir-edge:' "$root/etc/passwd")" -eq 1 ] || fail "reinstalling added a second user"
echo "reinstalled: edited conffile kept, still one fhir-edge user"

# --- purge -----------------------------------------------------------------------------------
mkdir -p "$root/var/lib/fhir-edge/spool"  # as the running service would have left it
dpkg --root="$root" --force-script-chrootless --force-depends --purge fhir-edge fhir-edge-tools \
  >"$work/purge.log" 2>&1 || fail "dpkg --purge failed: $(cat "$work/purge.log")"
for gone in usr/bin/fhir-edge usr/bin/healthlake-local usr/lib/systemd/system/fhir-edge.service \
  etc/fhir-edge/fhir-edge.yaml var/lib/fhir-edge var/spool/fhir-edge; do
  [ ! -e "$root/$gone" ] || fail "/$gone is still there after dpkg --purge"
done
echo "purged: binaries, unit, conffile, state directory and empty watch root removed"
echo "package: ok"
