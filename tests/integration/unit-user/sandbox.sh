#!/usr/bin/env bash
# Runs inside `unshare -m` (a private mount namespace, as root) and builds what the unit's
# [Service] settings give the daemon, then execs it as the unit's user:
#   User=/Group=            the sysusers user, by name (the namespace sees the passwd/group that
#                           systemd-sysusers wrote), no supplementary groups
#   ProtectSystem=strict    every mount read-only except /dev, /proc, /sys and the paths below
#   StateDirectory=         /var/lib/NAME writable (mode StateDirectoryMode, owned by the user)
#   ReadWritePaths=         writable
#   ConfigurationDirectory= /etc/NAME, read-only
#   PrivateTmp=yes          fresh /tmp and /var/tmp
#   ProtectHome=yes         /home, /root, /run/user empty and inaccessible
#   CapabilityBoundingSet=  no capabilities at all (bounding, inheritable, ambient)
#   NoNewPrivileges=yes     no_new_privs
#   UMask=                  the umask
#   LoadCredential=         $CREDENTIALS_DIRECTORY=/run/credentials/UNIT, readable by the user only
#   environment             as systemd builds it for User=: HOME, USER, LOGNAME, SHELL, PATH,
#                           and NOTIFY_SOCKET for Type=notify (an abstract socket of the test)
# What systemd would add on top (system call filter, namespaces, ProtectKernel*...) only takes
# more away; these are the restrictions that decide whether the daemon can do its job.
#
# Usage: sandbox.sh SETTINGS_FILE   (shell variables written by unit_user_test.sh)
set -euo pipefail
# shellcheck disable=SC1090
source "$1"

# A directory that does not exist on this host is added by a read-only overlay of its parent,
# so the bind mount below has a mount point and the host is never changed.
ensure_dir() {
  local dir=$1 parent base layer
  [ -d "$dir" ] && return 0
  parent=$(dirname "$dir") base=$(basename "$dir")
  ensure_dir "$parent"
  layer=$(mktemp -d "$work/layer.XXXXXX")
  mkdir "$layer/$base"
  # The merged directory takes its owner and mode from the top layer: make it the parent's.
  chown --reference="$parent" "$layer" && chmod --reference="$parent" "$layer"
  mount -t overlay "fe-unit-user" -o "lowerdir=$layer:$parent" "$parent"
}

# Mount points first: an overlay on /etc or /var/lib hides binds made below it earlier.
for d in "${writable[@]}" "$config_dir"; do ensure_dir "$d"; done

# User= by name: the passwd and group files systemd-sysusers produced.
mount --bind "$root/etc/passwd" /etc/passwd
mount --bind "$root/etc/group" /etc/group

# ProtectSystem=strict: everything read-only except the API file systems.
findmnt -rn -o TARGET | sed 's/\\x20/ /g' | while IFS= read -r m; do
  case "$m" in /proc | /proc/* | /sys | /sys/* | /dev | /dev/*) continue ;; esac
  mount -o remount,bind,ro "$m" 2>/dev/null || true
done
for d in /usr /etc /var /var/lib /opt /srv; do
  [ -d "$d" ] || continue
  if touch "$d/.fe-unit-user-probe" 2>/dev/null; then
    rm -f "$d/.fe-unit-user-probe"
    echo "sandbox: $d is still writable" >&2
    exit 1
  fi
done

# The unit's writable and configuration paths, bound from the scratch root.
# A bind of a directory on a read-only mount is read-only itself: writable ones are made rw.
for d in "${writable[@]}"; do
  mount --bind "$root$d" "$d"
  mount -o remount,bind,rw "$d"
done
mount --bind "$root$config_dir" "$config_dir"
mount -o remount,bind,ro "$config_dir"

# ProtectHome=yes
for d in /home /root /run/user; do
  [ -d "$d" ] && mount -t tmpfs -o ro,mode=000,size=4k fe-inaccessible "$d"
done
# LoadCredential=aws:...: systemd's per-unit credentials directory (a private /run here).
mount -t tmpfs -o mode=0755,size=1m fe-run /run
mkdir -p "/run/credentials/$unit_name"
cp "$credentials" "/run/credentials/$unit_name/aws"
chown -R "$user:$group" "/run/credentials/$unit_name"
chmod 0500 "/run/credentials/$unit_name"
chmod 0400 "/run/credentials/$unit_name/aws"
# A build tree under /tmp (a CI checkout there) would vanish with PrivateTmp below: the daemon then
# runs from a copy on a tmpfs of its own, as an installed binary lives outside /tmp.
case "${exec_start[0]}" in
  /tmp/* | /var/tmp/*)
    mkdir -p /run/fe-bin
    mount -t tmpfs -o mode=0755 fe-bin /run/fe-bin
    install -m 0755 "${exec_start[0]}" /run/fe-bin/fhir-edge
    mount -o remount,ro /run/fe-bin
    exec_start[0]=/run/fe-bin/fhir-edge
    exec_start_pre[0]=/run/fe-bin/fhir-edge
    ;;
esac
# PrivateTmp=yes (last: the scratch root lives under /tmp on the host).
mount -t tmpfs -o mode=1777 fe-tmp /tmp
mount -t tmpfs -o mode=1777 fe-vartmp /var/tmp

as_user=(setpriv --reuid="$user" --regid="$group" --clear-groups --inh-caps=-all
  --ambient-caps=-all --bounding-set=-all --no-new-privs)
user_home=$(getent passwd "$user" | cut -d: -f6)
user_shell=$(getent passwd "$user" | cut -d: -f7)
env_user=(env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
  HOME="$user_home" USER="$user" LOGNAME="$user" SHELL="$user_shell"
  CREDENTIALS_DIRECTORY="/run/credentials/$unit_name" NOTIFY_SOCKET="$notify_socket"
  ASAN_OPTIONS="${ASAN_OPTIONS:-}" UBSAN_OPTIONS="${UBSAN_OPTIONS:-}" LSAN_OPTIONS="${LSAN_OPTIONS:-}")
umask "$umask_value"
cd /  # systemd's default WorkingDirectory= for system services

# What the sandbox allows the user, so the test knows the restrictions are real.
for d in "${writable[@]}"; do
  "${as_user[@]}" sh -c "touch '$d/.probe' && rm '$d/.probe'" ||
    { echo "sandbox: $user cannot write $d" >&2; exit 1; }
done
if "${as_user[@]}" sh -c "touch '$config_dir/.probe'" 2>/dev/null; then
  echo "sandbox: $config_dir is writable" >&2
  exit 1
fi
echo "sandbox: read-only except ${writable[*]}; $config_dir read-only; running as $user" \
  "($(getent passwd "$user" | cut -d: -f3)), umask $umask_value"

# ExecStartPre=, then ExecStart= (exec: this process becomes the daemon, so its pid is the
# daemon's pid for the test's signals and /proc checks).
"${as_user[@]}" "${env_user[@]}" "${exec_start_pre[@]}"
exec "${as_user[@]}" "${env_user[@]}" "${exec_start[@]}"
