#!/usr/bin/env python3
"""The shipped alert rules and Grafana dashboard (issue 17 item 7).

  - `promtool check rules` accepts packaging/fhir-edge.rules.yml, and `promtool test rules` passes
    its unit tests (fhir-edge.rules.test.yml: every alert fires on its series after its `for:`
    and stays quiet on healthy ones);
  - every rule has a severity (critical|warning), a summary and a description;
  - every metric name used by a rule or a dashboard query is one the daemon exports (named in
    daemon/metrics/), so a renamed metric cannot leave a rule that never fires.

Usage: shipped_rules_test.py <source dir>
"""
import json
import pathlib
import re
import shutil
import subprocess
import sys

src = pathlib.Path(sys.argv[1]).resolve()
rules = src / "packaging/fhir-edge.rules.yml"
tests = src / "tests/integration/metrics/fhir-edge.rules.test.yml"
dashboard = src / "packaging/grafana/fhir-edge-dashboard.json"
failures = []

promtool = shutil.which("promtool")
if not promtool:
    print("FAIL: promtool is missing (Debian package prometheus); run scripts/bootstrap")
    sys.exit(1)
for args in (["check", "rules", str(rules)], ["test", "rules", tests.name]):
    r = subprocess.run([promtool, *args], cwd=tests.parent, capture_output=True, text=True)
    print(f"promtool {' '.join(args)}: exit {r.returncode}")
    if r.returncode != 0:
        failures.append(f"promtool {' '.join(args)}:\n{r.stdout}{r.stderr}")

# The rules file is YAML; its structure is simple enough to read rule by rule without PyYAML.
text = rules.read_text()
blocks = re.split(r"\n      - alert: ", text)[1:]
if len(blocks) < 10:
    failures.append(f"expected at least 10 alerts, found {len(blocks)}")
exprs = []
for b in blocks:
    name = b.split("\n", 1)[0].strip()
    sev = re.search(r"\n          severity: (\S+)", b)
    if not sev or sev.group(1) not in ("critical", "warning"):
        failures.append(f"{name}: severity missing or not critical|warning")
    for key in ("summary", "description"):
        if f"\n          {key}:" not in b:
            failures.append(f"{name}: annotation {key} missing")
    m = re.search(r"\n        expr: (.*)", b)
    exprs.append(m.group(1) if m else "")

queries = [t["expr"] for p in json.loads(dashboard.read_text())["panels"] for t in p["targets"]]
if len(queries) < 10:
    failures.append(f"dashboard: expected at least 10 queries, found {len(queries)}")

exported = set()
for f in (src / "daemon/metrics").glob("*.cpp"):
    exported |= set(re.findall(r'"((?:fhir_edge|process)_[a-z_]+)"', f.read_text()))
used = set()
for e in exprs + queries:
    used |= set(re.findall(r"\b((?:fhir_edge|process)_[a-z_]+)", e))
missing = sorted(used - exported)
if missing:
    failures.append("used by a rule or the dashboard but not exported: " + ", ".join(missing))
print(f"{len(blocks)} alerts, {len(queries)} dashboard queries, {len(used)} metric names, "
      f"all exported" if not missing else "")

if failures:
    print("FAIL:\n" + "\n".join(failures))
    sys.exit(1)
print("ok")
