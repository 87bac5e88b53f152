"""SASRec: self-attentive sequential recommendation (Kang & McAuley, ICDM 2018).

The model library (``sasrec.layers``, ``sasrec.models``, ``sasrec.optimizers``,
``sasrec.evaluation``) needs only Keras and TensorFlow; ``sasrec.data``
(pandas) and ``sasrec.serving`` (gRPC) are imported on demand.
"""

__version__ = "0.1.0"
