"""``python -m sasrec.serving.health_probe HOST:PORT``: exit 0 when the server is SERVING.

The container image's ``HEALTHCHECK`` runs it: the standard gRPC health check
(``grpc.health.v1``, no token needed) on the image's own Python, so the image
needs no separate probe binary. Exit 1 on NOT_SERVING, an unreachable server
or no answer within ``--timeout`` seconds, with one line on stderr saying which.

Example:
    $ python -m sasrec.serving.health_probe 127.0.0.1:50051 --timeout 2
"""

from __future__ import annotations

import argparse
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def probe(address: str, timeout: float, service: str = "") -> str:
    """The health status name of ``address`` (``"SERVING"``, ...), or the gRPC code name."""
    with grpc.insecure_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=timeout
            )
        except grpc.RpcError as err:
            return err.code().name
    return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("address", help="HOST:PORT of the gRPC server")
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds (default 3)")
    parser.add_argument("--service", default="", help="service name (default: the server)")
    args = parser.parse_args(argv)
    status = probe(args.address, args.timeout, args.service)
    if status == "SERVING":
        return 0
    print(f"{args.address}: {status}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main())
