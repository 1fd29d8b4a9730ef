"""
greetd's Twisted protocols: the TCP greeting, the UDP reply and the PROXY
header, knowing nothing of options or processes.
"""
