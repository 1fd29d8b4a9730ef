"""
The how-to guides' trials on one machine (C{.. code-block:: console} with
C{:class: recipe}: TLS, HAProxy, nginx) run as written, in order, in one
shell, and print what the guides show.

Each runs in a directory of its own holding the clone's C{contrib} and
C{.venv} (so the files it makes, keys and pid files, stay out of the
checkout), in network and PID namespaces of its own: the guides' ports
are free there, and whatever the commands leave running ends with them.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from greetd.testing import defaultSignals
from tests.documents import DOCS, PROJECT
from tests.integration.conftest import TIMEOUT, requireTool
from tests.integration.helpers import (
    checkOutputs,
    runnableExamples,
    scriptOf,
    withoutVirtualenv,
)

RECIPE = ".. code-block:: console\n    :class: recipe\n"

#: Each guide with a trial, and the outside tools it runs.
GUIDES = {
    "tls": ("openssl",),
    "haproxy": ("haproxy",),
    "nginx": ("nginx", "/usr/lib/nginx/modules/ngx_stream_module.so"),
}


@pytest.mark.parametrize("guide", sorted(GUIDES))
def test_recipe(tmp_path: Path, guide: str) -> None:
    """
    The guide's trial prints what the guide shows, and stops what it
    started.
    """
    if os.geteuid() != 0:
        pytest.skip("making network and PID namespaces needs root")
    for tool in ("unshare", "ip", *GUIDES[guide]):
        if tool.startswith("/"):
            if not os.path.exists(tool):
                pytest.skip(f"{tool} is not installed")
        else:
            requireTool(tool)
    path = DOCS / "howto" / f"{guide}.rst"
    examples = runnableExamples(path.read_text(), path.name, RECIPE)
    assert examples[0].command == ". .venv/bin/activate", examples
    assert examples[-1].command.startswith("kill "), examples
    (tmp_path / "contrib").symlink_to(PROJECT / "contrib")
    (tmp_path / ".venv").symlink_to(sys.prefix)
    # The last command stops everything: each process named in a PID file
    # is gone within TIMEOUT seconds (the namespace ends what remains).
    check = f"""
for file in *.pid; do
    pid=$(cat "$file" 2>/dev/null) || continue
    for _ in $(seq {int(TIMEOUT * 10)}); do
        kill -0 "$pid" 2>/dev/null || break
        sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then echo "$file: $pid still runs" >&2; fi
done
"""
    result = subprocess.run(
        ["unshare", "--net", "--pid", "--fork", "--mount-proc", "--",
         "bash", "-c", "ip link set lo up && " + scriptOf(examples) + check],
        cwd=tmp_path,
        env=withoutVirtualenv(),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=TIMEOUT * 4,
        preexec_fn=defaultSignals,
    )  # fmt: skip
    assert (result.returncode, result.stderr) == (0, ""), result
    checkOutputs(examples, result.stdout)
