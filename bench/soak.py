"""Soak: mixed valid and hostile load on a hot-reloading server; two reloads, one corrupt version.

Usage::

    .venv/bin/python bench/soak.py --frontend python --minutes 10 --concurrency 32
    .venv/bin/python bench/soak.py --frontend native --minutes 10 --concurrency 32
    .venv/bin/python bench/soak.py --frontend native --minutes 0.5   # quick check (CI)

What it does:

* writes a versions root with version 1, a SASRec of ``--items`` items
  (default 23,715, the Amazon "Games" size; d=50, 2 blocks, max length 50,
  untrained, fixed seeds), and starts ``sasrec serve`` on it (a free loopback
  port, ``--auth-token``, ``--poll-seconds 1``), as ``bench/hostile_requests.py``
  does;
* runs the load in a separate child process (this script with ``--loadgen``),
  so model publishing in this process never steals the load's GIL:
  ``--concurrency`` threads, each a closed loop of calls on two connections of
  its own (one for valid calls, one for hostile ones, as separate clients),
  about 90% valid calls (Recommend 80%, RecommendBatch of 4 15%,
  GetModelInfo 5%; known ids, random k 1..20) and 10% hostile calls drawn
  from the single-call cases of ``hostile_requests.build_corpus`` (random and
  truncated bodies, invalid UTF-8, bad fields, bad tokens, tiny deadlines,
  junk metadata, unknown methods, reflection; each must get its documented
  code);
* at 30% and 50% of the run publishes versions 2 and 3 with
  ``sasrec.artifact.publish_version`` (staging directory + rename, as
  ``sasrec train`` does); at 70% publishes a corrupt version 4 (a copy of
  version 3 whose ``model.keras`` is cut in half, renamed into place from a
  staging directory), which the server must reject while it keeps serving 3;
* samples the server's RSS (``VmRSS``) every 5 s; "start" is the first
  sample after the warm-up (10% of the run, at most 60 s).

Pass criteria (exit 1 otherwise): no valid call failed; no hostile call got a
code outside its case's expected set; versions 2 and 3 were served (from the
responses' ``model_version``), version 4 never, 3 at the end; the server
never died, its health is SERVING at the end, it exits 0 on SIGTERM, and its
log holds no traceback and no ERROR line other than the one
``rejected model version`` line for version 4; RSS grew by less than 10%
from start to end.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
import hostile_requests as hr  # noqa: E402

from sasrec.serving.v1 import recommender_pb2 as pb  # noqa: E402

MAX_LEN = 50


# ------------------------------------------------------------------ load (child)


def hostile_pool(skip: list[str] | tuple[str, ...] = ()) -> list[hr.Case]:
    """The corpus's single-call cases (a hostile call: a random case, then one of its calls).

    Cases whose name contains one of ``skip`` are left out.
    """
    return [
        c
        for c in hr.build_corpus(with_auth=True)
        if c.single and c.custom is None and not any(text in c.name for text in skip)
    ]


def loadgen(args: argparse.Namespace) -> int:
    token = args.token
    pool = hostile_pool(args.skip_case)
    md = hr.resolve_metadata((hr.AUTH,), token)
    items = [f"sku-{i}" for i in range(1, args.items + 1)]
    end = time.monotonic() + args.seconds
    t0 = time.monotonic()
    lock = threading.Lock()
    valid = Counter()  # code -> count
    valid_fail_examples: list[str] = []
    hostile = Counter()  # code -> count
    unexpected = Counter()  # (case, code) -> count
    versions: dict[str, list[float]] = {}  # version -> [first seen, last seen] (s from start)

    def saw(version: str) -> None:
        now = round(time.monotonic() - t0, 1)
        span = versions.setdefault(version, [now, now])
        span[0], span[1] = min(span[0], now), max(span[1], now)

    def worker(seed: int) -> None:
        rng = random.Random(seed)
        # Valid and hostile calls on separate connections, as separate clients' would be
        # (open_channel: a local subchannel pool, not grpcio's shared connection).
        with (
            hr.open_channel(args.address) as channel,
            hr.open_channel(args.address) as hostile_channel,
        ):
            recommend = channel.unary_unary(
                hr.RECOMMEND,
                request_serializer=pb.RecommendRequest.SerializeToString,
                response_deserializer=pb.RecommendResponse.FromString,
            )
            batch = channel.unary_unary(
                hr.BATCH,
                request_serializer=pb.RecommendBatchRequest.SerializeToString,
                response_deserializer=pb.RecommendBatchResponse.FromString,
            )
            info = channel.unary_unary(
                hr.INFO,
                request_serializer=pb.GetModelInfoRequest.SerializeToString,
                response_deserializer=pb.ModelInfo.FromString,
            )

            def request() -> pb.RecommendRequest:
                history = rng.sample(items, rng.randint(1, MAX_LEN))
                return pb.RecommendRequest(history=history, k=rng.randint(1, 20))

            while time.monotonic() < end:
                if rng.random() < 0.10:
                    case = rng.choice(pool)
                    code = hr.run_call(hostile_channel, rng.choice(case.calls), token)
                    with lock:
                        hostile[code] += 1
                        if code not in case.expected:
                            unexpected[f"{case.name}: {code}"] += 1
                    continue
                pick = rng.random()
                try:
                    if pick < 0.80:
                        req = request()
                        answer = recommend(req, timeout=30, metadata=md)
                        good, version = len(answer.items) == req.k, answer.model_version
                    elif pick < 0.95:
                        reqs = [request() for _ in range(4)]
                        answer = batch(pb.RecommendBatchRequest(requests=reqs), timeout=30,
                                       metadata=md)  # fmt: skip
                        good = [len(r.items) for r in answer.responses] == [r.k for r in reqs]
                        version = answer.responses[0].model_version
                    else:
                        answer = info(pb.GetModelInfoRequest(), timeout=30, metadata=md)
                        good = answer.num_items == args.items
                        version = answer.model_version
                    code = "OK" if good else "OK_BUT_WRONG_ANSWER"
                except grpc.RpcError as err:
                    code, version = err.code().name, None
                    with lock:
                        if len(valid_fail_examples) < 10:
                            valid_fail_examples.append(f"{code}: {err.details()}")
                with lock:
                    valid[code] += 1
                    if version is not None:
                        saw(version)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    result = {
        "valid": dict(valid),
        "valid_fail_examples": valid_fail_examples,
        "hostile": dict(hostile),
        "unexpected": dict(unexpected),
        "versions": {v: span for v, span in sorted(versions.items(), key=lambda kv: kv[1][0])},
        "seconds": round(time.monotonic() - t0, 1),
    }
    print(json.dumps(result))
    return 0


# ------------------------------------------------------------- driver (parent)


def write_version(target: Path, items: list[str], seed: int) -> None:
    import keras

    from sasrec.artifact import save_model_dir
    from sasrec.models import SASRec
    from sasrec.vocabulary import ItemVocabulary

    keras.utils.set_random_seed(seed)
    model = SASRec(num_items=len(items), max_len=MAX_LEN, hidden_dim=50, num_blocks=2,
                   num_heads=1, dropout=0.0)  # fmt: skip
    save_model_dir(target, model, ItemVocabulary(items))


def publish_good(root: Path, items: list[str], seed: int) -> Path:
    from sasrec.artifact import publish_version

    return publish_version(root, lambda target: write_version(target, items, seed))


def publish_corrupt(root: Path, source: Path) -> Path:
    """A copy of ``source`` with ``model.keras`` cut in half, renamed in as the next number."""
    number = max(int(p.name) for p in root.iterdir() if p.name.isdigit()) + 1
    staging = root / f".tmp-corrupt-{number}"
    shutil.copytree(source, staging)
    model = staging / "model.keras"
    data = model.read_bytes()
    model.write_bytes(data[: len(data) // 2])
    manifest = json.loads((staging / "manifest.json").read_text())
    if "version" in manifest:
        manifest["version"] = number
        (staging / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True))
    final = root / str(number)
    os.rename(staging, final)
    return final


def uptime() -> str:
    return subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frontend", choices=["python", "native"], default="python")
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--items", type=int, default=23_715, help="model size (items)")
    parser.add_argument(
        "--skip-case",
        action="append",
        default=[],
        metavar="TEXT",
        help="leave out the hostile cases whose name contains TEXT (repeatable)",
    )
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--keep-log", type=Path, help="copy the server log here")
    parser.add_argument("--loadgen", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--address", help=argparse.SUPPRESS)
    parser.add_argument("--seconds", type=float, help=argparse.SUPPRESS)
    parser.add_argument("--token", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loadgen:
        return loadgen(args)

    seconds = 60.0 * args.minutes
    items = [f"sku-{i}" for i in range(1, args.items + 1)]
    load_at_start = uptime()
    started_at = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        tmp_path = Path(tmp)
        root = tmp_path / "models"
        publish_good(root, items, seed=1)
        log_path = tmp_path / "server.log"
        server = hr.Server(root, args.frontend, log_path, token=hr.TOKEN, poll_seconds=1)
        rss: list[tuple[float, int]] = []
        events: list[str] = []
        alive_throughout = True
        try:
            load = subprocess.Popen(
                [sys.executable, __file__, "--loadgen", "--address", server.address,
                 "--seconds", str(seconds), "--concurrency", str(args.concurrency),
                 "--token", hr.TOKEN, "--items", str(args.items),
                 *(f"--skip-case={text}" for text in args.skip_case)],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            t0 = time.monotonic()
            plan = [(0.30, "good", 2), (0.50, "good", 3), (0.70, "corrupt", 4)]
            next_sample = 0.0
            while load.poll() is None:
                now = time.monotonic() - t0
                if now >= next_sample:
                    rss.append((round(now, 1), server.rss_kb()))
                    next_sample += 5.0
                    if not server.alive():
                        alive_throughout = False
                        load.kill()
                        break
                if plan and now >= plan[0][0] * seconds:
                    _, kind, number = plan.pop(0)
                    if kind == "good":
                        path = publish_good(root, items, seed=number)
                    else:
                        path = publish_corrupt(root, root / "3")
                    assert path.name == str(number), path
                    events.append(f"{now:.0f} s: published {kind} version {number}")
                time.sleep(0.2)
            out, _ = load.communicate(timeout=120)
            rss.append((round(time.monotonic() - t0, 1), server.rss_kb()))
            alive = server.alive() and alive_throughout
            health = server.health() if alive else "DEAD"
            info_version = None
            if alive:
                with hr.open_channel(server.address) as channel:
                    raw = channel.unary_unary(hr.INFO)(
                        b"", timeout=10, metadata=hr.resolve_metadata((hr.AUTH,), hr.TOKEN)
                    )
                    info_version = pb.ModelInfo.FromString(raw).model_version
        finally:
            exit_code = server.stop()
            if args.keep_log:
                args.keep_log.write_text(log_path.read_text(errors="replace"))
            log_lines = log_path.read_text(errors="replace").splitlines()
    load_at_end = uptime()

    result = json.loads(out.strip().splitlines()[-1])
    loud = [line for line in log_lines if hr.LOUD.search(line)]
    rejected = [line for line in loud if '"msg": "rejected model version' in line]
    other_loud = [line for line in loud if line not in rejected]
    warm = min(60.0, 0.1 * seconds)
    start_rss = next((kb for t, kb in rss if t >= warm), rss[-1][1])
    end_rss = rss[-1][1]
    growth = 100.0 * (end_rss - start_rss) / max(1, start_rss)
    valid_total = sum(result["valid"].values())
    valid_failed = valid_total - result["valid"].get("OK", 0)
    hostile_total = sum(result["hostile"].values())
    versions = result["versions"]
    checks = {
        "no valid call failed": valid_failed == 0,
        "no hostile call got an unexpected code": not result["unexpected"],
        "versions 2 and 3 served, 4 never": {"2", "3"} <= set(versions) and "4" not in versions,
        "version 3 at the end (GetModelInfo)": info_version == "3",
        "corrupt version 4 rejected (one log line)": len(rejected) == 1 and "/4" in rejected[0],
        "server alive throughout, SERVING at the end": alive and health == "SERVING",
        "exit code 0 on SIGTERM": exit_code == 0,
        "no traceback / other ERROR in the log": not other_loud,
        "RSS growth < 10%": growth < 10.0,
    }
    summary = {
        "frontend": args.frontend,
        "minutes": args.minutes,
        "concurrency": args.concurrency,
        "items": args.items,
        "skipped_cases": args.skip_case,
        "date": started_at,
        "uptime_start": load_at_start,
        "uptime_end": load_at_end,
        "calls": valid_total + hostile_total,
        "valid_calls": valid_total,
        "valid_failed": valid_failed,
        "valid_codes": result["valid"],
        "valid_fail_examples": result["valid_fail_examples"],
        "hostile_calls": hostile_total,
        "hostile_by_code": result["hostile"],
        "hostile_unexpected": result["unexpected"],
        "versions_seen": versions,
        "version_at_end": info_version,
        "events": events,
        "rss_start_mb": round(start_rss / 1024, 1),
        "rss_end_mb": round(end_rss / 1024, 1),
        "rss_growth_pct": round(growth, 2),
        "rss_samples_mb": [(t, round(kb / 1024, 1)) for t, kb in rss],
        "health_end": health,
        "exit_code": exit_code,
        "log_error_lines": other_loud[:20],
        "checks": checks,
    }
    print(f"\nsoak: frontend={args.frontend}, {args.minutes} min, concurrency {args.concurrency}, "
          f"{args.items} items, started {started_at}")  # fmt: skip
    print(f"load at start: {load_at_start}\nload at end:   {load_at_end}")
    for e in events:
        print(f"  {e}")
    print(f"calls: {summary['calls']} ({valid_total} valid, {hostile_total} hostile) "
          f"in {result['seconds']} s")  # fmt: skip
    print(f"valid failed: {valid_failed} {result['valid_fail_examples'][:3]}")
    print(f"hostile by code: {dict(sorted(result['hostile'].items()))}")
    print(f"hostile unexpected: {result['unexpected']}")
    spans = ", ".join(f"v{v} {s[0]:.0f}-{s[1]:.0f} s" for v, s in versions.items())
    print(f"versions served (first-last response): {spans}; GetModelInfo at end: v{info_version}")
    print(f"RSS start {summary['rss_start_mb']} MB (at {warm:.0f} s), "
          f"end {summary['rss_end_mb']} MB, growth {growth:+.2f}%")  # fmt: skip
    print(f"health at end: {health}; exit code on SIGTERM: {exit_code}; "
          f"other ERROR/traceback log lines: {len(other_loud)}")  # fmt: skip
    for line in other_loud[:10]:
        print(f"    {line[:300]}")
    print()
    for name, passed in checks.items():
        print(f"  [{'ok' if passed else 'FAIL'}] {name}")
    ok = all(checks.values())
    print("\nRESULT:", "PASS" if ok else "FAIL")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
