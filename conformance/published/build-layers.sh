#!/usr/bin/env bash
# Builds the published extensions vendored under aws-lambda-extensions/ into Lambda layers,
# following each sample's own README (nothing in the extensions' code is changed):
#   python-telemetry/  python-example-telemetry-api-extension, `pip install -r requirements.txt -t`
#   python-logs.zip    python-example-logs-api-extension, `zip -r extension.zip ./extensions`
#   nodejs/            nodejs-example-extension, `npm install`
#   go/                go-example-extension, `GOOS=linux GOARCH=amd64 go build -o extensions/…`
# Needs pip (PyPI; $PIP, default `python3 -m pip`), npm (npm registry), go (Debian golang-go;
# no modules needed), zip.
#
#   conformance/published/build-layers.sh OUT_DIR
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src="$here/aws-lambda-extensions"
out=${1:?usage: build-layers.sh OUT_DIR}
mkdir -p "$out"
out=$(cd "$out" && pwd)

py="$src/python-example-telemetry-api-extension"
rm -rf "$out/python-telemetry" && mkdir -p "$out/python-telemetry"
cp -a "$py/extensions" "$py/python_example_telemetry_api_extension" "$out/python-telemetry/"
${PIP:-python3 -m pip} install --quiet --disable-pip-version-check \
  -r "$out/python-telemetry/python_example_telemetry_api_extension/requirements.txt" \
  -t "$out/python-telemetry/python_example_telemetry_api_extension/"

rm -f "$out/python-logs.zip"
(cd "$src/python-example-logs-api-extension" && zip -qr "$out/python-logs.zip" ./extensions)

rm -rf "$out/nodejs" && mkdir -p "$out/nodejs"
cp -a "$src/nodejs-example-extension/extensions" "$src/nodejs-example-extension/nodejs-example-extension" "$out/nodejs/"
(cd "$out/nodejs/nodejs-example-extension" && npm install --silent --no-audit --no-fund >/dev/null)

rm -rf "$out/go" && mkdir -p "$out/go/extensions"
(cd "$src/go-example-extension" && GOFLAGS=-mod=mod GOPROXY=off GOOS=linux GOARCH=amd64 \
  go build -o "$out/go/extensions/go-example-extension" main.go)
chmod +x "$out/go/extensions/go-example-extension"
echo "published extension layers built in $out"
