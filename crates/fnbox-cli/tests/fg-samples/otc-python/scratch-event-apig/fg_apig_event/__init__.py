"""Public package exports for fg_apig_event."""

from .apigevent import APIGEvent, APIGRequestContext, APIGResponse

__all__ = ["APIGEvent", "APIGRequestContext", "APIGResponse"]