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
source "$here/../../scripts/venv.sh"
ensure_venv "$venv" bin/python "tritonclient[grpc,http]==2.73.0" "numpy==2.2.6"
exec "$venv/bin/python" "$here/tritonclient_test.py" --server "$server" "$@"
