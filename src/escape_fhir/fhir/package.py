"""Build the project's FHIR package as the ``.tgz`` that registries and package caches take.

FHIR packages.html: a package is a gzipped tar whose members sit under ``package/`` (``package.json``,
``.index.json``, the resources); installed, it is the folder ``~/.fhir/packages/<name>#<version>/package``,
where the HL7 validator, the IG Publisher, Firely and our own validator (``--package name#version``) find it
by name and version and follow its dependencies.

The archive is reproducible: members sorted, owner root, a fixed modification time and no gzip time stamp,
so building twice from the same sources gives the same bytes (a registry can tell an unchanged release).
"""

from __future__ import annotations

import gzip
import io
import tarfile
import tempfile
from pathlib import Path
from typing import Final

from escape_fhir.fhir.conformance import package_manifest, write_package

__all__ = ["archive_name", "build_package"]

#: 2019-11-01T00:00:00Z, the date of FHIR R4 4.0.1: any fixed time keeps the archive reproducible.
_MTIME: Final = 1572566400


def archive_name() -> str:
    """``<name>-<version>.tgz``, as ``npm pack`` and the FHIR registries name a package archive."""
    manifest = package_manifest()
    return f"{manifest['name']}-{manifest['version']}.tgz"


def build_package(out: Path) -> Path:
    """Write ``<name>-<version>.tgz`` into the folder ``out`` (made if missing); its path.

    Raises OSError when the folder cannot be made or written.
    """
    out.mkdir(parents=True, exist_ok=True)
    target = out / archive_name()
    with tempfile.TemporaryDirectory() as tmp:
        files = sorted(write_package(Path(tmp)), key=lambda p: p.name)
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
            tar.addfile(_member("package", directory=True))
            for path in files:
                data = path.read_bytes()
                tar.addfile(_member(f"package/{path.name}", size=len(data)), io.BytesIO(data))
    partial = target.with_name(target.name + ".partial")
    partial.write_bytes(gzip.compress(buffer.getvalue(), mtime=0))
    partial.replace(target)  # never a half-written archive under the final name
    return target


def _member(name: str, *, size: int = 0, directory: bool = False) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = tarfile.DIRTYPE if directory else tarfile.REGTYPE
    info.mode = 0o755 if directory else 0o644
    info.size = size
    info.mtime = _MTIME
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info
