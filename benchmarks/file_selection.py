"""How fast `select_files` walks a large tree: 5,000 small files in 100 directories, best of N runs.

    .venv/bin/python benchmarks/file_selection.py [--runs 5]

Prints files/s. A regression shows as a ratio against the previous run on the same machine, never as an
absolute threshold in a test (CI machines are shared and noisy).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from codesense_ray.sources.files import select_files


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    body = "def handler(event):\n    return event\n" * 5
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for d in range(100):
            sub = root / f"pkg{d:03d}"
            sub.mkdir()
            for i in range(50):
                (sub / f"mod{i:02d}.py").write_text(body)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            sel = select_files(root, max_file_bytes=1_000_000, max_line_length=1000)
            times.append(time.perf_counter() - start)
        best = min(times)
        print(f"select_files: {len(sel.files)} files, best {best * 1000:.0f} ms of {args.runs} runs, {len(sel.files) / best:,.0f} files/s")


if __name__ == "__main__":
    main()
