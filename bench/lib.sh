# shellcheck shell=bash
# Sourced by the benches' run.sh.
#
# real_exe NAME: the executable a call of NAME runs, with a pyenv shim resolved (nothing if NAME
# is not on PATH). A shim is a bash script that looks for the interpreter on every call: on the
# reference machine it cost ~0.3 CPU-s per call (session 16: `python3 -c 1` 0.35 s through the
# shim, 0.07 s direct; `aws --version` 0.79 s against 0.53 s). A bench would add that to the side
# that calls aws, and a journal poller started next to the daemon would take it from the daemon.
real_exe() {
  local p
  p=$(command -v "$1" || true)
  if [[ $p == */shims/* ]] && command -v pyenv > /dev/null; then
    p=$(pyenv which "$1" 2> /dev/null || echo "$p")
  fi
  echo "$p"
}

# aws_validation_level AWS DIR: makes the aws CLI at AWS know `healthlake start-fhir-import-job
# --validation-level` (bench/e2e's baseline imports at structure-only, as the daemon does; without
# it HealthLake and the emulator import at strict). Debian 12's awscli (2.9.19) predates that
# member: then its bundled HealthLake model plus the member is written under DIR and AWS_DATA_PATH
# points there (botocore reads a model on AWS_DATA_PATH before its own). Nothing else changes.
aws_validation_level() {
  local aws=$1 dir=$2 py
  "$aws" healthlake start-fhir-import-job --generate-cli-skeleton 2> /dev/null |
    grep -q '"ValidationLevel"' && return 0
  py=$(head -1 "$aws" | sed -n 's/^#! *//p' | cut -d' ' -f1)
  [[ -x $py ]] || py=python3
  "$py" - "$dir" << 'PYEOF'
import json, os, sys
try:
    import awscli.botocore as bc  # aws-cli v2 carries its own botocore
except ImportError:
    import botocore as bc
src = os.path.join(os.path.dirname(bc.__file__), "data", "healthlake", "2017-07-01", "service-2.json")
model = json.load(open(src))
model["shapes"]["StartFHIRImportJobRequest"]["members"]["ValidationLevel"] = {"shape": "ValidationLevel"}
model["shapes"]["ValidationLevel"] = {"type": "string", "enum": ["strict", "structure-only", "minimal"]}
out = os.path.join(sys.argv[1], "healthlake", "2017-07-01")
os.makedirs(out, exist_ok=True)
json.dump(model, open(os.path.join(out, "service-2.json"), "w"))
PYEOF
  export AWS_DATA_PATH=$dir
  "$aws" healthlake start-fhir-import-job --generate-cli-skeleton 2> /dev/null |
    grep -q '"ValidationLevel"' || { echo "$aws: no --validation-level for start-fhir-import-job"; return 1; }
}
