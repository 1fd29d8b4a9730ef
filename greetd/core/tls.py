"""
What TLS needs and how its failures read, shared by the daemon's TLS
listeners and the C{greet} client: C{ssl:} and C{tls:} endpoints need
pyOpenSSL and service_identity, which C{greetd[tls]} installs.
"""

from __future__ import annotations

import importlib

#: The kinds of endpoint description that speak TLS.
TLS_KINDS = ("ssl", "tls")

#: What to install for TLS, as errors say.
TLS_EXTRA = "greetd[tls]"


def requireTLS() -> None:
    """
    Check that the libraries TLS needs are installed.

    @raise ValueError: Saying what to install, when one is missing (rather
        than Twisted's bare C{No module named 'OpenSSL'}).
    """
    for module in ("OpenSSL", "service_identity"):
        try:
            importlib.import_module(module)
        except ImportError:
            raise ValueError(
                f"TLS needs pyOpenSSL and service_identity, and {module} is "
                f"not installed: pip install '{TLS_EXTRA}'"
            ) from None


def tlsProblem(error: BaseException | None) -> str | None:
    """
    What went wrong in TLS, when C{error} is one of pyOpenSSL's errors (in
    OpenSSL's words, such as C{certificate verify failed}) or
    service_identity's (a certificate for another name); otherwise C{None}.
    """
    module = type(error).__module__
    if error is None or not module.startswith(("OpenSSL.", "service_identity.")):
        return None
    if module.startswith("service_identity."):
        names = []
        for mismatch in getattr(error, "errors", []):
            identity = getattr(mismatch, "mismatched_id", None)
            name = getattr(identity, "ip", None) or getattr(identity, "hostname", "")
            names.append(name.decode() if isinstance(name, bytes) else str(name))
        named = " or ".join(filter(None, names)) or "this host"
        return f"the certificate is not for {named}"
    queue = error.args[0] if error.args else None
    reasons = [
        str(entry[-1])
        for entry in (queue if isinstance(queue, list) else [])
        if isinstance(entry, tuple) and entry and entry[-1]
    ]
    return "; ".join(reasons) or type(error).__name__
