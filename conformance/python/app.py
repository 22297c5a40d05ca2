"""An awslambdaric handler: echoes the event with what the context says, logs through the
logging module (JSON lines with AWS_LAMBDA_LOG_FORMAT=JSON), raises on {"raise": true}."""
import logging
import os

logger = logging.getLogger()


def handler(event, context):
    logger.info("handling %s", context.aws_request_id)
    if isinstance(event, dict) and event.get("raise"):
        raise ValueError("asked to fail")
    return {
        "echo": event,
        "requestId": context.aws_request_id,
        "functionName": context.function_name,
        "functionVersion": context.function_version,
        "memoryLimitInMB": context.memory_limit_in_mb,
        "invokedFunctionArn": context.invoked_function_arn,
        "remainingMs": context.get_remaining_time_in_millis(),
        "traceId": os.environ.get("_X_AMZN_TRACE_ID"),
        "logGroup": context.log_group_name,
    }
