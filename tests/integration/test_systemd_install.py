"""
The systemd guide's install steps, run as written (in a copy of the
clone's files) in a clean root: a mount
namespace (and a network namespace) of the test's own, whose C{/etc},
C{/opt}, C{/var} and C{/run} are overlays, so the steps change nothing of
the machine.  This machine has no running systemd, so the two C{systemctl}
lines are replaced by what they lead to: C{systemd-analyze verify} on the
installed units, and the service's C{ExecStart} run as systemd runs it
(both sockets inherited by name, a clean environment, the unit's user and
group, C{/home}, C{/root} and C{/tmp} hidden as C{ProtectHome=} and
C{PrivateTmp=} hide them), which then greets over TCP and UDP.  Then the
installed logrotate recipe rotates the log of a daemon started as its
comment says.
"""

from __future__ import annotations

import os
import platform
import re
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

import pytest

from greetd.testing import Daemon, defaultSignals
from tests.documents import DOCS, PROJECT, blocks
from tests.integration.conftest import TIMEOUT, requireTool
from tests.integration.helpers import INSTALL_TIMEOUT

GUIDE = DOCS / "howto" / "systemd.rst"
INSTALL_BLOCK = ".. code-block:: console\n    :class: install\n"

#: The lines that need a running systemd, replaced here.
SYSTEMCTL = (
    "systemctl daemon-reload",
    "systemctl enable --now twisted-greetd-tcp.socket twisted-greetd-udp.socket "
    "twisted-greetd.service",
)

#: The directories the steps write to, each an overlay in the clean root.
OVERLAID = ("/etc", "/opt", "/var", "/run")

UNITS = "/etc/systemd/system"
SERVICE = f"{UNITS}/twisted-greetd.service"

#: The environment systemd gives a service (with the unit's Environment=
#: and User= added below).
SYSTEMD_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


#: A connection that reads the banner (greet would take a daemon that is
#: still starting for one with no banner).
FIRST_CONNECTION = (
    "import socket; c = socket.create_connection(('::1', 9999), timeout=15); "
    "print(c.recv(7))"
)


#: What a clone does not hold: git's files, virtualenvs, build output.
NOT_CLONED = shutil.ignore_patterns(
    ".git", ".venv*", "build", "dist", "*.egg-info", "__pycache__", "_trial_temp*"
)


def installSteps() -> list[str]:
    """
    The commands (C{# ...} lines) of the guide's install block.
    """
    [block] = blocks(GUIDE.read_text(), INSTALL_BLOCK)
    return [line[2:] for line in block.splitlines() if line.startswith("# ")]


