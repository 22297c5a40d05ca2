# -*- coding: utf-8 -*-
"""An event function whose expensive set-up runs once per instance, in the initializer."""
import time

STATE = {"init_runs": 0, "initialized_at": None, "invocations": 0}


def init(context):
    # Runs once per instance, before the first invocation. It takes only the context and
    # returns nothing; an exception here fails the instance's init.
    STATE["init_runs"] += 1
    STATE["initialized_at"] = time.time()
    context.getLogger().info("[Function] python-initializer: initializer ran (run %d)",
                             STATE["init_runs"])


def handler(event, context):
    STATE["invocations"] += 1
    context.getLogger().info("[Function] python-initializer: invocation %d",
                             STATE["invocations"])
    return {
        "initializerRuns": STATE["init_runs"],
        "invocation": STATE["invocations"],
        "secondsSinceInit": round(time.time() - STATE["initialized_at"], 3),
    }
