"""Retrieval at scale: recall@10 of ANN (index candidates + exact rescoring) vs the full scan,
and gRPC latency of both at concurrency 1 and 32, in the same run.

The histories are real users' most recent items from the log the model was
trained on (``--log``: Games' ``Video.txt`` or a ``bench/synthetic_log.py``
Parquet file); each is answered by the full scan (``--retrieval exact``) and
by :class:`sasrec.engines.ann_engine.AnnEngine` (``--retrieval ann``) with
history exclusion, as the server does; recall@10 is the share of the exact
top 10 found in the ANN top 10. The index is the version's cached one (or
built and tuned here on sampled histories, never on the measured ones).

``--scann-python PY``: also build ScaNN (dot product, k-means tree,
anisotropic hashing, exact reorder of 40, 100 or 400 candidates) on the same
table and queries, in the interpreter ``PY`` (one with ``pip install scann``,
kept out of the project's dependencies), tuned as Faiss is (leaves searched
doubled until recall@10 >= 0.995 on the sampled histories, at the smallest
reorder that gets there) and measured on the same real histories without
exclusions (candidate recall@10, both libraries).

Usage::

    .venv/bin/python bench/synthetic_log.py --events 10000000 --items 1400000 \\
        --out /tmp/log-10m.parquet
    .venv/bin/sasrec train --data /tmp/log-10m.parquet --out /tmp/models-1m --loss gbce \\
        --sparse-item-updates --epochs 1 --hidden-dim 64 --min-item 1 --min-user 3 \\
        --max-valid-users 1000 --max-eval-users 1000 --no-sampled-eval
    .venv/bin/python bench/bench_retrieval.py --model /tmp/models-1m/1 \\
        --log /tmp/log-10m.parquet --latency --scann-python /tmp/scann-venv/bin/python
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parent


def user_histories(log: Path, vocabulary: dict[str, int], max_len: int, users: int, seed: int):
    """``users`` random users' last ``max_len`` known items (raw ids, oldest first)."""
    rng = np.random.default_rng(seed)
    if log.suffix == ".parquet":
        import pyarrow.compute as pc
        import pyarrow.parquet as pq

        # Only the picked users' rows become Python objects: a 10M-event log
        # as pandas strings would take ~9 GB.
        table = pq.read_table(log, columns=["user_id", "item_id", "timestamp"])
        names = pc.unique(table["user_id"])
        chosen = names.take(rng.choice(len(names), size=min(users, len(names)), replace=False))
        table = table.filter(pc.is_in(table["user_id"], value_set=chosen))
        frame = table.to_pandas().sort_values(["user_id", "timestamp"], kind="stable")
        user, item = frame["user_id"].to_numpy(), frame["item_id"].to_numpy()
        picks = None
    else:  # "user item" lines, each user's lines in time order
        pairs = np.loadtxt(log, dtype=str)
        user, item = pairs[:, 0], pairs[:, 1]
    starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
    ends = np.r_[starts[1:], len(user)]
    if log.suffix != ".parquet":
        picks = rng.choice(len(starts), size=min(users, len(starts)), replace=False)
    out = []
    for p in range(len(starts)) if picks is None else picks:
        # The last item is the user's test target: ask for it from the rest.
        seq = [i for i in item[starts[p] : ends[p] - 1] if i in vocabulary]
        if seq:
            out.append(seq[-max_len:])
    return out


def recall_at_10(exact_ids: np.ndarray, ann_ids: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(a, b)) / 10 for a, b in zip(exact_ids, ann_ids)]))


