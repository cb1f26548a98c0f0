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
