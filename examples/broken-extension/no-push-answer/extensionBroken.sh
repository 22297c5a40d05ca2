#!/bin/bash
# The broken example extension in its "no-push-answer" variant (see ../broken.py and ../README.md).
exec python3 -u "$(dirname "$0")/../broken.py" no-push-answer "$0"
