#!/usr/bin/env bash
# Runs tests/integration/tritonclient_test.py (ffn-server driven by PyPI's
# tritonclient) in a venv under the build folder, made on first use.
#
#   tests/integration/tritonclient_test.sh FFN_SERVER BUILD_DIR [--http]
set -euo pipefail
server=$1
build=$2
shift 2
here=$(cd "$(dirname "$0")" && pwd)
venv=$build/venv-tritonclient
# Pinned: a new release cannot change what the test checks unseen.
requirements=("tritonclient[grpc,http]==2.73.0" "numpy==2.2.6")
stamp="$venv/.requirements"
if [[ ! -x $venv/bin/python || "$(cat "$stamp" 2>/dev/null)" != "${requirements[*]}" ]]; then
  echo "installing ${requirements[*]} into $venv"
  rm -rf "$venv"
  /usr/bin/python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "${requirements[@]}"
  echo "${requirements[*]}" > "$stamp"
fi
exec "$venv/bin/python" "$here/tritonclient_test.py" --server "$server" "$@"
