"""
What operators touch: systemd notification, Prometheus metrics and logs.
"""
