"""The processes a test or a benchmark started, found through /proc (Linux)."""

from __future__ import annotations

from pathlib import Path


def stat_fields(pid: int | str) -> list[str] | None:
    """The fields of /proc/<pid>/stat after the command's name (state, parent, ..., utime at 11,
    stime at 12); None once the process has ended."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None


def process_tree(pid: int) -> list[int]:
    """`pid` and its live descendants."""
    parents: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = stat_fields(stat.parent.name)
        if fields is not None:
            parents.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    tree, queue = [], [pid]
    while queue:
        tree.append(queue.pop())
        queue += parents.get(tree[-1], [])
    return tree


def alive(pid: int) -> bool:
    """Whether `pid` still runs; a zombie (ended, not yet reaped by whoever adopted it) does not."""
    fields = stat_fields(pid)
    return fields is not None and fields[0] != "Z"
