"""`sasrec explain`: a picture of what the attention did for one history (SVG or HTML).

For each block and head, a heatmap of the causal attention: row ``i`` is the
position that attends (query), column ``j`` the history item it attends to
(key), both labelled with item ids, oldest first. Below, the model's top items
for the history, each with its contributions per history item (the server's
``explain`` answer, ``AttentionExplainer``). One self-contained SVG (no
plotting library); the HTML page wraps it with a title. Hovering a cell shows
its value.
"""

from __future__ import annotations

import html
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

CELL = 14  # pixels per heatmap cell
GAP = 40  # pixels between panels
MAX_ROW = 1800  # panels wrap to a new row past this width


@dataclass(frozen=True)
class AttentionPicture:
    """The numbers behind the picture.

    Args:
        history: The known history item ids the model saw, oldest first.
        attention: One ``(heads, t, t)`` array per block (rows sum to 1 over
            the causal past).
        top_items: ``(item id, score)`` of the model's answer, best first.
        contributions: ``(len(top_items), t)`` share of each history position
            in each top item's score (rows sum to 1, or 0 when nothing
            contributes positively).
        unknown: History ids the model does not know (left out).
        model_version: The version that answered.

    Example:
        >>> picture = AttentionPicture(
        ...     history=("a", "b"), attention=[np.array([[[1, 0], [0.3, 0.7]]])],
        ...     top_items=[("c", 2.0)], contributions=np.array([[0.25, 0.75]]),
        ...     unknown=(), model_version="1")
        >>> "<svg" in render_svg(picture)
        True
    """

    history: tuple[str, ...]
    attention: list[np.ndarray]
    top_items: list[tuple[str, float]]
    contributions: np.ndarray
    unknown: tuple[str, ...]
    model_version: str


def explain_history(
    model: str | os.PathLike, history: Sequence[str], k: int = 10
) -> AttentionPicture:
    """Runs the model on ``history`` and collects every block's and head's attention.

    Raises:
        ValueError: No id of ``history`` is in the model's vocabulary (the
            server would answer from popularity, with no attention to show).
    """
    from keras import ops

    from sasrec.artifact import load_model_dir
    from sasrec.padding import pad_left
    from sasrec.serving.domain import RecommendationRequest
    from sasrec.serving.predictor import Predictor

    artifact = load_model_dir(model)
    predictor = Predictor(
        artifact.model, artifact.vocabulary, dict(artifact.manifest or {}), path=Path(model)
    )
    request = RecommendationRequest(history=tuple(history), k=k, explain=True)
    prepared = predictor.prepare(request)
    if not prepared.needs_model:
        raise ValueError(
            f"--history: none of the ids is in the model's vocabulary "
            f"({len(prepared.unknown_items)} unknown, e.g. {list(prepared.unknown_items[:3])})"
        )
    answer = predictor.predict([prepared])[0]
    ids = prepared.history_ids
    names = ("", *map(str, artifact.vocabulary.item_ids))
    known = tuple(names[i] for i in ids.tolist())
    with warnings.catch_warnings():
        # A one-item history is a softmax over one key: exact, not the mistake Keras warns of.
        warnings.filterwarnings("ignore", message="You are using a softmax over axis")
        _, weights = artifact.model.encoder(
            pad_left([ids], ids.size), training=False, return_attention_scores=True
        )
    attention = [np.asarray(ops.convert_to_numpy(w))[0] for w in weights]
    contributions = np.zeros((len(answer.items), ids.size), dtype=np.float32)
    for row, item in enumerate(answer.items):
        for part in item.explanation:
            # Weights are summed over repeats of an item: shown at its last position.
            contributions[row, max(j for j, name in enumerate(known) if name == part.item_id)] = (
                part.weight
            )
    return AttentionPicture(
        history=known,
        attention=attention,
        top_items=[(i.item_id, i.score) for i in answer.items],
        contributions=contributions,
        unknown=tuple(prepared.unknown_items),
        model_version=answer.model_version,
    )


def _colour(value: float) -> str:
    """White (0) to dark blue (1)."""
    v = float(np.clip(value, 0.0, 1.0))
    low, high = np.array([255, 255, 255]), np.array([8, 48, 107])
    r, g, b = (low + (high - low) * v).round().astype(int)
    return f"#{r:02x}{g:02x}{b:02x}"


def _text_width(text: str, size: float = 10.0) -> float:
    """About how wide ``text`` is in the sans-serif font at ``size`` px."""
    return 0.6 * size * len(text)


