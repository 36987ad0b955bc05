"""Open a report's index.html in a real headless Chromium: every image loaded, no console error, a screenshot.

Chromium is driven over the DevTools protocol on a pipe (`--remote-debugging-pipe`: JSON messages separated
by NUL bytes on file descriptors 3 and 4), so nothing beyond the standard library and a `chromium` binary
is needed. Usage:

    python -m analysis.browser studies/quick/report --screenshot docs/figures/report.png

prints one line per check and exits 1 when an image did not load or the console logged an error.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import select
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from seqsum.files import write_bytes

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
IMAGES = "JSON.stringify([...document.images].map(i => [i.alt.slice(0, 60), i.complete && i.naturalWidth > 0]))"


class BrowserError(RuntimeError):
    """Chromium is missing, did not start, or did not answer in time."""


@dataclass
class PageCheck:
    url: str
    images: list[tuple[str, bool]] = field(default_factory=list)  # (alt text, loaded)
    errors: list[str] = field(default_factory=list)  # console errors and uncaught exceptions
    title: str = ""

    @property
    def ok(self) -> bool:
        return bool(self.images) and all(ok for _, ok in self.images) and not self.errors


def find_chromium() -> str | None:
    return next((p for p in map(shutil.which, CANDIDATES) if p), None)


class _Pipe:
    """The DevTools protocol over Chromium's debugging pipe: send a command, read messages until its answer."""

    def __init__(self, binary: str, profile: str):
        to_child_r, self._w = os.pipe()
        self._r, from_child_w = os.pipe()

        def fds():  # the child reads commands on fd 3 and writes answers on fd 4
            r, w = os.dup(to_child_r), os.dup(from_child_w)  # above 4: neither dup2 below clobbers the other
            os.dup2(r, 3)
            os.dup2(w, 4)

        args = [binary, "--headless=new", "--remote-debugging-pipe", "--no-sandbox", "--disable-gpu",
                "--no-first-run", "--no-default-browser-check", "--hide-scrollbars", f"--user-data-dir={profile}",
                "about:blank"]  # fmt: skip
        self.proc = subprocess.Popen(  # pass_fds keeps 3 and 4 open past close_fds, which runs after preexec_fn
            args, preexec_fn=fds, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        os.close(to_child_r), os.close(from_child_w)
        self._buf, self._id, self.events = b"", 0, []

    def send(self, method: str, params: dict | None = None, session: str | None = None, timeout: float = 30) -> dict:
        self._id += 1
        msg = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._w, json.dumps(msg).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            m = self.read(deadline)
            if m.get("id") == self._id:
                if "error" in m:
                    raise BrowserError(f"{method}: {m['error'].get('message')}")
                return m.get("result", {})
            self.events.append(m)

    def read(self, deadline: float) -> dict:
        while b"\0" not in self._buf:
            left = deadline - time.monotonic()
            if left <= 0 or not select.select([self._r], [], [], left)[0]:
                raise BrowserError("chromium did not answer in time")
            chunk = os.read(self._r, 1 << 20)
            if not chunk:
                raise BrowserError("chromium closed its debugging pipe")
            self._buf += chunk
        raw, _, self._buf = self._buf.partition(b"\0")
        return json.loads(raw)

    def wait_for(self, method: str, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not any(e.get("method") == method for e in self.events):
            self.events.append(self.read(deadline))

    def close(self) -> None:
        try:
            self.send("Browser.close", timeout=5)
        except (BrowserError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._w), os.close(self._r)


def check_page(html: Path, screenshot: Path | None = None, width: int = 1280, height: int = 1000,
               timeout: float = 60) -> PageCheck:  # fmt: skip
    """Load `html` in headless Chromium; report its images and console errors; write a PNG of the first screen."""
    binary = find_chromium()
    if binary is None:
        raise BrowserError(f"no Chromium found (looked for {', '.join(CANDIDATES)}); apt-get install chromium")
    url = Path(html).resolve().as_uri()
    with tempfile.TemporaryDirectory(prefix="seqsum-chromium-") as profile:
        pipe = _Pipe(binary, profile)
        try:
            target = pipe.send("Target.createTarget", {"url": "about:blank"}, timeout=timeout)["targetId"]
            s = pipe.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
            for domain in ("Page", "Runtime", "Log"):
                pipe.send(f"{domain}.enable", session=s)
            screen = {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": False}
            pipe.send("Emulation.setDeviceMetricsOverride", screen, session=s)
            pipe.events.clear()
            pipe.send("Page.navigate", {"url": url}, session=s)
            pipe.wait_for("Page.loadEventFired", timeout)
            found = pipe.send("Runtime.evaluate", {"expression": IMAGES, "returnByValue": True}, session=s)
            title = pipe.send("Runtime.evaluate", {"expression": "document.title", "returnByValue": True}, session=s)
            check = PageCheck(url, [tuple(x) for x in json.loads(found["result"]["value"])], _errors(pipe.events))
            check.title = title["result"].get("value", "")
            if screenshot is not None:
                shot = pipe.send("Page.captureScreenshot", {"format": "png"}, session=s, timeout=timeout)
                Path(screenshot).parent.mkdir(parents=True, exist_ok=True)

                write_bytes(screenshot, base64.b64decode(shot["data"]))
            return check
        finally:
            pipe.close()


def _errors(events: list[dict]) -> list[str]:
    out = []
    for e in events:
        m, p = e.get("method"), e.get("params", {})
        if m == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
            out.append("console: " + " ".join(str(a.get("value", a.get("description", ""))) for a in p.get("args", [])))
        elif m == "Runtime.exceptionThrown":
            out.append("exception: " + p.get("exceptionDetails", {}).get("text", "?"))
        elif m == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
            out.append(f"log: {p['entry'].get('text', '')} {p['entry'].get('url', '')}".strip())
    return out


def main(argv: list[str] | None = None) -> int:
    a = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    a.add_argument("report", type=Path, help="a report folder (its index.html) or an HTML file")
    a.add_argument("--screenshot", type=Path, help="write a PNG of the page's first screen here")
    a.add_argument("--width", type=int, default=1280)
    a.add_argument("--height", type=int, default=1000)
    args = a.parse_args(argv)
    html = args.report / "index.html" if args.report.is_dir() else args.report
    if not html.is_file():
        print(f"browser: error: {str(html)!r} does not exist", file=sys.stderr)
        return 2
    try:
        c = check_page(html, args.screenshot, args.width, args.height)
    except BrowserError as e:
        print(f"browser: error: {e}", file=sys.stderr)
        return 2
    loaded = sum(ok for _, ok in c.images)
    print(f"{c.url}: title {c.title!r}; {loaded} of {len(c.images)} images loaded; {len(c.errors)} console errors")
    for alt, ok in c.images:
        if not ok:
            print(f"  image not loaded: {alt!r}")
    for err in c.errors:
        print(f"  {err}")
    if args.screenshot:
        print(f"screenshot: {args.screenshot}")
    return 0 if c.ok else 1


if __name__ == "__main__":
    sys.exit(main())
