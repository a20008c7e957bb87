"""What the report's tests (tests/test_build.py, test_tables.py, test_figures.py, and
test_committed_report.py) share: the fixture records, an HTML parser and Chromium.

The fixtures under tests/fixtures/report/results are constructed records of
a CUDA machine (``tests/fixtures/report/generate.py`` rewrites them): several
backends and a variant, an unavailable backend, an error, a diverged run, a
missing metric, out-of-memory points in a sweep, a single-backend task, a
second precision and a parity file.  The tests parse the page with the
standard library's HTML parser and check its numbers against the JSON they
came from.  The last test opens the page in headless Chromium.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import tempfile
from html.parser import HTMLParser
from pathlib import Path

import pytest


FIXTURES = Path(__file__).resolve().parent / "fixtures" / "report" / "results"


FC_FP32 = "fc-mnist-cuda-nvidia-h100-80gb-hbm3-fp32"


FC_BF16 = "fc-mnist-cuda-nvidia-h100-80gb-hbm3-bf16"


DSRN = "dsrn-tdbn-cuda-nvidia-h100-80gb-hbm3-fp32"


SYNTHETIC = "synthetic-cuda-nvidia-h100-80gb-hbm3-fp32"


# the display unit of a column header -> factor from the shown number to the record's unit
DISPLAY = {"%": 0.01, "s": 1.0, "ms": 1e-3, "MiB": 2**20, "GiB": 2**30, "samples/s": 1.0, "spikes/neuron/step": 1.0}


class Node:
    def __init__(self, tag: str, attrs: dict[str, str], parent: "Node | None"):
        self.tag, self.attrs, self.parent = tag, attrs, parent
        self.children: list[Node] = []
        self.text_parts: list[str] = []

    @property
    def classes(self) -> set[str]:
        return set(self.attrs.get("class", "").split())

    def text(self) -> str:
        return " ".join(" ".join(self.text_parts + [c.text() for c in self.children]).split())

    def own_text(self) -> str:
        return " ".join(" ".join(self.text_parts).split())

    def find_all(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> list["Node"]:
        out = []
        for child in self.children:
            if ((tag is None or child.tag == tag) and (cls is None or cls in child.classes)
                    and all(child.attrs.get(k.replace("_", "-")) == v for k, v in attrs.items())):
                out.append(child)
            out.extend(child.find_all(tag, cls, **attrs))
        return out

    def find(self, tag: str | None = None, cls: str | None = None, **attrs: str) -> "Node | None":
        found = self.find_all(tag, cls, **attrs)
        return found[0] if found else None

    def ancestor(self, cls: str) -> "Node | None":
        node = self.parent
        while node is not None and cls not in node.classes:
            node = node.parent
        return node


class Tree(HTMLParser):
    VOID = {"meta", "br", "img", "input", "link", "hr", "col", "source", "wbr"}

    def __init__(self, html: str):
        super().__init__(convert_charrefs=True)
        self.root = Node("#root", {}, None)
        self.current = self.root
        self.feed(html)

    def handle_starttag(self, tag, attrs):
        node = Node(tag, {k: v or "" for k, v in attrs}, self.current)
        self.current.children.append(node)
        if tag not in self.VOID:
            self.current = node

    def handle_endtag(self, tag):
        node = self.current
        while node is not self.root and node.tag != tag:
            node = node.parent
        if node is not self.root:
            self.current = node.parent

    def handle_data(self, data):
        self.current.text_parts.append(data)


def parse(html: str) -> Node:
    return Tree(html).root


def comparison_tables(root: Node, setting: str | None = None) -> list[Node]:
    tables = root.find_all("table", data_table="comparison")
    if setting is None:
        return tables
    return [t for t in tables if t.ancestor("setting").attrs["id"] == setting]


def column_units(table: Node) -> dict[str, str]:
    return {th.attrs["data-column"]: th.find("span", cls="unit").own_text()
            for th in table.find_all("th", cls="num") if "data-column" in th.attrs}


def row(table: Node, backend: str) -> Node:
    found = table.find("tr", data_backend=backend)
    assert found is not None, f"no row for {backend}"
    return found


def value_cells(table: Node) -> list[Node]:
    return [td for td in table.find_all("td") if "data-metric" in td.attrs]


def figure_specs(html: str) -> dict[str, dict]:
    match = re.search(r'<script type="application/json" id="plot-specs">(.*?)</script>', html, re.S)
    assert match, "no figure data in the page"
    return json.loads(match.group(1))


def record(rel: str, root: Path = FIXTURES) -> dict:
    return json.loads((root / rel).read_text())


def copy_fixtures(dest: Path, *patterns: str) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for pattern in patterns:
        for src in FIXTURES.glob(pattern):
            target = dest / src.relative_to(FIXTURES)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(src, target)
    return dest


CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--force-device-scale-factor=1"]


WIDTH = 1400


def find_chromium() -> str | None:
    for name in (os.environ.get("SPIKEBENCH_CHROMIUM"), "chromium", "chromium-browser", "google-chrome"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


def chromium_or_skip(purpose: str) -> str:
    """Chromium's path; without it the test is skipped, or fails when CI is set (CI must ``purpose``)."""
    binary = find_chromium()
    if binary is None:
        message = "chromium is not installed (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{message}; CI must {purpose}")
        pytest.skip(message)
    return binary


def run_chromium(binary: str, url: str, *extra: str) -> subprocess.CompletedProcess:
    with tempfile.TemporaryDirectory(prefix="spikebench-chromium-") as profile:
        return subprocess.run(
            [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--virtual-time-budget=20000", *extra, url],
            capture_output=True, text=True, timeout=90,
        )


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()[:24]
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    return struct.unpack(">II", data[16:24])


def artifacts_dir() -> Path:
    return Path(os.environ.get("SPIKEBENCH_ARTIFACTS") or Path(__file__).resolve().parent / "artifacts")


def open_in_chromium(binary: str, url: str) -> tuple[Node, Node, list[Node]]:
    """The page as Chromium drew it: no console message, every figure drawn and not empty."""
    proc = run_chromium(binary, url, f"--window-size={WIDTH},1000", "--enable-logging=stderr", "--v=0",
                        "--dump-dom")
    assert proc.returncode == 0, proc.stderr[-2000:]
    console = [l for l in proc.stderr.splitlines() if ":CONSOLE" in l]
    assert not console, "console messages:\n" + "\n".join(console)
    root = parse(proc.stdout)
    body = root.find("body")
    divs = root.find_all("div", cls="plot")
    assert divs and body.attrs.get("data-plots-total") == str(len(divs))
    assert body.attrs.get("data-plots-drawn") == str(len(divs)), "not every figure was drawn"
    assert body.attrs.get("data-plots-failed") == "0"
    for div in divs:
        svg = div.find("svg", cls="main-svg")
        assert svg is not None, f"{div.attrs['id']}: no SVG drawn"
        drawn = div.find_all("g", cls="trace") + [g for g in div.find_all("g", cls="hm") if g.find("image")]
        assert drawn, f"{div.attrs['id']}: an empty plot"
        assert not div.find_all("p", cls="plot-error")
    return root, body, divs
