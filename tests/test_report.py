"""Tests of harness.report: the HTML page in real headless Chromium (over the DevTools protocol on a
pipe), the PDF parsed page by page (pypdf) and rendered (poppler's pdftoppm), escaping of user strings."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import matplotlib.image
import pytest
from helpers.synthetic import synthetic_frames
from pypdf import PdfReader

from harness.analysis import Results
from harness.errors import HarnessError
from harness.report import write_report

REPOSITORY = Path(__file__).resolve().parents[1]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PDFTOPPM = shutil.which("pdftoppm")
SCRIPT = '<script>alert("pwned")</script>'
EVIL_ARM = "adam<script>steal()</script>-h64"
DESCRIPTION = f"Optimizers {SCRIPT} & widths, cost $5 and $6"
SUITE_DOCUMENT = {
    "name": "report-test",
    "description": DESCRIPTION,
    "grid": {"optimizer": ["sgd", "momentum", "adam"]},
    "report": {"targets": {"test_accuracy": 0.6}},
}
# The PDF's pages in order, each with a text it must contain. The fixture is small enough for every
# table and text to fit on one page, so the page count is exactly the length of this list.
EXPECTED_PAGES = [
    "36 trials: 34 ok, 1 diverged, 1 failed",
    "Summary per arm",
    "Comparisons vs sgd-h16",
    "Backend deltas",
    "Time to target",
    "Learning curves: loss",
    "Learning curves: accuracy",
    "Final test_accuracy: mean and 95% CI",
    "Paired difference vs sgd-h16",
    "Mean test_accuracy over seeds (torch)",
    "Mean test_accuracy over seeds (keras)",
    "Generalization gap (accuracy_gap)",
    "Backend parity: test_accuracy, torch vs keras",
    "Failed, diverged and timed-out trials",
    "Environment",
    "Suite as written",
    "Resolved spec of the reference arm (sgd-h16)",
    "What each arm changes vs sgd-h16",
]


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Results]:
    frames = synthetic_frames(
        optimizers=("sgd", "momentum", "adam"),
        widths=(16, 64),
        backends=("torch", "keras"),
        seeds=3,
        epochs=8,
        diverged=1,
        failed=1,
    )
    trials = frames.trials.replace({"arm": {"adam-h64": EVIL_ARM}})
    arms = tuple(EVIL_ARM if arm == "adam-h64" else arm for arm in frames.arms)
    results = Results(
        trials,
        frames.metrics,
        arms,
        frames.axes,
        name="report-test",
        description=DESCRIPTION,
        report_options={"targets": {"test_accuracy": 0.6}},
    )
    html_path, pdf_path = write_report(results, tmp_path_factory.mktemp("reports") / "report-test", SUITE_DOCUMENT)
    return html_path, pdf_path, results


# -- HTML -------------------------------------------------------------------------------------


def test_html_is_one_self_contained_file(report) -> None:
    html_path, _, results = report
    html = html_path.read_text(encoding="utf-8")
    assert html_path.name == "report.html" and html_path.parent.name == "report-test"
    assert sorted(path.name for path in html_path.parent.iterdir()) == ["report.html", "report.pdf"]
    sources = re.findall(r'(?:src|href)="([^"#][^"]*)"', html)
    assert sources and all(source.startswith("data:") for source in sources)  # nothing to fetch
    assert not re.search(r"https?://", html)
    assert html.count('<img src="data:image/png;base64,') == 8
    for section in (
        "summary",
        "comparisons",
        "backend_deltas",
        "time_to_target",
        "figures",
        "failures",
        "environment",
        "spec",
    ):
        assert f'id="{section}"' in html
    failures = results.failures()
    assert len(failures) == 2 and "RuntimeError: synthetic failure &lt;before&gt; training &amp; co" in html


def test_user_strings_are_escaped(report) -> None:
    html = report[0].read_text(encoding="utf-8")
    assert "<script" not in html.lower()
    assert "&lt;script&gt;alert(&#34;pwned&#34;)&lt;/script&gt;" in html  # description and suite YAML
    assert "adam&lt;script&gt;steal()&lt;/script&gt;-h64" in html  # an arm name in every table


@pytest.mark.browser
def test_html_in_headless_chromium(report, tmp_path: Path) -> None:
    """Every image decodes (naturalWidth > 0), no console error, no script, no network request."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (CI installs Debian's chromium; apt-get install chromium)")
    html_path, _, results = report
    with DevTools(CHROMIUM, tmp_path / "profile") as browser:
        page = browser.open(html_path.resolve().as_uri())
        images = page.evaluate(
            "Promise.all(Array.from(document.images).map(image => image.decode().then("
            "() => [image.naturalWidth, image.naturalHeight, image.alt], () => [0, 0, image.alt])))",
        )
        facts = page.evaluate(
            "({scripts: document.scripts.length, title: document.querySelector('h1').textContent,"
            " description: document.querySelector('.description').textContent,"
            " rows: document.querySelectorAll('#summary tbody tr').length,"
            " arms: Array.from(document.querySelectorAll('#summary tbody tr td:first-child')).map(cell => cell.textContent)})"
        )
        events = page.drain_events()
    assert len(images) == 8
    assert all(width > 0 and height > 0 for width, height, _ in images), images
    assert facts["scripts"] == 0
    assert facts["title"] == "report-test" and facts["description"] == DESCRIPTION  # shown as text, verbatim
    assert facts["rows"] == len(results.arms) * len(results.backends)
    assert EVIL_ARM in facts["arms"]
    errors = [event for event in events if _is_error(event)]
    assert errors == []
    requested = [
        event["params"]["request"]["url"] for event in events if event["method"] == "Network.requestWillBeSent"
    ]
    assert requested and all(url.startswith(("file:", "data:")) for url in requested), requested


