#!/bin/bash
# Launches fnbox-telemetry-recorder as this package's telemetry extension.
#
# The platform starts this script as `/bin/bash extension/extensionTelemetry.sh` with the code
# root as working directory, so paths are resolved from the script's own location, not from
# the current directory. The recorder gets "$0" as its first argument: FunctionGraph knows an
# extension by the file name of the script it launched (extensionTelemetry.sh), and the
# recorder registers under that name.
#
# Where the binary is looked for, in order:
#   $FNBOX_EXTENSION_BIN (set it through the function's user_data); when set, nothing else is
#   tried;
#   <repo>/target/debug/fnbox-telemetry-recorder or <repo>/target/release/…, the newer of the
#   two when both exist, where <repo> is three levels above this script
#   (examples/telemetry/extension → repo root);
#   fnbox-telemetry-recorder on $PATH (fnbox passes its own PATH on), e.g. after
#   `cargo install --path crates/fnbox-extension`.
if [ -n "${FNBOX_EXTENSION_BIN:-}" ]; then
    if [ -f "$FNBOX_EXTENSION_BIN" ] && [ -x "$FNBOX_EXTENSION_BIN" ]; then
        exec "$FNBOX_EXTENSION_BIN" "$0" "$@"
    fi
    echo "[Extension] error: FNBOX_EXTENSION_BIN=$FNBOX_EXTENSION_BIN is not an executable file"
    exit 1
fi
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." 2>/dev/null && pwd)" || repo="$here/../../.."
repo=${repo%/}
debug="$repo/target/debug/fnbox-telemetry-recorder"
release="$repo/target/release/fnbox-telemetry-recorder"
newest=$debug
if [ -x "$release" ] && { [ ! -x "$debug" ] || [ "$release" -nt "$debug" ]; }; then
    newest=$release
fi
for candidate in "$newest" "$(command -v fnbox-telemetry-recorder 2>/dev/null)"; do
    if [ -n "$candidate" ] && [ -f "$candidate" ] && [ -x "$candidate" ]; then
        exec "$candidate" "$0" "$@"
    fi
done
echo "[Extension] error: fnbox-telemetry-recorder not found (looked at $repo/target/debug, $repo/target/release and \$PATH; or set FNBOX_EXTENSION_BIN); build it with cargo build -p fnbox-extension"
exit 1
