"""Generated protobuf/gRPC modules of ``protos/sasrec/serving/v1`` (``make proto``)."""
