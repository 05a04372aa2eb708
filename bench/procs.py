"""Per-process accounting shared by the benchmarks: where the CPU beside the measured work goes."""

from __future__ import annotations

import psutil

from ops.supervisor import System


def cpu_seconds(system: System) -> dict[str, float]:
    """CPU time (user + system) of every process on the machine, grouped: the system's children by name, the
    rest (Postgres backends, Valkey, the bench itself) by executable name. A process that has exited and been
    waited for counts in its parent's group (its children's times): an HNSW build's child process, a Postgres
    backend that closed, a re-embed job's work horse."""
    names = {child.process.pid: child.name for child in system.children if child.process}
    out: dict[str, float] = {}
    for proc in psutil.process_iter(["pid", "name", "cpu_times"]):
        times = proc.info["cpu_times"]
        if times is None:
            continue
        name = names.get(proc.info["pid"], proc.info["name"])
        out[name] = out.get(name, 0.0) + times.user + times.system + times.children_user + times.children_system
    return out


def ms_per_item(before: dict[str, float], after: dict[str, float], items: int) -> dict[str, float]:
    """CPU milliseconds per item by process group, largest first (groups that existed at both readings)."""
    spent = {name: 1000 * (after[name] - before[name]) / max(items, 1) for name in after if name in before}
    return dict(sorted(spent.items(), key=lambda kv: -kv[1]))


def cpu_line(spent: dict[str, float], what: str) -> str:
    return f"CPU ms per {what}: " + ", ".join(f"{name} {ms:.2f}" for name, ms in spent.items() if ms >= 0.01)
