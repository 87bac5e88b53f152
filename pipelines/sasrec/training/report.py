"""The text a user reads after training or ``sasrec evaluate``: tables and a verdict."""

from __future__ import annotations

from typing import Any


def format_evaluation(evaluation: dict[str, Any]) -> str:
    """Side-by-side tables of SASRec and the baselines, one per protocol."""
    from sasrec.evaluation import format_report

    users = f"{evaluation['num_users']} users"
    sample = evaluation.get("users_sampled")
    if sample:
        users = (
            f"{sample['evaluated']:,} of {sample['of']:,} users, a seeded sample; "
            "the CIs include it"
        )
    parts = []
    for protocol, title in (
        ("full_ranking_exclude_history", "Full ranking, history excluded"),
        ("full_ranking_include_history", "Full ranking, history included"),
        ("sampled", "Sampled (target + 100 negatives, the paper's protocol)"),
    ):
        if protocol in evaluation:
            table = format_report(evaluation[protocol])
            parts.append(f"{title} — {evaluation['cases']} ({users})\n{table}")
    verdict = sasrec_verdict(evaluation)
    if verdict:
        parts.append(verdict)
    return "\n\n".join(parts)


def sasrec_verdict(evaluation: dict[str, Any]) -> str:
    """Says plainly whether SASRec beat both baselines on full-ranking NDCG@10."""
    full = evaluation.get("full_ranking_exclude_history")
    if not full:
        return ""
    ours = full["sasrec"]["ndcg@10"]["value"]
    best_name = max((n for n in full if n != "sasrec"), key=lambda n: full[n]["ndcg@10"]["value"])
    best = full[best_name]["ndcg@10"]["value"]
    ratio = ours / best if best > 0 else float("inf")
    if ours > best:
        return f"SASRec beats the best baseline ({best_name}) {ratio:.2f}x on NDCG@10."
    return (
        f"WARNING: SASRec does NOT beat the {best_name} baseline on NDCG@10 "
        f"({ours:.4f} vs {best:.4f})."
    )
