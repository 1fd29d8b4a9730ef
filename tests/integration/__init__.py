"""
Integration tests: the real C{twistd greetd}, as a subprocess, over real
loopback sockets (pytest with pytest-twisted).
"""
