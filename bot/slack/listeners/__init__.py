"""Bolt listeners, one module per group, each with a `register(app, services)`."""
