"""`sasrec data prepare --engine spark --spark-remote sc://...` against a real Spark Connect server.

The module starts the server PySpark ships (``SparkConnectServer`` through
``spark-submit``, ``local[2]``, a free loopback port, no checkpoint folder:
the passes use local checkpoints) and runs the CLI as a client process, as a
user would; the PREPARED folders must equal the pandas engine's.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("pyspark")

from sasrec.cli import main  # noqa: E402
from sasrec.data.prepared import read_prepared  # noqa: E402
from tests.data.test_spark_parity import _assert_identical  # noqa: E402

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def remote(tmp_path_factory) -> str:
    if shutil.which("java") is None:
        pytest.skip("no Java runtime (make java installs one)")
    from pyspark.find_spark_home import _find_spark_home

    port = _free_port()
    log = tmp_path_factory.mktemp("connect") / "server.log"
    argv = [
        os.path.join(_find_spark_home(), "bin", "spark-submit"),
        *("--class", "org.apache.spark.sql.connect.service.SparkConnectServer"),
        *("--master", "local[2]", "--conf", "spark.ui.enabled=false"),
        *("--conf", "spark.sql.shuffle.partitions=2"),
        *("--conf", "spark.connect.grpc.binding.address=127.0.0.1"),
        *("--conf", f"spark.connect.grpc.binding.port={port}"),
        "spark-internal",
    ]
    with open(log, "wb") as out:
        # Its own process group: spark-submit's shell hands over to the JVM.
        server = subprocess.Popen(argv, stdout=out, stderr=out, start_new_session=True)
    try:
        deadline = time.monotonic() + 300  # a loaded 2-core machine starts a JVM slowly
        while True:
            if server.poll() is not None:
                pytest.fail(f"the Connect server exited: {log.read_text()[-2000:]}")
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    pytest.fail(f"the Connect server did not listen: {log.read_text()[-2000:]}")
                time.sleep(1)
        yield f"sc://127.0.0.1:{port}"
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()


def _client(remote: str, out: Path, flags: list[str]) -> subprocess.CompletedProcess:
    """The CLI in its own process: a Connect client, no JVM of its own."""
    argv = [sys.executable, "-m", "sasrec.cli", "data", "prepare", "--engine", "spark",
            "--spark-remote", remote, "--out", str(out), *flags]  # fmt: skip
    return subprocess.run(argv, capture_output=True, text=True, timeout=900)


def _odd_log(folder: Path) -> list[str]:
    """'::' separated, no header: ties, a duplicate, a missing id, bad timestamps, events."""
    rows = [
        f"u{u % 13}::i{(u * 7 + t) % 11}::{1_700_000_000 + t * (u % 3)}::view"
        for u in range(40)
        for t in range(6)
    ]
    rows[5] = "u1::::1700000000::view"
    rows[9] = "u2::i3::soon::view"
    rows[12] = "u3::i4::-7::view"
    rows[20] = rows[19]
    rows[30] = rows[30].replace("view", "buy")
    log = folder / "odd.dat"
    log.write_text("\n".join(rows) + "\n")
    return ["--data", str(log), "--sep", "::", "--user-col", "0", "--item-col", "1",
            "--time-col", "2", "--timestamp-unit", "s", "--event-col", "3",
            "--min-user", "2", "--min-item", "2", "--event-types", "view"]  # fmt: skip


def _shop_log(folder: Path) -> list[str]:
    log = folder / "shop.csv"
    assert main(["data", "synth", "--out", str(log), "--users", "300", "--items", "150"]) == 0
    return ["--data", str(log), "--collapse-repeats", "--split", "temporal"]


@pytest.mark.parametrize("make_log", [_odd_log, _shop_log], ids=["odd-text", "shop-temporal"])
def test_connect_client_writes_what_pandas_writes(remote: str, tmp_path: Path, make_log) -> None:
    flags = make_log(tmp_path)
    assert main(["data", "prepare", "--out", str(tmp_path / "pandas"), *flags]) == 0
    done = _client(remote, tmp_path / "spark", flags)
    assert done.returncode == 0, done.stderr[-3000:]
    pandas, spark = read_prepared(tmp_path / "pandas"), read_prepared(tmp_path / "spark")
    _assert_identical(pandas, spark)
    assert spark.report.stats["events"] > 100
    # Nothing but the logs and the two folders: no checkpoint or staging folder left.
    left = sorted(p.name for p in tmp_path.iterdir() if p.is_dir())
    assert left == ["pandas", "spark"]


def test_connect_bad_input_is_exit_2_naming_the_line(remote: str, tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    log.write_text("user_id,item_id,timestamp\nu1,i1,10\nu1,i2,20\nu1,i3,soon\nu2,i1,5\n")
    done = _client(remote, tmp_path / "spark", ["--data", str(log), "--strict"])
    assert done.returncode == 2, done.stderr[-3000:]
    assert f"{log}, line 4, column 'timestamp'" in done.stderr.strip().splitlines()[-1]
    assert "Traceback" not in done.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv"]
