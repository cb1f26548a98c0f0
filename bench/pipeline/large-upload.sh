#!/usr/bin/env bash
# Issue 6's 1 GiB case: a 1 GiB single-file export through `fhir-edge run` against healthlake-local,
# SIGKILLed mid-upload at three points (20%, 45%, 70% of the import object's parts completed),
# restarted; checks the stored object's SHA-256 against the input and prints, per kill, the parts
# and bytes the server received again against the bound (one part per part in flight).
# CI runs it at 1 GiB too (ctest -R crash.large_upload); this script takes any size and build dir.
#
#   bench/pipeline/large-upload.sh BUILD_DIR [SIZE]     SIZE default 1GiB
set -euo pipefail
BUILD=${1:?usage: large-upload.sh BUILD_DIR [SIZE]}
SIZE=${2:-1GiB}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FE=$BUILD/daemon/fhir-edge
[[ -x $FE ]] || FE=$(find "$BUILD" -maxdepth 3 -type f -name fhir-edge -perm -u+x | head -1)
HLL=$BUILD/tools/healthlake-local/healthlake-local
for f in "$FE" "$HLL"; do [[ -x $f ]] || { echo "missing $f (build fhir-edge and healthlake-local)"; exit 2; }; done
export AWS_EC2_METADATA_DISABLED=true
exec /usr/bin/python3 "$ROOT/tests/integration/large-upload/large_upload.py" --fe "$FE" --hl "$HLL" \
  --gen "$ROOT/tools/fhir-export-gen/fhir-export-gen" --size "$SIZE" --chunk 61MiB --time-limit 1800
