"""poolwarden: per tenant and per message, a shared IP pool or a dedicated IP, and why."""

__version__ = "0.1.0"
