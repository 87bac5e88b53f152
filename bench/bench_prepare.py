"""`sasrec data prepare` at scale: wall time and peak memory of the pandas and Spark engines.

Each run is a fresh `sasrec data prepare` subprocess on a log made by
`bench/synthetic_log.py`. Peak memory is the kernel's high-water mark
(VmHWM) of each process, sampled every 0.2 s: the Python process (the pandas
engine, or Spark's Python driver) and, for Spark, the JVM it starts (in
`local[N]` mode the JVM holds the Spark driver and the executor threads),
and each executor JVM below it (`--spark-master 'local-cluster[2,1,3072]'`:
two one-core executors in JVMs of their own, so the driver's memory is
measured apart from the executors'). CPU seconds are those of every process
(the JVMs' sampled from /proc).

Usage::

    .venv/bin/python bench/synthetic_log.py --events 10000000 --items 1000000 \\
        --out /tmp/log-10m.parquet
    .venv/bin/python bench/bench_prepare.py --data /tmp/log-10m.parquet --engine pandas
    .venv/bin/python bench/bench_prepare.py --data /tmp/log-10m.parquet --engine spark \\
        --spark-master 'local[2]' --spark-conf spark.driver.memory=6g

Prints one JSON line: engine, events, wall and CPU seconds, events per second of
each, peak RSS per process, and the digest of the PREPARED folder it wrote
(:func:`prepared_digest`: equal digests, byte-identical output; the Spark
engine's shard file names are Spark's own, so across engines compare
``file_digests``: the vocabulary, report and split files, byte for byte).
With executor JVMs (``local-cluster``), ``cpu_executors_s`` is their part of
the CPU seconds.

``--train-side data|prepared`` instead measures a short real ``sasrec
train`` (one epoch, validation, final evaluation on 1,000 users and the
published version; flags in ``TRAIN_FLAGS``) from a log (``--data``, in
memory) or from a PREPARED folder (``--prepared``, streamed): the peak RSS
is the training process's::

    .venv/bin/python bench/bench_prepare.py --train-side data --data /tmp/log-30m.parquet
    .venv/bin/python bench/bench_prepare.py --train-side prepared --data /tmp/prepared-30m

``--train-side pipeline`` runs the streaming input alone (no model): the
PREPARED folder opened, then 400 batches of ``make_streaming_dataset`` at
``TRAIN_FLAGS``' batch and chunk; it prints the RSS after the folder is
opened and the peak::

    .venv/bin/python bench/bench_prepare.py --train-side pipeline --data /tmp/prepared-30m
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
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
    # Each thread lists the children it forked: a JVM starts executors from
    # a worker thread, not its main one.
    found: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            found += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found + [g for c in found for g in _children(c)]


def _parent(pid: int) -> int:
    try:
        return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, ValueError, IndexError):
        return 0


def _is_java(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/exe").resolve().name == "java"
    except OSError:
        return False


def _cpu_s(pid: int) -> float:
    """User + system CPU seconds of one process so far (all its threads)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(argv: list[str]) -> dict[str, float]:
    """Runs the command: wall seconds, CPU seconds, peak RSS (MiB) of python and java.

    ``phases``: the Python process's peak so far (MiB) each time the peak had
    grown when an output line came, with the seconds since start and the
    line's beginning: where in a run the memory went.
    """
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    peaks = {"python": 0, "java": 0}
    phases: list[list] = []
    seen, marked = 0, 0
    java_cpu: dict[int, float] = {}
    executors: dict[int, int] = {}
    executor_cpu: dict[int, float] = {}
    while proc.poll() is None:
        peaks["python"] = max(peaks["python"], _hwm_kib(proc.pid))
        for child in _children(proc.pid):
            if _is_java(child):
                # The JVM PySpark starts is the driver (with the executor threads
                # in local[N]); JVMs below it are executors (local-cluster[...]).
                if _is_java(_parent(child)):
                    executors[child] = max(executors.get(child, 0), _hwm_kib(child))
                    executor_cpu[child] = max(executor_cpu.get(child, 0.0), _cpu_s(child))
                else:
                    peaks["java"] = max(peaks["java"], _hwm_kib(child))
                java_cpu[child] = max(java_cpu.get(child, 0.0), _cpu_s(child))
        if len(lines) > seen:
            seen = len(lines)
            if peaks["python"] > marked:
                marked = peaks["python"]
                elapsed = round(time.perf_counter() - started)
                phases.append([elapsed, round(marked / 1024), lines[seen - 1].strip()[:60]])
        time.sleep(0.2)
    wall = time.perf_counter() - started
    reader.join()
    output = "".join(lines)
    # CPU seconds: on a shared machine they move far less with the load than the
    # wall time. The command's own come from the kernel once it is reaped; the
    # JVM PySpark starts is not reaped by it (it outlives the Python driver by
    # a moment), so its CPU is sampled with the memory (to within 0.2 s).
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    own = usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime
    result = {"wall_s": round(wall, 1), "cpu_s": round(own + sum(java_cpu.values()), 1)}
    if java_cpu:
        result["cpu_java_s"] = round(sum(java_cpu.values()), 1)
    result.update({f"peak_{k}_mib": round(v / 1024) for k, v in peaks.items() if v})
    if executors:
        result["peak_executor_jvms_mib"] = sorted(round(v / 1024) for v in executors.values())
        result["cpu_executors_s"] = round(sum(executor_cpu.values()), 1)
    result["phases"] = phases
    result["output_tail"] = output.strip().splitlines()[-3:]
    if proc.returncode != 0:
        # A run that fails still says how much memory and CPU it used until then.
        print(json.dumps({"failed": proc.returncode, **result}), flush=True)
        sys.exit(f"failed ({proc.returncode}):\n{output[-3000:]}")
    return result


