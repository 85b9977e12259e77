"""Pure domain core: model, reputation math, tiers, placement and the routing decision.

Never touches sockets, files, environment variables, the clock or randomness:
time and random choices arrive as arguments.
"""
