#!/bin/sh
# The journald message catalog (systemd/fhir-edge.catalog, issue 17 item 8):
#   - `journalctl --update-catalog` accepts it (against a temporary root, as the package's
#     systemd trigger would on a real system) and `--list-catalog` lists each entry;
#   - every MESSAGE_ID the daemon sends (fe::log::message_id in daemon/service/log.hpp) has an
#     entry, and the catalog has no entry the daemon never sends.
# Usage: journald_catalog_test.sh <source dir>
set -eu
src=$1
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }
command -v journalctl >/dev/null || fail "journalctl missing (Debian package systemd)"

mkdir -p "$work/usr/lib/systemd/catalog" "$work/var/lib/systemd/catalog"
cp "$src/systemd/fhir-edge.catalog" "$work/usr/lib/systemd/catalog/"
journalctl --root="$work" --update-catalog || fail "journalctl --update-catalog refused the catalog"
journalctl --root="$work" --list-catalog >"$work/list"

sed -n 's/.*inline constexpr std::string_view [a-z_]* = "\([0-9a-f]\{32\}\)";.*/\1/p' \
  "$src/daemon/service/log.hpp" | sort >"$work/sent"
[ "$(wc -l <"$work/sent")" -ge 6 ] || fail "expected at least 6 MESSAGE_IDs in log.hpp"
awk '{print $1}' "$work/list" | sort >"$work/listed"
cmp -s "$work/sent" "$work/listed" || {
  echo "sent by the daemon:"; cat "$work/sent"; echo "in the catalog:"; cat "$work/listed"
  fail "the catalog and fe::log::message_id differ"
}
while read -r id; do
  journalctl --root="$work" --dump-catalog "$id" | grep -q '^Subject: ' ||
    fail "$id has no Subject"
  grep -A2 "^-- $id" "$src/systemd/fhir-edge.catalog" | grep -q '^Defined-By: fhir-edge' ||
    fail "$id: Defined-By missing"
done <"$work/sent"
echo "ok: $(wc -l <"$work/sent") MESSAGE_IDs, each in the catalog"
