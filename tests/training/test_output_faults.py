"""`sasrec train` against a bad --out: read-only, full, filling up, busy, and killed runs.

Real file systems, real training: a small tmpfs stands for a full or
read-only disk (mounting one needs root or CAP_SYS_ADMIN; the tests that
need it are skipped with the reason where that is not allowed), and real
``sasrec train`` processes hold, lose and take over ``--out``.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from sasrec.artifact import latest_version, load_model_dir
from sasrec.cli import main
from sasrec.io import atomic_write_bytes
from sasrec.training.run_lock import LOCK_FILE, OutputError, OutputLockedError, RunLock
from sasrec.training.storage import (
    check_free_space,
    checkpoint_file_bytes,
    estimate_run_bytes,
    output_faults,
    write_weights,
)

REPO = Path(__file__).resolve().parents[2]

# A tiny model on a tiny synthetic log: seconds per run.
TINY_ARGS = [
    "--synthetic-users", "150", "--synthetic-items", "60", "--min-user", "3",
    "--min-item", "2", "--hidden-dim", "16", "--num-blocks", "1", "--max-len", "12",
    "--batch-size", "16", "--no-tensorboard", "--no-sampled", "--bootstrap", "10",
]  # fmt: skip


def train_argv(out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "sasrec.cli", "train", "--out", str(out), *TINY_ARGS, *extra]


ENV = {**os.environ, "PYTHONUNBUFFERED": "1"}


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A small tmpfs mounted at ``path`` (skips the test where mounting is not allowed)."""
    path.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size},mode=0755", "tmpfs", str(path)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root/CAP_SYS_ADMIN): {mounted.stderr}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def remount_read_only(path: Path) -> None:
    done = subprocess.run(["mount", "-o", "remount,ro", str(path)], capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot remount the tmpfs read-only here: {done.stderr}")


def fill(path: Path, leave: int = 0) -> Path:
    """Fills the file system of ``path`` up to ``leave`` free bytes."""
    filler = path / "filler"
    # Outermost suppress: closing the file may meet the full disk too.
    with contextlib.suppress(OSError), open(filler, "wb") as fh:
        while shutil.disk_usage(path).free > leave:
            chunk = min(1 << 20, max(shutil.disk_usage(path).free - leave, 1))
            fh.write(b"\0" * chunk)
            fh.flush()
    return filler


def leftovers(out: Path) -> list[str]:
    """Temporary files and staging folders a failed write may have left."""
    return [str(p) for p in out.rglob("*") if ".tmp" in p.name]


def wait_for_epoch(proc: subprocess.Popen, out: Path, epoch: int, timeout: float = 240) -> int:
    meta = out / ".checkpoint" / "backup" / "training_metadata.json"
    deadline = time.time() + timeout
    while time.time() < deadline:
        with contextlib.suppress(OSError, ValueError):
            done = json.loads(meta.read_text()).get("epoch", 0)
            if done >= epoch:
                return done
        assert proc.poll() is None, proc.communicate()[0]
        time.sleep(0.05)
    pytest.fail(f"no checkpoint of epoch {epoch} after {timeout} s")


def tiny_compiled_model(num_items: int = 60, hidden_dim: int = 16):
    from sasrec.config import SASRecConfig
    from sasrec.optimizers import FusedAdam

    model = SASRecConfig(
        num_items=num_items, hidden_dim=hidden_dim, num_blocks=1, max_len=12
    ).build_model()
    model.compile(optimizer=FusedAdam(learning_rate=1e-3))
    return model


# ---- item 8: read-only, full and filling-up --out ---------------------------------------


def test_read_only_out_is_refused_before_training(tmp_path, capsys) -> None:
    with tmpfs(tmp_path / "ro", "4m") as ro:
        (ro / "models").mkdir()
        remount_read_only(ro)
        # An --out to create, and an existing one (where the lock file is the first write).
        for out in (ro / "new" / "models", ro / "models"):
            code = main(["train", "--out", str(out), *TINY_ARGS, "--epochs", "1", "--verbose", "0"])
            err = capsys.readouterr().err
            assert code == 2, err
            assert "Read-only file system" in err and str(out) in err, err
            assert "Traceback" not in err
        assert sorted(p.name for p in ro.iterdir()) == ["models"]


def test_out_not_writable_by_the_user_is_refused(tmp_path) -> None:
    """EACCES: a directory the (unprivileged) user may not write into."""
    if os.geteuid() != 0 or shutil.which("setpriv") is None:
        pytest.skip("needs root and setpriv to run the command as an unprivileged user")
    # Outside pytest's own folders, which only root may enter.
    parent = Path(tempfile.mkdtemp(prefix="sasrec-root-owned-"))
    try:
        os.chmod(parent, 0o755)
        out = parent / "models"
        run = subprocess.run(
            ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
             *train_argv(out, "--epochs", "1", "--verbose", "0")],
            env={**ENV, "HOME": str(parent)}, cwd=REPO, capture_output=True, text=True,
        )  # fmt: skip
        assert run.returncode == 2, run.stderr[-2000:]
        assert "Permission denied" in run.stderr and str(out) in run.stderr, run.stderr
        assert "Traceback" not in run.stderr
        assert not out.exists()
    finally:
        shutil.rmtree(parent)


