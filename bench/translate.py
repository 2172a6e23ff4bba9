"""Benchmark: translating a referral to a FHIR message Bundle, reading Bundles back, and the XML codec.

    .venv/bin/python bench/translate.py [--rounds N]

Every time is the best of N runs of the same call on the same bytes, measured in the same run as its
baseline (``min``, as ``timeit`` advises: on a shared machine it is the run least disturbed by other
processes; the median moves with the load). Ratios, not seconds, are what to compare between machines.

1. Our example referrals: translate (referral -> message Bundle -> JSON bytes) and parse-back (JSON bytes ->
   referral, the reader with the referral model checks), each against ``orjson.loads`` of the Bundle bytes.
2. Reading every Bundle of the sender corpus (tests/fhir/senders) and our example Bundles (issue 8: within
   10x ``orjson.loads`` of the same content, the worst as well as the median): parse + ``read_referral``
   against ``orjson.loads`` of the Bundle as JSON (orjson reads no XML); each Bundle is read from JSON and,
   for those written in XML (and our examples, which exist in both), from XML as well.
3. The XML codec on the same Bundles (issue 11: XML read within 5x of JSON read, XML write within 5x of JSON
   write): ``xml_to_json`` against ``jsonio.loads`` of the same resource, ``json_to_xml`` against
   ``jsonio.dumps``.
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


def best_seconds(func: Callable[[], object], rounds: int) -> float:
    func()  # warm caches (models, compiled validators, XML tables) outside the measurement
    samples = []
    for _ in range(rounds):
        start = time.perf_counter()
        func()
        samples.append(time.perf_counter() - start)
    return min(samples)


def summary(ratios: list[float]) -> str:
    return f"worst {max(ratios):.1f}x, median {statistics.median(ratios):.1f}x"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200)
    args = parser.parse_args()
    examples(args.rounds)
    bundles = _bundles()
    reading(bundles, args.rounds)
    codec(bundles, args.rounds)


def examples(rounds: int) -> None:
    stamp = "2026-11-26T10:00:00Z"
    print(
        f"{'example':<22} {'bytes':>7} {'orjson.loads':>13} {'translate':>11} {'ratio':>7} {'parse-back':>11} {'ratio':>7}"
    )
    ratios_t, ratios_p = [], []
    for path in sorted((ROOT / "examples/referrals").glob("*.json")):
        referral = load_referral(path.read_bytes())
        data = dump(translate(referral, timestamp=stamp), "json")
        base = best_seconds(lambda data=data: orjson.loads(data), rounds)
        t = best_seconds(lambda r=referral: dump(translate(r, timestamp=stamp), "json"), rounds)
        p = best_seconds(lambda data=data: read_referral(parse(data, "json")), rounds)
        ratios_t.append(t / base)
        ratios_p.append(p / base)
        print(
            f"{path.stem:<22} {len(data):>7} {base * 1e6:>11.1f}us {t * 1e6:>9.0f}us {t / base:>7.1f}"
            f" {p * 1e6:>9.0f}us {p / base:>7.1f}"
        )
    print(f"ratio to orjson.loads: translate {summary(ratios_t)}; parse-back {summary(ratios_p)}")


def _bundles() -> list[tuple[str, bytes, bytes | None]]:
    """(name, JSON bytes, XML bytes or None) of every accepted sender Bundle and of our example Bundles."""
    out: list[tuple[str, bytes, bytes | None]] = []
    folder = ROOT / "tests" / "fhir" / "senders"
    for path in sorted(folder.glob("*")):
        if path.suffix not in (".json", ".xml") or path.name.endswith(".expect.json"):
            continue
        if orjson.loads((path.parent / f"{path.stem}.expect.json").read_bytes()).get("refused"):
            continue
        data = path.read_bytes()
        if path.suffix == ".xml":
            out.append((path.name, dump(parse(data, "xml"), "json"), data))
        else:
            out.append((path.name, data, None))
    for path in sorted((ROOT / "examples" / "bundles").glob("*.json")):
        out.append((path.name, path.read_bytes(), path.with_suffix(".xml").read_bytes()))
    return out


def reading(bundles: list[tuple[str, bytes, bytes | None]], rounds: int) -> None:
    """Issue 8: parse + read_referral of each Bundle against orjson.loads of its JSON form, worst first."""
    rows = []
    for name, as_json, as_xml in bundles:
        base = best_seconds(lambda b=as_json: orjson.loads(b), rounds)
        from_json = best_seconds(lambda b=as_json: read_referral(parse(b, "json")), rounds)
        from_xml = best_seconds(lambda b=as_xml: read_referral(parse(b, "xml")), rounds) if as_xml else None
        rows.append((from_json / base, name, len(as_json), None if from_xml is None else from_xml / base))
    rows.sort(key=lambda row: row[0], reverse=True)
    print(f"\n{'Bundle (read: parse + read_referral)':<48} {'bytes':>7} {'JSON / orjson':>14} {'XML / orjson':>13}")
    for ratio, name, size, xml_ratio in rows:
        shown = f"{xml_ratio:>12.1f}x" if xml_ratio is not None else f"{'':>13}"
        print(f"{name:<48} {size:>7} {ratio:>13.1f}x {shown}")
    print(f"read from JSON ({len(rows)} Bundles), to orjson.loads: {summary([r[0] for r in rows])}")
    xml = [r[3] for r in rows if r[3] is not None]
    print(f"read from XML ({len(xml)} Bundles), to orjson.loads of the same Bundle as JSON: {summary(xml)}")


def codec(bundles: list[tuple[str, bytes, bytes | None]], rounds: int) -> None:
    """Issue 11: XML read / JSON read and XML write / JSON write of the same resource (our codecs both sides)."""
    reads, writes = [], []
    print(
        f"\n{'Bundle (codec)':<48} {'JSON read':>10} {'XML read':>9} {'ratio':>6} {'JSON write':>11} {'XML write':>10} {'ratio':>6}"
    )
    for name, as_json, as_xml in bundles:
        resource = parse(as_json, "json")
        xml = as_xml if as_xml is not None else dump(resource, "xml")
        jr = best_seconds(lambda b=as_json: parse(b, "json"), rounds)
        xr = best_seconds(lambda b=xml: parse(b, "xml"), rounds)
        jw = best_seconds(lambda r=resource: dump(r, "json"), rounds)
        xw = best_seconds(lambda r=resource: dump(r, "xml"), rounds)
        reads.append(xr / jr)
        writes.append(xw / jw)
        print(
            f"{name:<48} {jr * 1e6:>8.0f}us {xr * 1e6:>7.0f}us {xr / jr:>5.1f}x"
            f" {jw * 1e6:>9.0f}us {xw * 1e6:>8.0f}us {xw / jw:>5.1f}x"
        )
    print(f"XML read / JSON read ({len(reads)} Bundles): {summary(reads)}")
    print(f"XML write / JSON write ({len(writes)} Bundles): {summary(writes)}")


if __name__ == "__main__":
    main()
