"""An HTML template for `dvc plots show` that carries Vega itself, so its charts render offline.

DVC's default page loads Vega, Vega-Lite and Vega-Embed from a CDN: without internet its line charts
are blank boxes. This template inlines the same libraries, bundled by vl-convert (a PyPI package that
ships them), and leaves out DVC's ``{scripts}`` placeholder, where the CDN tags would go.
``.dvc/config`` names it (``plots.html_template``); ``make setup`` writes it.

    python -m ganops.plots_page .dvc/plots-offline.html
"""

from __future__ import annotations

import sys
from pathlib import Path

from ganops.files import atomic_path

# DVC writes Vega-Lite 5 specs; the newest 5.x reads them as DVC's own page would.
VEGA_LITE = "v5.21"


def template() -> str:
    import vl_convert

    bundle = vl_convert.javascript_bundle(vl_version=VEGA_LITE)
    return f"""<!DOCTYPE html>
<html>
<head>
    {{refresh_tag}}
    <meta charset="utf-8">
    <title>ganops plots</title>
    <script type="text/javascript">{bundle}</script>
    <style>table {{ border-spacing: 15px; }}</style>
</head>
<body>
    {{plot_divs}}
</body>
</html>
"""


def main(argv: list[str]) -> None:
    target = Path(argv[0] if argv else ".dvc/plots-offline.html")
    with atomic_path(target) as tmp:
        tmp.write_text(template())
    print(f"wrote {target} (Vega inlined: `dvc plots show` works offline)")


if __name__ == "__main__":
    main(sys.argv[1:])
