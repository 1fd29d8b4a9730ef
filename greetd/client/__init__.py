"""
The greetd client: a Twisted API (L{greetd.client.api}) and the C{greet}
command (L{greetd.client.cli}).
"""
