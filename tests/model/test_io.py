"""sasrec.io: atomic writes leave whole files with the modes a plain open() would give."""

from __future__ import annotations

import os
import stat

import pytest

from sasrec.io import atomic_copy_file, atomic_write_bytes, atomic_write_text, staging_directory


@pytest.fixture
def umask_022():
    previous = os.umask(0o022)
    yield
    os.umask(previous)


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_written_files_and_published_directories_are_readable_by_others(tmp_path, umask_022):
    # A server running as another user must read a published version.
    target = tmp_path / "a.json"
    atomic_write_text(target, "{}")
    assert target.read_text() == "{}" and _mode(target) == 0o644
    copy = tmp_path / "b.json"
    atomic_copy_file(target, copy)
    assert _mode(copy) == 0o644
    with staging_directory(tmp_path) as staging:
        assert _mode(staging) == 0o755
        os.rename(staging, tmp_path / "1")
    assert _mode(tmp_path / "1") == 0o755


def test_the_umask_is_respected(tmp_path):
    previous = os.umask(0o077)
    try:
        atomic_write_text(tmp_path / "private.json", "{}")
    finally:
        os.umask(previous)
    assert _mode(tmp_path / "private.json") == 0o600


def test_a_failed_write_leaves_no_temporary_file(tmp_path):
    # A str where bytes belong fails inside the write, after the temporary file exists.
    with pytest.raises(TypeError):
        atomic_write_bytes(tmp_path / "x.json", "text")  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []
