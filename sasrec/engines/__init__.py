"""Inference engines: top-k next-item scoring of a trained SASRec.

- :mod:`~sasrec.engines.engine`: the :class:`Engine` interface and its :class:`TopK` result.
- :mod:`~sasrec.engines.registry`: engines by name (``ENGINES``, ``create_engine``).
- :mod:`~sasrec.engines.numpy_engine`: ``"numpy"``, on :mod:`~sasrec.engines.numpy_sasrec`.
- :mod:`~sasrec.engines.compiled_engine`: ``"compiled"``, the same pass in the C++
  kernel of ``kernel/scoring_kernel.cc`` (``auto``, the default, when it is built).
- :mod:`~sasrec.engines.tensorflow_engine`: ``"tensorflow"``, on :mod:`~sasrec.engines.inference`
  (the compiled graph, also exported as a TF SavedModel).
- :mod:`~sasrec.engines.length_groups`: short and long histories in separate encoder calls.
- :mod:`~sasrec.engines.scorer`: full score rows for evaluation during training.

Nothing is imported here, so ``import sasrec.engines.registry`` stays cheap and
NumPy-only code can use the NumPy modules without loading TensorFlow.
"""
