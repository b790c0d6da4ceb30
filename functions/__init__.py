"""Chalice blueprints and event handlers: parse, authorise, call one use case, shape the response."""

import os

if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
    # In Lambda, read the settings during the cold start: a missing or malformed variable then
    # fails the init with a message naming it, instead of failing each request later.
    from shared.settings import get_settings

    get_settings()
