"""A SnapStart awslambdaric function: hooks registered with snapshot_restore_py (awslambdaric's
own dependency) record themselves in $FNBOX_CONFORMANCE_OUT/py-hooks.log; the after-restore
hook raises with SNAP_FAIL=1. The handler answers with what was recorded."""
import os

from snapshot_restore_py import register_after_restore, register_before_snapshot

LOG = os.path.join(os.environ.get("FNBOX_CONFORMANCE_OUT", "/tmp"), "py-hooks.log")


def _record(what):
    with open(LOG, "a") as f:
        f.write(what + "\n")


@register_before_snapshot
def before_snapshot():
    _record("before_snapshot")


@register_after_restore
def after_restore():
    _record("after_restore")
    if os.environ.get("SNAP_FAIL") == "1":
        raise RuntimeError("cannot reconnect after the restore")


def handler(event, context):
    with open(LOG) as f:
        hooks = f.read().split()
    return {"hooks": hooks, "initType": os.environ.get("AWS_LAMBDA_INITIALIZATION_TYPE")}