def test_interactive_report_in_headless_chromium(report, tmp_path: Path) -> None:
    """Loads offline with no console error, its plotly figures drawn, and a click on a legend entry hides an arm."""
    if CHROMIUM is None:
        pytest.skip("chromium is not installed (CI installs Debian's chromium; apt-get install chromium)")
    from harness.report.document import report_content
    from harness.report.interactive import write_interactive

    _, _, results = report
    path = write_interactive(results, tmp_path, report_content(results, SUITE_DOCUMENT))
    html = path.read_text(encoding="utf-8")
    assert html.count("<script>") == 1 + html.count("Plotly.newPlot")  # plotly.js inlined once, one call per figure
    assert "cdn.plot.ly" not in html.split("<body>", 1)[1]  # the figures load nothing
    with DevTools(CHROMIUM, tmp_path / "profile") as browser:
        page = browser.open(path.resolve().as_uri())
        facts = page.evaluate(
            "({plots: Array.from(document.querySelectorAll('.js-plotly-plot')).map(plot => plot.id),"
            " traces: document.getElementById('plot-curves').data.length,"
            " answer: document.querySelector('#answer li').textContent})"
        )
        box = page.evaluate(
            "(() => { const item = document.querySelector('#plot-curves .legendtoggle'); item.scrollIntoView({block: 'center'});"
            " const toggle = item.getBoundingClientRect();"
            " return [toggle.x + toggle.width / 2, toggle.y + toggle.height / 2]; })()"
        )
        for kind in ("mousePressed", "mouseReleased"):
            browser.send(
                "Input.dispatchMouseEvent",
                {"type": kind, "x": box[0], "y": box[1], "button": "left", "clickCount": 1},
                session=page.session,
            )
        time.sleep(1.0)  # plotly waits out a possible double click before it toggles
        visible = page.evaluate("document.getElementById('plot-curves').data.map(trace => trace.visible)")
        events = page.drain_events()
    assert facts["plots"] == ["plot-curves", "plot-trials", "plot-parallel"]
    assert facts["traces"] == len(results.arms) * len(results.backends)
    assert " vs " in facts["answer"]
    # the first arm's traces (one per backend: one legend group per arm) are hidden, every other one shown
    assert visible[0] == "legendonly" and visible.count("legendonly") == len(results.backends), visible
    assert [event for event in events if _is_error(event)] == []
    requested = [e["params"]["request"]["url"] for e in events if e["method"] == "Network.requestWillBeSent"]
    assert all(url.startswith(("file:", "data:")) for url in requested), requested


def _is_error(event: dict[str, Any]) -> bool:
    method, params = event["method"], event.get("params", {})
    if method == "Runtime.exceptionThrown" or method == "Network.loadingFailed":
        return True
    if method == "Runtime.consoleAPICalled":
        return params.get("type") in ("error", "assert")
    if method == "Log.entryAdded":
        return params.get("entry", {}).get("level") == "error"
    return False


# -- PDF --------------------------------------------------------------------------------------


# The PDF (WeasyPrint) prints the HTML page: its sections in this order, flowing across pages.
PDF_SECTIONS = [
    "The answer",
    "Summary per arm",
    "Comparisons vs sgd-h16",
    "Backend deltas",
    "Time to target",
    "Figures",
    "Failed, diverged and timed-out trials",
    "Environment",
    "Suite and resolved spec",
    "What each arm changes vs sgd-h16",
]


