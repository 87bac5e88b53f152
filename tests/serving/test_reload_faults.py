"""Hot reload against a messy versions root: real versions, a real watcher, a real directory.

Each test publishes tiny real model versions, runs a :class:`ModelWatcher`
polling every 50 ms with the server's loader (``Predictor.load`` + warm-up),
puts something awkward in the root (a stray name, a symlink, a half-copied
version, a staging folder left by a killed publish) and checks what gets
served, what is tried, and what is logged.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path

import keras
import pytest

from sasrec.artifact import (
    MODEL_FILE,
    latest_version,
    list_versions,
    publish_version,
    save_model_dir,
    version_fingerprint,
)
from sasrec.config import SASRecConfig
from sasrec.serving.model_watcher import ModelWatcher
from sasrec.serving.predictor import Predictor
from sasrec.vocabulary import ItemVocabulary

VOCABULARY = ItemVocabulary([f"sku-{i}" for i in range(1, 9)])
HOUR = 3600.0
# Names that str.isdigit() or int() accept but that are not version names.
STRAY_NAMES = [
    "²",  # isdigit() True, int() raises
    "①",  # likewise
    "٣",  # Arabic-Indic three: int() gives 3
    "９",  # full-width nine: int() gives 9
    " 3",  # int() strips spaces
    "3 ",
    "+4",
    "-1",
    "007",  # int() gives 7: would shadow a real 7
    "00",
    "1_0",  # int() accepts underscores: 10
    "4.0",
    "0x9",
    "latest",
    "lost+found",
]


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    return SASRecConfig(num_items=8, max_len=4, hidden_dim=8, num_blocks=1).build_model()


@pytest.fixture(scope="module")
def release(model, tmp_path_factory) -> Path:
    """A complete version outside any versions root (a release on a shared volume)."""
    return save_model_dir(tmp_path_factory.mktemp("releases") / "abc", model, VOCABULARY)


def publish(root: Path, model) -> Path:
    return publish_version(root, lambda target: save_model_dir(target, model, VOCABULARY))


def wait_for(predicate, timeout: float = 60.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def wait_polls(watcher: ModelWatcher, count: int = 10) -> None:
    """Lets ``count`` more polls complete (a condition, not a duration)."""
    start = watcher.polls
    assert wait_for(lambda: watcher.polls >= start + count), "the watcher stopped polling"


@contextlib.contextmanager
def watching(root: Path) -> Iterator[tuple[ModelWatcher, list[str]]]:
    """A started watcher on ``root`` and the names of the versions it tried to load."""
    attempts: list[str] = []

    def load(path: Path) -> Predictor:
        attempts.append(path.name)
        predictor = Predictor.load(path, max_batch_size=2)
        predictor.warm_up()
        return predictor

    watcher = ModelWatcher(root, load=load, on_loaded=lambda p: None, poll_seconds=0.05)
    watcher.load_initial()
    watcher.start()
    try:
        yield watcher, attempts
    finally:
        watcher.stop(timeout=60)


def entry_logs(caplog: pytest.LogCaptureFixture, name: str, level: int) -> list[str]:
    """Messages at ``level`` or above about root entry ``name``."""
    return [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= level and (getattr(r, "fields", None) or {}).get("entry") == name
    ]


def truncate(path: Path) -> None:
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])


def set_mtime(path: Path, seconds: float) -> None:
    """Sets the mtime of ``path`` and everything under it (symlinks themselves)."""
    for folder, dirs, files in os.walk(path, topdown=False):
        for name in dirs + files:
            os.utime(Path(folder) / name, (seconds, seconds), follow_symlinks=False)
    os.utime(path, (seconds, seconds), follow_symlinks=False)


# --------------------------------------------------------------- a. stray names


@pytest.mark.parametrize("name", STRAY_NAMES)
def test_only_canonical_ascii_numbers_are_version_names(name, release, tmp_path):
    root = tmp_path / "models"
    shutil.copytree(release, root / "2")
    shutil.copytree(release, root / name)  # a complete version under a stray name
    assert list_versions(root) == [root / "2"]
    assert latest_version(root) == root / "2"
    from sasrec.artifact import version_number

    assert version_number(name) is None


def test_version_number_accepts_canonical_numbers():
    from sasrec.artifact import version_number

    assert [version_number(n) for n in ("0", "1", "7", "10", "123456789012")] == [
        0,
        1,
        7,
        10,
        123456789012,
    ]


def test_stray_entries_are_ignored_logged_once_and_a_later_version_loads(
    model, release, tmp_path, caplog
):
    caplog.set_level(logging.DEBUG, logger="sasrec.serving")
    root = tmp_path / "models"
    publish(root, model)
    for name in STRAY_NAMES:
        shutil.copytree(release, root / name)
    (root / "5").write_text("a plain file named like a version")
    with watching(root) as (watcher, attempts):
        assert watcher.current == root / "1"
        wait_polls(watcher)
        published = publish(root, model)
        assert published == root / "6"  # the file "5" holds its number: never reused
        assert wait_for(lambda: watcher.current == published)
        wait_polls(watcher)
    assert attempts == ["1", "6"]  # no stray was ever tried
    for name in [*STRAY_NAMES, "5"]:
        assert len(entry_logs(caplog, name, logging.WARNING)) == 1, name


# ------------------------------------------------------------------ b. symlinks


def test_a_symlinked_version_outside_the_root_is_served_and_follows_a_repoint(
    model, release, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="sasrec.serving")
    root = tmp_path / "models"
    publish(root, model)
    broken = tmp_path / "releases" / "broken"
    shutil.copytree(release, broken)  # copy2: same mtimes as the good release
    truncate(broken / MODEL_FILE)
    with watching(root) as (watcher, attempts):
        (root / "2").symlink_to(broken, target_is_directory=True)
        assert wait_for(lambda: attempts.count("2") == 1)
        wait_polls(watcher)
        assert watcher.current == root / "1" and attempts.count("2") == 1
        # `ln -sfn`: re-point version 2 at a good release, atomically
        (root / ".tmp-link").symlink_to(release, target_is_directory=True)
        os.replace(root / ".tmp-link", root / "2")
        assert wait_for(lambda: watcher.current == root / "2")
    assert attempts == ["1", "2", "2"]
    served = [r for r in caplog.records if r.getMessage().startswith("serving model version")]
    assert served[-1].fields["target"] == str(release.resolve())


def test_symlinks_to_anything_but_a_complete_version_are_ignored(model, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="sasrec.serving")
    root = tmp_path / "models"
    publish(root, model)
    outside = tmp_path / "outside"
    (outside / "half").mkdir(parents=True)
    (outside / "half" / "config.json").write_text("{}")
    (outside / "file").write_text("x")
    links = {
        "2": outside / "half",  # a directory without a manifest
        "3": outside / "file",  # a file
        "4": root / "4",  # a loop
        "5": root,  # the root itself (no manifest)
        "6": tmp_path / "nowhere",  # dangling
    }
    for name, target in links.items():
        (root / name).symlink_to(target)
    with watching(root) as (watcher, attempts):
        wait_polls(watcher)
        published = publish(root, model)
        assert published == root / "7"
        assert wait_for(lambda: watcher.current == published)
        wait_polls(watcher)
    assert attempts == ["1", "7"]
    for name in links:
        assert len(entry_logs(caplog, name, logging.INFO)) == 1, name
    assert (outside / "half" / "config.json").read_text() == "{}"  # nothing touched


# --------------------------------------------------- c. a version that completes late


def test_a_rejected_version_is_retried_when_its_files_change_not_before(
    model, release, tmp_path, caplog
):
    caplog.set_level(logging.INFO, logger="sasrec.serving")
    root = tmp_path / "models"
    publish(root, model)
    # An external copy tool (no staging rename) has written the manifest but
    # only half of model.keras.
    half = tmp_path / "half"
    shutil.copytree(release, half)
    truncate(half / MODEL_FILE)
    with watching(root) as (watcher, attempts):
        os.rename(half, root / "2")
        assert wait_for(lambda: attempts.count("2") == 1)
        wait_polls(watcher, 20)
        assert attempts.count("2") == 1  # unchanged: not retried every poll
        assert watcher.current == root / "1"
        shutil.copyfile(release / MODEL_FILE, root / "2" / MODEL_FILE)  # the copy finishes
        assert wait_for(lambda: watcher.current == root / "2")
    assert attempts == ["1", "2", "2"]
    rejected = [r for r in caplog.records if r.getMessage().startswith("rejected model version")]
    assert len(rejected) == 1


def test_a_rejected_newest_version_does_not_hide_a_good_one_below_it(model, release, tmp_path):
    root = tmp_path / "models"
    publish(root, model)
    attempts: list[str] = []

    def load(path: Path) -> Predictor:
        attempts.append(path.name)
        return Predictor.load(path, max_batch_size=2)

    watcher = ModelWatcher(root, load=load, on_loaded=lambda p: None, poll_seconds=0)
    watcher.load_initial()
    publish(root, model)  # 2, good
    broken = shutil.copytree(release, tmp_path / "broken")
    truncate(broken / MODEL_FILE)
    os.rename(broken, root / "3")  # published before the watcher looked again
    assert watcher.poll_once()
    assert watcher.current == root / "2"
    assert attempts == ["1", "3", "2"]
    assert not watcher.poll_once()  # 3 unchanged: not tried again
    assert attempts == ["1", "3", "2"]


def test_the_fingerprint_follows_names_sizes_and_mtimes(release, tmp_path):
    version = shutil.copytree(release, tmp_path / "3")
    before = version_fingerprint(version)
    (version / "notes.json").write_text("{}")
    added = version_fingerprint(version)
    model_file = version / MODEL_FILE
    stat = model_file.stat()
    os.utime(model_file, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    touched = version_fingerprint(version)
    assert len({before, added, touched}) == 3
    assert version_fingerprint(version) == touched  # stable while nothing changes


# ------------------------------------------------------------ d. staging folders


def test_publish_removes_stale_staging_and_keeps_recent_ones(model, tmp_path):
    root = tmp_path / "models"
    publish(root, model)
    two_hours_ago = time.time() - 2 * HOUR
    killed = root / ".tmp-killed"
    (killed / "2").mkdir(parents=True)
    (killed / "2" / MODEL_FILE).write_bytes(b"partial")
    set_mtime(killed, two_hours_ago)
    running = root / ".tmp-running"
    (running / "2").mkdir(parents=True)
    (running / "2" / MODEL_FILE).write_bytes(b"being written")
    writing = root / ".tmp-writing"  # old folders, but a file written just now
    (writing / "2").mkdir(parents=True)
    set_mtime(writing, two_hours_ago)
    (writing / "2" / MODEL_FILE).write_bytes(b"being written")
    os.utime(writing / "2", (two_hours_ago, two_hours_ago))
    os.utime(writing, (two_hours_ago, two_hours_ago))
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "data").write_text("keep")
    (root / ".tmp-link").symlink_to(precious, target_is_directory=True)
    set_mtime(root / ".tmp-link", two_hours_ago)

    published = publish(root, model)

    assert published == root / "2"
    assert not killed.exists()
    assert (running / "2" / MODEL_FILE).read_bytes() == b"being written"
    assert (writing / "2" / MODEL_FILE).read_bytes() == b"being written"
    assert (precious / "data").read_text() == "keep"  # a link is never followed
    assert (root / ".tmp-link").is_symlink()


def test_the_watcher_ignores_staging_folders_and_never_removes_them(model, release, tmp_path):
    root = tmp_path / "models"
    publish(root, model)
    old = root / ".tmp-killed"
    shutil.copytree(release, old / "9")  # a complete version, left in staging
    shutil.copytree(release, root / ".tmp-9")
    set_mtime(old, time.time() - 2 * HOUR)
    set_mtime(root / ".tmp-9", time.time() - 2 * HOUR)
    with watching(root) as (watcher, attempts):
        wait_polls(watcher)
        assert attempts == ["1"]
        assert watcher.current == root / "1"
    assert (old / "9" / "manifest.json").is_file()
    assert (root / ".tmp-9" / "manifest.json").is_file()
