"""
The lexical grammar of endpoint descriptions, as Twisted's
C{serverFromString} reads them: C{:} separates arguments, C{=} names one,
and a backslash takes the next character literally.  Shared by the
daemon's listener plan and the C{greet} client.
"""

from __future__ import annotations


def splitDescription(description: str) -> tuple[list[str], dict[str, str]]:
    """
    Split an endpoint description into positional and keyword arguments, the
    way Twisted's C{serverFromString} does: C{:} separates, C{=} names, and a
    backslash takes the next character literally.
    """
    fields: list[list[str]] = [[]]
    keys: list[str | None] = [None]
    characters = iter(description)
    for character in characters:
        if character == "\\":
            fields[-1].append(next(characters, ""))
        elif character == ":":
            fields.append([])
            keys.append(None)
        elif character == "=" and keys[-1] is None:
            keys[-1] = "".join(fields[-1])
            fields[-1] = []
        else:
            fields[-1].append(character)
    args: list[str] = []
    kwargs: dict[str, str] = {}
    for key, field in zip(keys, fields):
        value = "".join(field)
        if key is None:
            if kwargs:
                raise ValueError(
                    f"positional argument {value!r} after a keyword argument"
                )
            args.append(value)
        elif key in kwargs:
            raise ValueError(f"{key} given twice")
        else:
            kwargs[key] = value
    return args, kwargs


def parsePort(value: str) -> int:
    """
    A port number from an endpoint description, 0 to 65535.

    @raise ValueError: Naming the value, when it is not one.
    """
    try:
        port = int(value)
    except ValueError:
        raise ValueError(f"port {value!r} is not a number") from None
    if not 0 <= port <= 65535:
        raise ValueError(f"port {port} is out of range 0-65535")
    return port
