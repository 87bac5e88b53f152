"""The SASRec model: the next-item task (losses, scoring, top-k) on an encoder."""

from __future__ import annotations

import dataclasses
import inspect
import math
from typing import Any

import keras
from keras import ops

from sasrec.config import LOSSES, NEGATIVE_SHARINGS, SASRecConfig
from sasrec.layers._checks import check_positive_int
from sasrec.layers.sasrec_encoder import SASRecEncoder
from sasrec.models.candidate_logits import (
    batch_negative_logits,
    full_softmax_loss,
    per_position_logits,
    sequence_negative_logits,
)

_NEG_INF = float("-inf")

# The encoder's settings, read from its signature so that they are written
# once: SASRec accepts them as flat keywords (the SASRecConfig fields) and
# exposes them as read-only attributes.
ENCODER_SETTINGS = tuple(
    name
    for name, parameter in inspect.signature(SASRecEncoder.__init__).parameters.items()
    if name != "self" and parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
)
# Encoder settings left out of the flat keywords take SASRecConfig's defaults
# (max_len=50, hidden_dim=64, dropout=0.2 ...), as SASRec(num_items=...)
# always did; SASRecEncoder's own defaults serve an encoder built directly.
_FLAT_DEFAULTS = {
    field.name: field.default
    for field in dataclasses.fields(SASRecConfig)
    if field.name in ENCODER_SETTINGS and field.default is not dataclasses.MISSING
}


