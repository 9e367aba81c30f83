"""What every benchmark section of BENCHMARKS.md starts with: title, date, machine, command."""
from __future__ import annotations

import datetime as dt
import os
import platform
import sys
from pathlib import Path


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
