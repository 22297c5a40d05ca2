#!/bin/bash
# The broken example extension in its "batch-500" variant (see ../broken.py and ../README.md).
exec python3 -u "$(dirname "$0")/../broken.py" batch-500 "$0"