def _heatmap(
    x: int, y: int, values: np.ndarray, rows: Sequence[str], cols: Sequence[str], title: str
) -> tuple[list[str], int, int]:
    """SVG elements of one labelled heatmap at (x, y); returns (elements, width, height).

    Colour is the square root of the value over the panel's largest (darkest:
    the largest), so the small weights of long rows stay visible beside the
    large ones of the first rows; hover a cell for its value.
    """
    esc = html.escape
    label = int(max(map(_text_width, rows), default=0)) + 8
    out = [f'<text x="{x}" y="{y + 14}" class="title">{esc(title)}</text>']
    top = y + 24
    scale = float(values.max()) or 1.0
    for i, row in enumerate(rows):
        cy = top + i * CELL
        out.append(
            f'<text x="{x + label - 4}" y="{cy + CELL - 3}" text-anchor="end">{esc(row)}</text>'
        )
        for j in range(len(cols)):
            value = float(values[i, j])
            out.append(
                f'<rect x="{x + label + j * CELL}" y="{cy}" width="{CELL}" height="{CELL}" '
                f'fill="{_colour(np.sqrt(max(value, 0.0) / scale))}"><title>{esc(row)} -&gt; '
                f"{esc(cols[j])}: {value:.3f}</title></rect>"
            )
    bottom = top + len(rows) * CELL
    for j, col in enumerate(cols):
        cx = x + label + j * CELL + CELL - 4
        out.append(
            f'<text x="{cx}" y="{bottom + 4}" transform="rotate(-60 {cx} {bottom + 4})" '
            f'text-anchor="end">{esc(col)}</text>'
        )
    # Rotated by 60 degrees, a column label reaches down sin(60) of its width.
    below = int(0.87 * max(map(_text_width, cols), default=0)) + 12
    width = max(label + len(cols) * CELL, int(_text_width(title, 12)))
    return out, width, bottom + below - y


def render_svg(picture: AttentionPicture) -> str:
    """The whole picture as one SVG document: heatmaps in rows of at most MAX_ROW pixels."""
    labels = [f"{i + 1}. {name}" for i, name in enumerate(picture.history)]
    panels = [
        (heads[h], labels, labels, f"block {b + 1}, head {h + 1}: row attends to column")
        for b, heads in enumerate(picture.attention)
        for h in range(heads.shape[0])
    ]
    top_labels = [f"{item} ({score:.2f})" for item, score in picture.top_items]
    parts: list[str] = []
    width, x, y, row_height = 0, 10, 10, 0
    for values, rows, cols, title in panels:
        elements, w, h = _heatmap(x, y, values, rows, cols, title)
        if x > 10 and x + w > MAX_ROW:  # wrap: redraw at the start of the next row
            x, y, row_height = 10, y + row_height + GAP, 0
            elements, w, h = _heatmap(x, y, values, rows, cols, title)
        parts += elements
        x += w + GAP
        width, row_height = max(width, x), max(row_height, h)
    y += row_height + GAP
    elements, w, h = _heatmap(
        10, y, picture.contributions, top_labels, labels,
        "top items (score): share of each history item in the score",
    )  # fmt: skip
    parts += elements
    width, height = max(width, w + 20), y + h + 10
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'font-family="sans-serif" font-size="10">'
        "<style>.title { font-size: 12px; font-weight: bold; }</style>"
        f'<rect width="{width}" height="{height}" fill="white"/>' + "".join(parts) + "</svg>"
    )


def render_html(picture: AttentionPicture) -> str:
    """A page with the SVG and what it shows."""
    left_out = html.escape(", ".join(picture.unknown))
    unknown = f"<p>Not in the model's vocabulary (left out): {left_out}</p>" if left_out else ""
    return (
        "<!doctype html><html><head><meta charset='utf-8'>"
        f"<title>sasrec explain: model {html.escape(picture.model_version)}</title></head>"
        f"<body><h1>Attention of model version {html.escape(picture.model_version)}</h1>"
        f"<p>{len(picture.history)} history items, oldest first; each heatmap row is the "
        "position that attends, each column an item it attends to (causal: only the past). "
        "The last row is what the recommendations are computed from.</p>"
        f"{unknown}{render_svg(picture)}</body></html>"
    )


def write_picture(picture: AttentionPicture, out: str | os.PathLike) -> Path:
    """Writes ``out`` as SVG (``.svg``) or HTML (``.html``/``.htm``), atomically."""
    from sasrec.io import atomic_write_text

    out = Path(out)
    suffix = out.suffix.lower()
    if suffix == ".svg":
        text = render_svg(picture)
    elif suffix in (".html", ".htm"):
        text = render_html(picture)
    else:
        raise ValueError(f"--out {out}: write .svg or .html, received {suffix or 'no suffix'!r}")
    atomic_write_text(out, text)
    return out
