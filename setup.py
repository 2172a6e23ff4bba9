"""The compiled parts of escape-fhir; everything else is in pyproject.toml.

Two kinds, both optional: where a part cannot be built (no C compiler, ``ESCAPE_FHIR_PURE=1``), the same
modules run as plain Python, with the same results, only slower.

* The sender reader (issue 8) and the referral model's checks (``domain/referral_checks.py``, which pydantic
  calls as validators): modules compiled with mypyc from their own type-annotated source. The ``.py``
  files stay the source of truth; the compiled module is built from them and shadows them on import, so a
  change to one of them needs ``./dev setup`` (which rebuilds when they changed), and tests/conftest.py refuses
  to run against a compiled module older than its source.
* The XML codec's fast paths (issue 11): Cython modules (``src/escape_fhir/fhir/_xml*.pyx``) that walk the
  tree lxml parsed through lxml's public C API, and write XML into a C buffer. They handle the common case and
  hand anything else back to the Python codec, which gives the errors (tests/fhir/test_xml_native.py checks
  both give the same answers).
* The JSON reader's checks (``src/escape_fhir/fhir/_jsonscan.pyx``, Cython, no lxml needed): the size count and
  the duplicate-key proof of the msgspec path in C (tests/fhir/test_json_native.py checks them against the
  Python ones).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent
FHIR = "src/escape_fhir/fhir"
DOMAIN = "src/escape_fhir/domain"

#: Compiled with mypyc (they must type-check under ``mypy --strict``, which ./dev test runs anyway).
MYPYC_MODULES = [
    f"{DOMAIN}/durations.py",
    f"{DOMAIN}/referral_checks.py",
    f"{DOMAIN}/startback.py",
    f"{FHIR}/bundle_index.py",
    f"{FHIR}/qr_read.py",
    f"{FHIR}/readers.py",
    f"{FHIR}/sender_context.py",
    f"{FHIR}/sender_people.py",
    f"{FHIR}/sender_places.py",
    f"{FHIR}/sender_startback.py",
    f"{FHIR}/sender_terms.py",
]

#: The extensions mypyc makes of them: one shim per module and the shared library they all load.
MYPYC_NAMES = frozenset(
    ["escape_fhir_native__mypyc"]
    + [p.removeprefix("src/").removesuffix(".py").replace("/", ".") for p in MYPYC_MODULES]
)

#: Compiled with Cython, when their source exists: the XML codec against lxml's C API, the JSON checks plain C.
CYTHON_MODULES = {
    "escape_fhir.fhir._jsonscan": f"{FHIR}/_jsonscan.pyx",
    "escape_fhir.fhir._xmlread": f"{FHIR}/_xmlread.pyx",
    "escape_fhir.fhir._xmlwrite": f"{FHIR}/_xmlwrite.pyx",
}


def _mypyc_extensions() -> list[Extension]:
    try:
        from mypyc.build import mypycify
    except ImportError:
        print("escape-fhir: mypy is not installed; the reader stays plain Python", file=sys.stderr)
        return []
    # The project's mypy settings (pyproject.toml, with the pydantic plugin); the modules' other imports
    # (fastapi...) need not be present at build time: unknown ones are typed Any, which compiles to the
    # generic (still correct) code.
    options = ["--ignore-missing-imports", "--follow-imports=silent"]
    try:
        extensions: list[Extension] = mypycify(options + MYPYC_MODULES, opt_level="3", group_name="escape_fhir_native")
    except (Exception, SystemExit) as exc:  # mypy refused the modules, or mypyc failed on them
        print(f"escape-fhir: mypyc could not compile the reader ({exc}); it stays plain Python", file=sys.stderr)
        return []
    return extensions


def _cython_extensions() -> list[Extension]:
    sources = {name: path for name, path in CYTHON_MODULES.items() if (ROOT / path).exists()}
    if not sources:
        return []
    try:
        import lxml
        from Cython.Build import cythonize
    except ImportError:
        print(
            "escape-fhir: Cython or lxml is missing at build time; the XML codec and JSON checks stay Python",
            file=sys.stderr,
        )
        return []
    include = lxml.get_include()
    modules = [Extension(name, [path], include_dirs=include) for name, path in sources.items()]
    extensions: list[Extension] = cythonize(
        modules, include_path=include, compiler_directives={"language_level": "3"}, quiet=True
    )
    return extensions


def _extensions() -> list[Extension]:
    if os.environ.get("ESCAPE_FHIR_PURE") == "1":
        return []
    return _mypyc_extensions() + _cython_extensions()


class _BuildCompiled(build_ext):
    """Builds each compiled part that can be built; one that fails leaves its Python module in use.

    The mypyc modules are one part (each module is a shim into one shared library): if any of them fails,
    none is kept. A part that fails also loses the copy an earlier build left beside its source, so that no
    compiled module older than its source shadows it (tests/conftest.py would refuse to run)."""

    def build_extensions(self) -> None:
        failed = []
        for extension in list(self.extensions):
            try:
                self.build_extension(extension)
            except Exception as exc:  # a compiler error, a missing header...
                print(f"escape-fhir: {extension.name} not compiled ({exc}); its Python module is used", file=sys.stderr)
                failed.append(extension)
        if any(e.name in MYPYC_NAMES for e in failed):
            failed += [e for e in self.extensions if e.name in MYPYC_NAMES and e not in failed]
        for extension in failed:
            self.extensions.remove(extension)
            for path in (
                Path(self.get_ext_fullpath(extension.name)),
                ROOT / "src" / self.get_ext_filename(extension.name),
            ):
                path.unlink(missing_ok=True)


setup(ext_modules=_extensions(), cmdclass={"build_ext": _BuildCompiled})
