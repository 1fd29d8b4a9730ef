"""
Sphinx directives that write greetd's reference from its code, so that the
manual and the man pages cannot drift from C{--help}:

C{.. greetd-options:: MODULE.CLASS}
    Every option of a L{twisted.python.usage.Options} subclass, in the
    order of C{--help}, as Sphinx C{option} directives (so C{:option:}
    links to them), with its default.  C{:program:} names the command;
    C{:plain:} makes a plain list instead (for a man page, whose options are
    already targets on the reference page).

C{.. greetd-metrics::}
    Every Prometheus metric of L{greetd.core.counters.METRICS}: its name as
    scraped, kind, help text, and the values each label takes.

C{.. greetd-news-draft::}
    The release notes towncrier would write from C{newsfragments/} now.

It also gives pydoctor the inventory of Twisted's API (L{twistedInventory})
and drops its warnings about links that cannot be made offline
(L{OfflineLinks}); the rest fail the build.
"""

from __future__ import annotations

import builtins
import logging as pylogging
import re
import subprocess
import sys
from importlib import import_module
from pathlib import Path
from typing import Any, ClassVar

from docutils import nodes
from docutils.parsers.rst import directives
from docutils.statemachine import StringList
from sphinx.application import Sphinx
from sphinx.util import logging
from sphinx.util.docutils import SphinxDirective
from sphinx.util.nodes import nested_parse_with_titles
from twisted.python import usage

PROJECT = Path(__file__).resolve().parents[2]

logger = logging.getLogger(__name__)

#: Characters that mean something inline in reStructuredText.
_SPECIAL = str.maketrans({c: "\\" + c for c in "\\*`|_[]"})


#: What docutils would take for the scheme of a URI to link (C{tcp:9100}).
_SCHEME = re.compile(r"\b([a-z][a-z0-9+.-]*):(?=\S)")


def escape(text: str) -> str:
    """
    C{text} as literal reStructuredText: no inline markup, and no endpoint
    string (C{tcp:9100:...}) taken for a link.
    """
    return _SCHEME.sub(r"\1\\:", text.translate(_SPECIAL))


def optionEntries(options: usage.Options) -> list[dict[str, Any]]:
    """
    What C{options.getUsage()} lists, option by option and in its order:
    the long name, the short name or C{None}, whether it takes a value, its
    default (C{None} for none) and its help text.
    """
    shortNames = {
        long: short
        for short, long in options.synonyms.items()
        if len(short) == 1 and short != long
    }
    entries = []
    for long in options.longOpt:
        takesValue = long.endswith("=")
        name = long.rstrip("=")
        entries.append(
            {
                "long": name,
                "short": shortNames.get(name),
                "takesValue": takesValue,
                "default": options.defaults.get(name),
                "doc": " ".join((options.docs.get(name) or "").split()),
            }
        )
    return entries


def optionLines(entry: dict[str, Any], plain: bool = False) -> list[str]:
    """
    The C{option} directive for one of L{optionEntries}, or with C{plain}
    a definition list item.
    """
    value = "=" + entry["long"].upper().replace("-", "_") if entry["takesValue"] else ""
    names = [f"--{entry['long']}{value}"]
    if entry["short"]:
        names.insert(0, f"-{entry['short']}" + (" " + value[1:] if value else ""))
    if plain:
        lines = ["**" + escape(", ".join(names)) + "**"]
    else:
        lines = [f".. option:: {', '.join(names)}", ""]
    lines.append("   " + (escape(entry["doc"]) or "(no description)"))
    default = entry["default"]
    if entry["takesValue"] and default is not None and default != "":
        lines += ["", f"   Default: ``{default}``"]
    return [*lines, ""]


class OptionsDirective(SphinxDirective):
    """
    C{.. greetd-options:: greetd.daemon.options.Options}
    """

    required_arguments = 1
    option_spec: ClassVar[dict[str, Any]] = {
        "program": directives.unchanged_required,
        "plain": directives.flag,
    }

    def run(self) -> list[nodes.Node]:
        moduleName, _, className = self.arguments[0].rpartition(".")
        optionsClass = getattr(import_module(moduleName), className)
        self.env.note_dependency(sys.modules[moduleName].__file__ or "")
        plain = "plain" in self.options
        lines = [] if plain else [f".. program:: {self.options['program']}", ""]
        entries = sorted(optionEntries(optionsClass()), key=lambda e: e["long"])
        for entry in entries:
            lines += optionLines(entry, plain)
        return self.parse(lines)

    def parse(self, lines: list[str]) -> list[nodes.Node]:
        container = nodes.container()
        self.state.nested_parse(
            StringList(lines, source=self.arguments[0]), self.content_offset, container
        )
        return list(container.children)


