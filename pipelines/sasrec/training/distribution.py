"""``--strategy none|mirrored|multi-worker``: data-parallel training with ``tf.distribute``.

* ``mirrored``: ``tf.distribute.MirroredStrategy`` over the local devices
  (every GPU of the machine; without GPUs the CPU devices TensorFlow has,
  one unless logical CPUs were configured, as Keras' own distribute tests do).
* ``multi-worker``: ``tf.distribute.MultiWorkerMirroredStrategy`` over the
  workers named by ``TF_CONFIG`` (read and checked here first, so a bad one
  is a clear error, not a hang).

The batch: ``--batch-size`` is the per-replica batch; a step trains on the
global batch ``batch_size x replicas`` (replicas across all workers). The
epoch plan (``sasrec.data.dataset``) cuts global batches; Keras splits each
one across the replicas (``experimental_distribute_dataset``), so the
global batch of a step is exactly the one a single device would train on
with ``--batch-size`` set to the global batch.

Each worker's shard (:func:`shard_dataset`): every worker plans the same
epoch from all in-memory windows with the same seed and keeps its own
replicas' slices of every global batch (``AutoShardPolicy.DATA``). Every
worker therefore has the same number of steps per epoch (uneven steps would
leave the others waiting in a collective forever), and the run equals the
single-device run on the global batch. The planning (a shuffle and the
negative draws, about 0.4 s per Games epoch on a background thread) is done
on every worker. That is the seam for per-worker input: a worker reading
its own prepared shards would build its dataset in
``strategy.distribute_datasets_from_function`` with per-replica batches,
and must still give every worker the same number of batches
(:func:`equal_steps`).

Loss normalisation stays exact: the model divides each replica's summed
position losses by the mean valid positions per *global* batch
(``loss_normalization="epoch"``), Keras sums the replicas' gradients and
logs the mean of ``replicas x`` each replica's loss, which is the global
batch's loss. ``loss_normalization="batch"`` divides by each replica's own
positions: not exactly the single-device loss.

Example:
    >>> parse_tf_config('{"cluster": {"worker": ["127.0.0.1:2222", "127.0.0.1:2223"]},'
    ...                 ' "task": {"type": "worker", "index": 1}}')
    WorkerTask(workers=('127.0.0.1:2222', '127.0.0.1:2223'), index=1)
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

STRATEGIES = ("none", "mirrored", "multi-worker")
TF_CONFIG = "TF_CONFIG"
# Job names MultiWorkerMirroredStrategy trains with; "chief" is worker 0 when present.
_TRAINING_JOBS = ("chief", "worker")


class TFConfigError(ValueError):
    """``TF_CONFIG`` is missing or does not describe this worker (exit code 2 on the CLI)."""


class WorkerLostError(RuntimeError):
    """Another worker stopped answering during training (exit code 2 on the CLI).

    Every worker's collectives then fail; the message says to restart all of
    them with ``--resume``, which continues from the chief's last checkpoint.
    """


@dataclass(frozen=True)
class WorkerTask:
    """This process's place in the cluster of ``TF_CONFIG``.

    Args:
        workers: Every training task's ``host:port``, the chief first.
        index: This process's position in ``workers`` (0 = the chief).

    Example:
        >>> WorkerTask(workers=("a:1", "b:2"), index=0).is_chief
        True
    """

    workers: tuple[str, ...]
    index: int

    @property
    def is_chief(self) -> bool:
        return self.index == 0


def parse_tf_config(text: str | None) -> WorkerTask:
    """Checks ``TF_CONFIG`` the way ``MultiWorkerMirroredStrategy`` will read it.

    Raises:
        TFConfigError: missing, not JSON, no ``cluster`` with ``worker``
            (or ``chief``) addresses, or a ``task`` whose type or index is
            not in the cluster; the message names the field.

    Example:
        >>> parse_tf_config('{"cluster": {"chief": ["h0:1"], "worker": ["h1:1"]},'
        ...                 ' "task": {"type": "worker", "index": 0}}').index
        1
    """
    where = f"{TF_CONFIG} (environment variable)"
    if text is None or not text.strip():
        raise TFConfigError(
            f"--strategy multi-worker needs {TF_CONFIG}: a JSON object naming every worker and "
            'this one, e.g. {"cluster": {"worker": ["host1:2222", "host2:2222"]}, '
            '"task": {"type": "worker", "index": 0}} (see docs/training.md)'
        )
    try:
        config = json.loads(text)
    except json.JSONDecodeError as err:
        raise TFConfigError(
            f"{where} is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    if not isinstance(config, dict):
        raise TFConfigError(f"{where} must be a JSON object, received {type(config).__name__}")
    cluster = config.get("cluster")
    if not isinstance(cluster, dict):
        raise TFConfigError(f'{where}: "cluster" must be an object of job name -> addresses')
    workers: list[str] = []
    for job in _TRAINING_JOBS:
        addresses = cluster.get(job, [])
        if not isinstance(addresses, list) or not all(
            isinstance(a, str) and ":" in a for a in addresses
        ):
            raise TFConfigError(
                f'{where}: "cluster.{job}" must be a list of "host:port" strings, '
                f"received {addresses!r}"
            )
        if job == "chief" and len(addresses) > 1:
            raise TFConfigError(f'{where}: "cluster.chief" has {len(addresses)} tasks; at most 1')
        workers.extend(addresses)
    if not workers:
        raise TFConfigError(f'{where}: "cluster" has no "worker" (or "chief") addresses')
    task = config.get("task")
    if not isinstance(task, dict):
        raise TFConfigError(f'{where}: "task" must be an object with "type" and "index"')
    kind, index = task.get("type"), task.get("index", 0)
    if kind not in _TRAINING_JOBS or kind not in cluster:
        raise TFConfigError(
            f'{where}: "task.type" must be one of the training jobs in "cluster" '
            f"({', '.join(j for j in _TRAINING_JOBS if j in cluster)}), received {kind!r}"
        )
    if isinstance(index, bool) or not isinstance(index, int):
        raise TFConfigError(f'{where}: "task.index" must be an int, received {index!r}')
    if not 0 <= index < len(cluster[kind]):
        raise TFConfigError(
            f'{where}: "task.index" {index} is out of range: "cluster.{kind}" has '
            f"{len(cluster[kind])} task(s), so 0..{len(cluster[kind]) - 1}"
        )
    position = index + (len(cluster.get("chief", [])) if kind == "worker" else 0)
    return WorkerTask(workers=tuple(workers), index=position)


def check_strategy(name: str) -> str:
    """``name`` if it is one of :data:`STRATEGIES`, else ``ValueError`` naming them."""
    if name not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, received strategy={name!r}")
    return name


@dataclass(frozen=True)
class Distribution:
    """The strategy a run trains under and this process's part in it.

    Build it with :func:`start_distribution` before TensorFlow runs any op.

    Args:
        name: One of :data:`STRATEGIES`.
        strategy: The ``tf.distribute.Strategy`` (None for ``"none"``).
        task: This worker's place (``multi-worker``); None otherwise.

    Example:
        >>> run = start_distribution("none")
        >>> run.replicas, run.is_chief, run.global_batch(128)
        (1, True, 128)
    """

    name: str
    strategy: Any = None
    task: WorkerTask | None = None

    @property
    def replicas(self) -> int:
        """Replicas across all workers: one per device of every worker."""
        return 1 if self.strategy is None else int(self.strategy.num_replicas_in_sync)

    @property
    def num_workers(self) -> int:
        return 1 if self.task is None else len(self.task.workers)

    @property
    def worker_index(self) -> int:
        return 0 if self.task is None else self.task.index

    @property
    def is_chief(self) -> bool:
        """The one worker that writes the checkpoint and publishes the version."""
        return self.task is None or self.task.is_chief

    def global_batch(self, per_replica: int) -> int:
        """Windows per training step across all replicas."""
        return per_replica * self.replicas

    def scope(self) -> Any:
        """Where the model and optimizer must be created (a no-op without a strategy)."""
        return contextlib.nullcontext() if self.strategy is None else self.strategy.scope()

    def jit_compile(self, wanted: bool) -> bool:
        """XLA where it works under this strategy: on GPUs only.

        On CPUs XLA has no collectives ("Collectives are not yet implemented
        for CPU devices when compiling with XLA", multi-worker), and logical
        CPU devices share one XLA device (mirrored: variables on another
        device). A CPU step under a strategy runs uncompiled.
        """
        if not wanted or self.strategy is None:
            return wanted
        return all("GPU" in device.upper() for device in self.strategy.extended.worker_devices)

    def steps_per_execution(self, wanted: int) -> int:
        """1 under a strategy: Keras' multi-step loop does not run under one.

        With ``steps_per_execution > 1`` Keras 3.15's TensorFlow trainer
        fails under ``MirroredStrategy`` ("You must feed a value for
        placeholder tensor" in its ``while`` over the iterator), with
        Keras' own Adam as with ours.
        """
        return wanted if self.strategy is None else 1

    @contextlib.contextmanager
    def worker_faults(self) -> Iterator[None]:
        """Turns a lost or timed-out peer (multi-worker) into :class:`WorkerLostError`."""
        if self.task is None:
            yield
            return
        import tensorflow as tf

        try:
            yield
        except (
            tf.errors.UnavailableError,
            tf.errors.DeadlineExceededError,
            tf.errors.AbortedError,
        ) as err:
            first = str(err.message).strip().splitlines()[0][:300]
            raise WorkerLostError(
                f"worker {self.worker_index} of {self.num_workers} lost contact with the "
                f"others ({type(err).__name__}: {first}); restart every worker with --resume"
            ) from None

    def describe(self) -> str:
        """One line for the run's log."""
        if self.strategy is None:
            return "strategy: none (one device)"
        devices = ", ".join(self.strategy.extended.worker_devices)
        text = f"strategy: {self.name}, {self.replicas} replica(s) ({devices})"
        if self.task is not None:
            text += f", worker {self.worker_index} of {self.num_workers}"
            text += " (chief)" if self.is_chief else ""
        return text


def start_distribution(name: str, environ: Mapping[str, str] | None = None) -> Distribution:
    """Creates the strategy of ``--strategy name``; call it before any TensorFlow op.

    A process creates each strategy once; later calls return it.

    Raises:
        ValueError: unknown ``name``.
        TFConfigError: ``multi-worker`` without a valid ``TF_CONFIG``.
    """
    check_strategy(name)
    if name == "none":
        return Distribution(name)
    if name in _started:
        # TensorFlow allows one collective setup per process.
        return _started[name]
    _started[name] = _create(name, environ)
    return _started[name]


_started: dict[str, Distribution] = {}


def _create(name: str, environ: Mapping[str, str] | None) -> Distribution:
    import tensorflow as tf

    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
        return Distribution(name, tf.distribute.MirroredStrategy(devices))
    environ = os.environ if environ is None else environ
    text = environ.get(TF_CONFIG)
    task = parse_tf_config(text)
    _configure_heartbeat(json.loads(str(text))["cluster"])
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    return Distribution(name, strategy, task)


# A worker silent this long is declared lost. TensorFlow's default (10 s) ended
# a 2-worker run on a loaded 2-core machine whose workers were alive but
# starved ("Task ... heartbeat timeout"); a lost worker is still reported.
HEARTBEAT_TIMEOUT_MS = 300_000


def _configure_heartbeat(cluster: dict[str, list[str]]) -> None:
    """The coordination service as the strategy would set it up, with a longer heartbeat.

    ``MultiWorkerMirroredStrategy`` configures the service only when none is
    configured yet and has no public setting for the timeout, so it is set
    here first through TensorFlow's context (the same call, same leader and
    jobs).
    """
    from tensorflow.compiler.xla.tsl.protobuf import coordination_config_pb2
    from tensorflow.python.eager import context

    if context.context().coordination_service is not None:
        return
    jobs = [job for job in _TRAINING_JOBS if cluster.get(job)]
    context.context().configure_coordination_service(
        service_type="standalone",
        service_leader=f"/job:{jobs[0]}/replica:0/task:0",
        coordinated_jobs=[
            coordination_config_pb2.CoordinatedJob(name=job, num_tasks=len(cluster[job]))
            for job in jobs
        ],
        heartbeat_timeout_in_ms=HEARTBEAT_TIMEOUT_MS,
    )


def shard_dataset(dataset: Any, distribution: Distribution) -> Any:
    """``dataset`` of global batches, set up so each worker keeps its replicas' slices.

    See the module docstring: every worker plans the same epoch and
    ``AutoShardPolicy.DATA`` keeps, of each global batch, the rows of this
    worker's replicas (Keras' ``experimental_distribute_dataset`` splits a
    global batch into one slice per replica, then shards the slices).
    """
    if distribution.num_workers == 1:
        return dataset
    import tensorflow as tf

    options = tf.data.Options()
    # The default (AUTO) would look for files to shard first and log a warning
    # when it finds none; the windows are in memory.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def equal_steps(shard_windows: list[int], per_worker_batch: int) -> int:
    """Steps every worker runs per epoch when each worker batches its own shard.

    A shard of ``w`` windows gives ``ceil(w / b)`` batches; every worker
    must run the same number of steps, so workers with fewer batches pad
    with all-padding batches (no loss) up to the largest count.

    Example:
        >>> equal_steps([10, 9, 7], per_worker_batch=4)
        3
    """
    if per_worker_batch < 1 or not shard_windows:
        raise ValueError(
            f"need per_worker_batch >= 1 and at least one shard, received {per_worker_batch} "
            f"and {shard_windows}"
        )
    return max(-(-int(w) // per_worker_batch) for w in shard_windows)


def vector_logs(model: Any, distribution: Distribution) -> None:
    """Works around keras-team/keras#20585 on ``model`` under ``multi-worker``.

    https://github.com/keras-team/keras/issues/20585: under
    ``MultiWorkerMirroredStrategy`` the TensorFlow trainer's
    ``reduce_per_replica`` reduces every log with
    ``strategy.reduce("MEAN", value, axis=0)``, and a train step's logs are
    scalars (the loss), which have no axis 0. Here the train step returns
    each scalar as a 1-element vector: the reduction along axis 0 then
    averages the replicas' values into the scalar Keras expects.
    ``tests/training/test_distribution.py`` checks both that plain Keras
    still fails and that this fixes it.
    """
    if distribution.name != "multi-worker":
        return
    from keras import ops

    step = model.train_step

    def train_step(data: Any) -> dict[str, Any]:
        logs = step(data)
        return {
            key: ops.reshape(value, (1,)) if len(getattr(value, "shape", (0,))) == 0 else value
            for key, value in logs.items()
        }

    model.train_step = train_step


@contextlib.contextmanager
def worker_scratch(out: Path, worker_index: int, resume: bool) -> Iterator[Path]:
    """A non-chief worker's own output folder under ``out``, removed at the end.

    ``tf.distribute``'s rule for checkpoints: every worker saves, but only
    the chief into the real location; the others save into temporary
    folders they delete. With ``resume`` the chief's checkpoint
    (``out/.checkpoint``, which every worker must be able to read: a shared
    volume, or the same path on one machine) is copied in first, so every
    worker restores the same epoch.

    Example:
        >>> with worker_scratch(Path("runs/m"), 1, resume=False) as own:  # doctest: +SKIP
        ...     own.name.startswith(".worker-1-")
        True
    """
    from sasrec.training.checkpoint import CHECKPOINT_DIR

    own = Path(tempfile.mkdtemp(prefix=f".worker-{worker_index}-", dir=out))
    try:
        if resume and (out / CHECKPOINT_DIR).is_dir():
            shutil.copytree(out / CHECKPOINT_DIR, own / CHECKPOINT_DIR)
        yield own
    finally:
        shutil.rmtree(own, ignore_errors=True)


def local_cluster(workers: int) -> list[str]:
    """``TF_CONFIG`` of each of ``workers`` processes on this machine (free 127.0.0.1 ports).

    For tests and benchmarks that run several workers on one machine; the
    ports are free when chosen, and taken by the workers when they start.

    Example:
        >>> [parse_tf_config(c).index for c in local_cluster(2)]
        [0, 1]
    """
    import socket

    sockets = [socket.socket() for _ in range(workers)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        addresses = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    finally:
        for s in sockets:
            s.close()
    return [
        json.dumps({"cluster": {"worker": addresses}, "task": {"type": "worker", "index": i}})
        for i in range(workers)
    ]
