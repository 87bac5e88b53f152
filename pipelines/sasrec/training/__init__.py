"""Training: prepared data -> compiled SASRec -> model.fit -> a published version."""
