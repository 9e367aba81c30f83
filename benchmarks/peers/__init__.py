"""Contenders of the CamVid side-by-side benchmark (``benchmarks/camvid.py``).

Each module exposes ``run(data, minutes, workdir, smoke) -> dict``; ``camvid.py`` calls it in a
fresh subprocess per contender so that peak memory and threads are measured in isolation.
"""
