"""Fixtures for tests that drive JupyterLab in headless Chromium.

Fixtures:
    jupyter_lab (session): a :class:`JupyterLab` server on 127.0.0.1, a free
        port, a fixed token and a temporary root directory, with its own
        config, runtime, settings and workspace directories so nothing of the
        developer's setup leaks in. ``jupyter_lab.write_notebook(name,
        [source, ...])`` writes a notebook (one code cell per source) into the
        root; ``jupyter_lab.copy_notebook(path)`` copies one, e.g. from
        ``notebooks/``. Stopped (kernels too) at the end of the session.
    chromium (module; see the fixture for why): a Playwright ``Browser`` running Debian's
        ``/usr/bin/chromium`` (never a downloaded one). A missing browser is a
        failure that says how to install it, not a skip.
    chromium_launch_options: ``(*extra_args) -> dict`` of ``launch()`` options, for a
        test that launches a browser of its own (extra flags, say).
    serve_page: ``with serve_page(html) as port:`` serves ``html`` as
        ``http://127.0.0.1:<port>/page.html`` (from the test's ``tmp_path``), for a
        test whose page must come from an http origin (a browser's WebSocket).
    screenshot_dir: ``test-output/browser/<test name>/``, created empty.
    lab (function): a :class:`LabPage` on a fresh browser context:
        ``lab.open(name)`` opens a notebook and waits for an idle kernel,
        ``lab.run_all()`` runs every cell and waits until the kernel is idle
        again, ``lab.screenshot(label)`` saves ``<label>.png`` in
        ``screenshot_dir``; ``lab.page`` is the Playwright ``Page`` for
        anything else. A screenshot named ``failure.png`` is taken when the
        test fails, and the browser console is kept in ``lab.console``.

Running cells: JupyterLab 4 does not expose its application object to page
scripts (``window.jupyterapp`` is undefined), and key bindings depend on
focus, so ``run_all`` clicks the menu bar like a person: the ``menuitem``
"Run", then the ``menuitem`` "Run All Cells" (ARIA roles and exact names,
which Lumino menus carry), then waits until every code cell's prompt shows an
execution count and the kernel indicator says idle.

Example::

    @pytest.mark.browser
    def test_something(jupyter_lab, lab):
        jupyter_lab.write_notebook("t.ipynb", ["import memgpt_lab", "1 + 1"])
        lab.open("t.ipynb")
        lab.run_all()
        expect(lab.page.locator(".jp-OutputArea-output").last).to_contain_text("2")

Run with ``.venv/bin/python -m pytest tests/browser`` (``-m browser`` selects
them anywhere). A JupyterLab start takes a few seconds; a test about ten.
"""

from __future__ import annotations

import contextlib
import functools
import http.server
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TOKEN = "memgpt-lab-browser-tests"
START_TIMEOUT = 60.0
#: How long a UI step (notebook open, cells run, widget render) may take.
UI_TIMEOUT_MS = 60_000

# Settings that stop JupyterLab from asking about news and updates, which would
# put a notification over the notebook and try the network.
_LAB_SETTINGS = {
    "@jupyterlab/apputils-extension/notification.jupyterlab-settings": {
        "fetchNews": "false",
        "checkForUpdates": False,
    },
}


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class JupyterLab:
    """A running JupyterLab server (see the module docstring)."""

    url: str
    token: str
    root_dir: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    start_seconds: float = 0.0

    def notebook_url(self, name: str) -> str:
        """The URL that opens notebook ``name`` (relative to the root) in a fresh workspace."""
        # ?reset starts from an empty layout, so a previous test's tabs do not reopen.
        return f"{self.url}lab/tree/{name}?reset&token={self.token}"

    def write_notebook(self, name: str, sources: list[str]) -> Path:
        """Write a notebook of one code cell per source into the root; return its path."""
        notebook = {
            "cells": [
                {
                    "cell_type": "code",
                    "execution_count": None,
                    "id": f"cell-{i}",
                    "metadata": {},
                    "outputs": [],
                    "source": source,
                }
                for i, source in enumerate(sources)
            ],
            "metadata": {
                "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
                "language_info": {"name": "python"},
            },
            "nbformat": 4,
            "nbformat_minor": 5,
        }
        path = self.root_dir / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(notebook, indent=1), encoding="utf-8")
        return path

    def copy_notebook(self, source: Path, name: str | None = None) -> Path:
        """Copy a notebook (e.g. from ``notebooks/``) into the root; return the copy's path."""
        target = self.root_dir / (name or source.name)
        shutil.copyfile(source, target)
        return target

    def log(self) -> str:
        """The server's output so far, for failure messages."""
        return self.log_path.read_text(encoding="utf-8", errors="replace")


