#!/usr/bin/env bash
# Builds the conformance programs (real Lambda clients from crates.io and PyPI) and runs
# fnbox-lambda's conformance tests against them. Used by CI; safe to run by hand.
#
#   conformance/run.sh            build + test
#   SKIP_TESTS=1 conformance/run.sh   build only
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/.." && pwd)

start=$(date +%s)
echo "== conformance: building lambda_runtime / lambda-extension programs (release)"
(cd "$here" && cargo build --release --locked)

echo "== conformance: installing awslambdaric into $here/.venv"
if [ ! -x "$here/.venv/bin/python" ]; then
  python3 -m venv "$here/.venv"
fi
"$here/.venv/bin/pip" install --quiet --disable-pip-version-check -r "$here/python/requirements.txt"
"$here/.venv/bin/python" -c 'import awslambdaric' 
echo "== conformance: built in $(( $(date +%s) - start ))s"

if [ "${SKIP_TESTS:-}" = 1 ]; then exit 0; fi
export FNBOX_CONFORMANCE_BIN="$here/target/release"
export FNBOX_CONFORMANCE_PYTHON="$here/.venv/bin/python"
cd "$root"
cargo test -p fnbox-lambda --test conformance -- --ignored --test-threads=1

# The same published clients' extensions through `fnbox test-extension` (issue 16): every
# scenario passes (bad-answers may warn: lambda-extension's strict types refuse unknown event
# types with 400, a real finding about that crate).
echo "== conformance: fnbox test-extension --dialect lambda (ext-events + ext-telemetry)"
cargo build -q -p fnbox-cli
ext_dir=$(mktemp -d)
trap 'rm -rf "$ext_dir"' EXIT
mkdir -p "$ext_dir/extensions"
cp "$FNBOX_CONFORMANCE_BIN/ext-events" "$FNBOX_CONFORMANCE_BIN/ext-telemetry" "$ext_dir/extensions/"
"$root/target/debug/fnbox" test-extension --dialect lambda "$ext_dir" \
  --warm-invocations 20 --burst-lines 20000 --json "$root/target/conformance-test-extension.json"

# Published extensions (aws-samples, vendored unmodified in conformance/published/) built into
# layers and run from `layers:` (Python Telemetry API, Python Logs API as a .zip layer, Node.js,
# Go). One at a time: both Python samples listen on port 4243.
echo "== conformance: published extensions from layers"
layers_dir=$(mktemp -d)
trap 'rm -rf "$ext_dir" "$layers_dir"' EXIT
PIP="$here/.venv/bin/pip" "$here/published/build-layers.sh" "$layers_dir"
FNBOX_PUBLISHED_LAYERS="$layers_dir" cargo test -p fnbox-cli --test published_extensions -- --ignored --test-threads=1
echo "== conformance: done in $(( $(date +%s) - start ))s"
