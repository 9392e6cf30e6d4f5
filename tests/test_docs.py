"""The README's first screen stays a first screen, and every relative link in the docs resolves."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PAGES = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")


def test_the_readme_first_screen_fits_a_screen():
    readme = (REPO / "README.md").read_text()
    first_screen = readme.split("\n## ", 1)[0]
    assert len(first_screen.splitlines()) <= 50
    assert "make run" in first_screen and "make test" in first_screen
    assert "source .venv/bin/activate" in first_screen and "curl" in first_screen


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_relative_links_resolve(page):
    for target in LINK.findall(page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.exists(), f"{page.name} links to {target}, which does not exist"