def test_nearly_full_disk_is_refused_with_free_and_needed_bytes(tmp_path, capsys) -> None:
    with tmpfs(tmp_path / "small", "512k") as small:
        out = small / "models"
        code = main(["train", "--out", str(out), *TINY_ARGS, "--epochs", "2", "--verbose", "0"])
        err = capsys.readouterr().err
        assert code == 2, err
        match = re.search(r"([\d,]+) bytes free, about ([\d,]+) bytes needed", err)
        assert match and str(out) in err, err
        free, needed = (int(g.replace(",", "")) for g in match.groups())
        # The free bytes of the file system (less the lock file the run held then).
        assert 0 <= shutil.disk_usage(small).free - free <= 8192
        assert needed > free
        # Refused before training: no checkpoint, no version, no lock left behind.
        assert list(out.iterdir()) == []


def test_disk_filling_up_during_training_is_exit_2_and_resumable(tmp_path) -> None:
    """ENOSPC in the middle of a run: a message, no crash, no partial file, a resumable checkpoint.

    Before: HDF5 met ENOSPC writing the checkpoint, Python raised, and the
    process died in HDF5's exit handler (segmentation fault, exit 139),
    leaving ``best.tmp.weights.h5``.
    """
    with tmpfs(tmp_path / "disk", "16m") as disk:
        out = disk / "models"
        argv = train_argv(out, "--epochs", "40", "--patience", "40", "--verbose", "2")
        proc = subprocess.Popen(
            argv, env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        try:
            wait_for_epoch(proc, out, 1)
            filler = fill(disk)
            _, stderr = proc.communicate(timeout=240)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert proc.returncode == 2, stderr[-3000:]
        assert "No space left on device" in stderr and str(out) in stderr, stderr[-3000:]
        assert "Traceback" not in stderr, stderr[-3000:]
        assert leftovers(out) == []
        assert latest_version(out) is None
        # Every checkpoint file is whole: free the space and the run continues.
        state = json.loads((out / ".checkpoint" / "validation_state.json").read_text())
        done = json.loads((out / ".checkpoint" / "backup" / "training_metadata.json").read_text())
        assert state["records"] and done["epoch"] >= 1
        filler.unlink()
        resumed = subprocess.run(
            [*argv[: argv.index("--epochs")], "--epochs", str(done["epoch"] + 1),
             "--patience", "40", "--verbose", "2", "--resume"],
            env=ENV, cwd=REPO, capture_output=True, text=True,
        )  # fmt: skip
        assert resumed.returncode == 0, resumed.stderr[-3000:]
        assert f"Epoch {done['epoch'] + 1}/" in resumed.stdout
        history = json.loads((latest_version(out) / "history.json").read_text())
        assert len(history["loss"]) == done["epoch"] + 1


def test_full_disk_write_is_an_output_error_naming_the_path(tmp_path) -> None:
    """The error mapping, and atomic writes, on a real full file system."""
    with tmpfs(tmp_path / "tiny", "256k") as tiny:
        fill(tiny, leave=8192)
        target = tiny / "out" / "state.json"
        target.parent.mkdir()
        with pytest.raises(OutputError) as raised, output_faults(tiny):
            atomic_write_bytes(target, b"x" * 100_000)
        err = raised.value
        assert err.errno == errno.ENOSPC
        assert "No space left on device" in str(err) and "bytes free under --out" in str(err)
        assert str(target.parent) in str(err)
        assert leftovers(tiny) == [] and not target.exists()
        with pytest.raises(OutputError, match=r"not enough free space .* bytes free, about"):
            check_free_space(tiny, shutil.disk_usage(tiny).free + 1)


def test_weights_on_a_full_disk_fail_cleanly_without_crashing_the_process(tmp_path) -> None:
    """write_weights on a full disk raises ENOSPC and the process exits normally (HDF5 would
    crash at exit had it written the file itself)."""
    with tmpfs(tmp_path / "tiny", "512k") as tiny:
        script = textwrap.dedent(
            f"""
            import errno, sys
            from pathlib import Path
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            from test_output_faults import tiny_compiled_model, fill
            from sasrec.training.storage import write_weights
            model = tiny_compiled_model()
            fill(Path({str(tiny)!r}), leave=16384)
            try:
                write_weights(model, Path({str(tiny)!r}) / "best.weights.h5")
            except OSError as err:
                print("errno", err.errno)
                sys.exit(0 if err.errno == errno.ENOSPC else 1)
            sys.exit(3)
            """
        )
        run = subprocess.run(
            [sys.executable, "-c", script], env=ENV, cwd=REPO, capture_output=True, text=True
        )
        assert run.returncode == 0, (run.returncode, run.stdout, run.stderr[-3000:])
        assert "errno 28" in run.stdout
        assert sorted(p.name for p in tiny.iterdir()) == ["filler"]


def test_space_estimate_bounds_the_real_files(tmp_path) -> None:
    for num_items, hidden in ((60, 16), (2000, 64)):
        model = tiny_compiled_model(num_items, hidden)
        model.optimizer.build(model.trainable_variables)
        path = tmp_path / f"{num_items}.weights.h5"
        write_weights(model, path)
        size = path.stat().st_size
        numbers = 3 * 4 * model.count_params()  # float32 weights and two Adam moments
        assert numbers < size <= checkpoint_file_bytes(model)
        # An estimate, not a guess: within the HDF5 overhead of the real file.
        assert checkpoint_file_bytes(model) < 2 * size + 200_000
        needed = estimate_run_bytes(
            model, num_items=num_items, vocabulary_bytes=0, epochs=10, tensorboard=False
        )
        assert needed >= 4 * size
        # The file is the one Keras' own save_weights makes: it loads back.
        again = tiny_compiled_model(num_items, hidden)
        again.optimizer.build(again.trainable_variables)
        again.load_weights(path)
        for a, b in zip(model.get_weights(), again.get_weights(), strict=True):
            np.testing.assert_array_equal(a, b)


# ---- item 9: one run per --out -------------------------------------------------------


HOLD_LOCK = """
import sys, time
from pathlib import Path
from sasrec.training.run_lock import RunLock
lock = RunLock(Path(sys.argv[1]))
lock.acquire()
print("locked", flush=True)
time.sleep(600)
"""


def hold_lock(out: Path) -> subprocess.Popen:
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(out)],
        env=ENV, cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert proc.stdout.readline().strip() == "locked"
    return proc


