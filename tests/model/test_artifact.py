"""Model directories: save/load round trip, corrupt input, versioned publishing."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import keras
import numpy as np
import pytest
from keras import ops

from sasrec.artifact import (
    POPULARITY_FILE,
    ModelArtifact,
    counts_by_index,
    is_older_version,
    latest_version,
    list_versions,
    load_model_dir,
    manifest_created_at,
    manifest_max_len,
    popularity_document,
    publish_version,
    read_popularity,
    save_model_dir,
    summary_metrics,
    version_fingerprint,
    version_name,
)
from sasrec.config import SASRecConfig
from sasrec.models import SASRec
from sasrec.vocabulary import ItemVocabulary

np_ = ops.convert_to_numpy
HISTORIES = np.array([[0, 0, 1, 2, 3], [0, 4, 5, 6, 7], [0, 0, 0, 0, 0]], np.int32)


@pytest.fixture(scope="module")
def trained():
    """A compiled model that took one optimizer step (so it has optimizer state)."""
    keras.utils.set_random_seed(0)
    model = SASRec(num_items=8, max_len=5, hidden_dim=8, num_blocks=1, loss="bce")
    model.compile(optimizer="adam")
    batch = {
        "item_ids": HISTORIES[:2],
        "positives": np.roll(HISTORIES[:2], -1, axis=1),
        "negatives": np.full((2, 5, 1), 8, np.int32),
    }
    model.train_on_batch(batch)
    return model, ItemVocabulary([f"sku-{i}" for i in range(1, 9)])


@pytest.fixture(scope="module")
def saved(trained, tmp_path_factory):
    model, vocab = trained
    path = tmp_path_factory.mktemp("artifact") / "model"
    save_model_dir(path, model, vocab, extra_json={"metrics": {"ndcg@10": 0.5}, "history.json": []})
    return path


def test_save_load_round_trip_gives_identical_scores(trained, saved):
    model, vocab = trained
    assert sorted(p.name for p in saved.iterdir()) == [
        "config.json",
        "history.json",
        "manifest.json",
        "metrics.json",
        "model.keras",
        "vocabulary.json",
    ]
    assert not [p for p in saved.parent.iterdir() if p.name.startswith(".tmp")]
    artifact = load_model_dir(saved)
    assert isinstance(artifact, ModelArtifact)
    np.testing.assert_array_equal(
        np_(artifact.model.score_last(HISTORIES)), np_(model.score_last(HISTORIES))
    )
    assert artifact.config == SASRecConfig.from_dict(model.get_config())
    assert artifact.vocabulary == vocab
    assert artifact.metrics == {"ndcg@10": 0.5}
    assert artifact.read_extra("history") == [] and artifact.read_extra("popularity") is None
    manifest = artifact.manifest
    assert manifest["format"] == "sasrec.model.v1"
    assert (manifest["num_items"], manifest["max_len"], manifest["version"]) == (8, 5, 0)
    assert getattr(artifact.model, "optimizer", None) is None  # no optimizer state saved


def test_refuses_to_overwrite_and_checks_inputs(trained, saved, tmp_path):
    model, vocab = trained
    with pytest.raises(ValueError, match="already exists"):
        save_model_dir(saved, model, vocab)
    with pytest.raises(ValueError, match="vocabulary has 2 items"):
        save_model_dir(tmp_path / "m", model, ItemVocabulary(["a", "b"]))
    with pytest.raises(ValueError, match="extra JSON name"):
        save_model_dir(tmp_path / "m", model, vocab, extra_json={"config": {}})
    assert not (tmp_path / "m").exists()


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for p in src.iterdir():
        (dst / p.name).write_bytes(p.read_bytes())
    return dst


def test_corrupt_directories_give_clear_errors(saved, tmp_path):
    with pytest.raises(ValueError, match="not a model directory"):
        load_model_dir(tmp_path / "absent")

    no_manifest = _copy(saved, tmp_path / "no_manifest")
    (no_manifest / "manifest.json").unlink()
    with pytest.raises(ValueError, match=r"manifest\.json: missing"):
        load_model_dir(no_manifest)

    truncated = _copy(saved, tmp_path / "truncated")
    data = (truncated / "model.keras").read_bytes()
    (truncated / "model.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(ValueError, match=r"model\.keras: not a Keras archive .*truncated"):
        load_model_dir(truncated)

    # A whole zip that is not a Keras model still gets Keras' own reason.
    not_keras = _copy(saved, tmp_path / "not_keras")
    with zipfile.ZipFile(not_keras / "model.keras", "w") as archive:
        archive.writestr("hello.txt", "not a model")
    with pytest.raises(ValueError, match=r"model\.keras: cannot load the Keras model"):
        load_model_dir(not_keras)

    bad_config = _copy(saved, tmp_path / "bad_config")
    config = json.loads((bad_config / "config.json").read_text())
    (bad_config / "config.json").write_text(json.dumps(dict(config, num_heads=3)))
    with pytest.raises(ValueError, match=r"config\.json.*num_heads"):
        load_model_dir(bad_config)

    bad_json = _copy(saved, tmp_path / "bad_json")
    (bad_json / "metrics.json").write_text("{")
    with pytest.raises(ValueError, match=r"metrics\.json: not a readable JSON"):
        load_model_dir(bad_json)

    wrong_vocab = _copy(saved, tmp_path / "wrong_vocab")
    ItemVocabulary(["x"]).save(wrong_vocab / "vocabulary.json")
    with pytest.raises(ValueError, match=r"vocabulary\.json: 1 items"):
        load_model_dir(wrong_vocab)


def test_publish_versions(trained, tmp_path):
    model, vocab = trained
    out = tmp_path / "models"
    assert latest_version(out) is None

    def build(path):
        save_model_dir(path, model, vocab)

    first = publish_version(out, build)
    (out / "7").mkdir()  # an incomplete entry: never latest, but its number is taken
    second = publish_version(out, build)
    assert (first.name, second.name) == ("1", "8")
    assert latest_version(out) == second
    assert load_model_dir(second).manifest["version"] == 8

    def broken(path):
        path.mkdir()
        (path / "model.keras").write_text("partial")
        raise RuntimeError("training crashed")

    with pytest.raises(RuntimeError, match="crashed"):
        publish_version(out, broken)
    with pytest.raises(ValueError, match="manifest.json"):
        publish_version(out, lambda path: path.mkdir())
    assert sorted(p.name for p in out.iterdir()) == ["1", "7", "8"]  # no staging left over

    a_file = tmp_path / "file"
    a_file.write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        publish_version(a_file, build)
    with pytest.raises(ValueError, match="is a file"):
        latest_version(a_file)


def test_versions_are_listed_highest_first_and_ordered_by_number(trained, tmp_path):
    model, vocab = trained
    root = tmp_path / "root"
    for number in ("3", "12"):
        save_model_dir(root / number, model, vocab)
    (root / ".tmp-abc").mkdir()  # staging
    (root / "20").mkdir()  # no manifest yet: still being written
    (root / "notes").mkdir()
    assert [p.name for p in list_versions(root)] == ["12", "3"]
    assert list_versions(root / "3") == [root / "3"]  # one version directory
    with pytest.raises(FileNotFoundError):
        list_versions(tmp_path / "missing")
    assert is_older_version(root / "3", root / "12")
    assert not is_older_version(root / "12", root / "3")
    assert not is_older_version(tmp_path / "exported", root / "12")  # not numbered: unordered
    assert version_name(root / "12", {"version": 0}) == "12"
    assert version_name(tmp_path / "exported", {"version": 4}) == "4"


def test_a_republished_version_gets_a_new_fingerprint(trained, tmp_path):
    model, vocab = trained
    path = save_model_dir(tmp_path / "5", model, vocab)
    before = version_fingerprint(path)
    manifest = path / "manifest.json"
    stat = manifest.stat()
    os.utime(manifest, ns=(stat.st_atime_ns, stat.st_mtime_ns + 10**9))
    assert version_fingerprint(path)[0] == before[0] == str(path)
    assert version_fingerprint(path) != before
    assert version_fingerprint(tmp_path / "absent") == (str(tmp_path / "absent"), 0)


def test_manifest_readers(saved):
    manifest = load_model_dir(saved).manifest
    assert manifest_max_len(manifest, model=None) == 5
    created = manifest_created_at(manifest)
    assert created is not None and created.tzinfo is not None
    assert manifest_created_at({"created_at": "2026-01-02T03:04:05"}).tzinfo is not None
    assert manifest_created_at({"created_at": "yesterday"}) is None


def test_popularity_written_by_training_reads_back_by_index(trained, tmp_path):
    model, vocab = trained  # items sku-1 .. sku-8
    counts = np.array([0, 5, 0, 2, 0, 0, 9, 0, 1])
    path = save_model_dir(
        tmp_path / "m", model, vocab, extra_json={POPULARITY_FILE: popularity_document(counts)}
    )
    assert json.loads((path / "popularity.json").read_text()) == {"counts": counts.tolist()}
    index = {raw: i + 1 for i, raw in enumerate(vocab.item_ids)}
    read = read_popularity(path / POPULARITY_FILE)
    np.testing.assert_array_equal(counts_by_index(read, index, 8), counts)
    assert read_popularity(tmp_path / "absent.json") is None


@pytest.mark.parametrize(
    ("document", "want"),
    [
        ({"counts": [7, 5, 0, 2, 0, 0, 9, 0, 1]}, [0, 5, 0, 2, 0, 0, 9, 0, 1]),  # c_0 ignored
        ([5, 0, 2, 0, 0, 9, 0, 1], [0, 5, 0, 2, 0, 0, 9, 0, 1]),  # without c_0
        ({"sku-2": 4, "sku-8": 1.5, "gone": 3}, [0, 0, 4, 0, 0, 0, 0, 0, 1.5]),
        ({"counts": {"sku-1": 2}}, [0, 2, 0, 0, 0, 0, 0, 0, 0]),
    ],
)
def test_popularity_shapes(tmp_path, document, want):
    path = tmp_path / POPULARITY_FILE
    path.write_text(json.dumps(document))
    index = {f"sku-{i}": i for i in range(1, 9)}
    np.testing.assert_array_equal(counts_by_index(read_popularity(path), index, 8), want)


def test_malformed_popularity_names_the_file(tmp_path):
    path = tmp_path / POPULARITY_FILE
    for document, message in (
        ({"sku-1": "many"}, r"popularity\.json: count of item 'sku-1' must be a number"),
        ([1, True], r"popularity\.json: counts\[1\] must be a number"),
        ("text", r"popularity\.json: expected a list of counts"),
    ):
        path.write_text(json.dumps(document))
        with pytest.raises(ValueError, match=message):
            read_popularity(path)
    path.write_text("{")
    with pytest.raises(ValueError, match=r"popularity\.json: not valid JSON"):
        read_popularity(path)
    with pytest.raises(ValueError, match=r"popularity\.json: expected 9 counts"):
        counts_by_index([1.0, 2.0, 3.0], {}, 8, source=path)


def test_summary_metrics_prefers_the_training_summary():
    written = {"summary": {"full/sasrec/ndcg@10": 0.1}, "test": {"ndcg@10": 0.2}}
    assert summary_metrics(written) == {"full/sasrec/ndcg@10": 0.1}
    nested = {"full": {"ndcg@10": 0.25, "flag": True}, "note": "text", "epochs": 3}
    assert summary_metrics(nested) == {"full/ndcg@10": 0.25, "epochs": 3.0}


def test_manifest_without_max_len_takes_the_models():
    # Manifests written before max_len was recorded: the model's encoder says it.
    from sasrec.artifact import manifest_max_len
    from sasrec.config import SASRecConfig

    model = SASRecConfig(num_items=9, max_len=7, hidden_dim=8, num_heads=2).build_model()
    assert manifest_max_len({}, model) == 7
    assert manifest_max_len({"max_len": 5}, model) == 5
