"""
The C library's socket calls, through cffi, on PyPy.

PyPy compiles a cffi call into the loop that makes it like any other call,
with the arguments as given: no buffer allocated for the call, no address
written out as text or parsed back.  Its own socket methods cost more: its
C{recvfrom} about 0.6 us a datagram more than the system call.  On CPython
a cffi call costs more than the socket method it would replace, so
nothing here is bound there.
"""

from __future__ import annotations

import platform
from typing import Any

#: cffi's C{FFI} and the C library, or C{None} where sockets are read
#: through Python's socket methods (CPython, or no cffi).
LIBC: tuple[Any, Any] | None = None

if platform.python_implementation() == "PyPy":  # pragma: no branch
    try:
        import cffi  # type: ignore[import-untyped]
    except ImportError:  # pragma: no cover (PyPy has cffi built in)
        pass
    else:
        _ffi = cffi.FFI()
        _ffi.cdef(
            """
            typedef unsigned int socklen_t;
            struct sockaddr_in {
                unsigned short sin_family;
                unsigned char sin_port[2];
                uint32_t sin_addr;
                unsigned char sin_zero[8];
            };
            long recvfrom(int, void *, size_t, int, struct sockaddr_in *,
                          socklen_t *);
            long sendto(int, const void *, size_t, int,
                        const struct sockaddr_in *, socklen_t);
            long recv(int, void *, size_t, int);
            """
        )
        LIBC = (_ffi, _ffi.dlopen(None))
