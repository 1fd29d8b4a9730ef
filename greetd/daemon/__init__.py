"""
C{twistd greetd}: from a command line to running services, in one process
or a pool of worker processes.
"""
