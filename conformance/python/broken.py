"""A handler module whose import fails: awslambdaric reports Runtime.ImportModuleError on
/runtime/init/error and demands a 202."""
import module_that_does_not_exist  # noqa: F401


def handler(event, context):
    return event
