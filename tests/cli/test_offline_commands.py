"""``sasrec recommend-all`` and ``sasrec explain`` on a tiny saved model and a hand-made log."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import keras
import numpy as np
import pyarrow.parquet as pq
import pytest

from sasrec.artifact import publish_version, save_model_dir
from sasrec.cli.attention_picture import explain_history
from sasrec.cli.main import main
from sasrec.cli.recommend_all import user_histories
from sasrec.models import SASRec
from sasrec.serving.client import RecommenderClient
from sasrec.serving.server import start_server
from sasrec.training.options import DataOptions
from sasrec.vocabulary import ItemVocabulary

NUM_ITEMS = 30
MAX_LEN = 5
ITEMS = [f"sku-{i:02d}" for i in range(1, NUM_ITEMS + 1)]


def save_version(path: Path) -> None:
    keras.utils.set_random_seed(7)
    model = SASRec(
        num_items=NUM_ITEMS, max_len=MAX_LEN, hidden_dim=16, num_blocks=2, num_heads=2, dropout=0.0
    )
    counts = [0] * (NUM_ITEMS + 1)
    counts[3], counts[9] = 5, 9
    save_model_dir(
        path, model, ItemVocabulary(ITEMS), extra_json={"popularity.json": {"counts": counts}}
    )


@pytest.fixture(scope="module")
def model_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("offline") / "models"
    root.mkdir()
    publish_version(root, save_version)
    return root


@pytest.fixture(scope="module")
def log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """25 users with 2-9 events in shuffled file order; one user knows no model item."""
    rng = np.random.default_rng(3)
    rows = []
    for u in range(25):
        n = int(rng.integers(2, 10))
        items = rng.choice(ITEMS, size=n)
        for t, item in enumerate(items):
            rows.append((f"user-{u}", item, 1_700_000_000 + 60 * t))
    rows.append(("newcomer", "sku-unknown-1", 1_700_000_000))
    rows.append(("newcomer", "sku-unknown-2", 1_700_000_060))
    order = rng.permutation(len(rows))
    path = tmp_path_factory.mktemp("offline-log") / "log.csv"
    lines = ["user_id,item_id,timestamp"] + [",".join(map(str, rows[i])) for i in order]
    path.write_text("\n".join(lines) + "\n")
    return path


DATA_FLAGS = ["--min-user", "1", "--min-item", "1"]


def test_histories_are_the_last_max_len_events_in_time_order(tmp_path: Path) -> None:
    log = tmp_path / "log.csv"
    # File order is not time order; ties at t=5 keep file order (b before a).
    log.write_text(
        "user_id,item_id,timestamp\nu1,e,9\nu2,x,1\nu1,b,5\nu1,a,5\nu1,c,1\nu1,d,7\nu1,f,10\n"
    )
    data = DataOptions(path=str(log), min_user=1, min_item=1)
    users, histories = user_histories(data, max_len=4)
    assert list(users) == ["u1", "u2"]  # first appearance
    assert histories == [["a", "d", "e", "f"], ["x"]]  # c, b, a, d, e, f -> last 4


def test_recommend_all_from_prepared_equals_from_the_log(
    model_root: Path, log: Path, tmp_path: Path
) -> None:
    prepared = tmp_path / "prepared"
    assert main(["data", "prepare", "--data", str(log), "--out", str(prepared), *DATA_FLAGS]) == 0
    tables = {}
    for name, source in (("log", ["--data", str(log), *DATA_FLAGS]),
                         ("prepared", ["--prepared", str(prepared)])):  # fmt: skip
        out = tmp_path / f"{name}.parquet"
        argv = ["recommend-all", "--model", str(model_root), "--out", str(out), "--k", "4"]
        assert main([*argv, *source]) == 0
        tables[name] = pq.read_table(out)
    assert tables["prepared"].num_rows == tables["log"].num_rows > 0
    assert tables["prepared"].equals(tables["log"])


def test_recommend_all_rows_equal_the_servers_answers(
    model_root: Path, log: Path, tmp_path: Path
) -> None:
    out = tmp_path / "recs.parquet"
    argv = ["recommend-all", "--model", str(model_root), "--data", str(log), "--out", str(out)]
    assert main([*argv, "--k", "4", "--chunk-users", "7", *DATA_FLAGS]) == 0
    table = pq.read_table(out).to_pandas()
    assert list(table.columns) == ["user_id", "rank", "item_id", "score", "fallback"]
    users, histories = user_histories(
        DataOptions(path=str(log), min_user=1, min_item=1), max_len=MAX_LEN
    )
    assert table.user_id.nunique() == len(users) == 26
    server = start_server(model_root, port=0, max_batch_size=8, poll_seconds=0)
    try:
        with RecommenderClient(server.address, timeout=10, retries=0) as client:
            for user, history in zip(users, histories):
                want = client.recommend(history, k=4)
                got = table[table.user_id == user].sort_values("rank")
                assert list(got["rank"]) == list(range(1, len(want.items) + 1))
                assert list(got.item_id) == want.item_ids, user
                np.testing.assert_allclose(
                    got.score, [i.score for i in want.items], rtol=1e-5, atol=1e-5
                )
                assert bool(got.fallback.iloc[0]) == want.fallback
                # History items are excluded, as the server excludes them.
                assert not set(got.item_id) & set(history) or want.fallback
    finally:
        server.stop(grace=1)
    newcomer = table[table.user_id == "newcomer"]
    assert newcomer.fallback.all() and list(newcomer.item_id[:2]) == ["sku-09", "sku-03"]


def test_explain_picture_shows_every_block_and_head(model_root: Path, tmp_path: Path) -> None:
    history = ["sku-04", "sku-11", "sku-unknown", "sku-04", "sku-20"]
    picture = explain_history(model_root / "1", history, k=3)
    assert picture.history == ("sku-04", "sku-11", "sku-04", "sku-20")
    assert picture.unknown == ("sku-unknown",)
    assert len(picture.attention) == 2 and picture.attention[0].shape == (2, 4, 4)
    for block in picture.attention:
        np.testing.assert_allclose(block.sum(axis=-1), 1.0, atol=1e-5)
        assert np.all(np.triu(block, k=1) == 0)  # causal: no attention to the future
    assert picture.contributions.shape == (3, 4)
    assert picture.contributions[:, 0].sum() == 0  # a repeated item counts at its last position
    out = tmp_path / "explain.svg"
    assert main(["explain", "--model", str(model_root), "--history", ",".join(history),
                 "--k", "3", "--out", str(out)]) == 0  # fmt: skip
    svg = ET.parse(out).getroot()
    rects = [e for e in svg.iter() if e.tag.endswith("rect")]
    # 2 blocks x 2 heads x 4 x 4 cells, 3 x 4 contribution cells, the background.
    assert len(rects) == 2 * 2 * 16 + 12 + 1
    texts = [e.text for e in svg.iter() if e.tag.endswith("text")]
    assert "4. sku-20" in texts and any(t and t.startswith("sku-") for t in texts)
    page = tmp_path / "explain.html"
    assert main(["explain", "--model", str(model_root), "--history", "sku-04",
                 "--out", str(page)]) == 0  # fmt: skip
    assert page.read_text().startswith("<!doctype html>")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["explain", "--history", "nope,nada", "--out", "x.svg"], "none of the ids"),
        (["explain", "--history", "sku-01", "--out", "x.png"], "write .svg or .html"),
        (["explain", "--history", " , ", "--out", "x.svg"], "at least one item id"),
        (["recommend-all", "--k", "0", "--out", "r.parquet", *DATA_FLAGS], "--k must be >= 1"),
    ],
)
def test_bad_input_is_exit_2_with_a_message(
    model_root: Path, tmp_path: Path, capsys, argv: list[str], message: str
) -> None:
    argv = [a if not a.endswith((".svg", ".png", ".parquet")) else str(tmp_path / a) for a in argv]
    assert main([argv[0], "--model", str(model_root), *argv[1:]]) == 2
    assert message in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []  # nothing written, no temporary file left


def test_a_bad_log_leaves_no_output(model_root: Path, tmp_path: Path, capsys) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text("user_id,item_id,timestamp\nu1,a,1\nu1,b\n")
    out = tmp_path / "recs.parquet"
    argv = ["recommend-all", "--model", str(model_root), "--data", str(bad), "--out", str(out)]
    assert main(argv) == 2
    assert "bad.csv" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.csv"]
    assert main(["recommend-all", "--model", str(tmp_path / "none"), "--out", str(out)]) == 2
