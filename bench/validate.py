"""Benchmark: full validation of a corpus of varied Bundles, against parsing each with fhir.resources.

    .venv/bin/python bench/validate.py [--rounds N] [--cold-runs N] [--only SUBSTRING]

The corpus, each file measured on its own bytes:
* ours: ``examples/bundles`` (message Bundles in JSON and XML);
* the sender corpus: ``tests/fhir/senders`` (Bundles shaped as NHS systems send them, JSON and XML);
* when ``../shared/fhir`` is present: the UK Core examples (``ukcore/examples``) and the BaRS examples
  (``bars/Examples``), which carry narrative, contained resources and many resource types.

For each file, in one run: full validation (``escape_fhir.fhir.formats.parse`` of the bytes, then
``Validator.validate`` with the project's profiles and, when present, UK Core and BaRS loaded as packages:
structure, profiles, bindings, invariants, Bundle and QuestionnaireResponse rules; compiled profiles kept by
the Validator as in a running service) and the baseline, the ``fhir.resources`` R4B parse of the same bytes
(``model_validate_json``, or ``model_validate_xml`` for XML), warmed up and then timed in alternating rounds
so that a noisy neighbour slows both alike, each round in CPU time of this thread (``time.thread_time``:
on a shared machine, time spent waiting for a core is not the code's). Printed per file: the ratio of the
medians and how many
invariants went to the FHIRPath engine (the rest are checked natively, ``validation/native.py``); then the
median and the worst ratio (goals: median <= 0.5, worst <= 1.0). Files the R4B models refuse have no ratio.

Then ``escape-fhir validate FILE`` from a cold start beside ``python -c pass`` (the interpreter's own
start): the median wall time of fresh processes (goal: under 0.5 s) and their CPU time (user + system),
which a busy machine does not inflate. Bytecode is cached as after any install (one untimed run first;
``PYTHONDONTWRITEBYTECODE`` is not passed on).

Ratios, not milliseconds, are what to compare between machines.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "fhir"
COLD_FILE = ROOT / "examples" / "bundles" / "knee-gp.message.json"
MEDIAN_GOAL, WORST_GOAL, COLD_GOAL = 0.5, 1.0, 0.5


def corpus(only: str | None) -> list[Path]:
    """Every file of the corpus that is present (the shared folders may not be)."""
    groups = [
        sorted((ROOT / "examples" / "bundles").glob("*")),
        sorted(p for p in (ROOT / "tests" / "fhir" / "senders").glob("*") if not p.name.endswith(".expect.json")),
        sorted((SHARED / "ukcore" / "examples").glob("*")),
        sorted((SHARED / "bars" / "Examples").glob("*")),
    ]
    files = [p for group in groups for p in group if p.suffix in (".json", ".xml")]
    return [p for p in files if only is None or only in str(p)]


def alternating_medians(funcs: list[Callable[[], object]], rounds: int, warmup: int = 3) -> list[float]:
    """The median seconds of each function, timed in turn round after round after a warm-up."""
    for _ in range(warmup):
        for func in funcs:
            func()
    samples: list[list[float]] = [[] for _ in funcs]
    for _ in range(rounds):
        for func, found in zip(funcs, samples, strict=True):
            start = time.thread_time()
            func()
            found.append(time.thread_time() - start)
    return [statistics.median(found) for found in samples]


def cold_runs(args: list[str], runs: int) -> tuple[float, float, int]:
    """The median wall time and CPU time (user + system) of a fresh process, and its exit code."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # bytecode
    walls, cpus, code = [], [], 0
    for _ in range(runs):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        code = subprocess.run(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return statistics.median(walls), statistics.median(cpus), code


def command() -> list[str]:
    """``escape-fhir`` beside this Python (the venv's console script), else ``python -m escape_fhir.cli``."""
    script = Path(sys.executable).with_name("escape-fhir")
    found = str(script) if script.exists() else shutil.which("escape-fhir")
    return [found] if found else [sys.executable, "-m", "escape_fhir.cli"]


def r4b_parse(data: bytes, xml: bool) -> Callable[[], object] | None:
    """The fhir.resources R4B parse of these bytes as a function; None when the R4B models refuse them."""
    from fhir.resources.R4B import get_fhir_model_class

    from escape_fhir.fhir.formats import parse

    model = get_fhir_model_class(str(parse(data).get("resourceType")))
    func: Callable[[], object] = (
        (lambda: model.model_validate_xml(data)) if xml else (lambda: model.model_validate_json(data))
    )
    try:
        func()
    except Exception:  # pydantic's ValidationError, or an XML the R4B models cannot read
        return None
    return func


def measure(path: Path, validator: Any, rounds: int) -> tuple[float | None, float, Counter[str], int] | None:
    """(ratio or None, validation seconds, engine evaluations by invariant, error issues) of one file; None if
    unreadable. Engine evaluations are counted on the first validation (the timed ones evaluate the same)."""
    from escape_fhir.errors import FhirFormatError
    from escape_fhir.fhir.formats import parse
    from escape_fhir.validation import invariants

    data = path.read_bytes()
    try:
        parse(data)
    except FhirFormatError:
        return None
    before = Counter(invariants.engine_calls)
    issues = validator.validate(parse(data)).issues
    engine = invariants.engine_calls - before
    errors = sum(i.severity in ("error", "fatal") for i in issues)
    baseline = r4b_parse(data, path.suffix == ".xml")
    funcs: list[Callable[[], object]] = [lambda: validator.validate(parse(data))]
    if baseline is None:
        return None, alternating_medians(funcs, rounds)[0], engine, errors
    validate, parse_time = alternating_medians([*funcs, baseline], rounds)
    return validate / parse_time, validate, engine, errors


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=15, help="timed rounds per file (default 15)")
    parser.add_argument("--cold-runs", type=int, default=7, help="fresh processes per cold start (default 7)")
    parser.add_argument("--only", help="measure only the files whose path contains this")
    args = parser.parse_args()

    from escape_fhir.validation.api import Validator
    from escape_fhir.validation.definitions import default_definitions

    packages = [str(p) for p in (SHARED / "ukcore", SHARED / "bars") if p.is_dir()]
    validator = Validator(default_definitions(packages))
    files = corpus(args.only)
    print(f"{len(files)} files; packages: {', '.join(packages) or 'none (../shared absent)'}")
    print(f"median of {args.rounds} alternating rounds per file after warm-up\n")
    print(f"{'ratio':>6} {'validate':>9} {'engine':>6} {'errors':>6}  file")
    ratios: list[tuple[float, Path]] = []
    engine_total: Counter[str] = Counter()
    for path in files:
        found = measure(path, validator, args.rounds)
        if found is None:
            print(f"{'unreadable (exit 2 of validate), not measured':>38}  {path.relative_to(ROOT.parent)}")
            continue
        ratio, seconds, engine, errors = found
        engine_total += engine
        shown = f"{ratio:6.2f}" if ratio is not None else "   n/a"
        print(f"{shown} {seconds * 1e3:7.2f}ms {engine.total():6d} {errors:6d}  {path.relative_to(ROOT.parent)}")
        if ratio is not None:
            ratios.append((ratio, path))

    by_key = ", ".join(f"{key} {n}" for key, n in engine_total.most_common()) or "none"
    print(f"\nFHIRPath engine evaluations, one validation of each file: {engine_total.total()} ({by_key})")
    if ratios:
        median = statistics.median(r for r, _ in ratios)
        worst, worst_path = max(ratios)
        print(f"{len(ratios)} files with a ratio ({len(files) - len(ratios)} refused by the R4B models)")
        print(f"median ratio validation / R4B parse {median:.2f}   goal <= {MEDIAN_GOAL}")
        print(f"worst ratio validation / R4B parse  {worst:.2f}   goal <= {WORST_GOAL} ({worst_path.name})")

    baseline, baseline_cpu, _ = cold_runs([sys.executable, "-c", "pass"], args.cold_runs)
    target = str(COLD_FILE.relative_to(ROOT))
    cold, cold_cpu, code = cold_runs([*command(), "validate", target], args.cold_runs)
    print(f"\ncold starts, median of {args.cold_runs} fresh processes: wall (CPU)")
    print(f"python -c pass                            {baseline:.3f} s ({baseline_cpu:.3f} s)")
    print(
        f"escape-fhir validate {COLD_FILE.name:<20} {cold:.3f} s ({cold_cpu:.3f} s)   exit {code}; goal < {COLD_GOAL} s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
