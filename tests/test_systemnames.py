"""
Every name greetd puts on the operating system (the files of C{contrib/}
where they are installed, and the paths, units, users and man pages that
they and the documentation name) starts with C{twisted-greetd}, and none is
a file or a name of the greetd login manager, whose Debian package is
called greetd too.
"""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath

from twisted.trial.unittest import SynchronousTestCase

from tests.documents import DOCS, PROJECT, documents

CONTRIB = PROJECT / "contrib"

#: The greetd login manager: the files of Debian's package greetd 0.9.0
#: (Debian 12), a directory with a trailing slash.
LOGIN_MANAGER_FILES = (
    "/etc/greetd/",
    "/etc/greetd/config.toml",
    "/etc/needrestart/conf.d/50_greetd.conf",
    "/etc/pam.d/greetd",
    "/etc/pam.d/greetd-greeter",
    "/lib/systemd/system/greetd.service",
    "/usr/sbin/agreety",
    "/usr/sbin/greetd",
    "/usr/share/doc/greetd/",
    "/usr/share/man/man1/agreety.1.gz",
    "/usr/share/man/man1/greetd.1.gz",
    "/usr/share/man/man5/greetd.5.gz",
    "/usr/share/man/man7/greetd-ipc.7.gz",
)

#: Its systemd units, and its man pages as (name, section).
LOGIN_MANAGER_UNITS = ("greetd.service",)
LOGIN_MANAGER_MAN_PAGES = (
    ("agreety", "1"),
    ("greetd", "1"),
    ("greetd", "5"),
    ("greetd-ipc", "7"),
)

#: Its users and groups: Debian's system user and group C{_greetd} (home
#: /etc/greetd), Arch Linux's C{greeter}; and the package's own name.
LOGIN_MANAGER_USERS = ("_greetd", "greeter", "greetd")

#: Where each directory of C{contrib/} is installed.
INSTALLED_IN = {
    "systemd": "/etc/systemd/system",
    "sysusers": "/etc/sysusers.d",
    "tmpfiles": "/etc/tmpfiles.d",
    "logrotate": "/etc/logrotate.d",
    "haproxy": "/etc/haproxy",
    "nginx": "/etc/nginx",
}

#: The prefix of every name greetd puts on the system.
PREFIX = "twisted-greetd"

_PATH = re.compile(r"(?<![\w./-])/(?:etc|var|run|opt|usr|lib|srv)(?:/[\w.@-]+)+/?")
_UNIT = re.compile(r"(?<![\w@.-])[\w@.-]*greetd[\w@.-]*\.(?:service|socket|timer)\b")
_USERS = [
    re.compile(r"^(?:User|Group)=(\S+)", re.MULTILINE),
    re.compile(r"^[ug]\s+(\S+)", re.MULTILINE),
    re.compile(r"^[dDfFvzZ]\s+/\S+\s+\d+\s+(\S+)\s+(\S+)", re.MULTILINE),
    re.compile(r"^\s*(?:create|su)\s+(?:\d+\s+)?(\S+)\s+(\S+)", re.MULTILINE),
    re.compile(r"--[ug]id[ =](\S+)"),
]
_MAN_PAGE = re.compile(r"\(\s*\"[^\"]+\",\s*\"([^\"]+)\",[^()]*?,\s*(\d)\s*\)")


def contribFiles() -> list[Path]:
    return sorted(path for path in CONTRIB.rglob("*") if path.is_file())


def texts() -> dict[Path, str]:
    """
    Every file that names a place on the system: C{contrib/} and the
    documentation.
    """
    return {path: path.read_text() for path in [*contribFiles(), *documents()]}


def installedPaths() -> list[str]:
    """
    Where each file of C{contrib/} is installed.
    """
    return [f"{INSTALLED_IN[path.parent.name]}/{path.name}" for path in contribFiles()]


def namedPaths() -> dict[str, Path]:
    """
    Every absolute path under a system directory that the texts name and
    that has greetd in it, with a file that names it.
    """
    return {
        found.rstrip("."): path
        for path, text in texts().items()
        for found in _PATH.findall(text)
        if "greetd" in found
    }


