"""`sasrec data prepare` at scale: wall time and peak memory of the pandas and Spark engines.

Each run is a fresh `sasrec data prepare` subprocess on a log made by
`bench/synthetic_log.py`. Peak memory is the kernel's high-water mark
(VmHWM) of each process, sampled every 0.2 s: the Python process (the pandas
engine, or Spark's Python driver) and, for Spark, the JVM it starts (in
`local[N]` mode the JVM holds the Spark driver and the executor threads).

Usage::

    .venv/bin/python bench/synthetic_log.py --events 10000000 --items 1000000 \\
        --out /tmp/log-10m.parquet
    .venv/bin/python bench/bench_prepare.py --data /tmp/log-10m.parquet --engine pandas
    .venv/bin/python bench/bench_prepare.py --data /tmp/log-10m.parquet --engine spark \\
        --spark-master 'local[2]' --spark-conf spark.driver.memory=6g

Prints one JSON line: engine, events, wall seconds, events/s, peak RSS per process.

``--train-side LOG_OR_PREPARED`` instead measures the data side of ``sasrec
train`` (everything it builds before ``model.fit``: the vocabulary, the split
and the training windows of width 50) from a log (``--data``) or from a
PREPARED folder (``--prepared``)::

    .venv/bin/python bench/bench_prepare.py --train-side data --data /tmp/log-10m.parquet
    .venv/bin/python bench/bench_prepare.py --train-side prepared --data /tmp/prepared-10m
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _hwm_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    found = [int(c) for c in text.split()]
    return found + [g for c in found for g in _children(c)]


def _is_java(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/exe").resolve().name == "java"
    except OSError:
        return False


def run(argv: list[str]) -> dict[str, float]:
    """Runs the command, returns wall seconds and peak RSS (MiB) of python and java."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    peaks = {"python": 0, "java": 0}
    while proc.poll() is None:
        peaks["python"] = max(peaks["python"], _hwm_kib(proc.pid))
        for child in _children(proc.pid):
            if _is_java(child):
                peaks["java"] = max(peaks["java"], _hwm_kib(child))
        time.sleep(0.2)
    wall = time.perf_counter() - started
    output = proc.stdout.read()
    if proc.returncode != 0:
        sys.exit(f"failed ({proc.returncode}):\n{output[-3000:]}")
    result = {"wall_s": round(wall, 1)}
    result.update({f"peak_{k}_mib": round(v / 1024) for k, v in peaks.items() if v})
    result["output_tail"] = output.strip().splitlines()[-3:]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--engine", choices=("pandas", "spark"), default="pandas")
    parser.add_argument("--train-side", choices=("data", "prepared"), default=None)
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--spark-conf", action="append", default=[])
    parser.add_argument("--min-user", default="5")
    parser.add_argument("--min-item", default="5")
    args = parser.parse_args()
    if args.train_side:
        _train_side(args)
        return
    out = Path(tempfile.mkdtemp(prefix="bench-prepare-")) / "prepared"
    argv = [sys.executable, "-m", "sasrec.cli", "data", "prepare", "--engine", args.engine,
            "--data", args.data, "--out", str(out), "--min-user", args.min_user,
            "--min-item", args.min_item]  # fmt: skip
    if args.engine == "spark":
        argv += ["--spark-master", args.spark_master]
        for conf in args.spark_conf:
            argv += ["--spark-conf", conf]
    try:
        result = run(argv)
        events = json.loads((out / "data_stats.json").read_text())["read"]["rows"]
    finally:
        shutil.rmtree(out.parent, ignore_errors=True)
    load = os.getloadavg()
    print(
        json.dumps(
            {
                "engine": args.engine,
                "events": events,
                **result,
                "events_per_s": round(events / result["wall_s"]),
                "load_1_5_15": [round(x, 2) for x in load],
                "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            }
        )
    )


_TRAIN_SIDE = """
import sys
from sasrec.data.windows import training_windows
from sasrec.training.options import DataOptions
from sasrec.training.preparation import prepare_data
kind, path = sys.argv[1], sys.argv[2]
options = DataOptions(path=path) if kind == "data" else DataOptions(prepared=path)
prepared = prepare_data(options)
inputs, positives = training_windows(prepared.split.train, 50)
print(f"{prepared.vocabulary.num_items} items, {len(inputs)} windows")
"""


def _train_side(args: argparse.Namespace) -> None:
    result = run([sys.executable, "-c", _TRAIN_SIDE, args.train_side, args.data])
    print(
        json.dumps(
            {
                "train_side": args.train_side,
                "data": args.data,
                **result,
                "load_1_5_15": [round(x, 2) for x in os.getloadavg()],
                "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            }
        )
    )


if __name__ == "__main__":
    main()
