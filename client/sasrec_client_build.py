"""PEP 517 backend of the ``sasrec-client`` wheel: the client modules, nothing else.

The client's source is the repository's (``serving/sasrec/serving/client.py``
and what it imports), so the light distribution cannot drift from the full
one; this backend picks those files from their source roots and writes a
pure-Python wheel with the standard library only (no build dependency to
fetch). ``pip install ./client`` calls :func:`build_wheel`.

Example:
    >>> import sasrec_client_build  # doctest: +SKIP
    >>> sasrec_client_build.build_wheel("dist")  # doctest: +SKIP
    'sasrec_client-0.1.0-py3-none-any.whl'
"""

from __future__ import annotations

import base64
import hashlib
import re
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
NAME = "sasrec-client"
SUMMARY = "Python client of the SASRec recommendation service (gRPC; no TensorFlow)"
# Pinned with the full distribution's: the generated stubs match these runtimes.
DEPENDENCIES = (
    "grpcio==1.85.1",
    "grpcio-health-checking==1.85.1",
    "grpcio-status==1.85.1",
    "protobuf>=6.31,<8",
    "googleapis-common-protos>=1.60",
)
# Package -> (source root, modules): sasrec.serving.client and its imports.
MODULES = {
    "sasrec": (".", ("__init__.py", "lazy_exports.py")),
    "sasrec.serving": (
        "serving",
        ("__init__.py", "client.py", "convert.py", "domain.py", "errors.py"),
    ),
    "sasrec.serving.v1": (
        "serving",
        ("__init__.py", "recommender_pb2.py", "recommender_pb2.pyi", "recommender_pb2_grpc.py"),
    ),
}
_TAG = "py3-none-any"


def version() -> str:
    """The version of the full distribution (``sasrec.__version__``)."""
    text = (REPO / "sasrec" / "__init__.py").read_text()
    return re.search(r'^__version__ = "([^"]+)"', text, re.M).group(1)


def files() -> dict[str, Path]:
    """Wheel path -> source file, for every module of the wheel."""
    out = {}
    for package, (root, names) in MODULES.items():
        folder = REPO / root / package.replace(".", "/")
        for name in names:
            out[f"{package.replace('.', '/')}/{name}"] = folder / name
    return out


def _metadata() -> str:
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {NAME}",
        f"Version: {version()}",
        f"Summary: {SUMMARY}",
        "License: Apache-2.0",
        "Requires-Python: >=3.10",
        *(f"Requires-Dist: {d}" for d in DEPENDENCIES),
    ]
    return "\n".join(lines) + "\n"


def _wheel_info() -> str:
    return f"Wheel-Version: 1.0\nGenerator: {__name__}\nRoot-Is-Purelib: true\nTag: {_TAG}\n"


def _record_line(path: str, data: bytes) -> str:
    digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
    return f"{path},sha256={digest},{len(data)}"


def build_wheel(
    wheel_directory: str, config_settings: dict | None = None, metadata_directory: str | None = None
) -> str:
    """Writes the wheel into ``wheel_directory`` (a temporary name, renamed); returns its name."""
    dist_info = f"{NAME.replace('-', '_')}-{version()}.dist-info"
    wheel_name = f"{NAME.replace('-', '_')}-{version()}-{_TAG}.whl"
    entries = {path: source.read_bytes() for path, source in files().items()}
    entries[f"{dist_info}/METADATA"] = _metadata().encode()
    entries[f"{dist_info}/WHEEL"] = _wheel_info().encode()
    record = [_record_line(path, data) for path, data in entries.items()]
    record.append(f"{dist_info}/RECORD,,")
    entries[f"{dist_info}/RECORD"] = ("\n".join(record) + "\n").encode()
    target = Path(wheel_directory) / wheel_name
    partial = target.with_suffix(".partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as wheel:
        for path, data in entries.items():
            wheel.writestr(path, data)
    partial.replace(target)
    return wheel_name


def get_requires_for_build_wheel(config_settings: dict | None = None) -> list[str]:
    return []
