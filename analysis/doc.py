"""A tiny document model rendered twice: Markdown (report.md) and self-contained HTML (index.html)."""

from __future__ import annotations

import base64
import html
import math
import re
from pathlib import Path

import pandas as pd

CSS = """\
body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;line-height:1.45;color:#222}
table{border-collapse:collapse;font-size:13px;margin:.5em 0 1em}
th,td{border:1px solid #ccc;padding:2px 6px;text-align:right}
th{background:#f3f3f3}td:first-child,th:first-child{text-align:left}img{max-width:100%;border:1px solid #eee}
figure{margin:1em 0}figcaption{font-size:13px;color:#555}code{background:#f5f5f5;padding:0 3px}
nav{margin:.5em 0 1em;font-size:14px}table.summary td{white-space:nowrap}"""


def fmt(v) -> str:
    """Numbers as a reader wants them: ints plain, floats to 3 decimals below 10, fewer above."""
    if v is None or (isinstance(v, float) and math.isnan(v)) or v is pd.NA:
        return "-"
    if isinstance(v, bool):
        return str(v).lower()
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if v.is_integer() and abs(v) < 1e6:
            return str(int(v))
        a = abs(v)
        return f"{v:.3g}" if a < 0.01 else f"{v:.3f}" if a < 10 else f"{v:.1f}" if a < 1000 else f"{v:.0f}"
    return str(v)


def md_table(df: pd.DataFrame) -> list[str]:
    """A Markdown table of `df` (values through fmt, '|' escaped), then a blank line."""
    head = ["| " + " | ".join(map(str, df.columns)) + " |", "|" + " --- |" * len(df.columns)]
    rows = ["| " + " | ".join(fmt(v).replace("|", "\\|") for v in row) + " |" for row in df.itertuples(index=False)]
    return head + rows + [""]


def _inline(text: str) -> str:
    """Escaped text with Markdown `code` spans as <code> and [links](#anchor) as <a>."""
    out = re.sub(r"`([^`]+)`", r"<code>\1</code>", html.escape(text))
    return re.sub(r"\[([^\]]+)\]\((#[\w-]+)\)", r"<a href='\2'>\1</a>", out)


def slug(text: str) -> str:
    """A heading's anchor, as GitHub names it: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


class Doc:
    def __init__(self, title: str):
        self.title = title
        self.blocks: list[tuple[str, object]] = []

    def h(self, text: str, level: int = 2) -> None:
        self.blocks.append(("h", (level, text)))

    def p(self, text: str) -> None:
        self.blocks.append(("p", text))

    def bullets(self, lines: list[str]) -> None:
        if lines:
            self.blocks.append(("ul", list(lines)))

    def bullets_at(self, heading: str, lines: list[str]) -> None:
        """Bullets at the end of the section `heading` (for lines known only once later sections ran)."""
        if not lines:
            return
        heads = [i for i, (kind, b) in enumerate(self.blocks) if kind == "h"]
        start = next((i for i in heads if self.blocks[i][1][1] == heading), None)
        if start is None:
            return self.bullets(lines)
        end = next((i for i in heads if i > start), len(self.blocks))
        self.blocks.insert(end, ("ul", list(lines)))

    def contents(self) -> None:
        """A short contents list here: a link to every level-2 heading, filled in when rendered."""
        self.blocks.append(("toc", None))

    def _toc(self) -> list[str]:
        return [f"[{b[1]}](#{slug(b[1])})" for kind, b in self.blocks if kind == "h" and b[0] == 2]

    def table(self, df: pd.DataFrame, max_rows: int = 40) -> None:
        if not df.empty:
            self.blocks.append(("table", df.head(max_rows)))

    def figure(self, rel: str, caption: str) -> None:
        self.blocks.append(("fig", (rel, caption)))

    @property
    def figures(self) -> list[str]:
        return [b[1][0] for b in self.blocks if b[0] == "fig"]

    # --- rendering -----------------------------------------------------------------------------
    def markdown(self) -> str:
        out = [f"# {self.title}", ""]
        for kind, b in self.blocks:
            if kind == "h":
                out += [f"{'#' * b[0]} {b[1]}", ""]
            elif kind == "p":
                out += [b, ""]
            elif kind == "ul":
                out += [f"- {line}" for line in b] + [""]
            elif kind == "toc":
                out += ["**Contents:** " + " · ".join(self._toc()), ""]
            elif kind == "table":
                cells = [[fmt(v) for v in row] for row in b.itertuples(index=False)]
                out += ["| " + " | ".join(map(str, b.columns)) + " |", "|" + " --- |" * len(b.columns)]
                out += ["| " + " | ".join(c.replace("|", "\\|") for c in row) + " |" for row in cells] + [""]
            elif kind == "fig":
                out += [f"![{b[1]}]({b[0]})", "", f"*{b[1]}*", ""]
        return "\n".join(out)

    def html(self, base: Path) -> str:
        """One HTML file; figures embedded as base64 PNG and linked to their files under `base`."""
        e = html.escape
        out = [
            f"<!doctype html><html><head><meta charset='utf-8'><title>{e(self.title)}</title>",
            f"<style>{CSS}</style></head><body><h1>{e(self.title)}</h1>",
        ]
        for kind, b in self.blocks:
            if kind == "h":
                out.append(f"<h{b[0]} id='{slug(b[1])}'>{e(b[1])}</h{b[0]}>")
            elif kind == "toc":
                out.append("<nav><b>Contents:</b> " + " · ".join(_inline(x) for x in self._toc()) + "</nav>")
            elif kind == "p":
                out.append(f"<p>{_inline(b)}</p>")
            elif kind == "ul":
                out.append("<ul>" + "".join(f"<li>{_inline(line)}</li>" for line in b) + "</ul>")
            elif kind == "table":
                out.append(b.to_html(index=False, na_rep="-", float_format=fmt, border=0))
            elif kind == "fig":
                data = base64.b64encode((base / b[0]).read_bytes()).decode()
                out.append(
                    f"<figure><a href='{e(b[0])}'><img alt='{e(b[1])}' src='data:image/png;base64,{data}'></a>"
                    f"<figcaption>{e(b[1])}</figcaption></figure>"
                )
        out.append("</body></html>")
        return "\n".join(out)
