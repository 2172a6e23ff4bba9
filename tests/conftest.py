"""Test-wide fixtures, and a check that the run leaves no process of its own behind."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

#: How long the session waits, at its end, for children that are still stopping before calling them leaked.
_GRACE_SECONDS = 5


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Commands such as ``serve`` and ``outbox run`` configure the ``escape_fhir`` logger for the process;
    in the test process, put it back after each test so one test's logging set-up does not leak into the
    stderr another test reads."""
    logger = logging.getLogger("escape_fhir")
    saved = (list(logger.handlers), logger.level, logger.propagate)
    yield
    logger.handlers[:], logger.level, logger.propagate = saved[0], saved[1], saved[2]


def children(parent: int) -> list[tuple[int, str]]:
    """The live processes whose parent is ``parent`` (pid and command line), read from /proc; zombies (ended,
    not yet reaped) are not running and are left out."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            command = (entry / "cmdline").read_bytes()
        except OSError:  # it ended while we looked
            continue
        # /proc/PID/stat: "pid (comm) state ppid ...", and comm may hold spaces and parentheses.
        state, ppid = stat.rpartition(")")[2].split()[:2]
        if int(ppid) == parent and state != "Z":
            found.append((int(entry.name), command.replace(b"\0", b" ").decode(errors="replace").strip()))
    return found


def stale_compiled_modules(package: Path) -> list[str]:
    """Compiled modules (mypyc, Cython; setup.py) older than their source: they would shadow the edited
    ``.py`` (or ignore the edited ``.pyx``) and test code that is no longer the source."""
    stale = []
    for binary in package.rglob("*.so"):
        stem = binary.name.split(".", 1)[0]
        for source in (binary.with_name(stem + ".py"), binary.with_name(stem + ".pyx")):
            if source.exists() and source.stat().st_mtime > binary.stat().st_mtime:
                stale.append(str(source.relative_to(package.parent)))
    return stale


def pytest_sessionstart(session: pytest.Session) -> None:
    import escape_fhir

    stale = stale_compiled_modules(Path(escape_fhir.__file__).parent)
    if stale:
        pytest.exit(f"changed since they were compiled: {', '.join(stale)}; run ./dev setup to rebuild", returncode=2)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a test left a process it started running (a server, an ``outbox run``): it would
    outlive the run, hold ports and files, and write to databases of later runs. Each one found is named,
    then ended (they are this process's children)."""
    if not Path("/proc/self/stat").exists():
        return
    deadline = time.monotonic() + _GRACE_SECONDS
    left = children(os.getpid())
    while left and time.monotonic() < deadline:
        time.sleep(0.1)
        left = children(os.getpid())
    if not left:
        return
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.ensure_newline()
    for pid, command in left:
        line = f"LEFT RUNNING by a test: pid {pid}: {command[:200]}"
        if reporter is not None:
            reporter.write_line(line, red=True)
        else:
            print(line)
        os.kill(pid, signal.SIGTERM)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
