#!/usr/bin/env bash
# Issue 17 item 8: what `fhir-edge run` logs outside journald, with log.format: json, for one export
# with invalid lines taken to `imported`:
#   - every stderr line is one JSON object with time (RFC 3339 UTC), level and message;
#   - every entry naming an export (EXPORT_ID) names its pipeline (PIPELINE);
#   - FHIR_FILE is always an absolute path;
#   - the steps carry their MESSAGE_IDs (taken, uploaded, imported), each once.
set -euo pipefail
fe=$1 hl=$2 gen=$3
source "$(dirname "$0")/../../support/harness.sh"
fe_harness logjson
fe_start_emulator
fe_write_config epic
printf 'log: { level: info, format: json }\n' >>"$work/fhir-edge.yaml"
"$fe" check-config --config "$work/fhir-edge.yaml" >/dev/null || fail "config with log.format"
fe_start_daemon
fe_drop A 41 --patients 4 --invalid-every 7
fe_wait_state A imported
fe_stop_daemon

python3 - "$work/daemon.log" "$work/incoming" <<'PY' || fail "log check"
import json, re, sys, collections
path, incoming = sys.argv[1], sys.argv[2]
ids = collections.Counter()
n = 0
lines = open(path, encoding="utf-8").read().splitlines()
# Lines written before the config is loaded (log.format is not known yet) are plain; from the
# first JSON line on, every line must be one object.
first = next(i for i, l in enumerate(lines) if l.startswith("{"))
assert first <= 3, f"{first} plain lines before the first JSON entry: {lines[:first]}"
for i, line in enumerate(lines[first:], first + 1):
    e = json.loads(line)  # every line one object
    n += 1
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", e["time"]), (i, e)
    assert e["level"] in ("error", "warning", "notice", "info", "debug"), (i, e)
    assert e["message"], (i, e)
    if "EXPORT_ID" in e:
        assert e.get("PIPELINE") == "epic", f"line {i}: EXPORT_ID without PIPELINE: {e}"
    if "FHIR_FILE" in e:
        assert e["FHIR_FILE"].startswith("/"), f"line {i}: FHIR_FILE not a full path: {e}"
    if "MESSAGE_ID" in e:
        ids[e["MESSAGE_ID"]] += 1
want = {"b506c75750a7453ab539b34f784f262a": "taken", "5ef9a1ad05dd4bb1a286139541766e36": "uploaded",
        "e180e9ab116e4097a91c74176e22128d": "imported"}
for mid, what in want.items():
    assert ids[mid] == 1, f"export {what}: MESSAGE_ID {mid} seen {ids[mid]} times"
assert any("invalid line" in json.loads(l)["message"] for l in lines[first:]), "no rejected-lines entry"
print(f"log_json: {n} JSON entries, PIPELINE on every export entry, MESSAGE_IDs {dict(ids)}")
PY
echo "log_json: ok"
