"""`dvc plots show` renders its charts offline, through the template that inlines Vega."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import yaml

from browser import chromium, element_pixels, needs_chromium, wait
from ganops.plots_page import main as write_template

REPO = Path(__file__).resolve().parents[1]
pytestmark = needs_chromium


def dvc(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "DVC_NO_ANALYTICS": "1"}
    result = subprocess.run(["dvc", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dvc_plots_render_offline(tmp_path):
    project = tmp_path / "project"
    (project / "reports/train").mkdir(parents=True)
    dvc(["init", "--no-scm", "-q"], project)
    # The repository's own plot definitions, over a made-up run's curves.
    plots = [
        p for p in yaml.safe_load((REPO / "dvc.yaml").read_text())["plots"] if "reports/samples" not in p
    ]
    (project / "dvc.yaml").write_text(yaml.safe_dump({"plots": plots}))
    steps = np.arange(0, 2000, 100)
    rows = [f"{s},{1 + np.sin(s / 300):.4f},{1 + np.cos(s / 300):.4f},0.7,0.3" for s in steps]
    (project / "reports/train/losses.csv").write_text("step,loss_d,loss_g,d_real,d_fake\n" + "\n".join(rows))
    rows = [f"{s},{50 / (1 + s / 200):.3f},{min(1.0, s / 1000):.2f}" for s in steps]
    (project / "reports/train/live.csv").write_text("step,fid_live,class_coverage\n" + "\n".join(rows))
    shutil.copytree(
        REPO / "docs" / "quality_curve", project / "docs" / "quality_curve"
    )  # the published curve
    write_template([str(project / ".dvc/plots-offline.html")])
    dvc(["config", "plots.html_template", "plots-offline.html"], project)

    dvc(["plots", "show", "-o", "out"], project)
    page = (project / "out/index.html").read_text()
    assert "cdn.jsdelivr" not in page

    with chromium(tmp_path / "profile") as browser:
        browser.get((project / "out/index.html").as_uri())
        wait(browser, "return document.querySelectorAll('canvas, svg.marks').length >= 5")
        charts = browser.find_elements("css selector", "canvas, svg.marks")
        browser.save_screenshot(str(tmp_path / "plots.png"))
        for chart in charts:
            pixels = element_pixels(browser, chart)
            drawn = (pixels < 200).mean()
            assert drawn > 0.005, f"a chart looks blank: {drawn:.2%} of it is drawn"
