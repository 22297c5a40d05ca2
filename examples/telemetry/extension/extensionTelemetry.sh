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
#   $FNBOX_EXTENSION_BIN (set it through the function's user_data);
#   <repo>/target/release/fnbox-telemetry-recorder, then <repo>/target/debug/…,
#   where <repo> is three levels above this script (examples/telemetry/extension → repo root).
here="$(cd "$(dirname "$0")" && pwd)"
repo="$(cd "$here/../../.." 2>/dev/null && pwd)" || repo="$here/../../.."
for candidate in \
    "${FNBOX_EXTENSION_BIN:-}" \
    "$repo/target/release/fnbox-telemetry-recorder" \
    "$repo/target/debug/fnbox-telemetry-recorder"; do
    if [ -n "$candidate" ] && [ -f "$candidate" ] && [ -x "$candidate" ]; then
        exec "$candidate" "$0" "$@"
    fi
done
echo "[Extension] error: fnbox-telemetry-recorder not found (looked at \$FNBOX_EXTENSION_BIN, $repo/target/release and $repo/target/debug); build it with cargo build -p fnbox-extension"
exit 1