def test_pdf_reads_like_a_document(report) -> None:
    """The sections in order, fewer pages than one per section (the old layout took 18 here), page numbers,
    table headers repeated where a table breaks across pages."""
    _, pdf_path, _ = report
    reader = PdfReader(pdf_path)
    texts = [page.extract_text() for page in reader.pages]  # raises on a page that does not parse
    whole = "\n".join(texts)
    positions = [whole.find(marker) for marker in PDF_SECTIONS]
    assert -1 not in positions and positions == sorted(positions), dict(zip(PDF_SECTIONS, positions))
    assert len(texts) < len(PDF_SECTIONS)
    assert all(f"page {number} of {len(texts)}" in text for number, text in enumerate(texts, start=1))
    assert reader.metadata.title == "report-test - harness report"
    assert EVIL_ARM in whole and "cost $5 and $6" in texts[0]
    assert "report-test" in texts[1]  # the running header names the suite
    # the spec differences table (more rows than a page holds) repeats its header on its next page
    header = "arm key value sgd-h16 value"
    assert sum(" ".join(text.split()).count(header) for text in texts) >= 2


def _above_footer(pixels):
    return pixels[: int(0.93 * len(pixels))]  # the footer (page number) sits in the bottom 16 mm of 297


def _ink_bottom(pixels) -> float:
    """Where the last non-white row of a page image lies, as a fraction of the page height (0: blank)."""
    dark = (pixels[..., :3] < 0.85).any(axis=2).any(axis=1)
    rows = dark.nonzero()[0]
    return (rows[-1] + 1) / len(dark) if len(rows) else 0.0


def test_pdf_pages_render_and_none_is_mostly_empty(report, tmp_path: Path) -> None:
    if PDFTOPPM is None:
        pytest.skip("pdftoppm is not installed (apt-get install poppler-utils)")
    _, pdf_path, _ = report
    subprocess.run([PDFTOPPM, "-r", "30", "-png", str(pdf_path), str(tmp_path / "page")], check=True, timeout=120)
    pages = sorted(tmp_path.glob("page-*.png"))
    assert len(pages) == len(PdfReader(pdf_path).pages)
    for page in pages[:-1]:
        # text or figures reach past the middle of the page, above its footer (the page number)
        assert _ink_bottom(_above_footer(matplotlib.image.imread(page))) > 0.5 / 0.93, page.name
    assert _ink_bottom(_above_footer(matplotlib.image.imread(pages[-1]))) > 0.05


