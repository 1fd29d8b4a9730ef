"""
Checks of option values shared by C{twistd greetd} and C{greet}: each
error is a L{usage.UsageError} that names the option in the user's words.
"""

from __future__ import annotations

from typing import Any, Sequence

from twisted.python import usage


def numericOption(
    options: usage.Options, name: str, minimum: float = 1, kind: type = int
) -> Any:
    """
    Check the numeric option C{name}, naming it in the error.
    """
    value = options[name]
    try:
        number = kind(value)
    except ValueError:
        description = "a whole number" if kind is int else "a number"
        raise usage.UsageError(f"--{name}: {value!r} is not {description}") from None
    if not number >= minimum:
        raise usage.UsageError(f"--{name}: {number} is less than {minimum}")
    return number


def checkEndpoints(descriptions: Sequence[str], option: str, parse: Any) -> None:
    """
    Parse each endpoint description once, so a bad one is a usage error now
    rather than a traceback when the service starts.
    """
    for description in descriptions:
        try:
            parse(description)
        except Exception as error:
            # Endpoint parsers raise ValueError, TypeError, KeyError, OSError
            # (a missing certificate) and more; each is the operator's error.
            raise usage.UsageError(
                f"{option} {description!r}: {error or type(error).__name__}"
            ) from None
