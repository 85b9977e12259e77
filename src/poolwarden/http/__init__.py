"""The HTTP side of poolwarden: the REST API, the dashboard and /metrics in one app.

``app.create_app(ctx)`` builds it; ``context.NodeContext`` is what handlers read.
"""
