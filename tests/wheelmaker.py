"""Build real wheel files for the tests, including deliberately broken ones."""

from __future__ import annotations

import base64
import csv
import hashlib
import io
import stat
import zipfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

FileSpec = bytes | tuple[bytes, int]  # content, or (content, unix mode)


def record_hash(data: bytes) -> str:
    digest = hashlib.sha256(data).digest()
    return "sha256=" + base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass
class WheelSpec:
    name: str = "demo"
    version: str = "1.0"
    tag: str = "py3-none-any"
    files: Mapping[str, FileSpec] = field(default_factory=dict)
    entry_points: str | None = None
    purelib: bool = True
    #: change RECORD rows before writing: rows -> rows
    record_hook: Callable[[list[list[str]]], list[list[str]]] | None = None
    #: extra raw members written after RECORD (name, data, mode), not in RECORD
    raw_members: list[tuple[str, bytes, int]] = field(default_factory=list)
    dist_info_name: str | None = None

    @property
    def filename(self) -> str:
        return f"{self.name.replace('-', '_')}-{self.version}-{self.tag}.whl"


def build_wheel(directory: Path, spec: WheelSpec) -> Path:
    """Write the wheel described by ``spec`` into ``directory``; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    dist_name = spec.name.replace("-", "_")
    dist_info = spec.dist_info_name or f"{dist_name}-{spec.version}.dist-info"
    members: list[tuple[str, bytes, int]] = []
    for path, value in spec.files.items():
        data, mode = (value, 0o644) if isinstance(value, bytes) else value
        members.append((path, data, mode))
    meta = f"Metadata-Version: 2.1\nName: {spec.name}\nVersion: {spec.version}\n\n".encode()
    wheel = (
        "Wheel-Version: 1.0\nGenerator: pip-linkmode-tests\n"
        f"Root-Is-Purelib: {'true' if spec.purelib else 'false'}\nTag: {spec.tag}\n"
    ).encode()
    members.append((f"{dist_info}/METADATA", meta, 0o644))
    members.append((f"{dist_info}/WHEEL", wheel, 0o644))
    if spec.entry_points:
        members.append((f"{dist_info}/entry_points.txt", spec.entry_points.encode(), 0o644))
    rows = [[p, record_hash(d), str(len(d))] for p, d, _ in members]
    rows.append([f"{dist_info}/RECORD", "", ""])
    if spec.record_hook:
        rows = spec.record_hook(rows)
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    for row in rows:
        if any("\x00" in field for field in row):
            # (Python 3.10's csv cannot write a NUL; a hostile wheel's RECORD holds one as is)
            buf.write(",".join(row) + "\n")
        else:
            writer.writerow(row)
    members.append((f"{dist_info}/RECORD", buf.getvalue().encode(), 0o644))
    members.extend(spec.raw_members)
    out = directory / spec.filename
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as zf:
        for path, data, mode in members:
            info = zipfile.ZipInfo(path, date_time=(2024, 1, 1, 0, 0, 0))
            if "\\" in path:
                info.filename = path  # as given: zipfile on Windows turns a backslash into "/"
            if not stat.S_IFMT(mode):
                mode |= stat.S_IFREG
            info.external_attr = mode << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, data)
    return out


def demo_spec(name: str = "demo", version: str = "1.0", long_paths: bool = True) -> WheelSpec:
    """A wheel with packages, data files, scripts, entry points and long paths."""
    pkg = name.replace("-", "_")
    data = f"{pkg}-{version}.data"
    files: dict[str, FileSpec] = {
        f"{pkg}/__init__.py": f"VERSION = {version!r}\nfrom .core import hello\n".encode(),
        f"{pkg}/core.py": b"def hello():\n    return 'hello from core'\n\ndef main():\n    print(hello())\n    return 0\n",
        f"{pkg}/sub/__init__.py": b"",
        f"{pkg}/sub/data.json": b'{"a": 1}\n',
        f"{pkg}/tool.sh": (b"#!/bin/sh\necho tool\n", 0o755),
        f"{data}/scripts/{pkg}-shebang": (b"#!python\nimport sys\nprint('shebang script', sys.executable)\n", 0o755),
        f"{data}/scripts/{pkg}-plain.sh": (b"#!/bin/sh\necho plain\n", 0o755),
        f"{data}/data/share/{pkg}/readme.txt": b"shared data\n",
        f"{data}/headers/{pkg}.h": b"/* header */\n",
    }
    if long_paths:
        # Like jupyterlab-widgets 3.0.16's labextensions: paths well over 260 characters.
        deep = "/".join(["labextensions", "@jupyter-widgets", "jupyterlab-manager", "static"] + ["nested-directory-level"] * 8)
        files[f"{data}/data/share/jupyter/{deep}/remoteEntry.{'a' * 64}.js"] = b"// js\n"
    return WheelSpec(
        name=name,
        version=version,
        files=files,
        entry_points=f"[console_scripts]\n{pkg}-hello = {pkg}.core:main\n",
    )
