"""Inference engines: top-k next-item scoring of a trained SASRec (TensorFlow graph, NumPy)."""
