"""Open an HTML report in headless Chromium as a person would: screenshot, every image decoded, the
metrics table there (docs/REPORT.md).

The report's own inline script (DUM/templates/report.html.j2) sets ``data-images="<decoded>/<all>"``
and ``data-metrics-table`` on ``<body>`` once the page has loaded; ``--dump-dom`` prints the DOM
after that, and a second run takes the screenshot. Chromium runs with a fresh profile and every
background network feature off, so the check also shows that the page needs no network.

    python -m utils.browser demo_work/CDCN_U_P1_test/report.html --screenshot report.png
"""
from __future__ import annotations

import argparse
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "chrome")
FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage", "--hide-scrollbars")


class BrowserError(RuntimeError):
    pass


def find_browser() -> str | None:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def _run(browser: str, html: Path, extra: list[str], timeout: float) -> str:
    with tempfile.TemporaryDirectory(prefix="report-browser-") as profile:
        cmd = [browser, *FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=10000", *extra, html.as_uri()]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            raise BrowserError(f"{browser} did not finish within {timeout:.0f} s on {html}") from None
    if done.returncode != 0:
        raise BrowserError(f"{browser} exited {done.returncode} on {html}: {done.stderr.strip()[-800:]}")
    return done.stdout


def check_report(html, screenshot=None, width: int = 1280, height: int = 4000, timeout: float = 120.0,
                 browser: str | None = None) -> dict:
    """Load ``html`` in headless Chromium; returns {"images": decoded, "total": n, "metrics_table": bool,
    "screenshot": path or None}. Raises BrowserError when no browser is installed or it fails."""
    html = Path(html).resolve()
    if not html.is_file():
        raise BrowserError(f"{html}: no such file")
    browser = browser or find_browser()
    if browser is None:
        raise BrowserError(f"no Chromium found (looked for {', '.join(BROWSERS)}); Debian: apt-get install chromium")
    dom = _run(browser, html, ["--dump-dom"], timeout)
    found = re.search(r'data-images="(\d+)/(\d+)"', dom)
    if found is None:
        raise BrowserError(f"{html}: the page's load script did not run (no data-images on <body>)")
    result = {"images": int(found[1]), "total": int(found[2]),
              "metrics_table": 'data-metrics-table="yes"' in dom, "screenshot": None}
    if screenshot is not None:
        shot = Path(screenshot).resolve()
        shot.parent.mkdir(parents=True, exist_ok=True)
        _run(browser, html, [f"--screenshot={shot}", f"--window-size={width},{height}"], timeout)
        if not shot.is_file() or shot.stat().st_size == 0:
            raise BrowserError(f"{browser} wrote no screenshot to {shot}")
        result["screenshot"] = str(shot)
    return result


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description="Check a report.html in headless Chromium (images, metrics table).")
    p.add_argument("html", help="report.html to open")
    p.add_argument("--screenshot", default=None, help="also write a PNG screenshot here")
    p.add_argument("--height", type=int, default=4000, help="screenshot height in pixels")
    p.add_argument("--no-metrics-table", action="store_true", help="a training-only report: no metrics table expected")
    args = p.parse_args(argv)
    try:
        result = check_report(args.html, args.screenshot, height=args.height)
    except BrowserError as exc:
        print(f"browser check: {exc}", file=sys.stderr)
        return 2
    ok = result["total"] > 0 and result["images"] == result["total"] and (
        result["metrics_table"] or args.no_metrics_table)
    print(f"browser check {'passed' if ok else 'FAILED'}: {result['images']}/{result['total']} images decoded, "
          f"metrics table {'present' if result['metrics_table'] else 'absent'}"
          + (f", screenshot {result['screenshot']}" if result["screenshot"] else ""))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
