"""``--strategy``: TF_CONFIG checks, the equal-steps rule, and distributed runs against one device.

The distributed runs are real: ``sasrec train`` in child processes, two
workers talking over 127.0.0.1 (one core each), or ``MirroredStrategy`` on
two logical CPU devices (configured before TensorFlow starts, as Keras' own
distribute tests do). A run on N replicas with ``--batch-size b`` must
train on the same global batches as one device with ``--batch-size N*b``:
the per-epoch losses agree to float rounding (the one-device run is
XLA-compiled, the distributed ones are not).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from sasrec.cli import main
from sasrec.training.distribution import (
    Distribution,
    TFConfigError,
    equal_steps,
    local_cluster,
    parse_tf_config,
    worker_scratch,
)
from sasrec.training.options import TrainOptions

TINY = [
    *("--synthetic-users", "300", "--synthetic-items", "100"),
    *("--hidden-dim", "16", "--num-blocks", "1", "--num-heads", "1", "--max-len", "10"),
    *("--loss", "bce", "--dropout", "0", "--bucket-multiple", "10"),
    *("--epochs", "2", "--verbose", "2", "--no-tensorboard", "--bootstrap", "10"),
    *("--max-valid-users", "100", "--no-sampled-eval"),
]
WORKER_CONFIG = {"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]}}


# ---------------------------------------------------------------- TF_CONFIG
def test_tf_config_worker_and_chief_positions() -> None:
    task = parse_tf_config(json.dumps({**WORKER_CONFIG, "task": {"type": "worker", "index": 1}}))
    assert task.workers == ("127.0.0.1:2222", "127.0.0.1:2223") and task.index == 1
    assert not task.is_chief
    # A "chief" job is worker 0; "worker" tasks follow it.
    with_chief = {"cluster": {"chief": ["c:1"], "worker": ["w:1", "w:2"]}}
    chief = parse_tf_config(json.dumps({**with_chief, "task": {"type": "chief", "index": 0}}))
    second = parse_tf_config(json.dumps({**with_chief, "task": {"type": "worker", "index": 1}}))
    assert chief.is_chief and chief.workers == ("c:1", "w:1", "w:2")
    assert second.index == 2


def test_local_cluster_names_every_worker_on_distinct_loopback_ports() -> None:
    tasks = [parse_tf_config(text) for text in local_cluster(3)]
    assert [t.index for t in tasks] == [0, 1, 2]
    assert tasks[0].workers == tasks[2].workers and len(set(tasks[0].workers)) == 3
    assert all(a.startswith("127.0.0.1:") for a in tasks[0].workers)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "--strategy multi-worker needs TF_CONFIG"),
        ("", "--strategy multi-worker needs TF_CONFIG"),
        ('{"cluster": {"worker": ["a:1"]},\n "task": {', "not valid JSON: Expecting"),
        ("[1, 2]", "must be a JSON object, received list"),
        ('{"task": {"type": "worker", "index": 0}}', '"cluster" must be an object'),
        ('{"cluster": {"worker": ["nohost"]}}', '"cluster.worker" must be a list of "host:port"'),
        ('{"cluster": {"ps": ["a:1"]}, "task": {}}', 'no "worker" (or "chief") addresses'),
        (json.dumps(WORKER_CONFIG), '"task" must be an object'),
        (json.dumps({**WORKER_CONFIG, "task": {"type": "ps"}}), '"task.type" must be one of'),
        (json.dumps({**WORKER_CONFIG, "task": {"type": "worker", "index": "0"}}), "must be an int"),
        (
            json.dumps({**WORKER_CONFIG, "task": {"type": "worker", "index": 2}}),
            '"task.index" 2 is out of range: "cluster.worker" has 2 task(s), so 0..1',
        ),
    ],
)
def test_bad_tf_config_is_named(text: str | None, message: str) -> None:
    with pytest.raises(TFConfigError, match=None) as caught:
        parse_tf_config(text)
    assert message in str(caught.value)


def test_bad_json_names_line_and_column() -> None:
    with pytest.raises(TFConfigError) as caught:
        parse_tf_config('{"cluster":\n  {"worker": ["a:1"],}}')
    assert "at line 2 column" in str(caught.value)


@pytest.mark.parametrize(
    ("tf_config", "message"),
    [
        (None, "needs TF_CONFIG"),
        ("{not json", "TF_CONFIG (environment variable) is not valid JSON"),
        (json.dumps({**WORKER_CONFIG, "task": {"type": "worker", "index": 5}}), "out of range"),
    ],
)
def test_cli_refuses_bad_tf_config_with_exit_2_before_reading_data(
    tmp_path: Path, monkeypatch, capsys, tf_config: str | None, message: str
) -> None:
    if tf_config is None:
        monkeypatch.delenv("TF_CONFIG", raising=False)
    else:
        monkeypatch.setenv("TF_CONFIG", tf_config)
    out = tmp_path / "models"
    code = main(["train", "--out", str(out), "--strategy", "multi-worker", *TINY])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("sasrec train: error: ") and message in err
    assert "Traceback" not in err
    assert not out.exists()


def test_strategy_option_and_flag_are_validated(capsys) -> None:
    assert TrainOptions().strategy == "none"
    with pytest.raises(ValueError, match="strategy must be one of .* received strategy='ring'"):
        TrainOptions(strategy="ring")
    with pytest.raises(SystemExit) as caught:
        main(["train", "--out", "x", "--strategy", "ring"])
    assert caught.value.code == 2
    assert "invalid choice: 'ring'" in capsys.readouterr().err


# ------------------------------------------------------- batches and steps
def test_one_device_run_keeps_its_batch_and_compiled_multi_steps() -> None:
    run = Distribution("none")
    assert (run.replicas, run.num_workers, run.worker_index, run.is_chief) == (1, 1, 0, True)
    assert run.global_batch(128) == 128
    assert run.steps_per_execution(16) == 16 and run.jit_compile(True) is True


def test_equal_steps_pads_the_short_shards_to_the_longest() -> None:
    # Shards of 10, 9 and 7 windows in batches of 4: 3, 3 and 2 batches -> 3 each.
    assert equal_steps([10, 9, 7], per_worker_batch=4) == 3
    assert equal_steps([8, 8], per_worker_batch=4) == 2
    assert equal_steps([0, 1], per_worker_batch=4) == 1
    with pytest.raises(ValueError, match="per_worker_batch >= 1"):
        equal_steps([3], per_worker_batch=0)


def test_worker_scratch_copies_the_chiefs_checkpoint_on_resume_and_is_removed(
    tmp_path: Path,
) -> None:
    (tmp_path / ".checkpoint").mkdir()
    (tmp_path / ".checkpoint" / "run.json").write_text("{}")
    with worker_scratch(tmp_path, 1, resume=True) as own:
        assert own.parent == tmp_path and own.name.startswith(".worker-1-")
        assert (own / ".checkpoint" / "run.json").read_text() == "{}"
    assert not own.exists()
    with worker_scratch(tmp_path, 2, resume=False) as fresh:
        assert list(fresh.iterdir()) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == [".checkpoint"]


# ---------------------------------------------------- distributed runs (slow)
def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "TF_CONFIG"}
    return {**env, "TF_CPP_MIN_LOG_LEVEL": "2", **extra}


def _run_workers(argv: list[str], workers: int, timeout: float = 400) -> list[str]:
    """``argv`` in ``workers`` processes under one TF_CONFIG, one core each; their outputs."""
    cores = sorted(os.sched_getaffinity(0))
    procs = []
    for i, tf_config in enumerate(local_cluster(workers)):
        core = cores[i % len(cores)]
        procs.append(
            subprocess.Popen(
                [sys.executable, *argv],
                env=_env(TF_CONFIG=tf_config),
                preexec_fn=lambda core=core: os.sched_setaffinity(0, {core}),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
        )
    outputs = []
    try:
        for proc in procs:
            outputs.append(proc.communicate(timeout=timeout)[0])
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    for proc, output in zip(procs, outputs):
        assert proc.returncode == 0, output[-3000:]
    return outputs


def _losses(out: Path) -> list[float]:
    versions = sorted(p for p in out.iterdir() if p.name.isdigit())
    assert [p.name for p in versions] == ["1"], "exactly one version, published once"
    return json.loads((versions[0] / "history.json").read_text())["loss"]


def _train_none(out: Path, batch_size: int, *extra: str) -> list[float]:
    code = subprocess.run(
        [sys.executable, "-m", "sasrec.cli", "train", "--out", str(out), *TINY]
        + ["--batch-size", str(batch_size), *extra],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert code.returncode == 0, code.stdout[-2000:] + code.stderr[-2000:]
    return _losses(out)


@pytest.mark.slow
def test_two_workers_train_like_one_device_on_the_global_batch(tmp_path: Path) -> None:
    one = _train_none(tmp_path / "one", 16, "--sparse-item-updates")
    out = tmp_path / "two"
    argv = ["-m", "sasrec.cli", "train", "--out", str(out), *TINY, "--batch-size", "8"]
    outputs = _run_workers([*argv, "--sparse-item-updates", "--strategy", "multi-worker"], 2)
    two = _losses(out)  # only the chief published
    assert len(two) == len(one) == 2
    assert two == pytest.approx(one, rel=1e-4)
    assert "worker 0 of 2 (chief); global batch 16" in outputs[0]
    assert "worker 1 of 2; global batch 16" in outputs[1] and "saved" not in outputs[1]
    # The non-chief's scratch folder is gone; the chief removed its checkpoint.
    assert sorted(p.name for p in out.iterdir()) == ["1"]


MIRRORED = """
import sys
import tensorflow as tf

cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from sasrec.cli import main

sys.exit(main(sys.argv[1:]))
"""


@pytest.mark.slow
def test_mirrored_on_two_logical_cpus_trains_like_one_device(tmp_path: Path) -> None:
    # Dense item-table Adam here, the lazy (sparse) table in the two-worker test.
    extra: list[str] = []
    one = _train_none(tmp_path / "one", 16, *extra)
    script = tmp_path / "mirrored.py"
    script.write_text(MIRRORED)
    out = tmp_path / "mirrored"
    result = subprocess.run(
        [sys.executable, str(script), "train", "--out", str(out), *TINY, "--batch-size", "8"]
        + ["--strategy", "mirrored", *extra],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=400,
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-2000:]
    assert "strategy: mirrored, 2 replica(s)" in result.stdout
    assert "global batch 16" in result.stdout
    assert _losses(out) == pytest.approx(one, rel=1e-4)


KERAS_20585 = """
import json
import sys

import keras
import numpy as np

from sasrec.data.dataset import make_training_dataset
from sasrec.models import SASRec
from sasrec.training.distribution import shard_dataset, start_distribution, vector_logs

run = start_distribution("multi-worker")
with run.scope():
    model = SASRec(num_items=9, max_len=4, hidden_dim=8, num_blocks=1, num_heads=1, loss="bce",
                   loss_denominator=10.0, dropout=0.0)
    model.compile(optimizer=keras.optimizers.SGD(0.0), jit_compile=False)
