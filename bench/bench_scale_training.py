"""Training at scale: a ~1M-event log with a few 100k items, dense vs sparse, 1 vs 2 workers.

Every run is the ``sasrec train`` command in a child process, on a log made
by ``bench/synthetic_log.py`` (Zipf head plus sessions, string ids, Parquet;
written once to ``--log`` and reused). The catalogue is far past the full
softmax's memory budget, so the default command trains with gBCE (256
negatives per sequence) and publishes a version. Measured per run:

* seconds per epoch (``history.json``, validation excluded) and the whole
  command's wall time;
* peak RSS of the process (``wait4``'s ``ru_maxrss``, per worker);
* steps per second per worker and, for ``--strategy multi-worker`` with 1
  and 2 local workers (``TF_CONFIG`` on 127.0.0.1, one core each through
  ``sched_setaffinity``), the scaling efficiency: windows per second with 2
  workers / (2 x windows per second with 1). On 2 cores shared by both
  workers (and, here, by other users' jobs) no speed-up is expected: the
  figure measures the collectives' overhead, not a multi-machine speed-up.

Runs are one epoch each (``--epochs``): the seconds of the first epoch
include TensorFlow's tracing. The timing runs (all but the default one)
validate and evaluate on 1,000 users to keep the benchmark short.

Usage::

    .venv/bin/python bench/bench_scale_training.py            # all runs, ~25 min on 2 cores
    .venv/bin/python bench/bench_scale_training.py --runs default sparse
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

ROOT = Path(__file__).resolve().parent.parent
RUNS = ("default", "dense", "sparse", "workers-1", "workers-2")
# The command: a shop log with short histories keeps users of 2 events.
DATA_ARGS = ["--min-user", "2", "--min-item", "1"]
MODEL_ARGS = ["--hidden-dim", "64"]
SHORT_EVAL = ["--max-valid-users", "1000", "--max-eval-users", "1000", "--bootstrap", "100"]


def make_log(path: Path, events: int, items: int, seed: int) -> None:
    if path.exists():
        return
    sys.path.insert(0, str(ROOT / "bench"))
    import pyarrow.parquet as pq
    from synthetic_log import synthetic_log

    table = synthetic_log(events=events, items=items, seed=seed)
    tmp = path.with_suffix(".tmp.parquet")
    pq.write_table(table, tmp)
    os.replace(tmp, path)


def _train_argv(out: Path, log: Path, epochs: int, extra: list[str]) -> list[str]:
    return [
        sys.executable,
        "-m",
        "sasrec.cli",
        "train",
        "--out",
        str(out),
        "--data",
        str(log),
        *DATA_ARGS,
        *MODEL_ARGS,
        "--epochs",
        str(epochs),
        "--verbose",
        "2",
        "--no-tensorboard",
        *extra,
    ]


def run_processes(argvs: list[list[str]], envs: list[dict[str, str]], cores: list[int | None]):
    """Starts every command, waits for all; returns (wall seconds, [peak RSS MiB], [exit code])."""
    started = time.perf_counter()
    procs = []
    for argv, env, core in zip(argvs, envs, cores):
        affinity = None if core is None else (lambda c=core: os.sched_setaffinity(0, {c}))
        procs.append(
            subprocess.Popen(
                argv,
                env=env,
                preexec_fn=affinity,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    peaks, codes, outputs = [], [], []
    for proc in procs:
        output = proc.stdout.read()
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
        peaks.append(usage.ru_maxrss / 1024)
        codes.append(proc.returncode)
        outputs.append(output)
    wall = time.perf_counter() - started
    for code, output in zip(codes, outputs):
        if code != 0:
            print(output[-4000:], file=sys.stderr)
    return wall, peaks, codes


def measure(name: str, log: Path, work: Path, epochs: int) -> dict:
    out = work / name
    shutil.rmtree(out, ignore_errors=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    if name == "default":
        argvs = [_train_argv(out, log, epochs, ["--sparse-item-updates"])]
        envs, cores = [env], [None]
    elif name in ("dense", "sparse"):
        extra = SHORT_EVAL + (["--sparse-item-updates"] if name == "sparse" else [])
        argvs, envs, cores = [_train_argv(out, log, epochs, extra)], [env], [None]
    else:
        from sasrec.training.distribution import local_cluster

        argvs, envs, cores = [], [], []
        for i, tf_config in enumerate(local_cluster(int(name.split("-")[1]))):
            extra = SHORT_EVAL + ["--sparse-item-updates", "--strategy", "multi-worker"]
            argvs.append(_train_argv(out, log, epochs, extra))
            envs.append({**env, "TF_CONFIG": tf_config})
            cores.append(i % os.cpu_count())
    load = os.getloadavg()[0]
    wall, peaks, codes = run_processes(argvs, envs, cores)
    result = {"run": name, "wall_s": round(wall, 1), "peak_rss_mib": [round(p) for p in peaks]}
    result["load_1min_before"] = round(load, 2)
    result["exit_codes"] = codes
    versions = sorted(p for p in out.iterdir() if p.name.isdigit()) if out.exists() else []
    if versions:
        version = versions[-1]
        history = json.loads((version / "history.json").read_text())
        training = json.loads((version / "training.json").read_text())
        replicas = len(argvs) if name.startswith("workers") else 1
        global_batch = training["train"]["batch_size"] * replicas
        steps = -(-history["training_windows"] // global_batch)
        seconds = history["epoch_seconds"]
        result.update(
            version=str(version),
            loss=training["model"]["loss"],
            num_items=training["model"]["num_items"],
            training_windows=history["training_windows"],
            steps_per_epoch=steps,
            epoch_seconds=[round(s, 1) for s in seconds],
            steps_per_s_per_worker=round(steps / seconds[-1], 2),
            windows_per_s=round(history["training_windows"] / seconds[-1], 1),
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--items", type=int, default=300_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--runs", nargs="+", choices=RUNS, default=list(RUNS))
    parser.add_argument(
        "--log", type=Path, default=Path(tempfile.gettempdir()) / "sasrec-scale-1m.parquet"
    )
    parser.add_argument("--work", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    make_log(args.log, args.events, args.items, args.seed)
    work = args.work or Path(tempfile.mkdtemp(prefix="sasrec-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.runs:
        result = measure(name, args.log, work, args.epochs)
        print(json.dumps(result), flush=True)
        results.append(result)
    by_name = {r["run"]: r for r in results}
    if "windows_per_s" in by_name.get("workers-1", {}) and "windows_per_s" in by_name.get(
        "workers-2", {}
    ):
        efficiency = by_name["workers-2"]["windows_per_s"] / (
            2 * by_name["workers-1"]["windows_per_s"]
        )
        print(json.dumps({"scaling_efficiency_2_workers": round(efficiency, 2)}), flush=True)
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
