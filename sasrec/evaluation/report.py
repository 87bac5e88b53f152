"""Side-by-side text table of several models' evaluation reports."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def _protocol_label(report: Mapping) -> str:
    protocol = report.get("protocol", "?")
    if protocol == "full_ranking":
        history = "excl. history" if report.get("exclude_history") else "incl. history"
        return f"full ({history})"
    if protocol == "sampled":
        return f"sampled ({report.get('num_negatives', '?')} neg)"
    return str(protocol)


def _metric_names(results: Mapping[str, Mapping]) -> list[str]:
    names: list[str] = []
    for report in results.values():
        for key, value in report.items():
            if isinstance(value, Mapping) and "value" in value and key not in names:
                names.append(key)
    return names


def format_report(
    results: Mapping[str, Mapping],
    metrics: Sequence[str] | None = None,
    digits: int = 4,
) -> str:
    """Formats reports of :func:`evaluate_full_ranking` / :func:`evaluate_sampled` as a table.

    One row per model, one column per metric, each cell ``value [low, high]``
    (the 95% bootstrap interval; just ``value`` when there is none, ``-`` when
    the model has no such metric). A protocol column shows which protocol and
    exclusion each row used, since numbers across protocols do not compare.

    Args:
        results: Model name -> report dict.
        metrics: Metric keys to show, in order; default every metric found,
            in first-seen order.
        digits: Decimals.

    Returns:
        The table as one string, lines separated by ``"\\n"``.

    Example:
        >>> print(format_report({"pop": {"protocol": "sampled", "num_negatives": 100,
        ...     "num_users": 3, "hr@10": {"value": 0.5, "ci95": [0.25, 0.75]}}}))
        model  protocol           users  hr@10
        -----  -----------------  -----  -----------------------
        pop    sampled (100 neg)  3      0.5000 [0.2500, 0.7500]
    """
    if not results:
        raise ValueError("format_report needs at least one model's results")
    names = list(metrics) if metrics is not None else _metric_names(results)
    header = ["model", "protocol", "users", *names]
    rows = []
    for model, report in results.items():
        cells = [str(model), _protocol_label(report), str(report.get("num_users", "-"))]
        for name in names:
            entry = report.get(name)
            if not isinstance(entry, Mapping) or "value" not in entry:
                cells.append("-")
                continue
            text = f"{entry['value']:.{digits}f}"
            if entry.get("ci95") is not None:
                low, high = entry["ci95"]
                text += f" [{low:.{digits}f}, {high:.{digits}f}]"
            cells.append(text)
        rows.append(cells)
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [header, ["-" * w for w in widths], *rows]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in lines)
