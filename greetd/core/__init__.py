"""
The sans-IO core: framing, reply templates, limits and access control, as
plain values and arithmetic, with no reactor and no sockets.
"""
