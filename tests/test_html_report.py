"""``report --html``: a self-contained file, drawn by a real headless Chromium (Debian's
``chromium`` driven by Playwright): every section and chart is drawn, no console error, the
hover shows value, commit and state; a screenshot is saved.

The runs are real pytest-benchmark runs (autosaved into one machine's storage) of a busy-wait
suite that stores this project's record in two states per model, so every section has content.
In CI (``CI=true``) a missing browser or driver fails the test instead of skipping it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from html.parser import HTMLParser
from pathlib import Path

import pytest

from inference_scale.cli.main import main
from inference_scale.reporting.html_report import SECTIONS

SUITE = """
import os, time
import pytest

def spin(seconds):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass

STATES = [("fp32", 1.0, 4000), ("int8-dynamic", 0.6, 1000), ("prune-l1-50", 0.8, 2000)]

@pytest.mark.parametrize("model", ["spin-a", "spin-b"])

@pytest.mark.parametrize("state,factor,nbytes", STATES)
def test_spin(benchmark, model, state, factor, nbytes):
    benchmark.extra_info.update(
        model=model, family="spin", kind="mlp", state=state, batch_size=1, device="cpu", threads=1,
        dtype="float32", params=1000, nonzero_params=1000, macs=1000, bytes=nbytes, input_shape=[4],
        top1_agreement=1.0 if state == "fp32" else 0.999,
    )
    slow = float(os.environ.get("SLOW", "1")) if model == "spin-b" else 1.0
    benchmark(spin, 0.0003 * factor * slow)
"""

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


@pytest.fixture(scope="module")
def storage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("html")
    (folder / "test_suite.py").write_text(SUITE)
    store = folder / "storage"
    for slow in ("1", "1", "1.3", "1.3"):  # spin-b gets 30% slower from the third run on
        cmd = [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "pytest_benchmark.plugin",
            "test_suite.py",
            "--benchmark-autosave",
            "--benchmark-save-data",
            f"--benchmark-storage={store}",
            "--benchmark-min-rounds=15",
            "--benchmark-max-time=0.000001",
            "--benchmark-warmup=off",
        ]
        env = {**os.environ, "SLOW": slow, "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
        proc = subprocess.run(cmd, cwd=folder, env=env, capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    return store


def _newest(store: Path) -> Path:
    return sorted(store.glob("*/*.json"))[-1]


@pytest.fixture(scope="module")
def html_file(storage: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("out") / "report.html"
    assert main(["report", "--html", str(out), "--storage", str(storage), str(_newest(storage))]) == 0
    return out


class _Links(HTMLParser):
    """Every tag attribute that would load something: script src, link href, img src."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        for name, value in attrs:
            if (tag, name) in (("script", "src"), ("link", "href"), ("img", "src"), ("iframe", "src")):
                self.loads.append(f"{tag} {value}")


def test_the_file_is_self_contained(html_file: Path) -> None:
    text = html_file.read_text(encoding="utf-8")
    links = _Links()
    links.feed(text)
    assert links.loads == []  # nothing to fetch: plotly.js is inline
    assert text.count("Plotly.newPlot") >= 4 and len(text) > 3_000_000  # plotly.js inlined once
    for section in SECTIONS:
        assert f"<section id='{section}'>" in text
    for column in ("median_s", "iqr_s", "params", "bytes", "speedup", "runtime", "top1", "fastest"):
        assert f"<th>{column}</th>" in text  # every record column of the results table
    assert "advice for spin-a" in text and "Pareto front" in text


def test_bad_html_path_is_one_line(storage: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["report", "--html", str(tmp_path / "missing" / "r.html"), "--storage", str(storage)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "does not exist" in err


def _browser() -> object:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        if IN_CI:
            pytest.fail("playwright is not installed: .ci/run installs it with the dev extra")
        pytest.skip("playwright is not installed (pip install playwright)")
    if not Path(CHROMIUM).is_file():
        if IN_CI:
            pytest.fail(f"chromium is not at {CHROMIUM}: .ci/run installs it with apt-get")
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return sync_playwright


def test_chromium_draws_every_section_and_chart(html_file: Path, tmp_path: Path) -> None:
    sync_playwright = _browser()
    errors: list[str] = []
    with sync_playwright() as pw:  # type: ignore[operator]
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.route("**/*", lambda route: route.abort() if not route.request.url.startswith("file:") else
                       route.continue_())  # fmt: skip  # offline: any network request fails the page
            page.goto(html_file.as_uri())
            charts = page.locator(".js-plotly-plot")
            page.wait_for_function("document.querySelectorAll('.js-plotly-plot .main-svg').length > 0")
            count = charts.count()
            assert count == 2 + 6  # two models' speed-vs-size charts, six benchmarks' histories
            for i in range(count):
                chart = charts.nth(i)
                chart.scroll_into_view_if_needed()
                assert chart.locator(".main-svg").count() >= 1
                assert chart.locator(".scatterlayer .trace .point").count() >= 3, f"chart {i} drew no points"
            for section in SECTIONS:
                assert page.locator(f"section#{section}").is_visible()
                assert page.locator(f"section#{section} h2").inner_text()
            assert page.locator("section#results tr").count() == 1 + 6
            assert page.locator("section#compare tr").count() == 1 + 6
            # hover a history point: the tooltip names the value, the commit and the state
            history = page.locator("section#history .js-plotly-plot").first
            history.scroll_into_view_if_needed()
            history.locator(".scatterlayer .trace .point").nth(1).hover(force=True)
            page.wait_for_selector(".hoverlayer .hovertext", timeout=5000)
            tip = page.locator(".hoverlayer .hovertext").first.text_content() or ""
            assert "ms" in tip and "commit" in tip and "state" in tip, tip
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
            assert shot.stat().st_size > 10_000
            if os.environ.get("INFERENCE_SCALE_SCREENSHOT"):
                shutil.copy(shot, os.environ["INFERENCE_SCALE_SCREENSHOT"])
        finally:
            browser.close()
    assert errors == [], errors
