"""Several versions at once: --keep-versions, pins by version or label, the canary split, metrics.

Versions 1 and 2 are tiny models with different seeds (different answers);
the server runs in this process on a loopback port, both front ends.
"""

from __future__ import annotations

import re
import subprocess
import sys
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from sasrec.serving import start_server
from sasrec.serving.domain import RecommendationRequest
from sasrec.serving.predictor import Predictor
from sasrec.serving.v1 import recommender_pb2 as pb
from sasrec.serving.v1 import recommender_pb2_grpc as pb_grpc
from sasrec.serving.version_router import VersionRouter, parse_version_labels
from tests.serving.test_server import FRONTENDS, free_port, publish


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("versions") / "models"
    path.mkdir()
    for version in (1, 2, 3):
        publish(path, version, seed=version)
    return path


@pytest.fixture(scope="module")
def predictors(root: Path) -> dict[str, Predictor]:
    return {v: Predictor.load(root / v) for v in ("1", "2", "3")}


def test_router_keeps_the_highest_versions_and_moves_the_labels(predictors: dict) -> None:
    seen: list[tuple] = []
    router = VersionRouter(keep_versions=2, on_change=seen.append)
    router.add(predictors["1"])
    assert router.labelled("stable") is router.labelled("canary") is predictors["1"]
    router.add(predictors["2"])
    assert router.labelled("stable") is predictors["1"]
    assert router.labelled("canary") is predictors["2"]
    router.add(predictors["3"])  # hot reload of a newer version: 1 is dropped
    assert router.versions == ("2", "3")
    assert router.labelled("stable") is predictors["2"]
    assert seen == [("1",), ("1", "2"), ("2", "3")]


def test_a_label_pinned_to_a_version_keeps_it_loaded(predictors: dict) -> None:
    router = VersionRouter(keep_versions=2, labels=parse_version_labels(["stable=1"]))
    for v in ("1", "2", "3"):
        router.add(predictors[v])
    assert router.versions == ("1", "3")
    assert router.labelled("stable") is predictors["1"]
    assert router.labelled("canary") is predictors["3"]


def test_the_split_lands_its_share_and_a_user_stays_on_one_side(predictors: dict) -> None:
    router = VersionRouter(keep_versions=2, canary_percent=10, seed=0)
    router.add(predictors["1"])
    router.add(predictors["2"])
    picks = Counter(router.pick().version for _ in range(20_000))
    # Binomial(20000, 0.1): sd 42; 5 sd either side.
    assert abs(picks["2"] - 2000) < 215
    by_user = Counter(router.pick(user_id=f"u{i}").version for i in range(20_000))
    assert abs(by_user["2"] - 2000) < 215
    assert {router.pick(user_id="u42").version for _ in range(50)} == {
        router.pick(user_id="u42").version
    }


@pytest.mark.parametrize("value", ["beta=3", "stable=03", "stable=", "stable", "canary=x"], ids=str)
def test_bad_version_labels_are_named(value: str) -> None:
    with pytest.raises(ValueError, match="--version-label must be LABEL=VERSION"):
        parse_version_labels([value])


@pytest.fixture(scope="module", params=FRONTENDS)
def server(root: Path, request: pytest.FixtureRequest) -> Iterator:
    srv = start_server(
        root,
        port=0,
        poll_seconds=0,
        keep_versions=2,
        canary_percent=10,
        metrics_port=free_port(),
        frontend=request.param,
    )
    yield srv
    srv.stop(grace=1)


@pytest.fixture(scope="module")
def stub(server) -> Iterator[pb_grpc.RecommenderStub]:
    with grpc.insecure_channel(server.address) as channel:
        yield pb_grpc.RecommenderStub(channel)


def test_pins_by_version_and_label(server, stub, predictors: dict) -> None:
    history = ["sku-01", "sku-02"]
    for version in ("2", "3"):
        answer = stub.Recommend(pb.RecommendRequest(history=history, k=5, model_version=version))
        assert answer.model_version == version
        want = predictors[version].recommend([RecommendationRequest(history=tuple(history), k=5)])
        assert [i.item_id for i in answer.items] == want[0].item_ids
    stable = stub.Recommend(pb.RecommendRequest(history=history, version_label="stable"))
    canary = stub.Recommend(pb.RecommendRequest(history=history, version_label="canary"))
    assert (stable.model_version, stable.version_label) == ("2", "stable")
    assert (canary.model_version, canary.version_label) == ("3", "canary")
    assert [i.item_id for i in stable.items] != [i.item_id for i in canary.items]
    batch = stub.RecommendBatch(
        pb.RecommendBatchRequest(requests=[pb.RecommendRequest(history=history, model_version="3")])
    )
    assert batch.responses[0].model_version == "3"


@pytest.mark.parametrize(
    "pin", [{"model_version": "1"}, {"model_version": "9"}, {"version_label": "beta"}], ids=str
)
def test_a_pin_that_is_not_loaded_is_not_found(stub, pin: dict) -> None:
    with pytest.raises(grpc.RpcError) as err:
        stub.Recommend(pb.RecommendRequest(history=["sku-01"], **pin))
    assert err.value.code() == grpc.StatusCode.NOT_FOUND
    assert "loaded" in err.value.details() or "label" in err.value.details()


def test_unpinned_traffic_splits_and_metrics_count_each_version(server, stub) -> None:
    versions = Counter(
        stub.Recommend(pb.RecommendRequest(history=["sku-03"], user_id=f"user-{i}")).model_version
        for i in range(600)
    )
    assert set(versions) <= {"2", "3"}
    # Binomial(600, 0.1): sd 7.3; 5 sd either side.
    assert abs(versions["3"] - 60) < 37
    text = urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/metrics").read().decode()
    assert 'sasrec_version_loaded{version="2"} 1.0' in text
    assert 'sasrec_version_loaded{version="3"} 1.0' in text
    assert 'sasrec_version_loaded{version="1"}' not in text
    assert "sasrec_model_version 3.0" in text  # the newest, although 2 loaded after it
    counted = {
        (m["label"], m["version"]): float(m["n"])
        for m in re.finditer(
            r'sasrec_version_requests_total\{label="(?P<label>\w*)",version="(?P<version>\d+)"\} '
            r"(?P<n>[0-9.]+)",
            text,
        )
    }
    # Earlier tests of this module pinned some calls too: at least these.
    assert counted[("canary", "3")] >= versions["3"]
    assert counted[("stable", "2")] >= versions["2"]


def test_health_probe_exit_codes(server) -> None:
    """The container HEALTHCHECK's probe: 0 on SERVING, 1 (with the reason) otherwise."""
    ok = subprocess.run(
        [sys.executable, "-m", "sasrec.serving.health_probe", server.address],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ok.returncode == 0, ok.stderr
    down = subprocess.run(
        [sys.executable, "-m", "sasrec.serving.health_probe", f"127.0.0.1:{free_port()}"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr
