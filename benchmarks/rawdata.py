"""Cost of the raw-data fingerprint that the validate stage takes on every `dvc repro`.

    python benchmarks/rawdata.py [--files 20000] [--kb 4] [--fashion-mnist FOLDER]

Fingerprints Debian's Fashion-MNIST files (or those in --fashion-mnist) and a fabricated folder of --files image-sized files,
first with an empty hash cache (every file read: what the first run and a fresh clone pay) and then
warm (only stat calls: what every later `dvc repro` pays), and prints seconds and the warm/cold ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from ganops.config import DataParams
from ganops.rawdata import fingerprint


def timed(data: DataParams, cache: Path) -> tuple[float, dict]:
    began = time.perf_counter()
    result = fingerprint(data.source, data.root, cache)
    return time.perf_counter() - began, result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--kb", type=int, default=4, help="size of each fabricated file")
    parser.add_argument(
        "--fashion-mnist", default=None, help="folder of the IDX files (default: Debian's, else data/raw)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "images"
        folder.mkdir()
        for i in range(args.files):
            (folder / f"{i:06d}.png").write_bytes(os.urandom(args.kb * 1024))
        cases = [
            ("fashion-mnist (4 files)", DataParams(root=args.fashion_mnist)),
            (
                f"image folder ({args.files} files of {args.kb} KB)",
                DataParams(source="imagefolder", root=str(folder)),
            ),
        ]
        print(f"{'data':<40} {'files':>7} {'MB':>8} {'cold s':>8} {'warm s':>8} {'warm/cold':>9}")
        for name, data in cases:
            cache = Path(tmp) / f"cache-{data.source}.sqlite"
            cold, result = timed(data, cache)
            warm, again = timed(data, cache)
            assert again == result, "a warm fingerprint must equal the cold one"
            print(
                f"{name:<40} {result['files']:>7} {result['bytes'] / 1e6:>8.1f} {cold:>8.3f} {warm:>8.3f} "
                f"{warm / cold:>9.2f}"
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