class CleanRoot:
    """
    A process holding a mount and a network namespace whose system
    directories are overlays on the machine's, and commands run in them.
    """

    def __init__(self, where: Path) -> None:
        #: The clone the steps run in: a copy of the project's files, so
        #: that building greetd there races no other test building in the
        #: checkout.
        self.clone = where / "clone"
        shutil.copytree(PROJECT, self.clone, ignore=NOT_CLONED)
        mounts = []
        for directory in OVERLAID:
            upper, work = where / f"upper{directory}", where / f"work{directory}"
            upper.mkdir(parents=True)
            work.mkdir(parents=True)
            mounts.append(
                f"mount -t overlay overlay -o lowerdir={directory},"
                f"upperdir={upper},workdir={work} {directory}"
            )
        script = " && ".join(
            [*mounts, "ip link set lo up", "echo ready", "exec sleep 3600"]
        )
        self.holder = subprocess.Popen(
            [
                "unshare",
                "--mount",
                "--net",
                "--propagation",
                "private",
                "--",
                "sh",
                "-c",
                script,
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        assert self.holder.stdout is not None
        ready = self.holder.stdout.readline()
        assert ready == "ready\n", ready + self.holder.communicate(timeout=TIMEOUT)[0]

    def command(self, *argv: str, cwd: Path = Path("/")) -> list[str]:
        """
        C{argv}, to run in the clean root in C{cwd}.
        """
        pid = str(self.holder.pid)
        return ["nsenter", "-t", pid, "--mount", "--net", f"--wd={cwd}", "--", *argv]

    def run(self, *argv: str, timeout: float = TIMEOUT * 4) -> str:
        """
        Run C{argv} in the clean root, in the clone's directory, and return
        its output, which must be a success's.
        """
        result = subprocess.run(
            self.command(*argv, cwd=self.clone),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            preexec_fn=defaultSignals,
        )
        assert result.returncode == 0, (argv, result.stdout, result.stderr)
        return result.stdout + result.stderr

    def close(self) -> None:
        self.holder.kill()
        self.holder.communicate(timeout=TIMEOUT)


@pytest.fixture
def cleanRoot(tmp_path: Path) -> Iterator[CleanRoot]:
    if os.geteuid() != 0:
        pytest.skip("mount namespaces and installing as root need root")
    for tool in ("unshare", "nsenter", "ip", "setpriv", "systemd-sysusers"):
        requireTool(tool)
    if not os.access("/usr/bin/python3", os.X_OK):
        pytest.skip("no system Python, /usr/bin/python3")
    root = CleanRoot(tmp_path)
    try:
        yield root
    finally:
        root.close()


def setting(unit: str, key: str) -> list[str]:
    return re.findall(rf"^{key}=(.*)$", unit, re.MULTILINE)


def asTheService(root: CleanRoot) -> list[str]:
    """
    The installed service's C{ExecStart}, as systemd runs it after its two
    socket units: a clean environment with the unit's C{Environment=};
    each socket bound by C{systemd-socket-activate} with its unit's port
    and C{FileDescriptorName=} (the outer one starts the inner one on the
    first connection, which passes both on); the unit's C{User=} and
    C{Group=} with C{NoNewPrivileges=}; and, in a mount namespace of its
    own, C{/home} and C{/root} inaccessible and C{/tmp} empty.
    """
    activate = requireTool("systemd-socket-activate")
    service = root.run("cat", SERVICE)
    [execStart] = setting(service, "ExecStart")
    [sockets] = setting(service, "Sockets")
    [user], [group] = setting(service, "User"), setting(service, "Group")
    [tcp, udp] = [root.run("cat", f"{UNITS}/{name}") for name in sockets.split()]
    [tcpName], [udpName] = (setting(unit, "FileDescriptorName") for unit in [tcp, udp])
    [tcpPort], [udpPort] = setting(tcp, "ListenStream"), setting(udp, "ListenDatagram")
    environment = [
        entry for line in setting(service, "Environment") for entry in line.split()
    ]
    hide = (
        "mount -t tmpfs -o mode=000 tmpfs /home && "
        "mount -t tmpfs -o mode=000 tmpfs /root && "
        'mount -t tmpfs -o mode=1777 tmpfs /tmp && exec "$@"'
    )
    return root.command(
        "unshare", "--mount", "--propagation", "private", "--",
        "sh", "-c", hide, "sh",
        "env", "-i", f"PATH={SYSTEMD_PATH}", f"USER={user}", *environment,
        activate, "-l", f"[::]:{tcpPort}", f"--fdname={tcpName}", "--",
        activate, "--datagram", "-l", f"[::]:{udpPort}",
        f"--fdname={tcpName}:{udpName}", "--",
        "setpriv", f"--reuid={user}", f"--regid={group}", "--init-groups",
        "--no-new-privs", "--",
        *shlex.split(execStart),
    )  # fmt: skip


def credentials(ancestor: int) -> tuple[int, int]:
    """
    The real user and group ids of the one twistd among C{ancestor}'s
    descendants.
    """
    parents = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(stat.parent.name)] = int(fields[1])
    descendants, found = {ancestor}, True
    while found:
        found = False
        for pid, parent in parents.items():
            if parent in descendants and pid not in descendants:
                descendants.add(pid)
                found = True
    [twistd] = [
        pid
        for pid in descendants
        if b"twistd" in Path(f"/proc/{pid}/cmdline").read_bytes()
        and b"setpriv" not in Path(f"/proc/{pid}/cmdline").read_bytes()
    ]
    status = Path(f"/proc/{twistd}/status").read_text()
    [uid] = re.findall(r"^Uid:\s+(\d+)", status, re.M)
    [gid] = re.findall(r"^Gid:\s+(\d+)", status, re.M)
    return int(uid), int(gid)


def greet(root: CleanRoot, *arguments: str) -> str:
    return root.run(str(Path(sys.executable).with_name("greet")), *arguments)


def waitForLog(root: CleanRoot, daemon: Daemon, path: str, text: str) -> str:
    """
    Wait until the file C{path} of the clean root holds C{text}, and
    return it.
    """
    deadline = time.monotonic() + TIMEOUT
    while True:
        found = root.run("sh", "-c", f"cat {path} 2>/dev/null || true")
        if text in found:
            return found
        assert daemon.process.poll() is None, daemon.output
        assert time.monotonic() < deadline, found
        time.sleep(0.1)


def recipeCommand(recipe: str) -> list[str]:
    """
    The command the logrotate recipe's comment starts greetd with, from the
    installed virtualenv, in the foreground.
    """
    [start] = re.findall(
        r"^#\s+(twistd --logfile.*? greetd \.\.\.)$", recipe, re.S | re.M
    )
    start = re.sub(r"\\\n#\s*", " ", start).removesuffix(" ...")
    [twistd, *rest] = shlex.split(start)
    assert twistd == "twistd", start
    return ["/opt/twisted-greetd/bin/twistd", "--nodaemon", *rest]


@pytest.mark.skipif(
    platform.python_implementation() != "CPython",
    reason="the guide installs greetd on the system's CPython, whatever runs "
    "the tests: the suite under CPython runs this",
)
def test_installSteps(cleanRoot: CleanRoot) -> None:
    """
    The guide's steps install everything the units and the logrotate
    recipe need: the service starts as its user and greets over TCP and
    UDP, and the recipe rotates the log of greetd run as its comment says.
    """
    root = cleanRoot
    steps = installSteps()
    assert [step for step in steps if step.startswith("systemctl")] == list(SYSTEMCTL)
    assert "twisted-greetd" not in root.run("getent", "passwd")
    for step in steps:
        if not step.startswith("systemctl"):
            root.run("sh", "-c", step, timeout=INSTALL_TIMEOUT)
    units = [f"{UNITS}/{name}" for name in SYSTEMCTL[1].split()[3:]]
    assert root.run(requireTool("systemd-analyze"), "verify", *units) == ""
    user = root.run("getent", "passwd", "twisted-greetd").split(":")
    assert int(user[2]) < 1000, user

    service = Daemon(asTheService(root), Path("/"))
    try:
        service.waitFor(r"Listening on \[::\]:9999")
        # The first connection starts greetd, which then greets it.
        assert root.run(sys.executable, "-c", FIRST_CONNECTION) == "b'Welcome'\n"
        assert greet(root, "-H", "::1", "Michael") == "Welcome\nHello, Michael!\n"
        service.waitForListeners(2)
        assert greet(root, "-H", "::1", "--udp", "Sarah") == "Hello, Sarah!\n"
        identity = credentials(service.process.pid)
    finally:
        service.stop()
    group = root.run("getent", "group", "twisted-greetd").split(":")
    assert identity == (int(user[2]), int(group[2])), (identity, user, group)
    for complaint in ["Traceback", "Unable to write to plugin cache", "Permission"]:
        assert complaint not in service.output, service.output

    recipe = root.run("cat", "/etc/logrotate.d/twisted-greetd")
    command = [*recipeCommand(recipe), "--tcp", "tcp:7000:interface=127.0.0.1"]
    log = "/var/log/twisted-greetd/greetd.log"
    daemon = Daemon(root.command(*command, "--no-udp"), Path("/"))
    try:
        waitForLog(root, daemon, log, "Serving TCP on 127.0.0.1:7000")
        greet(root, "-p", "7000", "Ann")
        rotate = root.run(
            requireTool("logrotate"), "-f", "-s", "/var/lib/greetd-test.state",
            "/etc/logrotate.d/twisted-greetd",
        )  # fmt: skip
        assert rotate == ""
        waitForLog(root, daemon, log, "Reopened the log file")
        greet(root, "-p", "7000", "Bob")
        waitForLog(root, daemon, log, "Connection from 127.0.0.1")
        owner = root.run("stat", "-c", "%U %G %a", log).split()
        rotated = root.run("cat", f"{log}.1")
    finally:
        daemon.stop()
    assert owner == ["twisted-greetd", "adm", "640"], owner
    assert "Connection from 127.0.0.1" in rotated
