"""The HTTP service: endpoints that answer from a model when it is safe, else from rules."""
