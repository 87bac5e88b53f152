"""``sasrec serve`` and ``sasrec recommend``: registered into the ``sasrec`` CLI.

Only argparse runs at import time; gRPC and TensorFlow load inside the handlers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

# The engine registry imports neither NumPy nor TensorFlow: only names.
from sasrec.engines.registry import DEFAULT_ENGINE, ENGINES
from sasrec.engines.retrieval import ANN_MIN_ITEMS, DEFAULT_RETRIEVAL, RETRIEVALS
from sasrec.serving.event_store import (
    DEFAULT_CAPACITY,
    DEFAULT_MAX_EVENTS_PER_CALL,
    DEFAULT_TTL_SECONDS,
)
from sasrec.serving.server_options import TOKEN_ENV


def register(subparsers: Any) -> None:
    """Adds ``serve`` and ``recommend`` to the ``sasrec`` sub-command parsers."""
    serve = subparsers.add_parser(
        "serve",
        help="serve a model over gRPC (health, reflection, metrics, hot reload)",
        description="Serve a model directory over gRPC. See docs/serving.md.",
    )
    serve.add_argument(
        "--model",
        required=True,
        type=Path,
        help="versions root written by `sasrec train --out` (hot reload) or one version dir",
    )
    serve.add_argument(
        "--host",
        default="127.0.0.1",
        help="interface for gRPC and /metrics (default: loopback; 0.0.0.0 or [::] in containers)",
    )
    serve.add_argument("--port", type=int, default=50051, help="gRPC port (0: any free port)")
    serve.add_argument("--max-batch-size", type=int, default=32, help="requests per model call")
    serve.add_argument(
        "--max-wait-ms",
        type=float,
        default=0.0,
        help="wait this long for more requests after the first of a batch (default 0)",
    )
    serve.add_argument(
        "--busy-wait-ms",
        type=float,
        default=2.0,
        help="under load (previous batch > 1 request), wait up to this long to batch as many "
        "as last time (0: off)",
    )
    serve.add_argument(
        "--max-concurrent",
        type=int,
        default=256,
        help="concurrent calls accepted; more get RESOURCE_EXHAUSTED",
    )
    serve.add_argument(
        "--max-queue",
        type=int,
        default=0,
        help="queued requests before RESOURCE_EXHAUSTED (0: off)",
    )
    serve.add_argument(
        "--grace-seconds", type=float, default=10.0, help="on SIGTERM: time for calls in flight"
    )
    serve.add_argument(
        "--drain-seconds",
        type=float,
        default=0.0,
        help="on SIGTERM: report NOT_SERVING this long before refusing new calls",
    )
    serve.add_argument(
        "--poll-seconds", type=float, default=10.0, help="hot-reload polling interval (0: off)"
    )
    serve.add_argument(
        "--metrics-port", type=int, default=0, help="Prometheus /metrics HTTP port (0: off)"
    )
    serve.add_argument("--tls-cert", type=Path, help="PEM certificate chain (TLS on)")
    serve.add_argument("--tls-key", type=Path, help="PEM private key")
    serve.add_argument(
        "--auth-token",
        default=None,
        help=f"require 'authorization: Bearer TOKEN' (default: env {TOKEN_ENV})",
    )
    serve.add_argument(
        "--intra-op-threads", type=int, default=0, help="TensorFlow threads (0: all cores)"
    )
    serve.add_argument(
        "--engine",
        choices=ENGINES,
        default=DEFAULT_ENGINE,
        help="scoring engine (auto: compiled when its kernel is built, else numpy; compiled: "
        "lowest latency, the numpy engine in C++; tensorflow: the exported graph)",
    )
    serve.add_argument(
        "--retrieval",
        choices=RETRIEVALS,
        default=DEFAULT_RETRIEVAL,
        help=f"exact: score every item; ann: index candidates (Faiss IVF) rescored exactly; "
        f"auto: ann from {ANN_MIN_ITEMS:,} items on (not with the tensorflow engine)",
    )
    serve.add_argument(
        "--blas-threads", type=int, default=1, help="NumPy BLAS threads (numpy engines)"
    )
    serve.add_argument(
        "--keep-versions",
        type=int,
        default=1,
        help="model versions served at once, the highest ones (labels: canary = newest, "
        "stable = the one before)",
    )
    serve.add_argument(
        "--canary-percent",
        type=float,
        default=0.0,
        help="share of unpinned requests the canary version answers (by user_id hash when set)",
    )
    serve.add_argument(
        "--version-label",
        action="append",
        default=[],
        metavar="LABEL=VERSION",
        help="pin a label (stable, canary) to a version number; repeatable",
    )
    serve.add_argument(
        "--frontend",
        choices=["python", "native"],
        default="python",
        help="gRPC front end: python (grpcio asyncio) or native (C++, calls reach Python "
        "in batches; build it with `make native`)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="server processes sharing the port (SO_REUSEPORT; one scoring thread each)",
    )
    serve.add_argument(
        "--http-port",
        type=int,
        default=None,
        help="also serve HTTP/JSON on this port (/v1/recommend, /v1/events, /v1/model, "
        "/healthz; 0: any free port; default: off)",
    )
    events = serve.add_argument_group("server-side history (RecordEvents, Recommend by user_id)")
    events.add_argument(
        "--event-store",
        default=None,
        help="keep users' events in sqlite:PATH (embedded) or redis://HOST:PORT[/DB] "
        "(shared by replicas; Redis must run with --appendonly yes --appendfsync always); "
        "default: keep none",
    )
    events.add_argument(
        "--event-ttl-seconds",
        type=float,
        default=DEFAULT_TTL_SECONDS,
        help=f"drop events older than this (default {DEFAULT_TTL_SECONDS:.0f}: 30 days)",
    )
    events.add_argument(
        "--stored-events",
        type=int,
        default=DEFAULT_CAPACITY,
        help=f"most recent events kept per user (default {DEFAULT_CAPACITY})",
    )
    events.add_argument(
        "--max-events-per-call",
        type=int,
        default=DEFAULT_MAX_EVENTS_PER_CALL,
        help=f"most events in one RecordEvents call (default {DEFAULT_MAX_EVENTS_PER_CALL})",
    )
    serve.add_argument("--log-level", default="INFO", help="DEBUG logs every call")
    serve.set_defaults(func=run_serve)

    rec = subparsers.add_parser(
        "recommend",
        help="ask a running server for recommendations",
        description="Query a `sasrec serve` server and print a table.",
    )
    rec.add_argument("--server", default="localhost:50051", help="HOST:PORT")
    rec.add_argument(
        "--history", default="", help="comma-separated item ids, oldest first (or --user-id)"
    )
    rec.add_argument(
        "--user-id",
        default="",
        help="the user: a server with --event-store reads the user's stored events "
        "(put before --history)",
    )
    rec.add_argument("--k", type=int, default=10, help="items wanted")
    rec.add_argument(
        "--explain",
        action="store_true",
        help="show the history items behind each item",
    )
    rec.add_argument("--include-history", action="store_true", help="allow history items")
    rec.add_argument("--allow", default="", help="comma-separated ids: only these")
    rec.add_argument("--exclude", default="", help="comma-separated ids: never these")
    rec.add_argument("--timeout", type=float, default=5.0, help="deadline in seconds")
    rec.add_argument("--token", default=None, help=f"bearer token (default: env {TOKEN_ENV})")
    rec.add_argument("--tls-ca", type=Path, help="PEM CA certificate: connect with TLS")
    rec.add_argument("--json", action="store_true", help="print JSON instead of a table")
    rec.set_defaults(func=run_recommend)


def _split(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def run_serve(args: argparse.Namespace) -> int:
    from sasrec.serving.json_log_formatter import configure_json_logging
    from sasrec.serving.server_options import ServerOptions, resolve_auth_token

    configure_json_logging(args.log_level)
    token = resolve_auth_token(args.auth_token)
    if not args.model.exists():
        raise FileNotFoundError(f"--model {args.model}: no such directory")
    if args.workers < 1:
        raise ValueError(f"--workers must be >= 1, received {args.workers}")
    options = ServerOptions(
        host=args.host,
        port=args.port,
        max_batch_size=args.max_batch_size,
        max_wait_ms=args.max_wait_ms,
        busy_wait_ms=args.busy_wait_ms,
        max_concurrent=args.max_concurrent,
        max_queue=args.max_queue,
        grace_seconds=args.grace_seconds,
        drain_seconds=args.drain_seconds,
        poll_seconds=args.poll_seconds,
        metrics_port=args.metrics_port,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
        auth_token=token,
        intra_op_threads=args.intra_op_threads,
        engine=args.engine,
        retrieval=args.retrieval,
        keep_versions=args.keep_versions,
        canary_percent=args.canary_percent,
        version_labels=tuple(args.version_label),
        blas_threads=args.blas_threads,
        frontend=args.frontend,
        http_port=args.http_port,
        event_store=args.event_store,
        event_ttl_seconds=args.event_ttl_seconds,
        stored_events=args.stored_events,
        max_events_per_call=args.max_events_per_call,
    )
    if args.workers > 1:
        from sasrec.serving.worker_pool import WorkerPool, free_port

        if options.http_port == 0:  # one free port for all workers (SO_REUSEPORT), as --port 0
            options = options.replace(http_port=free_port(args.host))

        pool = WorkerPool(args.model, options, args.workers, log_level=args.log_level)
        print(
            f"sasrec serve: {args.workers} workers on port {pool.port}", file=sys.stderr, flush=True
        )
        return pool.run()
    from sasrec.serving.lifecycle import serve_until_signalled

    return serve_until_signalled(args.model, options)


def run_recommend(args: argparse.Namespace) -> int:
    from sasrec.serving.client import RecommenderClient, RecommenderError

    history = _split(args.history)
    if not history and not args.user_id:
        raise ValueError("give --history, --user-id or both")
    try:
        with RecommenderClient(
            args.server, timeout=args.timeout, token=args.token, root_certificates=args.tls_ca
        ) as client:
            rec = client.recommend(
                history,
                k=args.k,
                include_history=args.include_history,
                allowed_items=_split(args.allow),
                excluded_items=_split(args.exclude),
                user_id=args.user_id,
                explain=args.explain,
            )
    except RecommenderError as err:
        details = "".join(f"\n  {v.field}: {v.description}" for v in err.field_violations)
        raise ValueError(f"{args.server}: {err}{details}") from err
    if args.json:
        print(
            json.dumps(
                {
                    "model_version": rec.model_version,
                    "fallback": rec.fallback,
                    "unknown_items": list(rec.unknown_items),
                    "items": [
                        {
                            "item_id": i.item_id,
                            "score": i.score,
                            "explanation": [
                                {"item_id": e.item_id, "weight": e.weight} for e in i.explanation
                            ],
                        }
                        for i in rec.items
                    ],
                    "explanation": [
                        {"item_id": e.item_id, "weight": e.weight} for e in rec.explanation
                    ],
                },
                indent=2,
            )
        )
        return 0
    print(format_table(rec))
    return 0


def format_table(rec: Any) -> str:
    """A readable table of one ``Recommendation``."""
    lines = [
        f"model version {rec.model_version}" + ("  (popularity fallback)" if rec.fallback else "")
    ]
    if rec.unknown_items:
        lines.append("unknown history items (ignored): " + ", ".join(rec.unknown_items))
    width = max([len("item")] + [len(i.item_id) for i in rec.items])
    explained = any(item.explanation for item in rec.items)
    header = f"{'rank':>4}  {'item':<{width}}  {'score':>10}"
    lines.append(header + ("  because (history item: weight)" if explained else ""))
    for rank, item in enumerate(rec.items, 1):
        line = f"{rank:>4}  {item.item_id:<{width}}  {item.score:>10.4f}"
        if item.explanation:
            line += "  " + ", ".join(f"{e.item_id}: {e.weight:.3f}" for e in item.explanation)
        lines.append(line)
    if not rec.items:
        lines.append("   (no item satisfies the request)")
    if rec.explanation:
        lines.append("attended history items (whole list):")
        for e in rec.explanation:
            lines.append(f"      {e.item_id:<{width}}  {e.weight:>10.3f}")
    return "\n".join(lines)
