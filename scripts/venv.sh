# Sourced by the scripts that need PyPI packages (benchmarks' peers, the
# tritonclient test): makes a venv with pinned requirements on first use,
# and again whenever the pins change. The product never needs it.
#
#   source scripts/venv.sh
#   ensure_venv build/venv-NAME bin/python "pkg==1.0" "other==2.0"
#
# ensure_venv VENV PROGRAM REQUIREMENT...: VENV/PROGRAM must exist and
# VENV/.requirements must list exactly these pins, else VENV is made anew
# (messages on stderr).
ensure_venv() {
  local venv=$1 program=$2
  shift 2
  if [[ ! -x $venv/$program || "$(cat "$venv/.requirements" 2>/dev/null)" != "$*" ]]; then
    echo "installing $* into $venv" >&2
    rm -rf "$venv"
    /usr/bin/python3 -m venv "$venv"
    "$venv/bin/pip" install --quiet --disable-pip-version-check "$@"
    echo "$*" > "$venv/.requirements"
  fi
}
