"""`sasrec demo`: train on the embedded data, serve over gRPC, query through the client, stop."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from sasrec.cli.console import add_log_level_flag, configure_console


def _print_recommendations(title: str, history: list[str], rec: object) -> None:
    print(f"\n{title}")
    print(f"  history ({len(history)}): {', '.join(history[-6:])}")
    if rec.unknown_items:
        print(f"  unknown ids ignored: {', '.join(rec.unknown_items)}")
    if rec.fallback:
        print("  (no known history item: popularity fallback)")
    print(f"  {'rank':>4}  {'item':<14} {'score':>8}  because")
    for rank, item in enumerate(rec.items, 1):
        because = ", ".join(f"{a.item_id} ({a.weight:.2f})" for a in item.explanation[:2])
        print(f"  {rank:>4}  {item.item_id:<14} {item.score:>8.3f}  {because}")
    if rec.explanation:
        attended = ", ".join(f"{a.item_id} ({a.weight:.2f})" for a in rec.explanation)
        print(f"  attended most to: {attended}")


def run_demo(out: Path, epochs: int, port: int) -> int:
    from sasrec.serving.client import RecommenderClient
    from sasrec.serving.server import start_server
    from sasrec.training.options import DataOptions, TrainOptions
    from sasrec.training.run import run_training

    started = time.perf_counter()
    print("== 1/3 train on the embedded synthetic shop log ==", flush=True)
    version = run_training(
        out,
        DataOptions(),
        {"hidden_dim": 64, "num_blocks": 2, "num_heads": 2, "dropout": 0.2, "max_len": 50},
        # A short run: 5x the default learning rate reaches in 10 epochs the
        # validation NDCG that 1e-3 reaches in 25, and 1,000 validation users
        # instead of all 3,881 make each epoch's check cheap (docs/benchmarks.md,
        # "The demo").
        TrainOptions(
            epochs=epochs,
            patience=2,
            learning_rate=5e-3,
            max_valid_users=1_000,
            verbose=2,
            bootstrap=200,
        ),
    )
    trained = time.perf_counter()
    print(f"\n== 2/3 serve {out} (newest version: {version.name}) over gRPC ==", flush=True)
    server = start_server(out, port=port)
    try:
        print(f"listening on {server.address}", flush=True)
        with RecommenderClient(server.address, timeout=10.0) as client:
            print(f"health: {client.health()}")
            info = client.model_info()
            print(
                f"model version {info.model_version}: {info.num_items} items, "
                f"max history {info.max_history_length}"
            )
            for name in sorted(info.metrics):
                if name.startswith("full/") and name.endswith(("ndcg@10", "hr@10")):
                    print(f"  test {name}: {info.metrics[name]:.4f}")
            print("\n== 3/3 query it through the Python client ==")
            from sasrec.data.synthetic import generate_synthetic_log

            # A real shopper's recent history from the same embedded log.
            log = generate_synthetic_log()
            first_user = log["user_id"].iloc[0]
            history = log.loc[log["user_id"] == first_user, "item_id"].tolist()[-5:]
            rec = client.recommend(history, k=5, explain=True)
            _print_recommendations(f"{first_user}'s last {len(history)} items", history, rec)
            rec = client.recommend([*history, "sku-not-in-catalogue"], k=5)
            _print_recommendations("with an unknown id", [*history, "sku-not-in-catalogue"], rec)
            rec = client.recommend(["nobody-knows-this"], k=5)
            _print_recommendations("only unknown ids", ["nobody-knows-this"], rec)
    finally:
        server.stop(grace=5.0)
        print("\nserver stopped cleanly", flush=True)
    total = time.perf_counter() - started
    print(f"demo done in {total:.0f}s (training {trained - started:.0f}s)")
    return 0


def _demo(args: argparse.Namespace) -> int:
    configure_console(args.log_level)
    return run_demo(Path(args.out), args.epochs, args.port)


def register(sub: argparse._SubParsersAction) -> None:
    """Adds ``demo`` to the ``sasrec`` sub-command parsers."""
    p = sub.add_parser("demo", help="train -> serve -> query on the embedded synthetic data")
    p.add_argument("--out", default="runs/demo", help="model root (default: %(default)s)")
    p.add_argument(
        "--epochs",
        type=int,
        default=10,
        help="maximum epochs; early stopping may end sooner (default: %(default)s)",
    )
    p.add_argument(
        "--port", type=int, default=0, help="gRPC port; 0: a free one (default: %(default)s)"
    )
    add_log_level_flag(p)
    p.set_defaults(func=_demo)
