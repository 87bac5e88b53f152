"""MovieLens archive loader, offline: a small zip of the same layout served by file:// URLs."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from sasrec.data.errors import DataError
from sasrec.data.movielens import download_movielens, load_movielens

U_DATA = "196\t242\t3\t881250949\n186\t302\t3\t891717742\n196\t377\t1\t878887116\n"


def _archive(tmp_path: Path, name: str = "ml-100k", body: str = U_DATA) -> tuple[Path, str]:
    path = tmp_path / "remote" / f"{name}.zip"
    path.parent.mkdir(parents=True, exist_ok=True)
    inner = "u.data" if name == "ml-100k" else "ratings.dat"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(f"{name}/{inner}", body)
        zf.writestr(f"{name}/README", "test archive\n")
    return path, hashlib.sha256(path.read_bytes()).hexdigest()


def test_download_verify_extract_and_read(tmp_path):
    archive, digest = _archive(tmp_path)
    cache = tmp_path / "cache"
    df, report = load_movielens("ml-100k", cache, url=archive.as_uri(), sha256=digest)
    assert df["user_id"].tolist() == ["196", "186", "196"]
    assert df["rating"].tolist() == [3.0, 3.0, 1.0]
    assert sorted(p.name for p in cache.iterdir()) == ["ml-100k", "ml-100k.zip"]
    assert report.source["preset"] == "ml-100k"


def test_ml_1m_layout(tmp_path):
    archive, digest = _archive(tmp_path, "ml-1m", "1::1193::5::978300760\n2::661::3::978302109\n")
    df, _ = load_movielens("ml-1m", tmp_path / "cache", url=archive.as_uri(), sha256=digest)
    assert df["item_id"].tolist() == ["1193", "661"]


def test_checksum_mismatch_leaves_nothing_behind(tmp_path):
    archive, _ = _archive(tmp_path)
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="checksum mismatch"):
        download_movielens("ml-100k", cache, url=archive.as_uri(), sha256="0" * 64)
    assert list(cache.iterdir()) == []


def test_official_name_without_sha256_is_checked_against_the_pinned_value(tmp_path):
    archive, _ = _archive(tmp_path)  # not the real archive, so the pinned SHA-256 fails
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="expected 50d2a982c669"):
        download_movielens("ml-100k", cache, url=archive.as_uri())
    assert list(cache.iterdir()) == []


def test_prepopulated_cache_needs_no_download(tmp_path):
    archive, digest = _archive(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "ml-100k.zip").write_bytes(archive.read_bytes())
    missing_url = (tmp_path / "nowhere.zip").as_uri()
    folder = download_movielens("ml-100k", cache, url=missing_url, sha256=digest)
    assert (folder / "u.data").read_text() == U_DATA
    # Later calls use the extracted folder even with no URL at all reachable.
    assert download_movielens("ml-100k", cache, url=missing_url) == folder


def test_corrupt_cached_archive_is_rejected_and_removed(tmp_path):
    archive, digest = _archive(tmp_path)
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "ml-100k.zip").write_bytes(b"corrupt")
    with pytest.raises(DataError, match="checksum mismatch"):
        download_movielens("ml-100k", cache, url=archive.as_uri(), sha256=digest)
    assert list(cache.iterdir()) == []
    # The next call downloads again and succeeds.
    folder = download_movielens("ml-100k", cache, url=archive.as_uri(), sha256=digest)
    assert (folder / "u.data").read_text() == U_DATA


def test_failed_download_is_a_data_error_without_partial_file(tmp_path):
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="cannot download"):
        download_movielens("ml-100k", cache, url=(tmp_path / "nowhere.zip").as_uri())
    assert list(cache.iterdir()) == []


def test_not_a_zip(tmp_path):
    bogus = tmp_path / "bogus.zip"
    bogus.write_bytes(b"not a zip")
    digest = hashlib.sha256(b"not a zip").hexdigest()
    with pytest.raises(DataError, match="not a valid zip"):
        download_movielens("ml-100k", tmp_path / "cache", url=bogus.as_uri(), sha256=digest)
    assert not (tmp_path / "cache" / "ml-100k").exists()
