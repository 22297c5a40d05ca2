#!/bin/bash
# Starts the Python telemetry extension. The platform runs this script with the code root as
# working directory, so ext.py is found next to the script, not in the current directory.
# "$0" is passed on so ext.py registers under this script's file name (extensionPy.sh), which
# is how FunctionGraph identifies the extension. -u: unbuffered stdout, so [Extension] lines
# reach the platform as they are printed.
exec python3 -u "$(dirname "$0")/ext.py" "$0" "$@"
