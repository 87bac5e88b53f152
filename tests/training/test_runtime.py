"""Process-wide runtime settings (sasrec.runtime)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from sasrec.runtime import keep_freed_memory

# A block far above glibc's largest mmap threshold (32 MB), like XLA's step buffer.
_PROBE = """
import ctypes, resource
from sasrec.runtime import keep_freed_memory
applied = keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]
size = 48 << 20

def use_block():  # what XLA does with its step buffer: allocate, write, free
    block = libc.malloc(size)
    ctypes.memset(block, 1, size)
    libc.free(block)

use_block()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    use_block()
print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""


def _probe(env_value: str) -> tuple[bool, int]:
    out = subprocess.run(
        [sys.executable, "-c", _PROBE],
        env={"SASREC_KEEP_FREED_MEMORY": env_value, "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return out[0] == "True", int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_keep_freed_memory_stops_refaulting_large_blocks() -> None:
    applied, faults = _probe("1")
    off, faults_off = _probe("0")
    assert applied and not off
    # 5 x 48 MB = 61,440 pages: mapped afresh each time without the setting.
    assert faults_off > 50_000
    assert faults < 1_000


def test_keep_freed_memory_opt_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SASREC_KEEP_FREED_MEMORY", "0")
    assert keep_freed_memory() is False


_RELEASE_PROBE = """
import ctypes
from sasrec.runtime import keep_freed_memory, release_freed_memory
keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
libc.free.argtypes = [ctypes.c_void_p]

def rss_mib():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024

# Two 48 MB blocks written, the lower one freed: kept mapped (no trim below the top).
low, high = libc.malloc(48 << 20), libc.malloc(48 << 20)
ctypes.memset(low, 1, 48 << 20)
ctypes.memset(high, 1, 48 << 20)
libc.free(low)
kept = rss_mib()
released = release_freed_memory()
print(released, kept - rss_mib())
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc malloc_trim")
def test_release_freed_memory_returns_a_freed_block_kept_mapped() -> None:
    out = subprocess.run(
        [sys.executable, "-c", _RELEASE_PROBE],
        env={"SASREC_KEEP_FREED_MEMORY": "1", "PATH": ""},
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert out[0] == "True"
    # The freed 48 MB block left the resident set.
    assert 40 <= int(out[1]) <= 56


def test_memory_release_runs_at_each_epoch_end_and_at_the_end_of_fit() -> None:
    import keras
    import numpy as np

    from sasrec.training.memory_release import MemoryRelease

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    release = MemoryRelease()
    x = np.ones((8, 3), np.float32)
    model.fit(x, x[:, :1], epochs=2, batch_size=4, verbose=0, callbacks=[release])
    assert release.calls == 3
