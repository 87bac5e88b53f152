"""How much of a sampled-protocol figure is the evaluation's own draw.

The paper's protocol ranks the target among 100 negatives for 10,000 users
drawn from the test users. With the model fixed, which users and which
negatives are drawn moves the figure; this script evaluates one saved model
version under ``--eval-seeds`` draws (seeds 0, 1, ...) and on every test
user (only the negatives drawn), and prints each figure, their mean and
standard deviation as JSON.

Usage::

    .venv/bin/python bench/bench_eval_draws.py --model models/games/1 --eval-seeds 10

The model's ``training.json`` says how its data was read and split (as
``sasrec evaluate`` does). Results are in docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True, help="a model version directory OUT/<n>")
    p.add_argument("--eval-seeds", type=int, default=10, help="draws of 10,000 users")
    p.add_argument("--users", type=int, default=10_000, help="users per draw (the paper's)")
    args = p.parse_args()
    if args.eval_seeds < 2:
        raise SystemExit(f"--eval-seeds must be >= 2, received {args.eval_seeds}")

    from sasrec.artifact import TRAINING_FILE, load_model_dir
    from sasrec.engines.scorer import Scorer
    from sasrec.evaluation import evaluate_sampled
    from sasrec.runtime import configure_threads
    from sasrec.training.options import DataOptions
    from sasrec.training.preparation import prepare_data

    configure_threads()
    artifact = load_model_dir(args.model)
    saved = json.loads((Path(artifact.path) / TRAINING_FILE).read_text())["data"]
    prepared = prepare_data(DataOptions(**saved))
    total = prepared.num_cases("test")
    cases = prepared.cases("test", list(range(total)))
    histories = [cases.history(i) for i in range(len(cases))]
    targets = cases.targets
    # Negatives avoid every item the user touched, as in the final evaluation.
    user_items = [list(h) + [t] for h, t in zip(histories, targets)]
    scorer = Scorer(artifact.model)
    num_items, max_len = artifact.config.num_items, artifact.config.max_len

    def ndcg(seed: int, users: int) -> float:
        report = evaluate_sampled(
            scorer,
            histories,
            targets,
            user_items,
            num_items,
            max_users=users,
            max_len=max_len,
            num_bootstrap=0,
            seed=seed,
        )
        return round(report["ndcg@10"]["value"], 4)

    start = time.perf_counter()
    draws = [ndcg(seed, args.users) for seed in range(args.eval_seeds)]
    every_user = [ndcg(seed, total) for seed in range(3)]
    print(
        json.dumps(
            {
                "model": str(args.model),
                "test_users": total,
                "users_per_draw": args.users,
                "draws": draws,
                "draws_mean": round(statistics.mean(draws), 4),
                "draws_sd": round(statistics.stdev(draws), 4),
                "every_user_3_negative_draws": every_user,
                "seconds": round(time.perf_counter() - start, 1),
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
