"""Serving before/after: two source trees' servers measured alternately, same session.

On a shared machine the load changes from minute to minute, so two builds
measured an hour apart are not comparable. This script starts one
``sasrec serve`` from another source tree (``--before``: e.g. an older
commit unpacked with ``git archive``, its native front end built there with
``bash serving/native/build.sh``) and one from this tree, both idle between
phases, then runs the native load generator against each in turn, for each
concurrency, ``--rounds`` times (the order swapped every round), and prints
the median of each figure per side with the after/before ratio.

The other tree is imported through a folder of symbolic links that gives
its source roots the layout of the installed package (``sasrec`` with
``sasrec.data``, ``sasrec.training``, ``sasrec.cli``, ``sasrec.serving``), put
first on the server's ``PYTHONPATH``; this tree's server uses the
environment's own install.

Usage::

    git archive d15d18f | tar -x -C /tmp/before && bash /tmp/before/serving/native/build.sh
    make loadgen
    .venv/bin/python bench/serving_ab.py --before /tmp/before --model MODEL_DIR \\
        --frontend native python --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_serving  # noqa: E402  (a sibling script, not a package)

# Source roots of the package's subpackages (pyproject's package-dir).
SUBPACKAGES = {
    "cli": "pipelines/sasrec/cli",
    "data": "pipelines/sasrec/data",
    "training": "pipelines/sasrec/training",
    "serving": "serving/sasrec/serving",
}
FIGURES = ("p50_ms", "p99_ms", "throughput_rps", "server_cpu_us_per_req")


def package_view(tree: Path, into: Path) -> Path:
    """A folder whose ``sasrec`` package is ``tree``'s sources, as installed; returns it."""
    package = into / "sasrec"
    package.mkdir(parents=True)
    for entry in (tree / "sasrec").iterdir():
        (package / entry.name).symlink_to(entry)
    for name, source in SUBPACKAGES.items():
        (package / name).symlink_to(tree / source)
    return into


def measure(server: bench_serving.ServerProcess, concurrency: int, histories: Path, args) -> dict:
    before = server.cpu()
    result = bench_serving.run_loadgen("native", server.address, concurrency, histories, args)
    result["server_cpu_us_per_req"] = 1e6 * (server.cpu() - before) / max(1, result["requests"])
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", type=Path, required=True, help="the other source tree")
    parser.add_argument("--model", type=Path, required=True, help="a model version directory")
    parser.add_argument("--frontend", nargs="+", choices=["native", "python"], default=["native"])
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--requests", type=int, default=20000, help="most requests per phase")
    parser.add_argument("--seconds", type=float, default=10.0, help="longest phase")
    parser.add_argument("--json", type=Path, help="also write every phase's result here")
    parser.add_argument(
        "--before-engine", default="numpy", help="--engine of the other tree's server (numpy)"
    )
    parser.add_argument(
        "--after-engine", default="auto", help="--engine of this tree's server (auto)"
    )
    args = parser.parse_args(argv)
    if not bench_serving.NATIVE.exists():
        raise SystemExit(f"{bench_serving.NATIVE} not built: run `make loadgen`")
    # ServerProcess's settings (those of bench_serving.py's defaults).
    args.workers, args.channels, args.max_batch_size = 1, 2, 32
    args.max_wait_ms, args.busy_wait_ms = 0.0, 2.0

    _, histories = bench_serving.load_histories(2000, seed=0)
    rows: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="serving-ab-") as tmp:
        tmp_path = Path(tmp)
        histories_file = tmp_path / "histories.json"
        histories_file.write_text(json.dumps(histories))
        view = package_view(args.before.resolve(), tmp_path / "before")
        before_env = {**os.environ, "PYTHONPATH": str(view)}
        for frontend in list(args.frontend):
            args.frontend = frontend  # read by ServerProcess
            args.engine = args.before_engine  # read by ServerProcess
            servers = {"before": bench_serving.ServerProcess(args.model, args, env=before_env)}
            args.engine = args.after_engine
            servers["after"] = bench_serving.ServerProcess(args.model, args)
            try:
                for round_index in range(args.rounds):
                    order = ("before", "after") if round_index % 2 == 0 else ("after", "before")
                    for concurrency in args.concurrency:
                        for side in order:
                            result = measure(servers[side], concurrency, histories_file, args)
                            result.update(frontend=frontend, side=side, round=round_index)
                            rows.append(result)
                            print(json.dumps(result), flush=True)
            finally:
                for server in servers.values():
                    server.stop()
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    print("\n| front end | c | figure | before (median) | after (median) | after/before |")
    print("| --- | ---: | --- | ---: | ---: | ---: |")
    for frontend in dict.fromkeys(r["frontend"] for r in rows):
        for concurrency in dict.fromkeys(r["concurrency"] for r in rows):
            for figure in FIGURES:
                medians = {
                    side: statistics.median(
                        r[figure]
                        for r in rows
                        if r["frontend"] == frontend
                        and r["concurrency"] == concurrency
                        and r["side"] == side
                    )
                    for side in ("before", "after")
                }
                ratio = medians["after"] / medians["before"] if medians["before"] else float("nan")
                print(
                    f"| {frontend} | {concurrency} | {figure} | {medians['before']:.2f} "
                    f"| {medians['after']:.2f} | {ratio:.2f} |"
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
