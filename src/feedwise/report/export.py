"""PDF and PNG copies of an HTML report, printed by a local headless Chromium.

The browser is ``$FEEDWISE_CHROMIUM`` or the first of ``chromium``,
``chromium-browser``, ``google-chrome`` on the ``PATH``. With the ``playwright``
package installed it drives that browser (full-page PNG, charts settled before
printing); otherwise it calls the browser's own ``--print-to-pdf`` / ``--screenshot``.
Nothing is downloaded: the report is self-contained.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from feedwise.errors import ConfigError

BROWSER_ARGS: tuple[str, ...] = (
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run")

_WAIT = ("() => [...document.querySelectorAll('.plotly-graph-div')]"
         ".every(d => d.querySelector('svg.main-svg'))")


def find_chromium() -> str:
    """Path of the Chromium to print with.

    Raises:
        ConfigError: No Chromium found.
    """
    env = os.environ.get("FEEDWISE_CHROMIUM")
    if env:
        return env
    for name in ("chromium", "chromium-browser", "google-chrome"):
        path = shutil.which(name)
        if path:
            return path
    raise ConfigError("--pdf/--png need Chromium: install it (Debian: apt-get install "
                      "chromium) or point FEEDWISE_CHROMIUM at a Chrome/Chromium binary")


def export(html_path: str | Path, *, pdf: str | Path | None = None,
           png: str | Path | None = None, width: int = 1366) -> list[Path]:
    """Print ``html_path`` to ``pdf`` and/or a full-page ``png``; return the files written."""
    src = Path(html_path).resolve()
    browser = find_chromium()
    out: list[Path] = []
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is not None:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=browser, args=list(BROWSER_ARGS))
            try:
                page = b.new_page(viewport={"width": width, "height": 900})
                page.goto(src.as_uri(), wait_until="load")
                page.wait_for_function(_WAIT, timeout=60_000)
                if png is not None:
                    page.screenshot(path=str(png), full_page=True)
                    out.append(Path(png))
                if pdf is not None:
                    page.emulate_media(media="screen")
                    page.pdf(path=str(pdf), width=f"{width}px", print_background=True)
                    out.append(Path(pdf))
            finally:
                b.close()
        return out
    base = [browser, "--headless", *BROWSER_ARGS, "--virtual-time-budget=20000",
            "--run-all-compositor-stages-before-draw", "--hide-scrollbars"]
    if pdf is not None:
        subprocess.run([*base, "--no-pdf-header-footer", f"--print-to-pdf={Path(pdf).resolve()}",
                        src.as_uri()], check=True, capture_output=True, timeout=180)
        out.append(Path(pdf))
    if png is not None:
        subprocess.run([*base, f"--window-size={width},6000",
                        f"--screenshot={Path(png).resolve()}", src.as_uri()],
                       check=True, capture_output=True, timeout=180)
        out.append(Path(png))
    return out
