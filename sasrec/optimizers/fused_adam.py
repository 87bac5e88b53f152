"""Adam with the many small variables of a model updated in one pass."""

from __future__ import annotations

import math
from typing import Any

import keras
import tensorflow as tf
from keras import ops


@keras.saving.register_keras_serializable(package="sasrec")
class FusedAdam(keras.optimizers.Adam):
    """``keras.optimizers.Adam`` that updates all small variables together.

    Keras' Adam updates each variable on its own: three elementwise passes
    (first moment, second moment, parameter) per variable. A SASRec step has
    about 35 small variables (kernels, biases, LayerNorm scales, position
    table) besides the item table, so XLA:CPU runs about a hundred tiny
    kernels per step whose launch costs more than their arithmetic; on short
    histories that is a tenth of the step. Here the gradients of every
    variable with fewer than ``fuse_below`` entries are concatenated into one
    flat vector whose moments live in one flat slot pair, so one pass
    updates them and one small write per variable applies the step. Larger
    variables (the item table) keep Adam's own per-variable update.

    The arithmetic is Adam's, element for element (``m += (g - m)(1 - b1)``,
    ``v += (g^2 - v)(1 - b2)``, ``p -= m * lr_t / (sqrt(v) + eps)`` with Keras'
    bias-corrected ``lr_t``), so training follows the same path as
    ``keras.optimizers.Adam`` up to float rounding. A variable without a
    gradient in a step is left alone, moments included, as Keras does.
    ``amsgrad`` is not supported. Under a ``tf.distribute`` strategy
    (``MirroredStrategy``, ``MultiWorkerMirroredStrategy``) the gradients
    are summed across replicas before the update, as Keras' optimizers do,
    and every device applies the same update to its copy.

    With ``lazy_item_table=True`` every large two-dimensional variable (the
    item table) gets lazy-Adam updates, as TF Addons' ``LazyAdam``: only the
    rows the step touched move, ``m[r] = b1 m[r] + (1 - b1) g[r]``,
    ``v[r] = b2 v[r] + (1 - b2) g[r]^2``, ``w[r] -= lr_t m[r] / (sqrt(v[r]) +
    eps)`` with the global step's bias correction ``lr_t``; the other rows
    keep their weights and both moments (dense Adam would keep moving them
    with their momentum). The touched rows are the rows of an
    ``IndexedSlices`` gradient's indices, or, for the dense table gradient
    the model produces (``ItemEmbedding``'s segment sum), the rows with a
    nonzero gradient entry: the input, positive and negative ids of the
    batch (a looked-up row whose gradient is exactly zero, such as the
    masked padding row, counts as untouched). On rows touched every step
    the result equals dense Adam. Rarely seen items then keep a stale
    momentum instead of drifting, which is the point for large catalogues
    with a few thousand rows touched per step.

    Shapes stay static under XLA. By default the update is one masked
    elementwise pass over the table (``where(touched, adam_row, old_row)``
    for weights and both moments), which XLA:CPU fuses into one kernel: 50
    compiled updates of a 200k x 64 table took 0.11-0.20 s against
    1.0-1.3 s for Keras' dense Adam (2,000 or 200 nonzero rows; 2 shared
    cores). With ``lazy_max_rows > 0`` a step touching at most that many
    rows compacts their ids into static slots and gathers, updates and
    scatters back only those rows; same arithmetic, but it measured slower
    (2.2 s for the same 50 updates: the compaction reads every row, and
    scatters are serial on XLA:CPU), so it is off. Earlier measurement also
    found a row gather/scatter costlier than the dense pass from about
    1,500 touched rows on a 23k table. Lazy updates change training for
    rarely seen items, so they are off by default.

    Args:
        learning_rate: As ``keras.optimizers.Adam``.
        beta_1: As ``keras.optimizers.Adam``.
        beta_2: As ``keras.optimizers.Adam``.
        epsilon: As ``keras.optimizers.Adam``.
        fuse_below: Variables with fewer entries than this are updated
            together; 0 fuses none (plain Adam).
        lazy_item_table: Lazy-Adam updates (touched rows only) for the
            unfused two-dimensional variables; False keeps dense Adam.
        lazy_max_rows: With ``lazy_item_table``, a step touching at most
            this many rows updates them by row gather/scatter; a step
            touching more uses the masked pass; 0 (default, faster as
            measured on CPU): always the masked pass. Same arithmetic.
        **kwargs: Other ``keras.optimizers.Optimizer`` arguments.

    Example:
        >>> w = keras.Variable([1.0, 2.0]); b = keras.Variable([0.5])
        >>> opt = FusedAdam(learning_rate=0.1)
        >>> opt.apply([ops.convert_to_tensor([1.0, -1.0]), ops.convert_to_tensor([2.0])], [w, b])
        >>> [round(float(x), 4) for x in ops.concatenate([w, b])]
        [0.9, 2.1, 0.4]
    """

    def __init__(
        self,
        learning_rate: float | Any = 0.001,
        beta_1: float = 0.9,
        beta_2: float = 0.999,
        epsilon: float = 1e-7,
        fuse_below: int = 65_536,
        lazy_item_table: bool = False,
        lazy_max_rows: int = 0,
        **kwargs: Any,
    ) -> None:
        if kwargs.pop("amsgrad", False):
            raise ValueError("FusedAdam does not support amsgrad=True; use keras.optimizers.Adam")
        if isinstance(fuse_below, bool) or not isinstance(fuse_below, int) or fuse_below < 0:
            raise ValueError(f"fuse_below must be an int >= 0, received {fuse_below!r}")
        super().__init__(
            learning_rate=learning_rate,
            beta_1=beta_1,
            beta_2=beta_2,
            epsilon=epsilon,
            amsgrad=False,
            **kwargs,
        )
        if not isinstance(lazy_item_table, bool):
            raise ValueError(f"lazy_item_table must be a bool, received {lazy_item_table!r}")
        self.fuse_below = fuse_below
        if (
            isinstance(lazy_max_rows, bool)
            or not isinstance(lazy_max_rows, int)
            or lazy_max_rows < 0
        ):
            raise ValueError(f"lazy_max_rows must be an int >= 0, received {lazy_max_rows!r}")
        self.lazy_item_table = lazy_item_table
        self.lazy_max_rows = lazy_max_rows

    def build(self, var_list: list[Any]) -> None:
        if self.built:
            return
        # Skip Adam.build: the fused variables get no per-variable slots.
        keras.optimizers.Optimizer.build(self, var_list)
        # Variable index -> (offset, size) in the flat vector, in variable order.
        self._fused_offsets: dict[int, tuple[int, int]] = {}
        self._momentums: list[Any] = []
        self._velocities: list[Any] = []
        total = 0
        for i, variable in enumerate(var_list):
            size = math.prod(variable.shape)
            if size < self.fuse_below:
                self._fused_offsets[i] = (total, size)
                total += size
                self._momentums.append(None)
                self._velocities.append(None)
            else:
                self._momentums.append(self.add_variable_from_reference(variable, "momentum"))
                self._velocities.append(self.add_variable_from_reference(variable, "velocity"))
        self._fused_size = total
        if total:
            self._fused_momentum = self.add_variable((total,), name="fused_momentum")
            self._fused_velocity = self.add_variable((total,), name="fused_velocity")

    def _backend_update_step(
        self, grads: list[Any], trainable_variables: list[Any], learning_rate: Any
    ) -> None:
        if not tf.distribute.has_strategy():
            self._update_all(grads, trainable_variables, learning_rate)
            return
        # Under a tf.distribute strategy this runs once per replica, each with
        # its own batch's gradients. As Keras' own optimizers do, the gradients
        # are first summed across replicas (and workers); then every device
        # applies the same update to its copy of the variables. Without the
        # sum each copy would follow its own replica's gradient: the fused
        # slots and the lazy table would drift apart from Keras' Adam.
        pairs = self._all_reduce_sum_gradients(list(zip(grads, trainable_variables)))
        tf.__internal__.distribute.interim.maybe_merge_call(
            self._update_each_device, self._distribution_strategy, pairs, learning_rate
        )

    def _update_each_device(
        self, distribution: Any, pairs: list[tuple[Any, Any]], learning_rate: Any
    ) -> None:
        variables = [variable for _, variable in pairs]

        def update(_: Any, learning_rate: Any, *grads: Any) -> None:
            # Inside an update context every variable read or assigned here is
            # this device's copy.
            self._update_all(list(grads), variables, learning_rate, on_device=True)

        distribution.extended.update(
            self.iterations.value,
            update,
            args=(learning_rate, *[grad for grad, _ in pairs]),
            group=False,
        )

    def _update_all(
        self,
        grads: list[Any],
        trainable_variables: list[Any],
        learning_rate: Any,
        on_device: bool = False,
    ) -> None:
        fused: dict[int, tuple[Any, Any]] = {}
        own_grads, own_vars = [], []
        for grad, variable in zip(grads, trainable_variables):
            index = self._get_variable_index(variable)
            if index in self._fused_offsets:
                fused[index] = (grad, variable)
            elif self.lazy_item_table and len(variable.shape) == 2:
                self._lazy_update(grad, variable, index, learning_rate)
            else:
                own_grads.append(grad)
                own_vars.append(variable)
        if own_vars and on_device:
            # Already summed across replicas and inside the device's update.
            for grad, variable in zip(own_grads, own_vars):
                self.update_step(grad, variable, learning_rate)
        elif own_vars:
            super()._backend_update_step(own_grads, own_vars, learning_rate)
        if fused:
            self._fused_update(fused, learning_rate)

    def _fused_update(self, fused: dict[int, tuple[Any, Any]], learning_rate: Any) -> None:
        dtype = self._fused_momentum.dtype
        g = ops.concatenate(
            [
                ops.reshape(ops.cast(fused[index][0], dtype), (size,))
                if index in fused
                else ops.zeros((size,), dtype)
                for index, (_, size) in self._fused_offsets.items()
            ]
        )
        m, v = self._fused_momentum, self._fused_velocity
        new_m = m + (g - m) * (1 - self.beta_1)
        new_v = v + (ops.square(g) - v) * (1 - self.beta_2)
        if len(fused) < len(self._fused_offsets):
            # Keras skips a variable without a gradient: keep its moments.
            present = ops.concatenate(
                [
                    ops.full((size,), i in fused, "bool")
                    for i, (_, size) in self._fused_offsets.items()
                ]
            )
            new_m = ops.where(present, new_m, m)
            new_v = ops.where(present, new_v, v)
        self.assign(m, new_m)
        self.assign(v, new_v)
        step = ops.cast(self.iterations + 1, dtype)
        lr = ops.cast(learning_rate, dtype)
        alpha = (
            lr
            * ops.sqrt(1 - ops.power(ops.cast(self.beta_2, dtype), step))
            / (1 - ops.power(ops.cast(self.beta_1, dtype), step))
        )
        delta = new_m * alpha / (ops.sqrt(new_v) + self.epsilon)
        for index, (_, variable) in fused.items():
            offset, size = self._fused_offsets[index]
            self.assign_sub(variable, ops.reshape(delta[offset : offset + size], variable.shape))

    def _lazy_update(self, grad: Any, variable: Any, index: int, learning_rate: Any) -> None:
        """Lazy Adam on one table: rows without gradient keep weights and moments."""
        dtype = variable.dtype
        rows = variable.shape[0]
        if isinstance(grad, tf.IndexedSlices):
            touched = tf.math.unsorted_segment_max(
                tf.ones_like(grad.indices, dtype="int32"), grad.indices, num_segments=rows
            )
            touched = ops.greater(touched, 0)
            grad = tf.convert_to_tensor(grad)
        else:
            touched = ops.any(ops.not_equal(grad, 0), axis=1)
        g = ops.cast(grad, dtype)
        m, v = self._momentums[index], self._velocities[index]
        step = ops.cast(self.iterations + 1, dtype)
        alpha = (
            ops.cast(learning_rate, dtype)
            * ops.sqrt(1 - ops.power(ops.cast(self.beta_2, dtype), step))
            / (1 - ops.power(ops.cast(self.beta_1, dtype), step))
        )
        bound = min(self.lazy_max_rows, rows)
        count = ops.sum(ops.cast(touched, "int32"))

        def masked_pass() -> Any:
            mask = ops.expand_dims(touched, 1)
            new_m = ops.where(mask, m + (g - m) * (1 - self.beta_1), m)
            new_v = ops.where(mask, v + (ops.square(g) - v) * (1 - self.beta_2), v)
            self.assign(m, new_m)
            self.assign(v, new_v)
            delta = ops.where(mask, new_m * alpha / (ops.sqrt(new_v) + self.epsilon), 0)
            self.assign_sub(variable, delta)
            return count

        def row_pass() -> Any:
            # The touched rows' ids compacted into `bound` static slots (a
            # cumulative sum gives each its slot; the rest go to a dropped
            # segment), then gather, update and scatter-add only those rows.
            slot = ops.where(touched, ops.cumsum(ops.cast(touched, "int32")) - 1, bound)
            ids = tf.math.unsorted_segment_max(
                tf.range(rows, dtype="int32"), slot, num_segments=bound + 1
            )[:bound]
            valid = ops.less(ops.arange(bound, dtype="int32"), count)
            ids = ops.where(valid, ids, 0)
            keep = ops.expand_dims(valid, 1)
            g_r, m_r, v_r = (ops.take(x, ids, axis=0) for x in (g, m, v))
            new_m = m_r + (g_r - m_r) * (1 - self.beta_1)
            new_v = v_r + (ops.square(g_r) - v_r) * (1 - self.beta_2)
            # Padding slots point at row 0 and add zeros.
            self.assign_add(m, tf.IndexedSlices(ops.where(keep, new_m - m_r, 0), ids))
            self.assign_add(v, tf.IndexedSlices(ops.where(keep, new_v - v_r, 0), ids))
            delta = ops.where(keep, new_m * alpha / (ops.sqrt(new_v) + self.epsilon), 0)
            self.assign_sub(variable, tf.IndexedSlices(delta, ids))
            return count

        if bound == 0:
            masked_pass()
        else:
            tf.cond(count <= bound, row_pass, masked_pass)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.pop("amsgrad", None)
        config["fuse_below"] = self.fuse_below
        config["lazy_item_table"] = self.lazy_item_table
        config["lazy_max_rows"] = self.lazy_max_rows
        return config
