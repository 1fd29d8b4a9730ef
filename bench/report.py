"""
What the benchmark judges and shows: the workloads' units, the targets, and
the tables (reStructuredText, for the documentation) and chart made from a
run's figures.

A figure is one server's result for one workload: the median C{value} over
the passes, with C{samples}, C{server_us_per_op} (the server's CPU time per
operation), C{generator_cpu} (the load generator's share of its core),
C{floor} (whether that share reached L{FLOOR}), and latency percentiles
where there are any.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Dict, Protocol, Sequence

#: One server's figures, by workload; a run's, by server key.
Figures = Dict[str, Dict[str, Dict[str, Any]]]

#: What each workload measures, its unit, and whether more is better.
METRICS = {
    "tcp1": ("TCP ping-pong, 1 connection", "replies/s", True),
    "tcp50": ("TCP ping-pong, 50 connections", "replies/s", True),
    "churn": ("connection churn (banner, exit)", "connections/s", True),
    "udp20": ("UDP ping-pong, 20 flows", "replies/s", True),
    "idle": ("idle connections (10,000 held)", "bytes RSS/connection", False),
    "tcp50-paced": (
        "TCP ping-pong, 50 connections, a pool and one process at one rate",
        "replies/s",
        True,
    ),
    "churn-paced": (
        "connection churn, a pool and one process at one rate",
        "connections/s",
        True,
    ),
}

#: Ratio targets from issue 23: (greetd key, workload, peer, minimum of
#: greetd's throughput over the peer's; where either throughput is a floor,
#: of the peer's CPU per operation over greetd's).  A "-quiet" key is greetd
#: with its logging off: 0.85x of it or better means the logging costs under
#: 15% of churn.
TARGETS = (
    ("greetd-cpython", "churn", "twisted", 0.9),
    ("greetd-pypy", "churn", "uvloop", 0.8),
    ("greetd-cpython", "churn", "greetd-cpython-quiet", 0.85),
    ("greetd-pypy", "churn", "greetd-pypy-quiet", 0.85),
    ("greetd-cpython", "tcp50", "asyncio", 0.9),
    ("greetd-pypy", "tcp50", "uvloop", 1.0),
    ("greetd-cpython", "udp20", "asyncio", 1.2),
    ("greetd-pypy", "udp20", "uvloop", 1.1),
)

#: The worker pool's targets: its CPU per operation at most this many times
#: a single process's, for these workloads ...
POOL_CPU_TARGET = 1.15
POOL_WORKLOADS = ("churn", "tcp50")

#: ... and the parent's share of the pool's CPU under this, at churn.
POOL_PARENT_SHARE = 0.05

#: The pool and the one process it is judged against are each measured at
#: their most, and then both at one offered rate: this share of the one
#: process's most in the same pass.  A server's CPU per operation falls as
#: its load rises (each wakeup serves more events), so figures at different
#: rates price the rate as well as the server (bench/loadgen.c), and at
#: their most the pool, two workers taking turns on the one core the
#: generator leaves here, reaches about 0.9x one process's rate at churn.
#: The pool is judged at the one rate; its figure at its most is reported
#: beside it.
POOL_PACE = 0.75

#: A window at an offered rate counts as run at that rate if it reached
#: this share of it.
PACE_KEPT = 0.97

#: A generator that used this much of its core or more, or whose core was
#: this busy, may have been the bottleneck: the throughput is a floor, not
#: the server's capacity (L{isFloor}).
FLOOR = 0.9

#: Workloads whose throughput is their latency's, not a server's capacity:
#: never floors.
LATENCY_BOUND = ("tcp1",)

#: Idle memory target: bytes of RSS per held connection, at most.
IDLE_TARGET = 2048


class Shown(Protocol):
    """
    A measured server, as the report names it.
    """

    key: str
    label: str
    greetd: bool


def paced(workload: str) -> str:
    """
    The key of C{workload}'s figures at the pool's one rate (L{POOL_PACE}).
    """
    return f"{workload}-paced"


def isFloor(workload: str, figure: dict[str, Any]) -> bool:
    """
    Whether C{figure}'s throughput is a floor rather than the server's
    capacity: the generator used L{FLOOR} of its core or more, or its core
    was that busy (with the softirqs of its receipts, which on loopback are
    the server's packets' too, or with other work on a shared machine):
    the generator's side may have been the bottleneck.  A figure where
    neither side was that busy is the pair's round trips' ceiling at the
    workload's concurrency, the server's throughput there.  Runs from before
    the generator's core was read (no C{generator_core_busy}) mark a floor
    where the server used less than L{FLOOR} of one core, too.
    """
    if workload in LATENCY_BOUND:
        return False
    if figure.get("offered_rate"):
        # The generator offered a fixed rate: the throughput is that rate,
        # and CPU per operation the figure to compare.
        return True
    if "generator_core_busy" in figure:
        return bool(
            figure["generator_cpu"] >= FLOOR or figure["generator_core_busy"] >= FLOOR
        )
    return bool(
        figure["generator_cpu"] >= FLOOR or figure.get("server_cpu", 1.0) < FLOOR
    )


def describe(workload: str, report: dict[str, Any]) -> str:
    """
    One window's figures, for the progress lines.
    """
    if report["mode"] == "idle":
        return (
            f"{report['count']} B/connection ({report['held']} held, "
            f"RSS {report['rssBefore'] >> 20} -> {report['rssAfter'] >> 20} MB, "
            f"quiet {report['settleSeconds']} s after the close; 10 is the cap)"
        )
    text = f"{report['rate']:10.0f}/s"
    if isFloor(workload, report):
        text += " (floor)"
    text += f"  server {report['server_us_per_op']:.2f} us CPU/op"
    if "parent_share" in report:
        text += f" (parent {report['parent_share']:.1%})"
    if report["p50_us"]:
        text += f"  p50 {report['p50_us']:.0f} us  p99 {report['p99_us']:.0f} us"
    text += (
        f"  generator CPU {report['generator_cpu']:.2f}"
        f"  server CPU {report['server_cpu']:.2f}"
    )
    if report["errors"] or report["wrong"]:
        text += f"  errors {report['errors']} wrong {report['wrong']}"
    return text


def ratios(figures: Figures, servers: Sequence[Shown]) -> dict[str, Any]:
    """
    greetd over each peer, for each greetd and workload: C{throughput} is
    greetd's figure over the peer's (for idle memory, bytes per connection:
    lower is better), C{cpu} the peer's CPU per operation over greetd's
    (higher is better).
    """
    result: dict[str, Any] = {}
    peers = [server.key for server in servers if not server.greetd]
    for server in servers:
        if not server.greetd or server.key not in figures:
            continue
        for workload, figure in figures[server.key].items():
            for peer in peers:
                other = figures.get(peer, {}).get(workload)
                if other and other["value"]:
                    row = result.setdefault(server.key, {}).setdefault(workload, {})
                    row[peer] = compare(figure, other)
    return result


def compare(mine: dict[str, Any], other: dict[str, Any]) -> dict[str, Any]:
    """
    C{mine} against C{other}: throughput over throughput, the other's CPU
    per operation over mine, and whether either throughput is a floor.
    """
    result: dict[str, Any] = {
        "throughput": round(mine["value"] / other["value"], 3),
        "floor": bool(mine.get("floor") or other.get("floor")),
    }
    if mine.get("server_us_per_op") and other.get("server_us_per_op"):
        result["cpu"] = round(other["server_us_per_op"] / mine["server_us_per_op"], 3)
    return result


def targets(figures: Figures, servers: Sequence[Shown]) -> list[dict[str, Any]]:
    """
    Issue 23's targets, on greetd's reactor and on Twisted's epoll reactor,
    each with its ratios and whether it is met: judged on throughput, or on
    CPU per operation where a throughput is a floor.
    """
    checks: list[dict[str, Any]] = []
    for key, workload, peer, minimum in TARGETS:
        variants = [(key, peer)]
        if not peer.startswith("greetd"):
            variants.append((f"{key}-epoll", peer))
        for mine, theirs in variants:
            a = figures.get(mine, {}).get(workload)
            b = figures.get(theirs, {}).get(workload)
            if a is None or b is None or not b["value"]:
                continue
            ratio = compare(a, b)
            judged = "cpu" if ratio["floor"] and "cpu" in ratio else "throughput"
            checks.append(
                {
                    "target": f"{mine} {workload} >= {minimum}x {theirs}",
                    **ratio,
                    "judged": judged,
                    "met": ratio[judged] >= minimum,
                }
            )
    checks.extend(poolTargets(figures))
    for server in servers:
        idle = figures.get(server.key, {}).get("idle")
        if server.greetd and idle is not None:
            checks.append(
                {
                    "target": f"{server.key} idle <= {IDLE_TARGET} B/connection",
                    "bytes": idle["value"],
                    "met": idle["value"] <= IDLE_TARGET,
                }
            )
    return checks


def poolTargets(figures: Figures) -> list[dict[str, Any]]:
    """
    The worker pool's targets: CPU per operation against one process's, on
    the same reactor, judged at one rate (L{POOL_PACE}) where both were
    measured at it (C{saturated} is then the ratio at their most), and the
    parent's share of the pool's CPU at churn.
    """
    checks: list[dict[str, Any]] = []
    for pool in sorted(figures):
        if "-workers" not in pool:
            continue
        single = pool.replace(pool[pool.index("-workers") :].split("-epoll")[0], "")
        for workload in POOL_WORKLOADS:
            target = f"{pool} {workload} CPU/op <= {POOL_CPU_TARGET}x {single}"
            saturated = cpuRatio(
                figures[pool].get(workload), figures.get(single, {}).get(workload)
            )
            both = [figures.get(key, {}).get(paced(workload)) for key in (pool, single)]
            if any(both):
                checks.append(pacedCheck(target, both, saturated))
            elif saturated is not None:
                # Figures from before the windows at one rate, or a run
                # with --rate: judged at the servers' most.
                checks.append(
                    {
                        "target": target,
                        "cost": saturated,
                        "met": saturated <= POOL_CPU_TARGET,
                    }
                )
        churn = figures[pool].get("churn")
        if churn and "parent_share" in churn:
            checks.append(
                {
                    "target": f"{pool} churn parent's CPU share < "
                    f"{POOL_PARENT_SHARE:.0%}",
                    "share": churn["parent_share"],
                    "met": churn["parent_share"] < POOL_PARENT_SHARE,
                }
            )
    return checks


def pacedCheck(
    target: str, both: list[dict[str, Any] | None], saturated: float | None
) -> dict[str, Any]:
    """
    The pool's target judged at one rate: C{both} are the pool's and its
    one process's figures there (C{None} where a window failed), and
    C{saturated} the ratio at their most, if both were measured.
    """
    mine, other = both
    check: dict[str, Any] = {"target": target, "met": False}
    if saturated is not None:
        check["saturated"] = saturated
    cost = cpuRatio(mine, other)
    if cost is None:
        missing = [
            name
            for name, figure in (("the pool", mine), ("one process", other))
            if not (figure and figure["server_us_per_op"])
        ]
        check["missing"] = "no figure at one rate for " + " and ".join(missing)
        return check
    assert mine is not None and other is not None
    # The pass, of either server, that fell furthest short of its rate.
    kept = min(f.get("kept", f["value"] / f["offered_rate"]) for f in both if f)
    check.update(
        cost=cost,
        rate=other["offered_rate"],
        kept=round(kept, 3),
        met=cost <= POOL_CPU_TARGET and kept >= PACE_KEPT,
    )
    return check


def cpuRatio(mine: dict[str, Any] | None, other: dict[str, Any] | None) -> float | None:
    """
    C{mine}'s CPU per operation over C{other}'s, if both were measured.
    """
    a = (mine or {}).get("server_us_per_op")
    b = (other or {}).get("server_us_per_op")
    return round(a / b, 3) if a and b else None


def checkLine(check: dict[str, Any]) -> str:
    """
    One target and how it stands, for people.
    """
    if "throughput" in check:
        figures = f"throughput {check['throughput']:.2f}x"
        if "cpu" in check:
            figures += f", CPU/op {check['cpu']:.2f}x"
        figures += f" (judged on {check['judged']})"
    elif "missing" in check:
        figures = check["missing"]
    elif "cost" in check:
        figures = f"CPU/op {check['cost']:.2f}x"
        if "rate" in check:
            figures += f" at {check['rate']:,.0f}/s each"
        if "saturated" in check:
            figures += f" (at their most: {check['saturated']:.2f}x)"
        if check.get("kept", 1) < PACE_KEPT:
            figures += (
                f"; a window reached only {check['kept']:.0%} of the rate, "
                "so the two were not measured at one rate"
            )
    elif "share" in check:
        figures = f"{check['share']:.1%}"
    else:
        figures = f"{check['bytes']:,} B"
    return f"{'met    ' if check['met'] else 'NOT met'}  {check['target']}: {figures}"


def workloadTable(
    figures: Figures, servers: Sequence[Shown], workload: str
) -> str | None:
    """
    One workload's figures, a row per server: throughput (a floor marked
    C{>=}), the server's CPU per operation, the generator's share of its
    core, and latency where measured.
    """
    title, unit, _ = METRICS[workload]
    shown = [s for s in servers if workload in figures.get(s.key, {})]
    if not shown:
        return None
    if workload == "idle":
        head = ["server", unit]
        rows = [[s.label, f"{figures[s.key][workload]['value']:,.0f}"] for s in shown]
        return rstTable(title, head, rows)
    latency = any(figures[s.key][workload].get("p50_us") for s in shown)
    head = [
        "server",
        unit,
        "CPU us/op",
        "generator",
        *(["p50 / p99 us"] if latency else []),
    ]
    rows = []
    for server in shown:
        figure = figures[server.key][workload]
        value = f"{figure['value']:,.0f}"
        rows.append(
            [
                server.label,
                f">= {value}" if figure.get("floor") else value,
                f"{figure.get('server_us_per_op', 0):.2f}",
                f"{figure['generator_cpu']:.0%}",
                *(
                    [f"{figure['p50_us']:.0f} / {figure['p99_us']:.0f}"]
                    if latency
                    else []
                ),
            ]
        )
    return rstTable(title, head, rows)


def targetTable(checks: Sequence[dict[str, Any]]) -> str | None:
    """
    The targets: each ratio, and whether it is met.
    """
    rows = []
    for check in checks:
        if "throughput" in check:
            throughput = f"{check['throughput']:.2f}"
            cpu = f"{check['cpu']:.2f}" if "cpu" in check else ""
            if check["judged"] == "cpu":
                cpu += " *"
            else:
                throughput += " *"
        elif "missing" in check:
            throughput, cpu = "", "missing *"
        elif "cost" in check:
            throughput, cpu = "", f"{check['cost']:.2f} *"
            if "saturated" in check:
                cpu = f"({check['saturated']:.2f}) {cpu}"
            if "rate" in check:
                throughput = f"at {check['rate']:,.0f}/s"
        elif "share" in check:
            throughput, cpu = "", f"{check['share']:.1%} *"
        else:
            throughput, cpu = f"{check['bytes']:,} B *", ""
        rows.append([check["target"], throughput, cpu, "yes" if check["met"] else "no"])
    if not rows:
        return None
    return rstTable("Targets", ["target", "throughput", "CPU/op", "met"], rows)


NOTES = """\
CPU us/op is the server's CPU time (user + system, the server and every
process under it, from /proc) per operation, over the measured window;
generator is the load generator's share of its core.  A throughput marked >=
is a floor, not the server's capacity: the generator used {floor:.0%} of its
core or more, or its core was that busy (with its receipts' softirqs, which
on loopback include the server's packets', or other work); compare CPU per
operation there.  "veth pair" is the server and the generator in two network
namespaces, each end's receipts on its own side's core.  In the targets, a
ratio over 1 is greetd ahead (its throughput over the peer's, and the peer's
CPU per operation over greetd's); for a pool, the CPU/op column is the
pool's CPU per operation over one process's, judged with both at the rate in
the throughput column ({pace:.0%} of one process's most in each pass; in
brackets, the ratio with each at its most), or the parent's share of the
pool's CPU.  In the tables at one rate, every throughput is the offered
rate's, marked >= because it is not a server's capacity.  * marks the figure
each target is judged on."""


def tables(
    figures: Figures, servers: Sequence[Shown], checks: Sequence[dict[str, Any]]
) -> str:
    """
    The tables the documentation includes: one per workload, then the
    targets, then what the columns mean.
    """
    parts = [workloadTable(figures, servers, workload) for workload in METRICS]
    parts.append(targetTable(checks))
    parts.append(NOTES.format(floor=FLOOR, pace=POOL_PACE))
    return "\n\n".join(part for part in parts if part)


def networkName(report: dict[str, Any]) -> str:
    """
    Where the run's servers and generator met: C{loopback} (every run from
    before the veth pair) or C{veth}.
    """
    described: str = report["method"].get("network", "loopback")
    return described.partition(":")[0]


def aboutRun(report: dict[str, Any]) -> str:
    """
    A paragraph on the run C{report} describes: when, on what, with which
    versions, how loaded the machine was, and how many targets were met.
    """
    machine, versions = report["machine"], report["versions"]
    interpreters = []
    for key in ("greetd-cpython", "greetd-pypy"):
        version = versions.get(key)
        if version:
            name = version["implementation"]
            release = version["pypy"] or version["python"]
            if version["pypy"]:
                release += f" (Python {version['python']})"
            interpreters.append(f"{name} {release} with Twisted {version['twisted']}")
    before, after = machine["loadavg"][0], machine["loadavg after"][0]
    checks = report["targets"]
    met = sum(1 for check in checks if check["met"])
    # A window at an offered rate is a floor by design: not counted.
    floors = sum(
        1
        for figures in report["results"].values()
        for figure in figures.values()
        if figure.get("floor") and not figure.get("offered_rate")
    )
    return (
        f"Run of {report['started'][:10]} (``{report['command'].strip()}``, greetd "
        f"{versions.get('greetd commit', '')}), on {machine['cores']} cores "
        f"({machine['cpu']}), {report['method']['passes']} passes, "
        + (
            "on loopback"
            if networkName(report) == "loopback"
            else "the generator and the servers in two network namespaces joined "
            "by a veth pair"
        )
        + (
            " (the C server also across a veth pair)"
            if "c-veth" in report["results"]
            else ""
        )
        + "; greetd on "
        f"{' and '.join(interpreters)}.  The load average was {before:.1f} "
        "before: "
        + (
            "other work shared the machine, so compare CPU per operation"
            if before >= machine["cores"] / 2
            else "the machine was nearly idle"
        )
        # Work begun during the run goes unseen here: the bench's own
        # server and generator keep the load near 2 while it runs, and the
        # seed's 10,000 threads, ending with its idle window, the run's
        # last, count in the load average after it.
        + (
            f" (and {after:.1f} after, the seed server's idle threads included)"
            if "idle" in report["results"].get("seed", {})
            else f" (and {after:.1f} after)"
        )
        + ".  "
        + f"{floors} throughputs are floors; {met} of {len(checks)} targets are "
        "met."
    )


def rstTable(title: str, head: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """
    A reStructuredText simple table under a C{table} directive's title.
    """
    widths = [
        max(len(row[column]) for row in [head, *rows]) for column in range(len(head))
    ]
    rule = "  ".join("=" * width for width in widths)

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if column == 0 else cell.rjust(width)
            for column, (cell, width) in enumerate(zip(cells, widths))
        ).rstrip()

    body = [rule, line(head), rule, *(line(row) for row in rows), rule]
    return "\n".join([f".. table:: {title}", "", *(f"   {row}" for row in body)])


def chart(
    figures: dict[str, dict[str, dict[str, Any]]],
    servers: Sequence[Shown],
    title: str,
    path: Path,
) -> None:
    """
    One bar chart per workload, every server side by side, greetd in colour:
    the server's CPU time per operation (for idle connections, bytes per
    connection), which a shared machine disturbs less than throughput; the
    whiskers span the passes' lowest and highest figures.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    workloads = [w for w in METRICS if any(w in f for f in figures.values())]
    shown = [server for server in servers if server.key in figures]
    columns = min(3, len(workloads))
    rows = (len(workloads) + columns - 1) // columns
    figure, axes = plt.subplots(
        rows, columns, figsize=(5 * columns, 4 * rows), squeeze=False
    )
    for axis in axes.flat[len(workloads) :]:
        axis.set_visible(False)
    for axis, workload in zip(axes.flat, workloads):
        name, unit = METRICS[workload][0], METRICS[workload][1]
        if workload != "idle":
            unit = "server CPU us per operation"
        labels, values, low, high, colours = [], [], [], [], []
        for server in shown:
            figure_ = figures[server.key].get(workload)
            if figure_ is None:
                continue
            value = figure_.get("server_us_per_op", figure_["value"])
            samples = figure_.get("cpu_samples", figure_["samples"])
            if workload == "idle" or "cpu_samples" not in figure_:
                samples = figure_["samples"] if workload == "idle" else [value]
            labels.append(server.label)
            values.append(value)
            low.append(max(0.0, value - min(samples)))
            high.append(max(0.0, max(samples) - value))
            colours.append("tab:red" if server.greetd else "tab:gray")
        axis.bar(range(len(values)), values, color=colours, yerr=[low, high])
        axis.set_xticks(range(len(values)))
        axis.set_xticklabels(labels, rotation=45, ha="right", fontsize=8)
        axis.set_title(f"{name}\n{unit}, lower is better", fontsize=9)
        axis.tick_params(axis="y", labelsize=8)
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)
