"""Client channel options: targets for several replicas, load balancing, health checks, retries."""

from __future__ import annotations

import json

import pytest

from sasrec.serving.client import channel_target, service_config_options


def _config(**kwargs: object) -> dict:
    options = dict(service_config_options(**kwargs))
    assert options["grpc.enable_retries"] == 1
    return json.loads(options["grpc.service_config"])


def test_round_robin_retries_unavailable_without_health_checks_by_default() -> None:
    config = _config(load_balancing="round_robin", retries=3)
    assert config["loadBalancingConfig"] == [{"round_robin": {}}]
    assert "healthCheckConfig" not in config  # a Watch stream per connection otherwise
    (method,) = config["methodConfig"]
    assert method["retryPolicy"]["maxAttempts"] == 4
    assert method["retryPolicy"]["retryableStatusCodes"] == ["UNAVAILABLE"]


def test_health_checks_on_request_and_retries_capped_at_five_attempts() -> None:
    config = _config(load_balancing="round_robin", retries=9, health_check=True)
    assert config["healthCheckConfig"] == {"serviceName": ""}
    assert config["methodConfig"][0]["retryPolicy"]["maxAttempts"] == 5
    # pick_first has one connection: nothing to skip, so no health checks.
    assert "healthCheckConfig" not in _config(
        load_balancing="pick_first", retries=0, health_check=True
    )
    assert "methodConfig" not in _config(load_balancing="pick_first", retries=0)


def test_bad_policy_is_refused() -> None:
    with pytest.raises(ValueError, match="round_robin or pick_first"):
        service_config_options("random", 1)


def test_targets_for_one_and_several_addresses() -> None:
    assert channel_target("localhost:5001") == "localhost:5001"
    assert channel_target(["127.0.0.1:5001"]) == "127.0.0.1:5001"
    assert channel_target(["127.0.0.1:5001", "127.0.0.1:5002"]) == (
        "ipv4:127.0.0.1:5001,127.0.0.1:5002"
    )
    assert channel_target("dns:///recommender:50051") == "dns:///recommender:50051"
    with pytest.raises(ValueError, match="not host:port"):
        channel_target(["127.0.0.1:5001", "nohost"])
    with pytest.raises(ValueError, match="at least one"):
        channel_target([])
