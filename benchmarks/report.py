"""What every benchmark section of BENCHMARKS.md starts with: title, date, machine, command."""
from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from pathlib import Path
from typing import Callable, Iterable, Sequence


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")),
                        platform.processor() or "?")
    except OSError:
        return platform.processor() or "?"


def section(title: str, machine: str | None = None, *details: str) -> list[str]:
    """Markdown lines: ``# title``, then date, machine (CPU and cores unless given), the command
    that ran (this script with its arguments) and any further ``- **Key:** value`` lines."""
    script = Path(sys.argv[0]).name
    return [f"# {title}", "",
            f"- **Date:** {dt.datetime.now().isoformat(timespec='seconds')}",
            f"- **Machine:** {machine or f'{cpu_name()}, {os.cpu_count()} cores'}",
            f"- **Command:** `python benchmarks/{script} {' '.join(sys.argv[1:])}`".rstrip(),
            *details, ""]


def table(header: Sequence[str], rows: Iterable[Sequence[object]], align: str) -> list[str]:
    """Markdown table lines; ``align`` has one letter per column: ``l`` (text) or ``r`` (numbers)."""
    rule = {"l": "---", "r": "---:"}
    return [f"| {' | '.join(header)} |", f"|{'|'.join(rule[a] for a in align)}|",
            *(f"| {' | '.join(str(c) for c in row)} |" for row in rows)]


def write_lines(path: Path, lines: Sequence[str]) -> None:
    """One results file: the lines, newline-terminated (its folder made if missing: a run's
    figures must not be lost at the last step)."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("\n".join(lines) + "\n")


def save_results(res: dict, out: str | Path, write_markdown: Callable[[dict, Path], None]) -> None:
    """A script's results: printed, written as ``out`` (JSON) and as its Markdown section beside it
    (``out`` with ``.md``), which write_benchmarks_md.py copies into BENCHMARKS.md."""
    import json

    print(json.dumps(res, indent=2))
    Path(out).parent.mkdir(parents=True, exist_ok=True)
    Path(out).write_text(json.dumps(res, indent=2))
    write_markdown(res, Path(out).with_suffix(".md"))
