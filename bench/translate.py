"""Benchmark: translating a referral to a FHIR message Bundle, and reading one back.

    .venv/bin/python bench/translate.py [--rounds N]

For each example referral it measures, in the same run and on the same bytes:
* translate: referral (already loaded) -> message Bundle dict -> FHIR JSON bytes;
* parse-back: FHIR JSON bytes -> dict -> referral (the reader, including the referral model checks);
* the baseline: ``orjson.loads`` of those same Bundle bytes.
It prints the median time of each and the ratio of each to the baseline; then, for every Bundle of the
sender corpus (tests/fhir/senders), the ratio of reading it (parse and read) to ``orjson.loads`` of the same
content, worst first (issue 8: within 10x, the worst as well as the median). Ratios, not seconds, are what
to compare between machines: the machines are shared and noisy.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from escape_fhir.domain import load_referral
from escape_fhir.fhir.bundles import translate
from escape_fhir.fhir.formats import dump, parse
from escape_fhir.fhir.readers import read_referral

ROOT = Path(__file__).resolve().parents[1]


def median_seconds(func: Callable[[], object], rounds: int) -> float:
    func()  # warm caches (models, compiled validators) outside the measurement
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    stamp = "2026-11-26T10:00:00Z"
    print(
        f"{'example':<22} {'bytes':>7} {'orjson.loads':>13} {'translate':>11} {'ratio':>7} {'parse-back':>11} {'ratio':>7}"
    )
    ratios_t, ratios_p = [], []
    for path in sorted((ROOT / "examples/referrals").glob("*.json")):
        referral = load_referral(path.read_bytes())
        data = dump(translate(referral, timestamp=stamp), "json")
        base = median_seconds(lambda data=data: orjson.loads(data), args.rounds)
        t = median_seconds(lambda r=referral: dump(translate(r, timestamp=stamp), "json"), args.rounds)
        p = median_seconds(lambda data=data: read_referral(parse(data, "json")), args.rounds)
        ratios_t.append(t / base)
        ratios_p.append(p / base)
        print(
            f"{path.stem:<22} {len(data):>7} {base * 1e6:>11.1f}us {t * 1e6:>9.0f}us {t / base:>7.1f}"
            f" {p * 1e6:>9.0f}us {p / base:>7.1f}"
        )
    summary = f"translate {statistics.median(ratios_t):.1f}x, parse-back {statistics.median(ratios_p):.1f}x"
    print(f"median ratio to orjson.loads: {summary}")
    senders(args.rounds)


def senders(rounds: int) -> None:
    """Reading every Bundle of the sender corpus (tests/fhir/senders, issue 8): parse + read against
    ``orjson.loads`` of the same bytes (for an XML Bundle, of its JSON form: orjson reads no XML), worst first."""
    folder = ROOT / "tests" / "fhir" / "senders"
    rows = []
    for path in sorted(folder.glob("*")):
        if path.suffix not in (".json", ".xml") or path.name.endswith(".expect.json"):
            continue
        if orjson.loads((path.parent / f"{path.stem}.expect.json").read_bytes()).get("refused"):
            continue
        data = path.read_bytes()
        fmt = path.suffix[1:]
        as_json = data if fmt == "json" else dump(parse(data, "xml"), "json")
        base = median_seconds(lambda b=as_json: orjson.loads(b), rounds)
        read = median_seconds(lambda d=data, f=fmt: read_referral(parse(d, f)), rounds)
        rows.append((read / base, path.name, len(data)))
    rows.sort(reverse=True)
    print(f"\n{'sender Bundle':<48} {'bytes':>7} {'parse+read / orjson.loads':>26}")
    for ratio, name, size in rows:
        print(f"{name:<48} {size:>7} {ratio:>25.1f}x")
    ratios = [r for r, _, _ in rows]
    print(f"sender corpus ({len(rows)} Bundles): worst {max(ratios):.1f}x, median {statistics.median(ratios):.1f}x")


if __name__ == "__main__":
    main()