def measure_recall(model_dir: Path, log: Path, users: int) -> tuple[dict, list, dict]:
    from sasrec.artifact import POPULARITY_FILE, counts_by_index, load_model_dir, read_popularity
    from sasrec.engines.ann_engine import AnnEngine
    from sasrec.engines.ann_index import AnnIndex
    from sasrec.engines.numpy_engine import NumpyEngine
    from sasrec.engines.retrieval import build_ann_index, tuning_queries

    artifact = load_model_dir(model_dir)
    exact = NumpyEngine(artifact.model)
    index_of = {str(raw): i + 1 for i, raw in enumerate(artifact.vocabulary.item_ids)}
    start = time.perf_counter()
    index = AnnIndex.load(model_dir, exact.item_table)
    source = "cached in the version"
    if index is None:
        counts = counts_by_index(
            read_popularity(model_dir / POPULARITY_FILE), index_of, exact.num_items
        )
        index = build_ann_index(exact, counts)
        index.save(model_dir)
        source = "built and tuned here"
    index_seconds = time.perf_counter() - start
    ann = AnnEngine(exact, index)
    histories = user_histories(log, index_of, exact.max_len, users, seed=0)
    encoded = [np.asarray([index_of[i] for i in h], dtype=np.int32) for h in histories]
    exact_ids, ann_ids, queries = [], [], []
    for s in range(0, len(encoded), 32):
        chunk = encoded[s : s + 32]
        exact_ids.append(exact.top_k(chunk, 10).ids)
        ann_ids.append(ann.top_k(chunk, 10).ids)
        queries.append(exact.encode(chunk)[1])
    exact_ids, ann_ids = np.concatenate(exact_ids), np.concatenate(ann_ids)
    queries = np.concatenate(queries)
    faiss_single = _single_query_ms(lambda q: index.search(q, 40), queries)
    # A harder set: histories of items drawn uniformly (the long tail), whose
    # states point away from the popular head that real histories favour.
    uniform = tuning_queries(exact, None, count=500, seed=1)
    result = {
        "items": exact.num_items,
        "dim": int(exact.item_table.shape[1]),
        "queries": len(encoded),
        "nlist": index.nlist,
        "nprobe": index.nprobe,
        "index": source,
        "index_seconds": round(index_seconds, 1),
        "recall_at_10_served": round(recall_at_10(exact_ids, ann_ids), 4),
        "full_scans": ann.full_scans,
        "faiss_candidate_recall_at_10": round(
            recall_at_10(_exact_top10(exact.item_table, queries), index.search(queries, 40)), 4
        ),
        "faiss_search_ms_per_query": round(faiss_single, 3),
        "faiss_candidate_recall_at_10_uniform_histories": round(
            recall_at_10(_exact_top10(exact.item_table, uniform), index.search(uniform, 40)), 4
        ),
    }
    return result, histories, {"table": exact.item_table, "queries": queries, "exact": exact}


def _exact_top10(table: np.ndarray, queries: np.ndarray) -> np.ndarray:
    out = []
    for s in range(0, len(queries), 64):
        scores = queries[s : s + 64] @ table.T
        scores[:, 0] = -np.inf
        out.append(np.argpartition(-scores, 9, axis=1)[:, :10])
    return np.concatenate(out)


def _single_query_ms(search, queries: np.ndarray) -> float:
    times = []
    for q in queries[:300]:
        t0 = time.perf_counter()
        search(q[None])
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def run_scann(python: str, parts: dict) -> dict:
    """ScaNN on the same table and queries, in another interpreter (see the module doc)."""
    from sasrec.engines.retrieval import tuning_queries

    with tempfile.TemporaryDirectory(prefix="bench-scann-") as tmp:
        np.save(f"{tmp}/table.npy", parts["table"][1:])  # ids 0..N-1 = rows 1..N
        np.save(f"{tmp}/queries.npy", parts["queries"])
        np.save(f"{tmp}/tuning.npy", tuning_queries(parts["exact"]))
        done = subprocess.run(
            [python, __file__, "--scann-worker", tmp],
            capture_output=True,
            text=True,
            timeout=1800,
            check=False,
        )
    if done.returncode != 0:
        # ScaNN logs every step on stderr: keep the lines that are not its logs.
        lines = [x for x in done.stderr.splitlines() if not x.startswith(("I0000", "W0000"))]
        return {"error": f"exit {done.returncode}: " + " | ".join(lines[-5:])}
    return json.loads(done.stdout.strip().splitlines()[-1])


