"""Chalice blueprints and event handlers: parse, authorise, call one use case, shape the response."""