def sampleLines(labels: tuple[str, ...], samples: list[tuple[str, ...]]) -> list[str]:
    """
    The label values a metric's samples take, as definition-list body
    lines: one line for a label, or a line for each value of the first of
    two labels with the values the second takes with it.
    """
    if not labels:
        return []

    def values(label: str, found: list[str]) -> str:
        return ", ".join(f'``{label}="{value}"``' for value in dict.fromkeys(found))

    if len(labels) == 1:
        return ["    " + values(labels[0], [sample[0] for sample in samples]), ""]
    lines = []
    for first in dict.fromkeys(sample[0] for sample in samples):
        seconds = [sample[1] for sample in samples if sample[0] == first]
        lines += [
            f'    - ``{labels[0]}="{first}"``: {values(labels[1], seconds)}',
        ]
    return [*lines, ""]


class MetricsDirective(SphinxDirective):
    """
    C{.. greetd-metrics::}
    """

    def run(self) -> list[nodes.Node]:
        from greetd.core import counters

        self.env.note_dependency(counters.__file__)
        lines: list[str] = []
        for metric in counters.METRICS:
            scraped = metric.name + (
                "_total" if metric.kind == counters.COUNTER else ""
            )
            lines += [f"``{scraped}``", f"    {metric.kind}: {escape(metric.help)}"]
            samples = [
                count.labelValues for count in counters.SCHEMA if count.metric is metric
            ]
            lines += ["", *sampleLines(metric.labels, samples)]
            lines.append("")
        container = nodes.container()
        self.state.nested_parse(StringList(lines), self.content_offset, container)
        return list(container.children)


class NewsDraftDirective(SphinxDirective):
    """
    C{.. greetd-news-draft::}
    """

    def run(self) -> list[nodes.Node]:
        fragments = PROJECT / "newsfragments"
        for fragment in fragments.iterdir():
            self.env.note_dependency(str(fragment))
        draft = subprocess.run(
            [sys.executable, "-m", "towncrier", "build", "--draft", "--version", "-"],
            cwd=PROJECT,
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        # The release's own title (two lines) goes: the page has its own.
        lines = draft.strip("\n").splitlines()[2:]
        if not any(line.strip() for line in lines):
            lines = ["No changes yet."]
        container = nodes.section()
        nested_parse_with_titles(
            self.state, StringList(lines, source="newsfragments"), container
        )
        return list(container.children)


class OfflineLinks(pylogging.Filter):
    """
    Drop pydoctor's warnings about links that cannot be made offline
    (L{existingTarget}); the others stay warnings, which C{-W} makes errors.
    pydoctor's Sphinx integration logs each line pydoctor prints as a
    warning of its own logger, which this filters.
    """

    def filter(self, record: pylogging.LogRecord) -> bool:
        return not existingTarget(str(record.msg))


#: pydoctor's word for a link it could not make, and the name it tried.
_UNLINKED = re.compile(r'Cannot find link target for "([\w.]+)"')


def existingTarget(warning: str) -> bool:
    """
    Whether C{warning} is about a link to a name that exists but has no
    page to link to offline: Python's own (C{None}, C{BlockingIOError},
    C{signal.SIGQUIT}, or a constant of ours bound to one), for which there
    is no inventory without the network.  A link to a name that does not
    exist is a broken reference, and stays a warning.
    """
    match = _UNLINKED.search(warning)
    if match is None:
        return False
    name = match.group(1)
    if "." not in name:
        return hasattr(builtins, name)
    parts = name.split(".")
    for split in range(len(parts) - 1, 0, -1):
        try:
            value: Any = import_module(".".join(parts[:split]))
        except ImportError:
            continue
        try:
            for attribute in parts[split:]:
                value = getattr(value, attribute)
        except AttributeError:
            return False
        return True
    return False


def twistedInventory(app: Sphinx) -> None:
    """
    Write the inventory of the installed Twisted's API (pydoctor's
    C{objects.inv}) into C{greetd_twisted_inventory}, unless it is there,
    so that the API reference links to Twisted's without the network.
    """
    directory = Path(app.config.greetd_twisted_inventory)
    if (directory / "objects.inv").exists():
        return
    import twisted

    logger.info("making the inventory of Twisted %s's API", twisted.__version__)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pydoctor",
            "--quiet",
            "--quiet",
            "--make-intersphinx",
            "--project-name=Twisted",
            "--docformat=epytext",
            f"--html-output={directory}",
            str(Path(twisted.__file__).parent),
        ],
        check=True,
    )


def setup(app: Sphinx) -> dict[str, Any]:
    app.add_config_value("greetd_twisted_inventory", "", "env")
    app.connect("builder-inited", twistedInventory, priority=300)
    pylogging.getLogger("sphinx.pydoctor.sphinx_ext.build_apidocs").addFilter(
        OfflineLinks()
    )
    app.add_directive("greetd-options", OptionsDirective)
    app.add_directive("greetd-metrics", MetricsDirective)
    app.add_directive("greetd-news-draft", NewsDraftDirective)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