def test_fallback_pdf_without_weasyprint(report, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where WeasyPrint cannot load, the PDF is still written: one matplotlib page per section."""
    from harness.report import pdf

    monkeypatch.setattr(pdf, "weasyprint_module", lambda: None)
    _, _, results = report
    _, pdf_path = write_report(results, tmp_path, SUITE_DOCUMENT)
    texts = [page.extract_text() for page in PdfReader(pdf_path).pages]
    assert len(texts) == len(EXPECTED_PAGES)
    for number, (text, marker) in enumerate(zip(texts, EXPECTED_PAGES), start=1):
        assert marker in text, f"page {number}: {marker!r} not in {text[:200]!r}"


def test_report_of_only_failed_trials(tmp_path: Path) -> None:
    frames = synthetic_frames(optimizers=("sgd", "adam"), widths=(8,), backends=("torch", "keras"), seeds=2, epochs=2)
    trials = frames.trials.assign(status="failed", error="MemoryError: out of memory")
    results = Results(trials, frames.metrics.iloc[:0], frames.arms, frames.axes, name="all-failed")
    html_path, pdf_path = write_report(results, tmp_path)
    html = html_path.read_text(encoding="utf-8")
    assert "No figure applies to these results." in html
    assert html.count("MemoryError: out of memory") == len(trials)
    whole = "\n".join(page.extract_text() for page in PdfReader(pdf_path).pages)
    sections = ["Summary per arm", "Comparisons vs sgd-h8", "Backend deltas", "Failed, diverged and timed-out trials"]
    sections += ["Environment", "Resolved spec of the reference arm (sgd-h8)", "What each arm changes vs sgd-h8"]
    positions = [whole.find(section) for section in sections]
    assert -1 not in positions and positions == sorted(positions), dict(zip(sections, positions))


# -- errors -----------------------------------------------------------------------------------


def test_unwritable_folder_is_a_harness_error(report, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(HarnessError, match=r"report: cannot create the report folder .*file/sub"):
        write_report(report[2], blocker / "sub")


def test_missing_report_extra_says_how_to_install(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['seaborn'] = None\n"  # makes `import seaborn` raise ImportError
        "from harness.analysis import Results\nfrom tests.helpers.synthetic import synthetic_frames\n"
        "from harness.report import write_report\nfrom harness.errors import HarnessError\n"
        "f = synthetic_frames(optimizers=('sgd',), widths=(8,), backends=('torch',), seeds=2, epochs=2)\n"
        "try:\n    write_report(Results(f.trials, f.metrics, f.arms, f.axes, name='x'), sys.argv[1])\n"
        "except HarnessError as error:\n    print(error)\n"
    )
    output = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path)],
        cwd=REPOSITORY,
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    assert "'seaborn' is not installed" in output.stdout and "pip install 'harness[report]'" in output.stdout


# -- a minimal Chrome DevTools Protocol client over --remote-debugging-pipe ---------------------


class DevTools:
    """Headless Chromium driven over its DevTools pipe (fd 3: commands in, fd 4: replies out,
    NUL-separated JSON). No websocket library, no browser download: Debian's chromium only."""

    TIMEOUT = 60.0

    def __init__(self, executable: str, profile: Path) -> None:
        self.executable, self.profile = executable, profile
        self.messages: queue.Queue[dict[str, Any]] = queue.Queue()
        self.events: list[dict[str, Any]] = []
        self.next_id = 0

    def __enter__(self) -> DevTools:
        commands_read, self.commands = os.pipe()
        self.replies, replies_write = os.pipe()

        def connect_pipes() -> None:  # in the child, before exec: fds 3 and 4 are the DevTools pipe
            os.dup2(commands_read, 3)
            os.dup2(replies_write, 4)

        arguments = [
            self.executable,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-quic",
            "--no-first-run",
            "--disable-component-update",
            "--disable-sync",
            f"--user-data-dir={self.profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        self.process = subprocess.Popen(
            arguments, preexec_fn=connect_pipes, pass_fds=(3, 4), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        os.close(commands_read)
        os.close(replies_write)
        threading.Thread(target=self._read, daemon=True).start()
        return self

    def _read(self) -> None:
        buffer = b""
        with os.fdopen(self.replies, "rb", buffering=0) as stream:
            while chunk := stream.read(65536):
                buffer += chunk
                *complete, buffer = buffer.split(b"\0")
                for message in complete:
                    self.messages.put(json.loads(message))

    def send(self, method: str, params: dict[str, Any] | None = None, session: str | None = None) -> dict[str, Any]:
        """Send a command and wait for its reply; events seen meanwhile are kept in `events`."""
        self.next_id += 1
        message: dict[str, Any] = {"id": self.next_id, "method": method, "params": params or {}}
        if session:
            message["sessionId"] = session
        os.write(self.commands, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + self.TIMEOUT
        while True:
            reply = self.messages.get(timeout=max(0.1, deadline - time.monotonic()))
            if reply.get("id") == self.next_id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]
            self.events.append(reply)

    def wait_for(self, method: str) -> dict[str, Any]:
        deadline = time.monotonic() + self.TIMEOUT
        for event in self.events:
            if event.get("method") == method:
                return event
        while True:
            event = self.messages.get(timeout=max(0.1, deadline - time.monotonic()))
            self.events.append(event)
            if event.get("method") == method:
                return event

    def open(self, url: str) -> Page:
        target = self.send("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.send("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime", "Log", "Page", "Network"):
            self.send(f"{domain}.enable", session=session)
        self.events.clear()
        self.send("Page.navigate", {"url": url}, session=session)
        self.wait_for("Page.loadEventFired")
        return Page(self, session)

    def __exit__(self, *exception: object) -> None:
        try:
            self.send("Browser.close")
        except (RuntimeError, queue.Empty, OSError):
            pass
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        os.close(self.commands)


class Page:
    """One attached tab."""

    def __init__(self, browser: DevTools, session: str) -> None:
        self.browser, self.session = browser, session

    def evaluate(self, expression: str) -> Any:
        result = self.browser.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
            session=self.session,
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"]["value"]

    def drain_events(self) -> list[dict[str, Any]]:
        """Every event received so far (for this page's session)."""
        while True:
            try:
                self.browser.events.append(self.browser.messages.get_nowait())
            except queue.Empty:
                break
        return [event for event in self.browser.events if event.get("sessionId") == self.session]