def test_lock_held_by_a_live_process_refuses_and_a_dead_ones_is_taken_over(tmp_path, capsys):
    out = tmp_path / "models"
    out.mkdir()
    holder = hold_lock(out)
    try:
        with pytest.raises(OutputLockedError) as raised:
            RunLock(out).acquire()
        assert f"pid {holder.pid}" in str(raised.value) and str(out) in str(raised.value)
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait(10)
    # kill -9 left the file (with the dead pid) behind; its lock died with the process.
    assert str(holder.pid) in (out / LOCK_FILE).read_text()
    with RunLock(out) as lock:
        assert lock.previous_owner["pid"] == holder.pid
        assert json.loads((out / LOCK_FILE).read_text())["pid"] == os.getpid()
    assert f"taking over the lock of run pid {holder.pid}" in capsys.readouterr().err
    assert not (out / LOCK_FILE).exists()  # released on exit


def test_second_train_on_the_same_out_is_refused_while_the_first_trains(tmp_path, capsys):
    """Before: the second run deleted the first's .checkpoint and the first died."""
    out = tmp_path / "models"
    # Epochs 2-8 are the window in which the second run must meet the lock: wide
    # enough that a loaded machine still starts the second run inside it.
    first = subprocess.Popen(
        train_argv(out, "--epochs", "8", "--patience", "10", "--verbose", "2"),
        env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for_epoch(first, out, 1)
        before = sorted(p.name for p in (out / ".checkpoint").iterdir())
        code = main(["train", "--out", str(out), *TINY_ARGS, "--epochs", "1", "--verbose", "0"])
        err = capsys.readouterr().err
        assert code == 2, err
        assert f"pid {first.pid}" in err and str(out) in err and "in use" in err, err
        assert set(before) <= {p.name for p in (out / ".checkpoint").iterdir()}
        output, _ = first.communicate(timeout=240)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, output[-3000:]
    assert latest_version(out) == out / "1"
    assert json.loads((out / "1" / "training.json").read_text())["epochs_run"] == 8
    assert not (out / LOCK_FILE).exists()


# ---- item 11: a resumed run's files describe the whole run -----------------------------


def test_resumed_run_history_and_training_files_cover_every_epoch(tmp_path) -> None:
    out = tmp_path / "models"
    argv = train_argv(out, "--epochs", "4", "--patience", "10", "--verbose", "2")
    proc = subprocess.Popen(
        argv, env=ENV, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        done = wait_for_epoch(proc, out, 2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    done = json.loads((out / ".checkpoint" / "backup" / "training_metadata.json").read_text())
    done = done["epoch"]
    assert 2 <= done < 4
    before = json.loads((out / ".checkpoint" / "history.json").read_text())["epochs"][:done]
    resumed = subprocess.run([*argv, "--resume"], env=ENV, cwd=REPO, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert f"Epoch {done + 1}/4" in resumed.stdout and "Epoch 1/4" not in resumed.stdout
    # The killed run's lock is taken over, with a notice.
    assert f"taking over the lock of run pid {proc.pid}" in resumed.stderr
    version = latest_version(out)
    history = json.loads((version / "history.json").read_text())
    training = json.loads((version / "training.json").read_text())
    metrics = json.loads((version / "metrics.json").read_text())
    assert len(history["loss"]) == 4 and len(history["epoch_seconds"]) == 4
    assert len(history["val_ndcg@10"]) == 4
    # The epochs before the kill are the killed run's own numbers.
    assert history["loss"][:done] == [r["logs"]["loss"] for r in before]
    assert history["epoch_seconds"][:done] == [r["seconds"] for r in before]
    assert [r["epoch"] for r in metrics["validation"]] == [1, 2, 3, 4]
    assert training["epochs_run"] == 4 and training["resumed_at_epoch"] == done
    assert training["seconds"] >= before[-1]["run_seconds"]
    assert load_model_dir(version).config.max_len == 12
