"""Request bodies of the service, parsed the same way by both front ends.

A body that is not a valid message of its method's type is a client error:
``INVALID_ARGUMENT`` with a short reason and one warning line, no traceback.

Example:
    >>> from sasrec.serving.v1 import recommender_pb2
    >>> parse_request(recommender_pb2.RecommendRequest, b"").k
    0
"""

from __future__ import annotations

import logging

from google.protobuf.message import DecodeError, Message

from sasrec.serving.v1 import recommender_pb2

logger = logging.getLogger("sasrec.serving")

SERVICE_NAME = recommender_pb2.DESCRIPTOR.services_by_name["Recommender"].full_name


# Request type of each method: the handlers get the raw body and parse it.
REQUEST_TYPES: dict[str, type[Message]] = {
    "Recommend": recommender_pb2.RecommendRequest,
    "RecommendBatch": recommender_pb2.RecommendBatchRequest,
    "GetModelInfo": recommender_pb2.GetModelInfoRequest,
    "RecordEvents": recommender_pb2.RecordEventsRequest,
}


class MalformedRequestError(ValueError):
    """A request body that is not a valid protobuf message of the method's type."""


def parse_request(request_type: type[Message], body: bytes) -> Message:
    """Parses a request body; a malformed one is a client error, not a server one.

    Both front ends parse here, so both answer ``INVALID_ARGUMENT`` with the
    same short message (random bytes, a string field with invalid UTF-8, ...)
    and log one warning line, without a traceback.

    Raises:
        MalformedRequestError: The body does not parse.
    """
    try:
        return request_type.FromString(body)
    except DecodeError as err:
        text = str(err)
        reason = text.rsplit(": ", 1)[-1][:100] if text else "cannot parse"
        name = request_type.DESCRIPTOR.full_name
        logger.warning(
            "malformed request",
            extra={"fields": {"type": name, "bytes": len(body), "error": reason}},
        )
        raise MalformedRequestError(f"request is not a valid {name} message ({reason})") from None