if sys.argv[1] == "workaround":
    vector_logs(model, run)
ids = np.array([[1, 2, 3, 4]] * 8, np.int32)
data = shard_dataset(make_training_dataset(ids, ids + 1, 9, 4, 1, seed=0), run)
try:
    history = model.fit(data, epochs=1, verbose=0)
except Exception as err:
    print("FAILED", type(err).__name__, str(err).splitlines()[0][:300])
else:
    # The one-device loss of the same global batches (epoch 0, weights unchanged: lr 0).
    batches = make_training_dataset(ids, ids + 1, 9, 4, 1, seed=0)
    losses = [float(model.compute_loss(x=b, y_pred=model(b))) for b in batches]
    print("LOSS", json.dumps([history.history["loss"][0], sum(losses) / len(losses)]))
"""


@pytest.mark.slow
def test_keras_20585_workaround_is_still_needed_and_still_works(tmp_path: Path) -> None:
    """Fails when Keras fixes #20585 (drop ``vector_logs`` then) or when the workaround breaks."""
    script = tmp_path / "keras_20585.py"
    script.write_text(KERAS_20585)
    plain = _run_workers([str(script), "plain"], 2, timeout=300)
    for output in plain:
        assert "FAILED ValueError Invalid reduction dimension 0 for input with 0 dimensions" in (
            output
        ), output[-2000:]
    fixed = _run_workers([str(script), "workaround"], 2, timeout=300)
    for output in fixed:
        line = next(x for x in output.splitlines() if x.startswith(("LOSS", "FAILED")))
        logged, one_device = json.loads(line.removeprefix("LOSS "))
        assert logged == pytest.approx(one_device, rel=1e-6)
