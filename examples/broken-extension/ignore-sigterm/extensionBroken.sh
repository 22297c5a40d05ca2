#!/bin/bash
# The broken example extension in its "ignore-sigterm" variant (see ../broken.py and ../README.md).
exec python3 -u "$(dirname "$0")/../broken.py" ignore-sigterm "$0"
