"""Each image-to-image task against its baseline, trained with the defaults through `dvc exp run`.

    python benchmarks/restoration.py [--workspace DIR] [--experiment "inpaint" "superres" ...]

Runs in a workspace where `make run` (or `dvc repro`) has already run, so each experiment reuses
prepare and the evaluator as a user's would, and registers a version. An experiment is a task plus
optional `-S` overrides, written `superres` or `colorize:data.source=imagefolder,data.root=DIR`, or a
preset (ganops.presets) with optional overrides on top: `photos-superres` or `photos-superres:restore.warmup=1`.
Prints one table: per experiment the wall time of its `dvc exp run` (evalset, train, evaluate,
export, register), the primary metric, and PSNR-Y, SSIM-Y, fid_domain with its 95% interval (inpaint:
PSNR in the hole; colorize: colourfulness, chroma error) of the GAN beside the baseline's
(docs/restoration.md), all from the same run. Paired translation: `translate` (edges of the default
data set) or `translate:data.source=imagefolder,data.root=DIR` (DIR's A/ and B/, or its images' edges).
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from ganops.presets import PRESETS  # noqa: E402

from conftest import stages_dvc_ran  # noqa: E402

ROWS = ("psnr_y", "ssim_y", "psnr_hole", "fid_domain", "colourfulness", "chroma_error", "colour_js")


def overrides_of(spec: str) -> list[str]:
    """``task`` or ``preset`` (ganops.presets), then ``:key=value,...`` overrides on top."""
    head, _, extra = spec.partition(":")
    base = (
        PRESETS[head].arguments()[1::2] if head in PRESETS else [f"task={head}"]
    )  # the key=value of each -S
    return [*base, *(o for o in extra.split(",") if o)]


def run_experiment(workspace: Path, spec: str, temp: bool) -> dict:
    overrides = overrides_of(spec)
    task = next(o.partition("=")[2] for o in reversed(overrides) if o.startswith("task="))
    name = f"bench-{spec.partition(':')[0]}-{int(time.time() * 1000) % 10**8}"
    cmd = [
        "dvc",
        "exp",
        "run",
        *(["--temp"] if temp else []),
        "-n",
        name,
        *(a for o in overrides for a in ("-S", o)),
    ]
    began = time.perf_counter()
    done = subprocess.run(cmd, cwd=workspace, capture_output=True, text=True)
    if done.returncode != 0:
        sys.exit(f"error: `{' '.join(cmd)}` failed:\n{(done.stdout + done.stderr)[-3000:]}")
    wall = time.perf_counter() - began
    show = json.loads(
        # -A: the experiment is found even when a commit was made while it ran
        subprocess.run(
            ["dvc", "exp", "show", "--json", "-A"], cwd=workspace, capture_output=True, text=True
        ).stdout
    )
    row = next(
        e for c in show for x in (c.get("experiments") or []) for e in x["revs"] if e.get("name") == name
    )
    speed = re.search(r"trained (\d+) steps .* at (\d+) images/s", done.stdout + done.stderr)
    return {
        "experiment": spec,
        "ran": stages_dvc_ran(done.stdout),
        "wall_s": wall,  # the whole `dvc exp run`: evalset, train, evaluate, export, register
        "train_images_per_s": float(speed.group(2)) if speed else None,
        "metrics": row["data"]["metrics"]["reports/metrics.json"]["data"],
        "registered": json.loads((workspace / "reports/registry.json").read_text())["model_name"]
        if not temp
        else f"ganops-{task}",
    }


def _interval(scores: dict, name: str) -> str:
    """`` (low-high)`` when the report holds the metric's 95% interval (fid_domain's bootstrap), else ''."""
    low, high = scores.get(f"{name}_ci95_low"), scores.get(f"{name}_ci95_high")
    return f" ({low:.4g}-{high:.4g})" if low is not None and high is not None else ""


def table(results: list[dict]) -> str:
    lines = ["| experiment | exp run s | metric | GAN | baseline | registered |", "|---|---|---|---|---|---|"]
    for r in results:
        m, base = r["metrics"], r["metrics"]["baseline"]
        primary, direction = m["primary"]["metric"], "higher" if m["primary"]["higher_is_better"] else "lower"
        first = [r["experiment"], f"{r['wall_s']:.0f}"]
        for name in dict.fromkeys([primary, *ROWS]):
            if name not in m or name not in base:
                continue
            label = f"{name} (primary, {direction} is better)" if name == primary else name
            registered = r["registered"] if first[0] else ""
            ours, theirs = f"{m[name]:.4g}{_interval(m, name)}", f"{base[name]:.4g}{_interval(base, name)}"
            if _interval(m, name) and _interval(base, name):
                apart = (
                    m[f"{name}_ci95_high"] < base[f"{name}_ci95_low"]
                    or base[f"{name}_ci95_high"] < m[f"{name}_ci95_low"]
                )
                ours += "; intervals apart" if apart else "; intervals overlap"
            lines.append(
                f"| {first[0]} | {first[1]} | {label} | {ours} | {theirs} ({base['method']}) | {registered} |"
            )
            first = ["", ""]
        if "colourfulness_real" in m:
            lines.append(f"| | | colourfulness of the real images | {m['colourfulness_real']:.4g} | | |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workspace", type=Path, default=Path("."))
    parser.add_argument("--experiment", nargs="+", default=["superres", "inpaint"])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument(
        "--temp", action="store_true", help="dvc exp run --temp: the workspace stays as it is"
    )
    args = parser.parse_args()
    results = []
    for spec in args.experiment:
        print(f"dvc exp run {spec} ...", flush=True)
        results.append(run_experiment(args.workspace.resolve(), spec, args.temp))
        print(f"  {results[-1]['wall_s']:.0f} s", flush=True)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
