"""
The shell examples marked runnable (C{.. code-block:: console} with
C{:class: runnable}) of the README and then of the manual's pages
(C{docs/}, by path) run as written, in order, in one shell in the
project's directory, against the daemon C{make run} starts, and print what
the documents show; and C{make run PORT=N} moves both services.

The daemon listens on the README's own port, 9999, in a network namespace
of the test's own, so that nothing else on the machine is in the way.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Iterator

import pytest

from greetd.testing import Daemon, defaultSignals
from tests.documents import DOCS, PROJECT, README, blocks, documents
from tests.helpers import PYTHON
from tests.integration.conftest import TIMEOUT, requireTool
from tests.integration.helpers import (
    Example,
    checkOutputs,
    runnableExamples,
    scriptOf,
    withoutVirtualenv,
)


def documentedExamples() -> list[Example]:
    """
    The runnable examples of the README, then of each page of the manual.
    """
    return [
        example
        for path in documents()
        for example in runnableExamples(
            path.read_text(), str(path.relative_to(PROJECT))
        )
    ]


def makeRun(*variables: str) -> list[str]:
    """
    The command C{make run} runs with C{variables}, as it echoes it (C{make
    -n} prints that echo), in the virtualenv running the tests.
    """
    venv = f"VENV={sys.prefix}"
    printed = subprocess.run(
        ["make", "--no-print-directory", "-n", "run", venv, *variables],
        cwd=PROJECT,
        check=True,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    ).stdout
    [echo] = [line for line in printed.splitlines() if line.startswith("echo ")]
    [command] = shlex.split(echo)[1:]
    return shlex.split(command)


def inNewNetwork(command: list[str]) -> list[str]:
    """
    C{command}, run in a new network namespace with its loopback up.
    """
    up = 'ip link set lo up && exec "$@"'
    return ["unshare", "--net", "--", "sh", "-c", up, "sh", *command]


@pytest.fixture
def namespaces() -> None:
    """
    Skip unless the tests may make network namespaces (as root; C{make
    test} installs the tools).
    """
    if os.geteuid() != 0:
        pytest.skip("making a network namespace needs root")
    for tool in ("unshare", "nsenter", "ip"):
        requireTool(tool)


@pytest.fixture
def madeVenv() -> None:
    """
    Skip unless the tests run in the virtualenv C{make} made in the project,
    C{.venv}, which the README's commands name.
    """
    if Path(sys.prefix) != PROJECT / ".venv":
        pytest.skip(f"the README names .venv; these tests run in {sys.prefix}")


@pytest.fixture
def daemons() -> Iterator[list[Daemon]]:
    started: list[Daemon] = []
    yield started
    for daemon in started:
        daemon.stop()


def shell(daemon: Daemon, script: str) -> str:
    """
    Run C{script} with bash in C{daemon}'s network namespace, in the
    project's directory, with no virtualenv on C{PATH}.
    """
    env = withoutVirtualenv()
    result = subprocess.run(
        [
            "nsenter",
            f"--net=/proc/{daemon.process.pid}/ns/net",
            "--",
            "bash",
            "-c",
            script,
        ],
        cwd=PROJECT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 4,
        preexec_fn=defaultSignals,
    )
    assert result.stderr == "", result.stderr
    return result.stdout


def test_examplesFound() -> None:
    """
    The README has runnable examples: the first steps, activating the
    virtualenv, and C{greet}; the manual's pages have more, run after the
    README's.
    """
    readme = runnableExamples(README.read_text())
    assert [example.command for example in documentedExamples()][: len(readme)] == [
        example.command for example in readme
    ]
    commands = [example.command for example in documentedExamples()]
    assert ". .venv/bin/activate" in commands
    assert commands.index(". .venv/bin/activate") < min(
        index for index, command in enumerate(commands) if command.startswith("greet")
    )
    assert len(commands) >= 6, commands


def test_readmeExamples(
    namespaces: None, madeVenv: None, daemons: list[Daemon]
) -> None:
    """
    After C{make run}, every runnable example prints what its document
    shows.
    """
    daemon = Daemon(inNewNetwork(makeRun()), PROJECT)
    daemons.append(daemon)
    daemon.waitForListeners(2)
    assert (daemon.tcp, daemon.udp) == ([("127.0.0.1", 9999)], [("127.0.0.1", 9999)])
    examples = documentedExamples()
    checkOutputs(examples, shell(daemon, scriptOf(examples)))


def test_makeRunPort(namespaces: None, daemons: list[Daemon]) -> None:
    """
    C{make run PORT=N} serves both TCP and UDP on port N.
    """
    daemon = Daemon(inNewNetwork(makeRun("PORT=9998")), PROJECT)
    daemons.append(daemon)
    daemon.waitForListeners(2)
    assert (daemon.tcp, daemon.udp) == ([("127.0.0.1", 9998)], [("127.0.0.1", 9998)])
    greet = shlex.quote(str(Path(sys.executable).with_name("greet")))
    output = shell(daemon, f"{greet} -p 9998 Ann && {greet} --udp -p 9998 Bob")
    assert output == "Welcome\nHello, Ann!\nHello, Bob!\n"


def test_clientAPIExample(
    namespaces: None, madeVenv: None, daemons: list[Daemon]
) -> None:
    """
    The embedding guide's example of the client API, run as a program
    against the daemon C{make run} starts, prints what the guide shows.
    """
    guide = (DOCS / "howto" / "embedding.rst").read_text()
    [example] = [block for block in blocks(guide, PYTHON) if "greetOverUDP(" in block]
    [shown] = blocks(guide, ".. code-block:: text\n    :class: output\n")
    daemon = Daemon(inNewNetwork(makeRun()), PROJECT)
    daemons.append(daemon)
    daemon.waitForListeners(2)
    output = shell(daemon, f"{shlex.quote(sys.executable)} -c {shlex.quote(example)}")
    assert output.strip("\n") == shown.strip("\n")
