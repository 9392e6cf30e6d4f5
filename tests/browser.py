"""Real headless Chromium (Debian's chromium + chromedriver, driven by Selenium) for page tests.

Every host name but loopback resolves to nothing, so a page that still needs a CDN shows it.
"""

from __future__ import annotations

import contextlib
import io
import shutil
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
needs_chromium = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="needs Debian's chromium and chromium-driver (`make browser`)"
)


@contextlib.contextmanager
def chromium(profile: Path) -> Iterator:
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1",  # offline but loopback
        "--window-size=1000,800",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait(driver, script: str, timeout: float = 30):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout).until(lambda d: d.execute_script(script))


def element_pixels(driver, element) -> np.ndarray:
    """The element's region of a real screenshot, as gray pixels (scrolled into view first: a
    screenshot shows the viewport only)."""
    r = driver.execute_script(
        "arguments[0].scrollIntoView({block: 'nearest'}); const b = arguments[0].getBoundingClientRect();"
        "return {x: b.left, y: b.top, width: b.width, height: b.height};",
        element,
    )
    shot = Image.open(io.BytesIO(driver.get_screenshot_as_png())).convert("L")
    scale = shot.width / driver.execute_script("return window.innerWidth")
    box = tuple(int(v * scale) for v in (r["x"], r["y"], r["x"] + r["width"], r["y"] + r["height"]))
    return np.asarray(shot.crop(box), dtype=np.float32)
