"""
A throwaway certificate authority and server certificate for TLS tests,
made with C{cryptography} (which C{greetd[tls]} brings) in memory: the
integration tests make theirs with the real C{openssl} command instead.
"""

from __future__ import annotations

import datetime
import ipaddress
import shutil
import tempfile
from functools import cache
from pathlib import Path
from typing import NamedTuple

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twisted.trial.unittest import SynchronousTestCase

#: The name the server certificate is for, as clients check it.
SERVER_NAME = "localhost"

#: The authority's name.
AUTHORITY = "greetd test CA"


class Credentials(NamedTuple):
    """
    PEM text: the authority's certificate, and the server's key and
    certificate (signed by the authority, for C{localhost} and 127.0.0.1).
    """

    authority: bytes
    key: bytes
    certificate: bytes


def _name(common: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common)])


def _certificate(
    subject: str,
    key: ec.EllipticCurvePrivateKey,
    issuer: str,
    signer: ec.EllipticCurvePrivateKey,
    authority: bool,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(_name(issuer))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=2))
        .add_extension(x509.BasicConstraints(ca=authority, path_length=None), True)
    )
    if not authority:
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DNSName(SERVER_NAME),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            False,
        )
    return builder.sign(signer, hashes.SHA256())


@cache
def credentials() -> Credentials:
    """
    The test authority and server certificate, made once per run.
    """
    authorityKey = ec.generate_private_key(ec.SECP256R1())
    serverKey = ec.generate_private_key(ec.SECP256R1())
    authority = _certificate(AUTHORITY, authorityKey, AUTHORITY, authorityKey, True)
    server = _certificate(SERVER_NAME, serverKey, AUTHORITY, authorityKey, False)
    pem = serialization.Encoding.PEM
    return Credentials(
        authority.public_bytes(pem),
        serverKey.private_bytes(
            pem,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ),
        server.public_bytes(pem),
    )


def writeCredentials(directory: Path) -> tuple[Path, Path, Path]:
    """
    Write L{credentials} to C{directory}: the paths of C{trust/ca.pem} (a
    directory holding only the authority, as Twisted's clients take their
    trust roots), C{server.key} and C{server.pem}.
    """
    (directory / "trust").mkdir(parents=True, exist_ok=True)
    made = credentials()
    paths = (
        directory / "trust" / "ca.pem",
        directory / "server.key",
        directory / "server.pem",
    )
    for path, content in zip(paths, (made.authority, made.key, made.certificate)):
        path.write_bytes(content)
    return paths


def temporaryCredentials(case: SynchronousTestCase) -> tuple[Path, Path, Path]:
    """
    L{writeCredentials} to a temporary directory removed after C{case}'s
    test (C{case.mktemp} would leave it in the working directory under
    pytest).
    """
    directory = tempfile.mkdtemp()
    case.addCleanup(shutil.rmtree, directory)
    return writeCredentials(Path(directory))
