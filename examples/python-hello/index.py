# -*- coding: utf-8 -*-
"""The smallest FunctionGraph Python event function."""
import json


def handler(event, context):
    logger = context.getLogger()
    name = event.get("name", "world") if isinstance(event, dict) else "world"
    greeting = context.getUserData("GREETING", "Hello")
    # Lines carrying the [Function] marker are also delivered to telemetry subscribers.
    logger.info("[Function] python-hello: greeting %s", name)
    return {
        "statusCode": 200,
        "isBase64Encoded": False,
        "headers": {"Content-Type": "application/json"},
        "body": json.dumps({
            "message": "%s, %s!" % (greeting, name),
            "requestId": context.getRequestID(),
            "function": context.getFunctionName(),
            "memoryMB": context.getMemorySize(),
            "remainingMs": context.getRemainingTimeInMilliSeconds(),
        }),
    }