def scann_worker(folder: str) -> int:
    """Runs in the ScaNN interpreter: NumPy and ScaNN only."""
    import scann

    table = np.load(f"{folder}/table.npy")
    queries = np.load(f"{folder}/queries.npy")
    tuning = np.load(f"{folder}/tuning.npy")
    leaves = max(1, int(round(np.sqrt(len(table)))))
    start = time.perf_counter()
    searcher = (
        scann.scann_ops_pybind.builder(table, 40, "dot_product")
        .tree(
            num_leaves=leaves,
            num_leaves_to_search=1,
            training_sample_size=min(len(table), 64 * leaves),
        )
        .score_ah(2, anisotropic_quantization_threshold=0.2)
        .reorder(400)
        .build()
    )
    build_seconds = time.perf_counter() - start

    def top10(q: np.ndarray) -> np.ndarray:
        out = []
        for s in range(0, len(q), 64):
            scores = q[s : s + 64] @ table.T
            out.append(np.argpartition(-scores, 9, axis=1)[:, :10])
        return np.concatenate(out)

    def found(q: np.ndarray, probe: int, reorder: int) -> np.ndarray:
        ids, _ = searcher.search_batched(
            q, final_num_neighbors=40, pre_reorder_num_neighbors=reorder, leaves_to_search=probe
        )
        return ids

    # The fewest leaves, then the smallest exact reorder, that reach the target.
    truth_tuning = top10(tuning)
    for reorder in (40, 100, 400):
        probe = 1
        while probe < leaves and recall_at_10(truth_tuning, found(tuning, probe, reorder)) < 0.995:
            probe *= 2
        probe = min(probe, leaves)
        if recall_at_10(truth_tuning, found(tuning, probe, reorder)) >= 0.995:
            break
    times = []
    for q in queries[:300]:
        t0 = time.perf_counter()
        searcher.search(
            q, final_num_neighbors=40, pre_reorder_num_neighbors=reorder, leaves_to_search=probe
        )
        times.append(time.perf_counter() - t0)
    print(
        json.dumps(
            {
                "leaves": leaves,
                "leaves_to_search": probe,
                "reorder": reorder,
                "build_seconds": round(build_seconds, 1),
                "scann_candidate_recall_at_10": round(
                    recall_at_10(top10(queries), found(queries, probe, reorder)), 4
                ),
                "scann_search_ms_per_query": round(1000 * float(np.median(times)), 3),
            }
        )
    )
    return 0


def measure_latency(model_dir: Path, histories: list, args) -> list[dict]:
    """gRPC p50/p99 of the same server binary with --retrieval exact, then ann."""
    sys.path.insert(0, str(BENCH))
    import bench_serving

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-retrieval-") as tmp:
        histories_file = Path(tmp) / "histories.json"
        histories_file.write_text(json.dumps(histories))
        for retrieval in ("exact", "ann"):
            server_args = argparse.Namespace(
                workers=1, max_batch_size=32, max_wait_ms=0.0, busy_wait_ms=2.0,
                engine="numpy", frontend=args.frontend, retrieval=retrieval,
                requests=args.requests, seconds=args.seconds, channels=2,
            )  # fmt: skip
            server = bench_serving.ServerProcess(model_dir, server_args)
            try:
                for concurrency in (1, 32):
                    result = bench_serving.run_loadgen(
                        args.generator, server.address, concurrency, histories_file, server_args
                    )
                    result["retrieval"] = retrieval
                    results.append(result)
            finally:
                server.stop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", type=Path, help="a version directory")
    parser.add_argument("--log", type=Path, help="the log the model was trained on")
    parser.add_argument("--users", type=int, default=2000, help="histories measured")
    parser.add_argument("--latency", action="store_true", help="also gRPC p50/p99, exact vs ann")
    parser.add_argument("--requests", type=int, default=3000, help="most requests per phase")
    parser.add_argument("--seconds", type=float, default=20.0, help="longest phase")
    parser.add_argument("--frontend", choices=["python", "native"], default="python")
    parser.add_argument(
        "--generator",
        choices=["native", "python"],
        default="native" if (BENCH / "loadgen" / "build" / "loadgen").exists() else "python",
    )
    parser.add_argument("--scann-python", help="an interpreter with scann installed")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--scann-worker", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.scann_worker:
        return scann_worker(args.scann_worker)
    if args.model is None or args.log is None:
        parser.error("--model and --log are required")
    from sasrec.runtime import configure_threads, limit_blas_threads

    configure_threads(1, 1)
    limit_blas_threads(1)
    from sasrec.engines.ann_index import limit_faiss_threads

    limit_faiss_threads(1)
    out: dict = {}
    out["recall"], histories, parts = measure_recall(args.model, args.log, args.users)
    print(json.dumps(out["recall"]), flush=True)
    if args.scann_python:
        out["scann"] = run_scann(args.scann_python, parts)
        print(json.dumps(out["scann"]), flush=True)
    del parts
    if args.latency:
        out["latency"] = measure_latency(args.model, histories, args)
        print("\n| retrieval | concurrency | requests | p50 ms | p99 ms | req/s | errors |")
        print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
        for r in out["latency"]:
            print(
                f"| {r['retrieval']} | {r['concurrency']} | {r['requests']} | {r['p50_ms']:.2f} "
                f"| {r['p99_ms']:.2f} | {r['throughput_rps']:.0f} | {r.get('errors', 0)} |"
            )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