def _status_ok(url: str, token: str) -> bool:
    request = urllib.request.Request(
        f"{url}api/status", headers={"Authorization": f"token {token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


@pytest.fixture(scope="session")
def jupyter_lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JupyterLab]:
    """A JupyterLab server for the session (see the module docstring)."""
    base = tmp_path_factory.mktemp("jupyterlab")
    root = base / "root"
    settings = base / "settings"
    for directory in (root, settings, base / "config", base / "runtime", base / "workspaces"):
        directory.mkdir()
    for name, values in _LAB_SETTINGS.items():
        target = settings / name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(values), encoding="utf-8")
    port = _free_port()
    env = {
        **os.environ,
        "JUPYTER_CONFIG_DIR": str(base / "config"),
        "JUPYTER_RUNTIME_DIR": str(base / "runtime"),
        "JUPYTERLAB_SETTINGS_DIR": str(settings),
        "JUPYTERLAB_WORKSPACES_DIR": str(base / "workspaces"),
        "JUPYTER_PLATFORM_DIRS": "1",
        "PYTHONUNBUFFERED": "1",
    }
    command = [
        sys.executable,
        "-m",
        "jupyter",
        "lab",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={TOKEN}",
        f"--ServerApp.root_dir={root}",
        "--ServerApp.disable_check_xsrf=True",
        "--LabApp.news_url=",
        "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate",
        # No extension manager: it would ask PyPI, and there is no network.
        "--LabApp.extension_manager=readonly",
    ]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        command.append("--allow-root")  # containers and CI often run as root
    log_path = base / "jupyterlab.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    lab = JupyterLab(f"http://127.0.0.1:{port}/", TOKEN, root, process, log_path)
    try:
        deadline = started + START_TIMEOUT
        while not _status_ok(lab.url, TOKEN):
            if time.monotonic() > deadline:
                pytest.fail(f"JupyterLab did not answer within {START_TIMEOUT:.0f} s:\n{lab.log()}")
            try:
                # Waiting on the process doubles as the poll interval and notices a crash.
                code = process.wait(timeout=0.2)
            except subprocess.TimeoutExpired:
                continue
            pytest.fail(f"JupyterLab exited with code {code} before answering:\n{lab.log()}")
        lab.start_seconds = time.monotonic() - started
        yield lab
    finally:
        process.terminate()  # SIGTERM: the server shuts its kernels down and exits
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def chromium_launch_options(*extra_args: str) -> dict[str, Any]:
    """Playwright ``launch()`` options for Debian's Chromium; fails the test if it is missing."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        pytest.fail(
            f"{CHROMIUM} is missing: the browser tests need Debian's chromium package."
            " Run `make system-deps` (apt-get install chromium); do not `playwright install`."
        )
    return {
        "executable_path": str(CHROMIUM),
        "args": [*CHROMIUM_ARGS, *extra_args],
        "headless": True,
    }


@pytest.fixture(name="chromium_launch_options")
def _chromium_launch_options_fixture() -> Any:
    """:func:`chromium_launch_options`, for tests that launch a browser of their own."""
    return chromium_launch_options


@contextlib.contextmanager
def serve_page(html: str, directory: Path) -> Iterator[int]:
    """Serve ``html`` as ``/page.html`` from ``directory`` on a loopback port; yields the port."""
    (directory / "page.html").write_text(html, encoding="utf-8")

    class QuietHandler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    handler = functools.partial(QuietHandler, directory=str(directory))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as httpd:
        thread = threading.Thread(target=httpd.serve_forever, daemon=True)
        thread.start()
        try:
            yield httpd.server_address[1]
        finally:
            httpd.shutdown()
            thread.join()


@pytest.fixture(name="serve_page")
def _serve_page_fixture(tmp_path: Path) -> Callable[[str], contextlib.AbstractContextManager[int]]:
    """:func:`serve_page` from the test's ``tmp_path``."""
    return functools.partial(serve_page, directory=tmp_path)


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    """A headless Chromium from Debian's package, driven by Playwright.

    Module-scoped on purpose: Playwright's sync API keeps an event loop running
    on the main thread while it is open, and every later ``asyncio.run`` in the
    session would fail ("cannot be called from a running event loop").
    """
    options = chromium_launch_options()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(**options)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def screenshot_dir(request: pytest.FixtureRequest) -> Path:
    """``test-output/browser/<test name>/``, emptied for this run."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in request.node.name)
    directory = request.config.rootpath / "test-output" / "browser" / safe
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    return directory


@dataclass
class LabPage:
    """One browser tab on JupyterLab (see the module docstring)."""

    page: Any
    server: JupyterLab
    screenshot_dir: Path
    console: list[str] = field(default_factory=list)

    def open(self, name: str) -> None:
        """Open notebook ``name`` and wait until its kernel is idle."""
        self.page.goto(self.server.notebook_url(name))
        self.page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=UI_TIMEOUT_MS)
        self.wait_idle()

    def wait_idle(self) -> None:
        """Wait until the notebook has a kernel and the kernel reports idle.

        Before the kernel connects the execution indicator already says
        ``idle`` next to "No Kernel"; running cells then would open the
        "Select Kernel" dialog, so the kernel's name must be shown as well.
        """
        self.page.wait_for_function(
            """() => {
                const name = document.querySelector('.jp-NotebookPanel .jp-Toolbar-kernelName');
                const state = document.querySelector(
                    '.jp-NotebookPanel .jp-Notebook-ExecutionIndicator');
                return name !== null && state !== null && name.textContent.trim() !== ''
                    && !/No Kernel/.test(name.textContent) && state.dataset.status === 'idle';
            }""",
            timeout=UI_TIMEOUT_MS,
        )

    def run_all(self) -> None:
        """Run every cell (Run → Run All Cells) and wait until all have run."""
        self.click_menu("Run", "Run All Cells")
        # A cell shows "[*]" while queued or running; all numbered means done.
        self.page.wait_for_function(
            """() => {
                const prompts = [...document.querySelectorAll(
                    '.jp-Notebook .jp-CodeCell .jp-InputPrompt')];
                return prompts.length > 0 &&
                    prompts.every(p => /\\[\\d+\\]/.test(p.textContent));
            }""",
            timeout=UI_TIMEOUT_MS,
        )
        self.wait_idle()

    def click_menu(self, menu: str, label: str) -> None:
        """Click the item ``label`` of the top menu ``menu`` (exact, accessible names)."""
        self.page.get_by_role("menuitem", name=menu, exact=True).first.click()
        item = self.page.get_by_role("menuitem", name=label, exact=True).first
        item.wait_for(state="visible", timeout=UI_TIMEOUT_MS)
        item.click()

    def screenshot(self, label: str) -> Path:
        """Save a full-page screenshot as ``<label>.png``; return its path."""
        path = self.screenshot_dir / f"{label}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


_REPORT_KEY = pytest.StashKey[pytest.TestReport]()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    """Keep the call phase's report, so ``lab`` can screenshot a failed test."""
    report = yield
    if report.when == "call":
        item.stash[_REPORT_KEY] = report
    return report


@pytest.fixture
def lab(
    request: pytest.FixtureRequest, jupyter_lab: JupyterLab, chromium: Any, screenshot_dir: Path
) -> Iterator[LabPage]:
    """A fresh browser tab on the session's JupyterLab (see the module docstring)."""
    context = chromium.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(UI_TIMEOUT_MS)
    tab = LabPage(page, jupyter_lab, screenshot_dir)
    page.on("console", lambda message: tab.console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: tab.console.append(f"pageerror: {error}"))
    try:
        yield tab
    finally:
        report = request.node.stash.get(_REPORT_KEY, None)
        if report is not None and report.failed:
            tab.screenshot("failure")
            (screenshot_dir / "console.txt").write_text("\n".join(tab.console), encoding="utf-8")
        context.close()
