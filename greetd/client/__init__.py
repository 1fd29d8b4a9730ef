"""
The greetd client: a Twisted API, whose public names L{greetd.client.api}
gathers (L{greetd.client.tcp}, L{greetd.client.udp}, their errors in
L{greetd.client.errors}), and the C{greet} command, whose entry point is
L{greetd.client.cli} and whose parts are the other modules: its options,
the names it reads from standard input, its output and its exit status.
"""
