"""The one line a runner prints at the end: what ran, what was cached, quality and the decision."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path

from ganops.stages import STAGES, Layout


def _read(path: Path) -> dict:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def format_summary(ran: Iterable[str], cached: Iterable[str], layout: Layout) -> str:
    ran, cached = list(ran), list(cached)
    parts = [f"ran {', '.join(ran) or 'nothing'}", f"cached {', '.join(cached) or 'nothing'}"]
    metrics = _read(layout.metrics)
    if "fid_domain" in metrics and "baseline" not in metrics:
        floor = metrics.get("floor", {}).get("fid_domain")
        parts.append(f"fid_domain {metrics['fid_domain']:.4g}" + (f" (floor {floor:.4g})" if floor else ""))
    if "baseline" in metrics:  # a restoration: its primary metric beside the classical method's
        metric, baseline = metrics["primary"]["metric"], metrics["baseline"]
        parts.append(f"{metric} {metrics[metric]:.4g} vs {baseline[metric]:.4g} ({baseline['method']})")
    record = _read(layout.registry)
    if record:
        verdict = "promoted to champion" if record.get("promoted") else "champion kept"
        parts.append(
            f"{record.get('model_name')} v{record.get('version')}: {verdict} ({record.get('reason')})"
        )
    return "ganops: " + " · ".join(parts)


def summary_line(layout: Layout, since: float) -> str:
    """Stages whose timing log (logs/<stage>.json) finished after ``since`` ran; the others were cached."""
    ran = []
    for stage in STAGES:
        finished = _read(layout.timings(stage)).get("finished")
        if finished and datetime.fromisoformat(finished).timestamp() >= since:
            ran.append(stage)
    return format_summary(ran, [s for s in STAGES if s not in ran], layout)
