"""Screenshot the dashboard as a person sees it, in headless Chromium.

    uv run python docs/screenshots/shoot.py --home DIR OUT.png [--path /dashboard/] [--width 1280]
        [--selector CSS]

Starts `metis serve` on a free loopback port over METIS_HOME=DIR (local mode, e.g. after
`metis demo`), loads the page and saves a full-page PNG (or, with --selector, the first
element it matches).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import sync_playwright

ROOT = Path(__file__).resolve().parents[2]


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path)
    parser.add_argument("--home", type=Path, required=True)
    parser.add_argument("--path", default="/dashboard/")
    parser.add_argument("--width", type=int, default=1280)
    parser.add_argument("--selector", help="shoot only this element (CSS)")
    args = parser.parse_args()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    env["METIS_HOME"] = str(args.home)
    server = subprocess.Popen(
        [sys.executable, "-m", "metis_site.cli", "serve", "--port", str(port)], cwd=ROOT, env=env
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(url + "/health", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.2)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path="/usr/bin/chromium")
            page = browser.new_page(viewport={"width": args.width, "height": 900})
            page.goto(url + args.path, wait_until="networkidle")  # parts the page fetches too
            if args.selector:
                page.locator(args.selector).first.screenshot(path=str(args.out))
            else:
                page.screenshot(path=str(args.out), full_page=True)
            browser.close()
    finally:
        server.terminate()
        server.wait(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
