"""The Azure ML rollout with the SDK's own entity objects and a substituted MLClient that records calls:
deployment at 0 % before the split, exactly one traffic update, rollback on a failed test, and no call
that leaves all traffic at 0."""

from __future__ import annotations

import json

import pytest
from azure.ai.ml.entities import KubernetesOnlineDeployment, ManagedOnlineDeployment, ManagedOnlineEndpoint
from azure.core.exceptions import ResourceNotFoundError
from test_deploy_support import USE_CASE, make_workspace

from llmops_tui.core.errors import LlmopsError, RunFailed
from llmops_tui.deploy.api import DeployOptions, deploy
from llmops_tui.deploy.azureml import TrafficError, safe_traffic

GOOD = json.dumps({"entities": ["Amara Okafor"]})


class Poller:
    def __init__(self, value):
        self.value = value

    def result(self):
        return self.value


class RecordingClient:
    """Stands in for azure.ai.ml.MLClient: keeps endpoint state as SDK entities, records every call."""

    def __init__(self, traffic: dict | None = None, answers: dict | None = None):
        self.calls: list[tuple] = []
        self.state = (
            None if traffic is None else ManagedOnlineEndpoint(name="ner-endpoint", traffic=dict(traffic))
        )
        self.deployments = {name: True for name in (traffic or {})}
        self.answers = answers or {}  # deployment name or None -> response text (or Exception)
        self.online_endpoints = _Endpoints(self)
        self.online_deployments = _Deployments(self)

    def traffic_updates(self):
        return [c for c in self.calls if c[0] == "endpoint.update" and not c[3]]


class _Endpoints:
    def __init__(self, client):
        self.c = client

    def get(self, name):
        self.c.calls.append(("endpoint.get", name))
        if self.c.state is None:
            raise ResourceNotFoundError("not found")
        s = self.c.state
        return ManagedOnlineEndpoint(
            name=s.name, traffic=dict(s.traffic or {}), mirror_traffic=dict(s.mirror_traffic or {})
        )

    def begin_create_or_update(self, endpoint):
        creating = self.c.state is None
        traffic = dict(endpoint.traffic or {})
        self.c.calls.append(("endpoint.update", traffic, dict(endpoint.mirror_traffic or {}), creating))
        self.c.state = ManagedOnlineEndpoint(
            name=endpoint.name, traffic=traffic, mirror_traffic=dict(endpoint.mirror_traffic or {})
        )
        return Poller(endpoint)

    def invoke(self, endpoint_name, request_file=None, deployment_name=None, **kw):
        self.c.calls.append(("invoke", deployment_name))
        json.loads(open(request_file).read())  # the request file exists and is JSON
        answer = self.c.answers.get(deployment_name, GOOD)
        if isinstance(answer, Exception):
            raise answer
        return answer

    def begin_delete(self, name):
        self.c.calls.append(("endpoint.delete", name))
        self.c.state = None
        return Poller(None)


class _Deployments:
    def __init__(self, client):
        self.c = client

    def begin_create_or_update(self, deployment):
        assert isinstance(deployment, ManagedOnlineDeployment | KubernetesOnlineDeployment)
        share = (self.c.state.traffic or {}).get(deployment.name, 0) if self.c.state else 0
        self.c.calls.append(("deployment.create", deployment.name, share))
        self.c.deployments[deployment.name] = True
        return Poller(deployment)

    def begin_delete(self, name, endpoint_name):
        self.c.calls.append(("deployment.delete", name))
        self.c.deployments.pop(name, None)
        return Poller(None)

    def list(self, endpoint_name):
        return [ManagedOnlineDeployment(name=n, endpoint_name=endpoint_name) for n in self.c.deployments]


def never_all_zero(client):
    for call in client.calls:
        if call[0] == "endpoint.update" and not call[3]:
            assert sum(call[1].values()) > 0, f"a call set all traffic to 0: {call}"


@pytest.fixture()
def ws(tmp_path):
    return make_workspace(tmp_path)


def run(ws, env, client, target="azureml"):
    return deploy(ws, DeployOptions(USE_CASE, env, target), ml_client=client)


def test_split_after_new_deployment_in_one_update(ws):
    client = RecordingClient(traffic={"blue": 100})
    result = run(ws, "prod", client)
    kinds = [c[0] for c in client.calls if c[0] != "endpoint.get"]
    assert kinds == ["deployment.create", "invoke", "endpoint.update", "invoke"]
    assert ("deployment.create", "green", 0) in client.calls  # created while taking 0 % of traffic
    updates = client.traffic_updates()
    assert len(updates) == 1 and updates[0][1] == {"green": 20, "blue": 80}
    assert client.calls[[c[0] for c in client.calls].index("invoke")] == (
        "invoke",
        "green",
    )  # tested before the split
    never_all_zero(client)
    assert result.ok and result.test["ok"] and result.deployment["previous_traffic"] == {"blue": 100}


def test_failed_test_after_split_rolls_back(ws):
    client = RecordingClient(traffic={"blue": 100}, answers={None: json.dumps({"wrong": 1})})
    with pytest.raises(RunFailed, match="traffic restored"):
        run(ws, "prod", client)
    updates = client.traffic_updates()
    assert [u[1] for u in updates] == [{"green": 20, "blue": 80}, {"blue": 100}]
    assert client.calls[-1] == ("deployment.delete", "green")
    assert client.state.traffic == {"blue": 100}
    never_all_zero(client)


def test_failed_test_before_split_never_moves_traffic(ws):
    client = RecordingClient(traffic={"blue": 100}, answers={"green": RuntimeError("boom")})
    with pytest.raises(RunFailed, match="before taking traffic"):
        run(ws, "prod", client)
    assert client.traffic_updates() == []
    assert ("deployment.delete", "green") in client.calls
    never_all_zero(client)


def test_first_deployment_creates_endpoint_only_when_missing(ws):
    client = RecordingClient(traffic=None)
    run(ws, "dev", client)
    creates = [c for c in client.calls if c[0] == "endpoint.update" and c[3]]
    assert len(creates) == 1 and creates[0][1] == {}
    assert [u[1] for u in client.traffic_updates()] == [{"blue": 100}]
    never_all_zero(client)
    # Second rollout of the same config: the endpoint exists and is not created again.
    again = RecordingClient(traffic={"blue": 100})
    run(ws, "dev", again)
    assert not [c for c in again.calls if c[0] == "endpoint.update" and c[3]]


def test_kubernetes_flavour_uses_kubernetes_entities(ws):
    client = RecordingClient(traffic={"blue": 100})
    result = run(ws, "dev", client, target="azureml-kubernetes")
    assert result.deployment["kind"] == "KubernetesOnlineDeployment"
    assert [u[1] for u in client.traffic_updates()] == [{"green": 80, "blue": 20}]
    never_all_zero(client)


def test_split_without_a_serving_endpoint_is_refused_before_any_call(ws):
    client = RecordingClient(traffic=None)
    with pytest.raises(LlmopsError, match="no prior deployment"):
        run(ws, "prod", client)
    assert [c[0] for c in client.calls] == ["endpoint.get"]


def test_safe_traffic_refuses_zero():
    with pytest.raises(TrafficError):
        safe_traffic({"blue": 0, "green": 0})
    with pytest.raises(TrafficError):
        safe_traffic({"blue": 50})
    assert safe_traffic({"blue": 80, "green": 20}) == {"blue": 80, "green": 20}
