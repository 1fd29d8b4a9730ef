"""
The reply template: text around exactly one C{%s}, applied to raw bytes.
"""

from __future__ import annotations

#: The seed's reply.
DEFAULT_TEMPLATE = "Hello, %s!"


class ReplyTemplate:
    """
    A reply format checked once, then applied to messages without decoding.

    The template is UTF-8 text holding exactly one C{%s}, where the message
    goes byte for byte; C{%%} stands for a literal C{%} and any other C{%}
    sequence is an error, so a typo fails at start-up, not per message.

    @ivar text: The template as given.
    @ivar prefix: The encoded text before the C{%s}.
    @ivar suffix: The encoded text after it.
    """

    def __init__(self, text: str = DEFAULT_TEMPLATE) -> None:
        parts: list[list[str]] = [[]]
        position = 0
        while position < len(text):
            char = text[position]
            if char == "%":
                following = text[position + 1 : position + 2]
                if following == "%":
                    parts[-1].append("%")
                elif following == "s":
                    parts.append([])
                else:
                    raise ValueError(
                        f"reply template {text!r} has %{following} at "
                        f"position {position}; only %s and %% are allowed"
                    )
                position += 2
            else:
                parts[-1].append(char)
                position += 1
        if len(parts) != 2:
            raise ValueError(
                f"reply template {text!r} must contain exactly one %s, "
                f"not {len(parts) - 1}"
            )
        self.text = text
        self.prefix = "".join(parts[0]).encode("utf-8")
        self.suffix = "".join(parts[1]).encode("utf-8")

    def format(self, message: bytes) -> bytes:
        """
        The reply to C{message}, which is inserted exactly as received.
        """
        return self.prefix + message + self.suffix

    def __repr__(self) -> str:
        return f"ReplyTemplate({self.text!r})"