def prepared_digest(folder: Path) -> str:
    """SHA-256 of a PREPARED folder: every file's name and bytes, the manifest without its date.

    Two runs of ``sasrec data prepare`` on the same log and options give the
    same digest exactly when they wrote the same vocabulary, report, split and
    shard files, byte for byte.
    """
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        if path.name == "manifest.json":
            manifest = json.loads(data)
            manifest.pop("created_at", None)
            data = json.dumps(manifest, sort_keys=True).encode()
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0" + data)
    return digest.hexdigest()[:16]


def file_digests(folder: Path) -> dict[str, str]:
    """SHA-256 of the files both engines write byte for byte alike (the shard files'
    names and Parquet writers differ between engines; their content is compared by
    tests/data/test_spark_parity.py)."""
    names = ("vocabulary.json", "data_stats.json", "split.json")
    return {n: hashlib.sha256((folder / n).read_bytes()).hexdigest()[:16] for n in names}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True)
    parser.add_argument("--engine", choices=("pandas", "spark"), default="pandas")
    parser.add_argument("--train-side", choices=("data", "prepared", "pipeline"), default=None)
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--spark-conf", action="append", default=[])
    parser.add_argument("--min-user", default="5")
    parser.add_argument("--min-item", default="5")
    parser.add_argument(
        "--train-flag", action="append", default=[],
        help="with --train-side: one more `sasrec train` argument after TRAIN_FLAGS "
        "(repeat it; e.g. --train-flag=--no-compile-ahead)",
    )  # fmt: skip
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
        result["digest"] = prepared_digest(out)
        result["file_digests"] = file_digests(out)
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
                "events_per_cpu_s": round(events / result["cpu_s"]),
                "load_1_5_15": [round(x, 2) for x in load],
                "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            }
        )
    )


# One epoch at a size a 2-core machine trains in minutes: a 2,048-window batch
# (about 750 steps on the 30M-event log), a small model, 1,000 users validated
# and evaluated. The same flags for both sides.
TRAIN_FLAGS = [
    *("--epochs", "1", "--batch-size", "2048", "--chunk-batches", "32"),
    *("--hidden-dim", "16", "--num-blocks", "1", "--num-heads", "1", "--max-len", "50"),
    *("--loss", "bce", "--bucket-multiple", "10", "--sparse-item-updates"),
    *("--max-valid-users", "1000", "--max-eval-users", "1000", "--no-sampled-eval"),
    *("--bootstrap", "10", "--no-tensorboard", "--verbose", "2"),
]


_PIPELINE = """
import os
import sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
from sasrec.runtime import configure_threads, keep_freed_memory
keep_freed_memory()
configure_threads()
import tensorflow as tf
from sasrec.data.prepared_stream import PreparedStream
from sasrec.data.streaming_dataset import make_streaming_dataset
def rss():
    return int(open("/proc/self/status").read().split("VmRSS:")[1].split()[0]) // 1024
stream = PreparedStream.open(sys.argv[1])
opened = rss()
windows, _ = stream.epoch_size(50)
dataset = make_streaming_dataset(
    [str(f) for f in stream.files], lambda f: stream.file_windows(f, 50), windows, max_len=50,
    num_items=stream.vocabulary.num_items, batch_size=2048, num_negatives=1, seed=0,
    chunk_batches=32, bucket_multiple=10, exclude_seen=True)
for step, _ in zip(range(400), dataset):
    pass
print(f"opened {opened} MiB, {step + 1} batches")
"""


def _train_side(args: argparse.Namespace) -> None:
    if args.train_side == "pipeline":
        result = run([sys.executable, "-c", _PIPELINE, args.data])
        print(json.dumps({"train_side": "pipeline", "data": args.data, **result,
                          "load_1_5_15": [round(x, 2) for x in os.getloadavg()],
                          "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime())}))  # fmt: skip
        return
    out = Path(tempfile.mkdtemp(prefix="bench-train-side-"))
    source = "--data" if args.train_side == "data" else "--prepared"
    argv = [sys.executable, "-m", "sasrec.cli", "train", "--out", str(out / "model")]
    try:
        result = run([*argv, source, args.data, *TRAIN_FLAGS, *args.train_flag])
        history = json.loads((out / "model" / "1" / "history.json").read_text())
    finally:
        shutil.rmtree(out, ignore_errors=True)
    result["epoch_loss"] = round(history["loss"][0], 4)
    result["training_windows"] = history["training_windows"]
    result["epoch_s"] = round(history["epoch_seconds"][0], 1)
    print(
        json.dumps(
            {
                "train_side": args.train_side,
                "data": args.data,
                "extra_flags": args.train_flag,
                **result,
                "load_1_5_15": [round(x, 2) for x in os.getloadavg()],
                "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
            }
        )
    )


if __name__ == "__main__":
    main()