def namedUnits() -> dict[str, Path]:
    units = {
        path.name: path for path in contribFiles() if path.parent.name == "systemd"
    }
    for path, text in texts().items():
        units.update((unit, path) for unit in _UNIT.findall(text))
    return units


def namedUsers() -> dict[str, Path]:
    """
    The users and groups the units, recipes and documentation run greetd
    as, or give its files to, that have greetd in their names.
    """
    return {
        user: path
        for path, text in texts().items()
        for pattern in _USERS
        for match in pattern.findall(text)
        for user in ([match] if isinstance(match, str) else match)
        if "greetd" in user
    }


def manPages() -> list[tuple[str, str]]:
    conf = DOCS / "conf.py"
    return _MAN_PAGE.findall(conf.read_text()) if conf.exists() else []


def collides(ours: str, theirs: str) -> bool:
    """
    Whether our path C{ours} is the login manager's file C{theirs}, or
    lies in or is its directory.
    """
    if theirs.endswith("/"):
        directory = PurePosixPath(theirs)
        return (
            PurePosixPath(ours) == directory or directory in PurePosixPath(ours).parents
        )
    return ours.rstrip("/") == theirs


def prefixed(path: str) -> bool:
    """
    Whether the first part of C{path} that has greetd in it is greetd's
    own, C{twisted-greetd...}.
    """
    for part in PurePosixPath(path).parts:
        if "greetd" in part:
            return part.startswith(PREFIX)
    return True


class SystemNamesTests(SynchronousTestCase):
    def test_contribInstalled(self) -> None:
        """
        Every directory of C{contrib/} says where it is installed, and each
        of its files is named C{twisted-greetd...}.
        """
        for path in contribFiles():
            self.assertIn(path.parent.name, INSTALLED_IN, path)
            self.assertTrue(path.name.startswith(PREFIX), path)

    def test_pathsFound(self) -> None:
        """
        The texts name greetd's places on the system, and this test finds
        them: its virtualenv, its configuration, its runtime directory.
        """
        paths = namedPaths()
        for expected in ["/opt/twisted-greetd/", "/etc/twisted-greetd/", "/run/"]:
            self.assertTrue(
                [path for path in paths if path.startswith(expected)], expected
            )
        self.assertIn("twisted-greetd.service", namedUnits())

    def test_paths(self) -> None:
        """
        No path greetd installs or names is, or lies in, a file or directory
        of the login manager, and each has the prefix.
        """
        named = namedPaths()
        named.update((path, CONTRIB) for path in installedPaths())
        for path, where in named.items():
            self.assertTrue(prefixed(path), f"{path} in {where}")
            for theirs in LOGIN_MANAGER_FILES:
                self.assertFalse(collides(path, theirs), f"{path} in {where}")

    def test_units(self) -> None:
        for unit, where in namedUnits().items():
            self.assertTrue(unit.startswith(PREFIX), f"{unit} in {where}")
            self.assertNotIn(unit, LOGIN_MANAGER_UNITS)

    def test_users(self) -> None:
        for user, where in namedUsers().items():
            self.assertTrue(user.startswith(PREFIX), f"{user} in {where}")
            self.assertNotIn(user, LOGIN_MANAGER_USERS)

    def test_manPages(self) -> None:
        for name, section in manPages():
            self.assertNotIn((name, section), LOGIN_MANAGER_MAN_PAGES)
            if name != "greet":
                self.assertTrue(name.startswith(PREFIX), name)

    def test_collides(self) -> None:
        """
        L{collides} and L{prefixed} see the collisions the issue met.
        """
        self.assertTrue(collides("/etc/greetd/ca", "/etc/greetd/"))
        self.assertTrue(collides("/etc/greetd", "/etc/greetd/"))
        self.assertTrue(
            collides("/lib/systemd/system/greetd.service", LOGIN_MANAGER_FILES[5])
        )
        self.assertFalse(collides("/etc/twisted-greetd/ca", "/etc/greetd/"))
        self.assertFalse(prefixed("/etc/systemd/system/greetd.service"))
        self.assertFalse(prefixed("/var/log/greetd/twisted-greetd.log"))
        self.assertTrue(prefixed("/run/twisted-greetd/greetd.pid"))
