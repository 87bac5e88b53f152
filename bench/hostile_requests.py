"""Hostile gRPC requests against a real ``sasrec serve``: every case must get its documented code.

Usage::

    .venv/bin/python bench/hostile_requests.py --frontend python
    .venv/bin/python bench/hostile_requests.py --frontend native
    .venv/bin/python bench/hostile_requests.py --frontend native --model runs/shop  # own model

Without ``--model`` a tiny untrained model (200 items ``sku-1`` ... ``sku-200``,
max length 50, built with ``bench_serving.build_model_dir``) is written to a
temporary versions root. The server is ``python -m sasrec.cli serve`` in a
child process on a free loopback port, with ``--auth-token`` (unless
``--no-auth``) and its log (stderr) in a file.

What it checks, per case (``build_corpus``; each case on a connection of its
own): the status code of every call (counted), then that health is
``SERVING`` and a valid ``Recommend`` answers. At the end: the server process
is alive, its RSS (``VmRSS``) before and after, and its log holds no
``Traceback`` and no ``ERROR``/``CRITICAL`` line (JSON logs, or gRPC C++'s
``E0000 ...`` lines). It prints a table (case, expected codes, codes seen,
ok?) and exits 1 if any case got a code outside its expected set
(``UNKNOWN`` and ``INTERNAL`` are never expected), health or the valid call
failed, the server died or logged a traceback/error.

Expected codes are those a demanding client author would ask for:

* a body that is not a message of the method's type (random bytes, truncated
  messages, invalid UTF-8 in a string field, a wrong wire type, unknown
  groups nested beyond protobuf's recursion limit): ``INVALID_ARGUMENT``;
* a well-formed message with a bad field (``k`` outside 0..1000, lists over
  their caps, an empty id, more than 256 batch requests): ``INVALID_ARGUMENT``;
* unknown ids, empty history, ids with NUL/control characters or 1 MB long,
  ``k = 0``, unknown fields: ``OK`` (unknown ids are skipped and reported);
* a message over gRPC's 4 MB receive limit, or metadata over its limit:
  ``RESOURCE_EXHAUSTED``;
* missing, wrong, malformed or duplicated bearer token: ``UNAUTHENTICATED``
  (health needs no token);
* deadlines of 0.1 ms and 1 ms: ``DEADLINE_EXCEEDED``, or ``OK`` (gRPC
  sends deadlines in whole units, so a call can still make it);
* unknown methods and services: ``UNIMPLEMENTED`` with the token (without
  it, ``UNAUTHENTICATED`` is accepted too: refusing before routing is fine);
* many concurrent calls: ``OK`` or ``RESOURCE_EXHAUSTED`` (``--max-concurrent``);
  a 64 KB header among valid calls on one connection: only the bad call fails;
* a unary call with no request message: ``INVALID_ARGUMENT`` (or
  ``UNIMPLEMENTED``), at once; two messages: the first answered is accepted.

Results of both front ends, and the known defects: docs/reliability.md.

The functions ``build_corpus`` and ``run_call`` are shared with
``bench/soak.py``, which mixes the single-call cases into its load.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import grpc

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serving import build_model_dir, process_tree  # noqa: E402

from sasrec.serving.v1 import recommender_pb2 as pb  # noqa: E402

PKG = "/sasrec.v1.Recommender/"
RECOMMEND = PKG + "Recommend"
BATCH = PKG + "RecommendBatch"
INFO = PKG + "GetModelInfo"
HEALTH = "/grpc.health.v1.Health/Check"
WATCH = "/grpc.health.v1.Health/Watch"
REFLECTION = "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo"
REFLECTION_V1 = "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
TOKEN = "s3cret-Token_42"
NUM_ITEMS = 200
ITEMS = [f"sku-{i}" for i in range(1, NUM_ITEMS + 1)]
SERVICE_METHODS = (RECOMMEND, BATCH, INFO)
ALL_UNARY = (RECOMMEND, BATCH, INFO, HEALTH)
MB = 1 << 20

OK, INVALID, EXHAUSTED = "OK", "INVALID_ARGUMENT", "RESOURCE_EXHAUSTED"
UNAUTH, UNIMPL, DEADLINE = "UNAUTHENTICATED", "UNIMPLEMENTED", "DEADLINE_EXCEEDED"

AUTH = "auth"  # placeholder in Call.metadata: the real bearer header


# ------------------------------------------------------------------ encoding


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def ld(field_no: int, payload: bytes) -> bytes:
    """A length-delimited field (strings, bytes, nested messages)."""
    return varint(field_no << 3 | 2) + varint(len(payload)) + payload


def vi(field_no: int, value: int) -> bytes:
    """A varint field."""
    return varint(field_no << 3) + varint(value)


def rec(**fields) -> bytes:
    return pb.RecommendRequest(**fields).SerializeToString()


def batch(*requests: bytes) -> bytes:
    return b"".join(ld(1, r) for r in requests)


def parses(body: bytes, message_type) -> bool:
    try:
        message_type.FromString(body)
    except Exception:  # noqa: BLE001 - any parse failure
        return False
    return True


# --------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class Call:
    """One call: unary, or a stream (``bodies`` sent, answers read to the end)."""

    method: str
    body: bytes = b""
    metadata: tuple = (AUTH,)
    timeout: float = 30.0
    stream: tuple[bytes, ...] | None = None  # stream_stream with these messages
    watch: bool = False  # unary_stream: read the first answer, then cancel


@dataclass
class Case:
    name: str
    expected: frozenset[str]
    calls: list[Call] = field(default_factory=list)
    # For cases that are not a list of independent calls: address, token -> codes.
    custom: Callable[[str, str | None], list[str]] | None = None
    needs_auth: bool = False
    single: bool = True  # cheap single calls: soak.py may draw them


def random_garbage(rng: random.Random, size: int, message_types) -> bytes:
    """Random bytes that none of ``message_types`` parses (bounded retries)."""
    for _ in range(1000):
        body = rng.randbytes(size)
        if not any(parses(body, t) for t in message_types):
            return body
    raise RuntimeError(f"no unparsable random body of {size} bytes")


def build_corpus(with_auth: bool = True, seed: int = 0) -> list[Case]:
    from grpc_health.v1 import health_pb2

    rng = random.Random(seed)
    types = {
        RECOMMEND: pb.RecommendRequest,
        BATCH: pb.RecommendBatchRequest,
        INFO: pb.GetModelInfoRequest,
        HEALTH: health_pb2.HealthCheckRequest,
    }
    cases: list[Case] = []

    def add(name, expected, calls=(), **kw):
        cases.append(Case(name, frozenset(expected), list(calls), **kw))

    # Random bytes of several sizes, on every method (health too: no token needed).
    for size in (1, 7, 64, 1024, 65536, 1_000_000):
        for method in ALL_UNARY:
            body = random_garbage(rng, size, [types[method]])
            add(f"random {size} B -> {method.rsplit('/', 1)[1]}", {INVALID}, [Call(method, body)])
    stream_garbage = random_garbage(rng, 512, [])
    add("random 512 B -> reflection", {INVALID}, [Call(REFLECTION, stream=(stream_garbage,))])

    # Truncated valid messages: every cut that no longer parses.
    good = rec(history=ITEMS[:5] + ["unknown-sku"], k=7, allowed_items=ITEMS[:50], user_id="u-1")
    cuts = [n for n in range(1, len(good)) if not parses(good[:n], pb.RecommendRequest)]
    add(
        f"truncated Recommend ({len(cuts)} cuts)",
        {INVALID},
        [Call(RECOMMEND, good[:n]) for n in cuts[:: max(1, len(cuts) // 40)]],
    )
    good_batch = batch(good, good)
    cuts = [n for n in range(1, len(good_batch)) if not parses(good_batch[:n], types[BATCH])]
    add(
        f"truncated RecommendBatch ({len(cuts)} cuts)",
        {INVALID},
        [Call(BATCH, good_batch[:n]) for n in cuts[:: max(1, len(cuts) // 40)]],
    )

    # Invalid UTF-8 in every string field (and nested in a batch, and in health).
    bad_strings = {
        "ff fe": b"\xff\xfe",
        "overlong NUL c0 80": b"\xc0\x80",
        "surrogate ed a0 80": b"\xed\xa0\x80",
        "cut 3-byte e2 82": b"sku-\xe2\x82",
    }
    for label, raw in bad_strings.items():
        calls = [Call(RECOMMEND, ld(f, raw)) for f in (1, 4, 5, 6)]  # history, allowed, excl, user
        calls.append(Call(BATCH, ld(1, vi(2, 3) + ld(1, raw))))
        calls.append(Call(HEALTH, ld(1, raw)))
        add(f"invalid UTF-8 ({label}) in string fields", {INVALID}, calls)

    # Wire-level oddities.
    # Protobuf keeps a known field number with the wrong wire type as an unknown field.
    add("k with wrong wire type (kept as unknown)", {OK}, [Call(RECOMMEND, ld(2, b"ten"))])
    deep = b"\xcb\x06" * 1000 + b"\xcc\x06" * 1000  # field 105 start/end group, 1000 deep
    add("unknown groups nested 1000 deep", {INVALID}, [Call(m, deep) for m in SERVICE_METHODS])
    add("unknown fields (ignored)", {OK}, [Call(RECOMMEND, rec(history=ITEMS[:3]) + ld(99, b"x"))])
    add("k = 2^32 + 5 on the wire (int32: 5)", {OK}, [Call(RECOMMEND, vi(2, (1 << 32) + 5))])

    # Field values.
    add("k = 2^31-1", {INVALID}, [Call(RECOMMEND, rec(history=ITEMS[:3], k=2**31 - 1))])
    add("k = 1001", {INVALID}, [Call(RECOMMEND, rec(history=ITEMS[:3], k=1001))])
    add("k = -1, k = -2^31", {INVALID}, [
        Call(RECOMMEND, rec(history=ITEMS[:3], k=-1)),
        Call(RECOMMEND, rec(history=ITEMS[:3], k=-(2**31))),
    ])  # fmt: skip
    add("k = 0 (means 10), k = 1000 (> items)", {OK}, [
        Call(RECOMMEND, rec(history=ITEMS[:3], k=0)),
        Call(RECOMMEND, rec(history=ITEMS[:3], k=1000)),
    ])  # fmt: skip
    add("history of 10^5 ids", {INVALID}, [
        Call(RECOMMEND, rec(history=[ITEMS[i % NUM_ITEMS] for i in range(100_000)])),
    ], single=False)  # fmt: skip
    add("allowed/excluded of 10^5 ids", {INVALID}, [
        Call(RECOMMEND, rec(history=ITEMS[:2], allowed_items=ITEMS * 500)),
        Call(RECOMMEND, rec(history=ITEMS[:2], excluded_items=ITEMS * 500)),
    ], single=False)  # fmt: skip
    add("RecommendBatch of 10^4 requests", {INVALID}, [
        Call(BATCH, batch(*[rec(history=ITEMS[:1])] * 10_000)),
    ], single=False)  # fmt: skip
    add("RecommendBatch: bad request inside", {INVALID}, [
        Call(BATCH, batch(rec(history=ITEMS[:2]), rec(history=["sku-1", ""]))),
        Call(BATCH, batch(rec(history=ITEMS[:2]), rec(k=-5))),
    ])  # fmt: skip
    add("empty id in history/allowed/excluded", {INVALID}, [
        Call(RECOMMEND, rec(history=["sku-1", ""])),
        Call(RECOMMEND, rec(history=["sku-1"], allowed_items=[""])),
        Call(RECOMMEND, rec(history=["sku-1"], excluded_items=["sku-2", ""])),
    ])  # fmt: skip
    add("unknown ids only (fallback)", {OK}, [
        Call(RECOMMEND, rec(history=["nope-1", "nope-2"], explain=True)),
        Call(RECOMMEND, rec(history=["nope"], allowed_items=["also-nope"])),
    ])  # fmt: skip
    add("empty history / empty request", {OK}, [
        Call(RECOMMEND, rec()), Call(RECOMMEND, b""), Call(BATCH, b""), Call(INFO, b""),
        Call(BATCH, batch(b"", b"")),
    ])  # fmt: skip
    odd_ids = ["\x00", "sku-1\x00", "\x00sku-1", "\x01\x02\x1b[31m\x7f", "\u202esku-1", "🙂" * 50]
    add("ids with NUL / control / odd characters", {OK}, [
        Call(RECOMMEND, rec(history=odd_ids, explain=True)),
        Call(RECOMMEND, rec(history=ITEMS[:2], allowed_items=odd_ids, excluded_items=odd_ids)),
        Call(RECOMMEND, rec(history=ITEMS[:2], user_id="\x00\r\n\x1b[2J")),
    ])  # fmt: skip
    long_id = "x" * MB
    add("1 MB ids (history, allowed, excluded, user_id)", {OK}, [
        Call(RECOMMEND, rec(history=[long_id, "sku-1"])),
        Call(RECOMMEND, rec(history=["sku-1"], allowed_items=[long_id])),
        Call(RECOMMEND, rec(history=["sku-1"], excluded_items=[long_id])),
        Call(RECOMMEND, rec(history=["sku-1"], user_id=long_id)),
    ], single=False)  # fmt: skip

    # Size limits (gRPC's 4 MB receive limit).
    over = rec(history=[f"sku-{i:07d}" for i in range(450_000)])
    assert len(over) > 4 * MB + 100
    add("message over 4 MB (valid protobuf)", {EXHAUSTED}, [
        Call(RECOMMEND, over), Call(BATCH, ld(1, over)),
    ], single=False)  # fmt: skip
    add("message over 4 MB (random bytes)", {EXHAUSTED}, [
        Call(m, rng.randbytes(5 * MB)) for m in ALL_UNARY
    ], single=False)  # fmt: skip

    # Deadlines: gRPC rounds up to whole units, so OK is acceptable too.
    for ms in (0.1, 1.0):
        add(f"deadline {ms} ms", {DEADLINE, OK}, [
            Call(RECOMMEND, rec(history=ITEMS[:5]), timeout=ms / 1000),
            Call(BATCH, batch(*[rec(history=ITEMS[:5])] * 8), timeout=ms / 1000),
            Call(INFO, b"", timeout=ms / 1000),
            Call(HEALTH, b"", timeout=ms / 1000),
        ])  # fmt: skip

    # Metadata garbage (with the token).
    many = tuple((f"x-junk-{i}", "".join(rng.choices("abcXYZ019 -_=;:,", k=40))) for i in range(60))
    add("metadata: 60 junk headers + binary header", {OK}, [
        Call(RECOMMEND, rec(history=ITEMS[:2]), metadata=(AUTH,) + many),
        Call(RECOMMEND, rec(history=ITEMS[:2]), metadata=(AUTH, ("x-bin", rng.randbytes(512)))),
        Call(INFO, b"", metadata=(AUTH, ("grpc-tags-bin", b"\x00\xff" * 20))),
    ])  # fmt: skip
    add("metadata: one 64 KB header", {EXHAUSTED}, [
        Call(m, rec(history=ITEMS[:2]), metadata=(AUTH, ("x-huge", "v" * 65536)))
        for m in (RECOMMEND, INFO)
    ])  # fmt: skip

    cases.append(Case("64 KB header amid 8 callers on one connection",
                      frozenset({EXHAUSTED, "valid:OK"}), custom=oversize_header_neighbours,
                      single=False))  # fmt: skip

    # Authentication.
    if with_auth:
        bad_auth = {
            "no token": (),
            "wrong token": (("authorization", "Bearer wrong"),),
            "token prefix": (("authorization", f"Bearer {TOKEN[:-1]}"),),
            "token + suffix": (("authorization", f"Bearer {TOKEN}x"),),
            "empty bearer": (("authorization", "Bearer "),),
            "no scheme": (("authorization", TOKEN),),
            "Basic scheme": (("authorization", f"Basic {TOKEN}"),),
            "token in other header": (("x-authorization", f"Bearer {TOKEN}"),),
            "good + bad": (AUTH, ("authorization", "Bearer wrong")),
            "good + good": (AUTH, AUTH),
            "binary header": (("authorization-bin", f"Bearer {TOKEN}".encode()),),
        }
        for label, md in bad_auth.items():
            calls = [Call(m, rec(history=ITEMS[:2]), metadata=md) for m in SERVICE_METHODS]
            calls.append(Call(REFLECTION, stream=(reflection_list(),), metadata=md))
            add(f"auth: {label}", {UNAUTH}, calls, needs_auth=True)
        add("auth: garbage body without token", {UNAUTH}, [
            Call(m, rng.randbytes(64), metadata=()) for m in SERVICE_METHODS
        ], needs_auth=True)  # fmt: skip
        add("health without token", {OK}, [Call(HEALTH, b"", metadata=())], needs_auth=True)

    # Unknown methods and services.
    unknown = [
        PKG + "Nope", "/sasrec.v1.Nope/Recommend", "/sasrec.v2.Recommender/Recommend",
        "/grpc.health.v1.Health/Nope", REFLECTION_V1, "/x", "/" + "a" * 2000 + "/b",
    ]  # fmt: skip
    add("unknown methods/services", {UNIMPL}, [Call(m, b"\x0a\x01a") for m in unknown])
    if with_auth:
        add("unknown methods without token", {UNIMPL, UNAUTH}, [
            Call(m, b"", metadata=()) for m in unknown
        ], needs_auth=True)  # fmt: skip

    # Reflection.
    add("reflection: list services, unknown symbol, unknown file", {OK}, [
        Call(REFLECTION, stream=(
            reflection_list(), reflection_symbol("sasrec.v1.Nope"),
            reflection_file("nope/nothing.proto"), reflection_symbol("sasrec.v1.Recommender"),
        )),
    ])  # fmt: skip
    add("reflection: good then garbage", {INVALID}, [
        Call(REFLECTION, stream=(reflection_list(), rng.randbytes(300) + b"\xff")),
    ])  # fmt: skip

    # Streaming shapes on unary methods.
    add("two messages on a unary method", {INVALID, UNIMPL, OK}, [
        Call(RECOMMEND, stream=(rec(history=ITEMS[:2]), rec(history=ITEMS[:2]))),
    ])  # fmt: skip
    # Not drawn by soak.py (single=False): on the Python front end each such call holds
    # a --max-concurrent slot until its deadline (docs/reliability.md, known defects).
    add("no message on a unary method", {INVALID, UNIMPL}, [
        Call(m, stream=(), timeout=5) for m in SERVICE_METHODS
    ], single=False)  # fmt: skip

    # Many concurrent calls and streams.
    cases.append(Case("600 concurrent Recommend on one channel", frozenset({OK, EXHAUSTED}),
                      custom=concurrent_calls, single=False))  # fmt: skip
    cases.append(Case("300 health Watch streams held open", frozenset({OK, EXHAUSTED}),
                      custom=watch_streams, single=False))  # fmt: skip
    cases.append(Case("200 reflection streams at once", frozenset({OK, EXHAUSTED}),
                      custom=reflection_streams, single=False))  # fmt: skip
    return [c for c in cases if with_auth or not c.needs_auth]


def reflection_list() -> bytes:
    from grpc_reflection.v1alpha import reflection_pb2

    return reflection_pb2.ServerReflectionRequest(list_services="*").SerializeToString()


def reflection_symbol(name: str) -> bytes:
    from grpc_reflection.v1alpha import reflection_pb2

    return reflection_pb2.ServerReflectionRequest(file_containing_symbol=name).SerializeToString()


def reflection_file(name: str) -> bytes:
    from grpc_reflection.v1alpha import reflection_pb2

    return reflection_pb2.ServerReflectionRequest(file_by_filename=name).SerializeToString()


# -------------------------------------------------------------------- calling


def resolve_metadata(metadata: tuple, token: str | None) -> tuple:
    out = []
    for item in metadata:
        if item == AUTH:
            if token is not None:
                out.append(("authorization", f"Bearer {token}"))
        else:
            out.append(item)
    return tuple(out)


CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", 64 * MB),
    ("grpc.max_receive_message_length", 64 * MB),
    ("grpc.max_metadata_size", 1 * MB),
    ("grpc.enable_retries", 0),
    # A connection of its own (grpcio shares one between channels to the same address by
    # default): a case that makes the server drop its connection cannot touch another's.
    ("grpc.use_local_subchannel_pool", 1),
]


def open_channel(address: str) -> grpc.Channel:
    return grpc.insecure_channel(address, options=CHANNEL_OPTIONS)


def run_call(channel: grpc.Channel, call: Call, token: str | None) -> str:
    """Makes ``call``; returns its status code name (``CLIENT:<error>`` if it was never sent)."""
    metadata = resolve_metadata(call.metadata, token)
    try:
        if call.watch:
            stream = channel.unary_stream(call.method)(
                call.body, timeout=call.timeout, metadata=metadata
            )
            next(stream)
            stream.cancel()
        elif call.stream is not None:
            stream = channel.stream_stream(call.method)
            for _ in stream(iter(call.stream), timeout=call.timeout, metadata=metadata):
                pass
        else:
            channel.unary_unary(call.method)(call.body, timeout=call.timeout, metadata=metadata)
    except grpc.RpcError as err:
        return err.code().name
    except Exception as err:  # noqa: BLE001 - a client-side refusal is recorded, not raised
        return f"CLIENT:{type(err).__name__}"
    return OK


def concurrent_calls(address: str, token: str | None) -> list[str]:
    body = rec(history=ITEMS[:10], k=20)
    md = resolve_metadata((AUTH,), token)
    with open_channel(address) as channel:
        call = channel.unary_unary(RECOMMEND)
        futures = [call.future(body, timeout=60, metadata=md) for _ in range(600)]
        codes = []
        for f in futures:
            try:
                f.result()
                codes.append(OK)
            except grpc.RpcError as err:
                codes.append(err.code().name)
    return codes


def watch_streams(address: str, token: str | None) -> list[str]:
    from grpc_health.v1 import health_pb2

    body = health_pb2.HealthCheckRequest(service="").SerializeToString()
    codes: list[str] = []
    with open_channel(address) as channel:
        watch = channel.unary_stream(WATCH)
        streams = [watch(body, timeout=60) for _ in range(300)]
        for s in streams:  # the first answer of each, while all are open
            try:
                next(s)
                codes.append(OK)
            except grpc.RpcError as err:
                codes.append(err.code().name)
        for s in streams:
            s.cancel()
    return codes


def reflection_streams(address: str, token: str | None) -> list[str]:
    call = Call(REFLECTION, stream=(reflection_list(), reflection_symbol("sasrec.v1.Recommender")))
    with open_channel(address) as channel, ThreadPoolExecutor(16) as pool:
        return list(pool.map(lambda _: run_call(channel, call, token), range(200)))


def oversize_header_neighbours(address: str, token: str | None) -> list[str]:
    """Three calls with a 64 KB header while 8 threads make valid calls on the same connection.

    The bad call must get RESOURCE_EXHAUSTED and nothing else may fail: behind a
    proxy, one connection carries many clients' calls. Valid calls' codes are
    reported as ``valid:CODE``.
    """
    body = rec(history=ITEMS[:10])
    md = resolve_metadata((AUTH,), token)
    bad = Call(RECOMMEND, body, metadata=(AUTH, ("x-huge", "v" * 65536)))
    with open_channel(address) as channel:
        call = channel.unary_unary(RECOMMEND)
        stop = time.monotonic() + 2.0

        def valid_loop(_: int) -> list[str]:
            codes = []
            for _ in range(100_000):  # bounded; ends at `stop`
                if time.monotonic() > stop:
                    break
                try:
                    call(body, timeout=30, metadata=md)
                    codes.append("valid:OK")
                except grpc.RpcError as err:
                    codes.append(f"valid:{err.code().name}")
            return codes

        with ThreadPoolExecutor(8) as pool:
            futures = [pool.submit(valid_loop, i) for i in range(8)]
            time.sleep(0.5)
            codes = [run_call(channel, bad, token) for _ in range(3)]
            for f in futures:
                codes.extend(f.result())
    return codes


def run_case(address: str, case: Case, token: str | None) -> list[str]:
    if case.custom is not None:
        return case.custom(address, token)
    with open_channel(address) as channel:
        return [run_call(channel, call, token) for call in case.calls]


# --------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def rss_kb(pid: int) -> int:
    """VmRSS of ``pid`` and its descendants, in kB (0 when gone)."""
    total = 0
    for p in process_tree(pid):
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


class Server:
    """``sasrec serve`` in a child process, stderr in ``log_path``; ready when health is SERVING."""

    def __init__(
        self,
        root: Path,
        frontend: str,
        log_path: Path,
        token: str | None = TOKEN,
        poll_seconds: float = 0,
        extra: tuple[str, ...] = (),
    ) -> None:
        self.port = free_port()
        self.address = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        cmd = [
            sys.executable, "-m", "sasrec.cli", "serve", "--model", str(root),
            "--host", "127.0.0.1", "--port", str(self.port), "--frontend", frontend,
            "--poll-seconds", str(poll_seconds), "--grace-seconds", "5", *extra,
        ]  # fmt: skip
        if token is not None:
            cmd += ["--auth-token", token]
        self._log = log_path.open("w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT)
        self.channel = open_channel(self.address)
        deadline = time.monotonic() + 300
        while self.health() != "SERVING":
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited:\n{log_path.read_text()[-4000:]}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("server not SERVING after 300 s")
            time.sleep(0.5)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def rss_kb(self) -> int:
        return rss_kb(self.proc.pid)

    def health(self, timeout: float = 5.0) -> str:
        from grpc_health.v1 import health_pb2, health_pb2_grpc

        try:
            answer = health_pb2_grpc.HealthStub(self.channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError as err:
            return err.code().name
        return health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)

    def stop(self) -> int | None:
        self.channel.close()
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()
        return self.proc.returncode


LOUD = re.compile(
    r'Traceback|"level": "(ERROR|CRITICAL)"|^E\d{4} |^F\d{4} |Segmentation|core dumped'
)


def loud_log_lines(log_path: Path) -> list[str]:
    """Tracebacks and ERROR/CRITICAL lines of a server log (JSON or gRPC C++ format)."""
    return [line for line in log_path.read_text(errors="replace").splitlines() if LOUD.search(line)]


def valid_call_ok(channel: grpc.Channel, token: str | None) -> bool:
    md = resolve_metadata((AUTH,), token)
    try:
        raw = channel.unary_unary(RECOMMEND)(rec(history=ITEMS[:3], k=5), timeout=30, metadata=md)
    except grpc.RpcError:
        return False
    return len(pb.RecommendResponse.FromString(raw).items) == 5


def build_tiny_root(tmp: Path, seed: int = 0) -> Path:
    """A versions root holding version 1: a tiny untrained model (bench_serving's builder)."""
    import keras

    root = tmp / "models"
    root.mkdir()
    keras.utils.set_random_seed(seed)
    build_model_dir(root, ITEMS, hidden_dim=16, num_blocks=1)
    return root


# ----------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frontend", choices=["python", "native"], default="python")
    parser.add_argument("--model", type=Path, help="versions root or version dir (default: tiny)")
    parser.add_argument("--no-auth", action="store_true", help="serve without --auth-token")
    parser.add_argument("--keep-log", type=Path, help="copy the server log here")
    parser.add_argument("--only", help="run only the cases whose name contains this")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args(argv)
    token = None if args.no_auth else TOKEN
    corpus = build_corpus(with_auth=token is not None)
    if args.only:
        corpus = [c for c in corpus if args.only in c.name]

    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        tmp_path = Path(tmp)
        root = args.model or build_tiny_root(tmp_path)
        log_path = tmp_path / "server.log"
        server = Server(root, args.frontend, log_path, token=token)
        failures: list[str] = []
        rows = []
        try:
            rss_before = server.rss_kb()
            started = time.monotonic()
            for case in corpus:
                codes = Counter(run_case(server.address, case, token))
                health = server.health()
                valid = valid_call_ok(server.channel, token)
                unexpected = set(codes) - case.expected
                ok = not unexpected and health == "SERVING" and valid and server.alive()
                rows.append((case, codes, health, valid, ok))
                if not ok:
                    failures.append(case.name)
                if not server.alive():
                    break
            elapsed = time.monotonic() - started
            time.sleep(1.0)  # late log lines
            rss_after = server.rss_kb()
            alive = server.alive()
            final_health = server.health() if alive else "DEAD"
        finally:
            code = server.stop()
            loud = loud_log_lines(log_path)
            if args.keep_log:
                args.keep_log.write_text(log_path.read_text(errors="replace"))

    calls = sum(sum(r[1].values()) for r in rows)
    print(f"\nfrontend={args.frontend}, auth={'on' if token else 'off'}, "
          f"{len(rows)} cases, {calls} calls, {elapsed:.0f} s\n")  # fmt: skip
    print("| case | expected | codes seen | health after | ok? |")
    print("| --- | --- | --- | --- | --- |")
    for case, codes, health, valid, ok in rows:
        seen = ", ".join(f"{c} x{n}" for c, n in sorted(codes.items()))
        after = health if valid else f"{health}, valid call FAILED"
        print(f"| {case.name} | {' / '.join(sorted(case.expected))} | {seen} | {after} "
              f"| {'ok' if ok else 'FAIL'} |")  # fmt: skip
    growth = 100.0 * (rss_after - rss_before) / max(1, rss_before)
    print(
        f"\nserver alive at the end: {alive}; health: {final_health}; exit code on SIGTERM: {code}"
    )
    print(
        f"RSS before {rss_before / 1024:.1f} MB, after {rss_after / 1024:.1f} MB ({growth:+.1f}%)"
    )
    print(f"log lines with Traceback/ERROR: {len(loud)}")
    for line in loud[:20]:
        print(f"    {line[:300]}")
    if args.json:
        args.json.write_text(json.dumps({
            "frontend": args.frontend,
            "cases": [
                {"case": c.name, "expected": sorted(c.expected), "codes": dict(codes),
                 "health": health, "valid_after": valid, "ok": ok}
                for c, codes, health, valid, ok in rows
            ],
            "failed": failures, "alive": alive, "health": final_health, "exit_code": code,
            "rss_before_kb": rss_before, "rss_after_kb": rss_after, "log_errors": loud,
        }, indent=2))  # fmt: skip
    bad = bool(failures) or not alive or final_health != "SERVING" or bool(loud) or code != 0
    if failures:
        print(f"\nFAILED cases: {failures}")
    print("\nRESULT:", "FAIL" if bad else "PASS")
    return 1 if bad else 0


if __name__ == "__main__":
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.exit(main())
