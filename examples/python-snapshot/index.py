# -*- coding: utf-8 -*-
"""Initialize once (about a second), restore many times.

init():    the expensive part, run once in the snapshot's template process.
restore(): run in every restored instance before its first invocation: reseed, reconnect.
"""
import os
import random
import time

STATE = {"connection": None, "restored": False}


class Connection(object):
    """Stands for a database or HTTP connection: it belongs to the process that opened it."""

    def __init__(self):
        self.owner_pid = os.getpid()
        self.opened_at = time.time()


def init(context):
    time.sleep(1.0)  # loading a model, warming a cache, ...
    STATE["table"] = [random.random() for _ in range(10000)]
    STATE["connection"] = Connection()
    context.getLogger().info("[Function] python-snapshot: initialized in pid %d", os.getpid())


def restore(context):
    random.seed()  # without this, every restored instance draws the same "random" numbers
    STATE["connection"] = Connection()  # the template's connection is not ours
    STATE["restored"] = True
    context.getLogger().info("[Function] python-snapshot: restored into pid %d", os.getpid())


def handler(event, context):
    if isinstance(event, dict) and event.get("sleep"):
        time.sleep(float(event["sleep"]))
    conn = STATE["connection"]
    return {
        "pid": os.getpid(),
        "restored": STATE["restored"],
        "connectionIsOurs": conn.owner_pid == os.getpid(),
        "random": random.random(),
    }