@keras.saving.register_keras_serializable(package="sasrec")
class SASRec(keras.Model):
    """Self-attentive sequential recommender (Kang & McAuley, ICDM 2018).

    The next-item task on a :class:`sasrec.layers.SASRecEncoder`, the way
    keras-hub's ``GPT2CausalLM`` is a task on a ``GPT2Backbone``: the encoder
    maps left-padded ids ``(B, t)`` to hidden states ``(B, t, d)`` and owns
    the architecture settings; the task owns the loss settings. The item
    table ``E`` is shared with the output layer, so the score of item ``i``
    after position ``p`` is ``h_p . E_i``. The loss lives in
    :meth:`compute_loss`, so training is ``model.compile(optimizer);
    model.fit(dataset)`` on batches of the training contract (``item_ids``,
    ``positives``, ``negatives``).

    Build it from an encoder, or from the flat settings of
    :class:`sasrec.config.SASRecConfig` (``SASRec(**config.to_dict())`` or
    ``config.build_model()``), which builds the encoder named ``"encoder"``
    with the model's dtype policy. The encoder's settings are readable on the
    model (``model.num_items``, ``model.max_len`` ...). ``loss`` is stored as
    ``loss_name`` because ``keras.Model.compile`` owns the ``loss`` attribute.

    Args:
        encoder: The :class:`SASRecEncoder`; None to build one from the
            encoder settings in ``kwargs``.
        loss: ``"bce"``, ``"sampled_softmax"``, ``"softmax"`` or ``"gbce"``.
        num_negatives: Negatives per position for the sampled losses.
        negative_sharing: ``"sequence"`` (batches carry ``negatives`` of
            shape ``(B, t, n)`` or ``(B, 1, n)``) or ``"batch"`` (one set
            ``(1, 1, n)`` for the whole batch, ``n < num_items``).
        gbce_t: The calibration parameter t of gBCE.
        loss_denominator: None (mean over the batch's valid positions) or
            the number C that divides the summed position losses.
        **kwargs: The encoder settings (``num_items``, ``max_len`` ...) when
            ``encoder`` is None (defaults: those of ``SASRecConfig``), and
            standard ``keras.Model`` arguments.

    Example:
        >>> encoder = SASRecEncoder(num_items=20, max_len=5, hidden_dim=8)
        >>> model = SASRec(encoder=encoder, loss="bce")
        >>> ids = keras.ops.convert_to_tensor([[0, 0, 3, 4, 5]])
        >>> tuple(model(ids).shape), tuple(model.score_last(ids).shape)
        ((1, 5, 8), (1, 21))
        >>> top_ids, top_scores = model.top_k(ids, k=3)
        >>> bool(keras.ops.all(top_ids != 3))
        True
        >>> SASRec(num_items=20, max_len=5, hidden_dim=8).num_items
        20
    """

    def __init__(
        self,
        encoder: SASRecEncoder | None = None,
        loss: str = "softmax",
        num_negatives: int = 1,
        negative_sharing: str = "sequence",
        gbce_t: float = 0.75,
        loss_denominator: float | None = None,
        **kwargs: Any,
    ) -> None:
        encoder_settings = _pop_encoder_settings(kwargs)
        if encoder is not None and (encoder_settings or not isinstance(encoder, SASRecEncoder)):
            raise ValueError(
                "SASRec: pass either encoder=SASRecEncoder(...) or the encoder settings "
                f"({', '.join(ENCODER_SETTINGS)}) by keyword, received encoder={encoder!r} "
                f"and {sorted(encoder_settings)}"
            )
        self.check_task_arguments(loss, num_negatives, negative_sharing, gbce_t, loss_denominator)
        super().__init__(**kwargs)
        if encoder is None:
            encoder = SASRecEncoder(
                **{**_FLAT_DEFAULTS, **encoder_settings}, dtype=self.dtype_policy, name="encoder"
            )
        _check_batch_negatives(loss, num_negatives, negative_sharing, encoder.num_items)
        self.encoder = encoder
        self.loss_name = loss
        self.num_negatives = num_negatives
        self.negative_sharing = negative_sharing
        self.gbce_t = gbce_t
        self.loss_denominator = None if loss_denominator is None else float(loss_denominator)
        # Build eagerly: weights exist right away (count_params, set_weights,
        # loading) and no variable is ever created inside a traced function.
        self.build((None, encoder.max_len))

    @staticmethod
    def check_task_arguments(
        loss: str,
        num_negatives: int,
        negative_sharing: str,
        gbce_t: float,
        loss_denominator: float | None,
    ) -> None:
        """Raises ``ValueError`` naming the first bad task argument and its value."""
        if loss not in LOSSES:
            raise ValueError(f"SASRec: loss must be one of {LOSSES}, received loss={loss!r}")
        check_positive_int("SASRec", "num_negatives", num_negatives)
        if negative_sharing not in NEGATIVE_SHARINGS:
            raise ValueError(
                f"SASRec: negative_sharing must be one of {NEGATIVE_SHARINGS}, received "
                f"negative_sharing={negative_sharing!r}"
            )
        if not (_is_number(gbce_t) and 0 <= gbce_t <= 1):
            raise ValueError(
                f"SASRec: gbce_t must be a number in [0, 1], received gbce_t={gbce_t!r}"
            )
        if loss_denominator is not None and not (
            _is_number(loss_denominator) and 0 < loss_denominator < math.inf
        ):
            raise ValueError(
                "SASRec: loss_denominator must be None or a finite number > 0, "
                f"received loss_denominator={loss_denominator!r}"
            )

    @classmethod
    def check_arguments(cls, **settings: Any) -> None:
        """Checks the flat settings of ``SASRec(**settings)`` without creating a weight.

        Constructs the encoder (which checks its settings where they are used,
        without building) and checks the task arguments; used by
        :class:`sasrec.config.SASRecConfig`. Settings checked only when the
        model is built (``num_items``, ``max_len``, the dropout rates) are
        left to the layers that use them.
        """
        encoder_settings = _pop_encoder_settings(settings)
        # The other settings as the constructor would receive them, defaults
        # included; checked in the constructor's order (task, then encoder).
        bound = inspect.signature(cls.__init__).bind(None, **settings)
        bound.apply_defaults()
        task_names = inspect.signature(cls.check_task_arguments).parameters
        cls.check_task_arguments(**{name: bound.arguments[name] for name in task_names})
        SASRecEncoder(**{**_FLAT_DEFAULTS, **encoder_settings})
        num_items = encoder_settings.get("num_items")
        if isinstance(num_items, int):
            _check_batch_negatives(
                bound.arguments["loss"],
                bound.arguments["num_negatives"],
                bound.arguments["negative_sharing"],
                num_items,
            )

    def build(self, input_shape: tuple[int | None, ...] = (None, None)) -> None:
        if not self.encoder.built:
            self.encoder.build((None, None))

    # ----------------------------------------------------------------- encoder
    @property
    def item_embeddings(self) -> keras.Variable:
        """The shared ``(N + 1, d)`` item table (row 0 = padding)."""
        return self.encoder.item_embeddings

    def call(self, inputs: Any, training: bool = False) -> Any:
        """Hidden states ``(B, t, d)`` of an id tensor or a training batch dict."""
        item_ids = inputs["item_ids"] if isinstance(inputs, dict) else inputs
        return self.encoder(item_ids, training=training)

    def compile(self, *args: Any, jit_compile: bool | str = "auto", **kwargs: Any) -> None:
        """``keras.Model.compile``, then builds the optimizer's slots right away.

        The model is built at construction, so its variables are known; the
        optimizer variables would otherwise be created inside the first
        trace of the train function, which makes TensorFlow trace it twice.

        ``jit_compile=True`` (XLA) is usually the fastest on CPU for the
        sampled losses; XLA compiles once per distinct batch shape. It is
        refused for ``loss="softmax"``, which gathers the valid positions
        into a tensor of data-dependent size.
        """
        if jit_compile is True and self.loss_name == "softmax":
            raise ValueError(
                "SASRec(loss='softmax') cannot be compiled with jit_compile=True: the full "
                "softmax gathers the valid positions (a data-dependent shape); use "
                "jit_compile=False or a sampled loss ('bce', 'gbce', 'sampled_softmax')"
            )
        super().compile(*args, jit_compile=jit_compile, **kwargs)
        if self.optimizer is not None and not self.optimizer.built:
            self.optimizer.build(self.trainable_variables)

    def _maybe_symbolic_build(self, iterator: Any = None, data_batch: Any = None) -> None:
        """Skips Keras' symbolic build when the model and optimizer are built.

        Under a ``tf.distribute`` strategy Keras builds a model on a batch
        drawn from a fresh iterator of the training data before ``fit``. The
        model is built at construction and its optimizer in :meth:`compile`,
        so that build would only waste the batch, and with it the first epoch
        of a dataset that plans each epoch as it is iterated
        (``sasrec.data.dataset``): a distributed run would then train on
        epochs 1, 2, ... of the seed instead of 0, 1, ...
        """
        if self.built and (self.optimizer is None or self.optimizer.built):
            return
        super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    # -------------------------------------------------------------------- loss
    def compute_loss(
        self,
        x: Any = None,
        y: Any = None,
        y_pred: Any = None,
        sample_weight: Any = None,
        training: bool = True,
    ) -> Any:
        """The ``loss`` chosen in the config over the valid positions (:meth:`sequence_loss`).

        Args:
            x: The training batch dict (``item_ids``, ``positives`` and, for
                sampled losses, ``negatives``).
            y: Unused (the targets are in ``x``).
            y_pred: Hidden states from :meth:`call`.
            sample_weight: Unused.
            training: Unused.

        Returns:
            Scalar float32 loss (plus any layer regularization losses).
        """
        del y, sample_weight, training
        if not isinstance(x, dict) or "positives" not in x:
            raise ValueError(
                "SASRec.compute_loss expects the training batch dict with keys "
                f"'item_ids', 'positives' and 'negatives', received {type(x).__name__}"
                + (f" with keys {sorted(x)}" if isinstance(x, dict) else "")
            )
        total = self.sequence_loss(y_pred, x["positives"], x.get("negatives"))
        for extra in self.losses:
            total = total + ops.cast(ops.sum(extra), "float32")
        return total

    def sequence_loss(self, hidden: Any, positives: Any, negatives: Any | None = None) -> Any:
        """Loss over positions with ``positives != 0`` (mean, or sum / ``loss_denominator``).

        Args:
            hidden: ``(B, t, d)`` hidden states.
            positives: Int ``(B, t)`` next item per position, 0 = no target.
            negatives: Int ``(B, t, n)`` or ``(B, 1, n)`` sampled negatives
                (sampled losses); ``(1, 1, n)`` with ``negative_sharing="batch"``.

        Returns:
            Scalar float32; 0 when the batch has no valid position.
        """
        hidden = ops.cast(hidden, "float32")
        positives = ops.cast(positives, "int32")
        valid = ops.not_equal(positives, 0)
        if self.loss_denominator is None:
            denominator = ops.maximum(ops.sum(ops.cast(valid, "float32")), 1.0)
        else:
            denominator = self.loss_denominator
        if self.loss_name == "softmax":
            return full_softmax_loss(hidden, positives, valid, self.item_embeddings) / denominator
        if negatives is None:
            raise ValueError(
                f"SASRec(loss={self.loss_name!r}) needs 'negatives' (B, t, n) in the batch"
            )
        negatives = ops.cast(negatives, "int32")
        if len(negatives.shape) != 3:
            raise ValueError(
                "negatives must have shape (B, t, n) or (B, 1, n), received shape "
                f"{tuple(negatives.shape)}"
            )
        lookup = self.encoder.item_embedding.lookup
        if self.negative_sharing == "batch":
            positive, negative = batch_negative_logits(lookup, hidden, positives, negatives)
            if self.loss_name == "sampled_softmax":
                # Uniform draws without replacement: (N - 1) / n times the
                # sampled exponentials estimates the sum over every
                # non-positive item, i.e. the full softmax's denominator.
                correction = math.log(max(self.num_items - 1, 1) / self.num_negatives)
                lse = ops.logsumexp(negative + correction, axis=-1)
                per_position = ops.logaddexp(positive, lse) - positive
                return ops.sum(ops.where(valid, per_position, 0.0)) / denominator
            logits = None
        elif negatives.shape[1] == 1:
            positive, negative = sequence_negative_logits(lookup, hidden, positives, negatives)
            logits = ops.concatenate([positive[:, :, None], negative], axis=-1)
        else:
            logits = per_position_logits(lookup, hidden, positives, negatives)
            positive, negative = logits[:, :, 0], logits[:, :, 1:]
        if self.loss_name == "sampled_softmax":
            per_position = ops.logsumexp(logits, axis=-1) - positive
        else:
            beta = self.gbce_beta(ops.shape(negatives)[-1]) if self.loss_name == "gbce" else 1.0
            per_position = -beta * ops.log_sigmoid(positive) - ops.sum(
                ops.log_sigmoid(-negative), axis=-1
            )
        return ops.sum(ops.where(valid, per_position, 0.0)) / denominator

    def gbce_beta(self, num_sampled: Any) -> Any:
        """gSASRec's ``beta = alpha (t (1 - 1/alpha) + 1/alpha)``, ``alpha = k / (N - 1)``.

        Petrov & Macdonald, "gSASRec", RecSys 2023: with ``k`` negatives drawn
        uniformly from the ``N - 1`` non-positive items, raising the positive
        probability to ``beta`` calibrates the scores; ``t = 0`` gives
        ``beta = 1`` (plain BCE) and ``t = 1`` gives ``beta = alpha``.
        """
        alpha = ops.minimum(ops.cast(num_sampled, "float32") / max(self.num_items - 1, 1), 1.0)
        return alpha * (self.gbce_t * (1.0 - 1.0 / alpha) + 1.0 / alpha)

    # ----------------------------------------------------------------- scoring
    def score_last(self, item_ids: Any) -> Any:
        """Float32 logits ``(B, N + 1)`` for the item after the last column.

        Column 0 (padding) is ``-inf``.
        """
        item_ids = ops.convert_to_tensor(item_ids, dtype="int32")
        hidden = self.encoder(item_ids, training=False)
        last = ops.cast(hidden[:, -1, :], "float32")
        table = ops.cast(self.item_embeddings, "float32")
        logits = ops.matmul(last, ops.transpose(table))
        is_padding = ops.equal(ops.arange(self.num_items + 1, dtype="int32"), 0)[None, :]
        return ops.where(is_padding, _NEG_INF, logits)

    def top_k(
        self,
        item_ids: Any,
        k: Any,
        exclude_history: Any = True,
        deny_ids: Any | None = None,
        allow_ids: Any | None = None,
    ) -> tuple[Any, Any]:
        """The ``k`` best next items, with exclusions applied in the graph.

        Args:
            item_ids: Int ``(B, t)`` left-padded histories.
            k: Number of results (int or int32 scalar tensor); at most N
                are returned.
            exclude_history: Bool, or bool ``(B,)`` per row: drop items of
                the history.
            deny_ids: Int ``(B, D)`` items never to return, padded with 0.
            allow_ids: Int ``(B, D)`` the only items to return, padded with
                0; a row that is all 0 means "no allow list".

        Returns:
            ``(ids int32 (B, min(k, N)), scores float32 (B, min(k, N)))``
            sorted by decreasing score. Ids outside 1..N in ``deny_ids`` or
            ``allow_ids`` are ignored. When fewer than ``k`` items are
            eligible, the remaining slots have id 0 and score ``-inf``.
        """
        if isinstance(k, int) and k < 1:
            raise ValueError(f"k must be >= 1, received k={k}")
        # Same logits as score_last, without its extra (B, N + 1) pass for the
        # padding column: column 0 is banned below with the other ids.
        item_ids = ops.convert_to_tensor(item_ids, dtype="int32")
        hidden = self.encoder(item_ids, training=False)
        last = ops.cast(hidden[:, -1, :], "float32")
        table = ops.cast(self.item_embeddings, "float32")
        # (B, d) x (N + 1, d)^T without materialising the transposed table.
        scores = ops.einsum("bd,nd->bn", last, table)
        batch = ops.shape(item_ids)[0]

        def row_indices(ids: Any) -> Any:
            # Int32 (B * D, 2) scatter indices (row, id) of a (B, D) id tensor.
            rows = ops.repeat(ops.arange(batch, dtype="int32")[:, None], ops.shape(ids)[1], axis=1)
            return ops.reshape(ops.stack([rows, ids], axis=-1), (-1, 2))

        def keep_only_allowed(scores: Any, allow_ids: Any) -> Any:
            # The allowed scores scattered into a -inf matrix (one fill, no
            # membership mask); rows without a list keep their scores.
            kept = ops.scatter_update(
                ops.full(ops.shape(scores), _NEG_INF, dtype="float32"),
                row_indices(allow_ids),
                ops.reshape(ops.take_along_axis(scores, allow_ids, axis=1), (-1,)),
            )
            has_allow = ops.any(ops.not_equal(allow_ids, 0), axis=1)[:, None]
            return ops.where(has_allow, kept, scores)

        if allow_ids is not None:
            allow_ids = self._sanitize_ids(allow_ids)
            # Most batches carry no allow list: skip the (B, N + 1) work then.
            scores = ops.cond(
                ops.any(ops.not_equal(allow_ids, 0)),
                lambda: keep_only_allowed(scores, allow_ids),
                lambda: scores,
            )
        # Banned: column 0 (padding), the history where excluded, deny lists;
        # one scatter of -inf into the scores, never a (B, N + 1) mask.
        exclude = ops.broadcast_to(ops.convert_to_tensor(exclude_history, dtype="bool"), (batch,))
        banned = [ops.zeros((batch, 1), dtype="int32"), ops.where(exclude[:, None], item_ids, 0)]
        if deny_ids is not None:
            banned.append(self._sanitize_ids(deny_ids))
        indices = row_indices(ops.concatenate(banned, axis=1))
        scores = ops.scatter_update(
            scores, indices, ops.full((ops.shape(indices)[0],), _NEG_INF, dtype="float32")
        )

        # Column 0 is -inf, so with k <= N it only appears where fewer than k
        # items are eligible; those slots (all -inf) get id 0.
        k = ops.minimum(ops.cast(k, "int32"), self.num_items)
        num_columns = self.num_items + 1
        chunk = 64
        num_chunks = num_columns // chunk

        def chunked_top_k() -> tuple[Any, Any]:
            # Exact top-k in two cheap passes instead of one heap pass over
            # (B, N + 1): every top-k item lies in one of the k chunks with the
            # largest maxima, so the answer is the top-k of those chunks' items
            # (plus the columns after the last whole chunk).
            body = ops.reshape(scores[:, : num_chunks * chunk], (batch, num_chunks, chunk))
            _, best_chunks = ops.top_k(ops.max(body, axis=2), k)
            columns = ops.cast(best_chunks, "int32")[:, :, None] * chunk + ops.arange(
                chunk, dtype="int32"
            )
            columns = ops.reshape(columns, (batch, -1))
            if num_chunks * chunk < num_columns:
                tail = ops.arange(num_chunks * chunk, num_columns, dtype="int32")[None, :]
                columns = ops.concatenate([columns, ops.repeat(tail, batch, axis=0)], axis=1)
            values, picked = ops.top_k(ops.take_along_axis(scores, columns, axis=1), k)
            return values, ops.take_along_axis(columns, ops.cast(picked, "int32"), axis=1)

        def full_top_k() -> tuple[Any, Any]:
            values, columns = ops.top_k(scores, k)
            return values, ops.cast(columns, "int32")

        if num_chunks >= 8:
            # Worth it while the k best chunks are a small part of the table.
            top_scores, top_columns = ops.cond(
                k * chunk * 4 <= num_columns, chunked_top_k, full_top_k
            )
        else:
            top_scores, top_columns = full_top_k()
        top_ids = ops.where(ops.isfinite(top_scores), top_columns, 0)
        return top_ids, top_scores

    def _sanitize_ids(self, ids: Any) -> Any:
        ids = ops.convert_to_tensor(ids, dtype="int32")
        in_range = ops.logical_and(ops.greater(ids, 0), ops.less_equal(ids, self.num_items))
        return ops.where(in_range, ids, 0)

    def attention_weights(self, item_ids: Any) -> Any:
        """Float32 ``(B, t)``: the last block's attention of the last position.

        Averaged over heads; padding columns get 0 and each row with at
        least one real item sums to 1.
        """
        item_ids = ops.convert_to_tensor(item_ids, dtype="int32")
        _, weights = self.encoder(item_ids, training=False, return_attention_scores=True)
        return ops.mean(weights[-1][:, :, -1, :], axis=1)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            encoder=keras.saving.serialize_keras_object(self.encoder),
            loss=self.loss_name,
            num_negatives=self.num_negatives,
            negative_sharing=self.negative_sharing,
            gbce_t=self.gbce_t,
            loss_denominator=self.loss_denominator,
        )
        return config

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SASRec:
        """Accepts :meth:`get_config` and the flat form saved before the encoder was nested.

        Files saved before carry the encoder settings as flat keys (the
        ``SASRecConfig`` fields), which the constructor still accepts.
        """
        config = dict(config)
        if isinstance(config.get("encoder"), dict):
            config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)


def _pop_encoder_settings(settings: dict[str, Any]) -> dict[str, Any]:
    """Removes the encoder settings from ``settings``; returns those given."""
    return {name: settings.pop(name) for name in ENCODER_SETTINGS if name in settings}


def _check_batch_negatives(
    loss: str, num_negatives: int, negative_sharing: str, num_items: int
) -> None:
    """Batch-shared negatives are distinct items other than the positive: fewer than N."""
    if negative_sharing == "batch" and loss != "softmax" and num_negatives >= num_items:
        raise ValueError(
            f"SASRec: negative_sharing='batch' draws num_negatives distinct items, so it needs "
            f"num_negatives < num_items, received num_negatives={num_negatives} and "
            f"num_items={num_items}; use loss='softmax' (every item) instead"
        )


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _encoder_setting(name: str) -> property:
    return property(
        lambda self: getattr(self.encoder, name),
        doc=f"The encoder's ``{name}`` (read-only; see :class:`SASRecEncoder`).",
    )


for _name in ENCODER_SETTINGS:
    setattr(SASRec, _name, _encoder_setting(_name))
