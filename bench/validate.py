"""Benchmark: full validation of the knee referral message Bundle, against parsing it with fhir.resources.

    .venv/bin/python bench/validate.py [--rounds N] [--cold-runs N]

Measured in one run, on the same bytes (examples/bundles/knee-gp.message.json):
* full validation: ``escape_fhir.fhir.formats.parse`` of the bytes, then ``Validator.validate`` with the
  project's profiles and UK Core (``../shared/fhir/ukcore``): structure, profiles, bindings, invariants,
  Bundle rules and the QuestionnaireResponse checks. Compiled profiles are kept by the Validator, as in a
  running service; nothing about the instance is kept between rounds;
* the baseline: ``fhir.resources`` R4B ``Bundle.model_validate_json`` of the same bytes.
Both are warmed up, then timed in alternating rounds (so that a noisy neighbour slows both alike); the
medians and their ratio are printed (goal: at most 1.0). Then the wall time of ``escape-fhir validate`` on
the file from a cold start, with and without ``--package`` UK Core, each the median of fresh processes
(goal: under 1 s; the Java reference validators need over 10 s to start).

Ratios, not milliseconds, are what to compare between machines. Exits 2 when UK Core is not present.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
UKCORE = ROOT.parent / "shared" / "fhir" / "ukcore"
BUNDLE = ROOT / "examples" / "bundles" / "knee-gp.message.json"


def alternating_medians(funcs: list[Callable[[], object]], rounds: int, warmup: int = 20) -> list[float]:
    """The median seconds of each function, timed in turn round after round after a warm-up."""
    for _ in range(warmup):
        for func in funcs:
            func()
    samples: list[list[float]] = [[] for _ in funcs]
    for _ in range(rounds):
        for func, found in zip(funcs, samples, strict=True):
            start = time.perf_counter()
            func()
            found.append(time.perf_counter() - start)
    return [statistics.median(found) for found in samples]


def cold_runs(args: list[str], runs: int) -> tuple[float, int]:
    """The median wall time of a fresh process, and its exit code."""
    times, code = [], 0
    for _ in range(runs):
        start = time.perf_counter()
        code = subprocess.run(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        times.append(time.perf_counter() - start)
    return statistics.median(times), code


def command() -> list[str]:
    """``escape-fhir`` beside this Python (the venv's console script), else ``python -m escape_fhir.cli``."""
    script = Path(sys.executable).with_name("escape-fhir")
    found = str(script) if script.exists() else shutil.which("escape-fhir")
    return [found] if found else [sys.executable, "-m", "escape_fhir.cli"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200, help="timed rounds of each (default 200)")
    parser.add_argument("--cold-runs", type=int, default=5, help="fresh processes per cold start (default 5)")
    args = parser.parse_args()
    if not UKCORE.is_dir():
        print(f"UK Core is not present at {UKCORE}: this benchmark validates against it; nothing measured.")
        return 2

    from fhir.resources.R4B.bundle import Bundle

    from escape_fhir.fhir.formats import parse
    from escape_fhir.validation.api import Validator
    from escape_fhir.validation.definitions import default_definitions

    data = BUNDLE.read_bytes()
    validator = Validator(default_definitions([str(UKCORE)]))
    issues = validator.validate(parse(data)).issues
    errors = sum(i.severity in ("error", "fatal") for i in issues)
    validate, baseline = alternating_medians(
        [lambda: validator.validate(parse(data)), lambda: Bundle.model_validate_json(data)], args.rounds
    )
    target = str(BUNDLE.relative_to(ROOT))
    with_package, code_with = cold_runs([*command(), "validate", "--package", str(UKCORE), target], args.cold_runs)
    without, code_without = cold_runs([*command(), "validate", target], args.cold_runs)

    print(f"{target} ({len(data) / 1024:.0f} kB), UK Core from {os.path.relpath(UKCORE, ROOT)}")
    print(f"median of {args.rounds} rounds after warm-up; cold starts: median of {args.cold_runs} fresh processes\n")
    rows = [
        (
            "full validation (parse + validate)",
            f"{validate * 1e3:.2f} ms",
            f"{errors} errors, {len(issues) - errors} warnings",
        ),
        ("fhir.resources R4B Bundle parse", f"{baseline * 1e3:.2f} ms", ""),
        ("ratio validation / R4B parse", f"{validate / baseline:.2f}", "goal <= 1.0"),
        ("cold: escape-fhir validate --package", f"{with_package:.2f} s", f"exit {code_with}; goal < 1 s"),
        ("cold: escape-fhir validate", f"{without:.2f} s", f"exit {code_without}"),
    ]
    for name, value, note in rows:
        print(f"{name:<38} {value:>10}   {note}".rstrip())
    return 0


if __name__ == "__main__":
    sys.exit(main())
