"""Traffic capture and promotion without Prompt flow: the router in front of a tiny loopback backend
(redaction, sampling, the size cap, the secret canary, feedback, live weights), the served container's
capture middleware, imports of container JSONL and Azure ML collector files, the Kubernetes and Azure ML
capture settings (validated manifests, the SDK's own DataCollector), promotion by HTTPRoute weights and by
one Azure ML traffic update, and the unpaired statistics."""

from __future__ import annotations

import io
import json
import shutil
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import kubernetes_validate
import numpy as np
import pytest
import yaml
from azure.ai.ml.entities import DataCollector, ManagedOnlineDeployment, ManagedOnlineEndpoint
from test_deploy_azureml import RecordingClient
from test_deploy_support import APPROVAL_KEY, CANARY, USE_CASE, all_text, make_workspace, write_approval

from llmops_tui.cli import main
from llmops_tui.core import stats
from llmops_tui.core.capture import REQUEST_ID_HEADER, CaptureSettings, build_record, sampled
from llmops_tui.core.store import RunStore
from llmops_tui.deploy.api import DeployOptions, deploy
from llmops_tui.deploy.router import TOKEN_HEADER, Backend, start_router

REPO = Path(__file__).resolve().parent.parent
TICKETS = "support_ticket_classification"


class _Echo(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        return

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = json.loads(body or b"{}")
        out = json.dumps({"answer": f"you asked: {data.get('question', '')}"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(out)))
        self.end_headers()
        self.wfile.write(out)


@pytest.fixture()
def backends():
    servers = []
    for _ in range(2):
        server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
        server.daemon_threads = True
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
    try:
        yield [f"http://127.0.0.1:{s.server_address[1]}" for s in servers]
    finally:
        for s in servers:
            s.shutdown()
            s.server_close()


def _router(tmp_path, urls, **capture):
    settings = CaptureSettings(enabled=True, **capture)
    config = {
        "store": str(tmp_path / ".llmops" / "store.sqlite"),
        "use_case": "uc",
        "env": "dev",
        "arms": [
            {"name": "a", "version": "a" * 40, "configuration": {"variants": {"n": "v0"}}, "role": "A"},
            {"name": "b", "version": "b" * 40, "configuration": {"variants": {"n": "v1"}}, "role": "B"},
        ],
        "capture": settings.to_dict(with_salt=True),
    }
    return start_router(
        [Backend("a", urls[0], 50), Backend("b", urls[1], 50)], capture=config, token="tok-123"
    )


def _lines(tmp_path, run_id):
    with RunStore(tmp_path / ".llmops" / "store.sqlite") as store:
        return store.lines(run_id), store.traffic_lines(run_id), store.get_run(run_id)


def test_capture_redacts_masks_secrets_and_caps_values(tmp_path, backends, monkeypatch):
    monkeypatch.setenv("SOME_SERVICE_API_KEY", CANARY)  # any secret-looking variable of the router
    handle = _router(tmp_path, backends, drop=["email"], hash=["user_id"], max_value_chars=40, salt="s" * 16)
    try:
        with httpx.Client(trust_env=False, timeout=10) as client:
            for i in range(4):
                resp = client.post(
                    handle.url + "/score",
                    json={
                        "question": f"my key is {CANARY}, help {i}",
                        "email": "person@example.com",
                        "user_id": "user-42",
                        "long": "x" * 100,
                    },
                    headers={"Authorization": f"Bearer {CANARY}", "api-key": CANARY},
                )
                assert resp.status_code == 200 and len(resp.headers[REQUEST_ID_HEADER]) == 32
        run_id = handle.capture.run_id
    finally:
        handle.stop()
    lines, traffic, run = _lines(tmp_path, run_id)
    assert len(lines) == 4 and {ln.cell_id for ln in lines} == {"a", "b"}
    assert run.target == "traffic" and run.status == "completed"
    for ln in lines:
        assert "email" not in ln.inputs
        assert ln.inputs["user_id"].startswith("hmac-sha256:") and "user-42" not in ln.inputs["user_id"]
        assert ln.inputs["long"].endswith("[truncated]") and len(ln.inputs["long"]) < 60
        assert "***" in ln.inputs["question"] and "***" in ln.outputs["answer"]
        assert ln.latency_ms is not None and ln.status == "ok"
    # The same user hashes to the same value (joinable), and no byte of the key reached the store.
    assert len({ln.inputs["user_id"] for ln in lines}) == 1
    assert len(traffic) == 4 and all(t["request_id"] for t in traffic)
    assert CANARY not in all_text(tmp_path / ".llmops")


def test_sampling_and_the_record_cap(tmp_path, backends):
    handle = _router(tmp_path, backends, sample_rate=0.5)
    ids = []
    try:
        with httpx.Client(trust_env=False, timeout=10) as client:
            for i in range(200):
                resp = client.post(handle.url + "/score", json={"question": f"q{i}"})
                ids.append(resp.headers[REQUEST_ID_HEADER])  # every answer is named, captured or not
        run_id = handle.capture.run_id
    finally:
        handle.stop()
    _, traffic, _ = _lines(tmp_path, run_id)
    stored = {t["request_id"] for t in traffic}
    assert stored == {r for r in ids if sampled(r, 0.5)}
    assert 60 < len(stored) < 140

    capped = _router(tmp_path / "cap", backends, max_records=5)
    try:
        with httpx.Client(trust_env=False, timeout=10) as client:
            for i in range(12):
                assert client.post(capped.url + "/score", json={"question": f"q{i}"}).status_code == 200
        run_id = capped.capture.run_id
    finally:
        capped.stop()
    lines, _, run = _lines(tmp_path / "cap", run_id)
    assert len(lines) == 5 and run.summary["skipped"] == 7


def test_feedback_and_live_weights(tmp_path, backends):
    handle = _router(tmp_path, backends)
    try:
        with httpx.Client(trust_env=False, timeout=10) as client:
            rid = client.post(handle.url + "/score", json={"question": "q"}).headers[REQUEST_ID_HEADER]
            ok = client.post(handle.url + "/feedback", json={"request_id": rid, "score": 1, "label": "good"})
            assert ok.status_code == 200 and ok.json() == {"joined": 1, "unknown": []}
            bad = client.post(handle.url + "/feedback", json={"request_id": rid, "score": "high"})
            assert bad.status_code == 400 and "score" in bad.json()["error"]
            assert client.post(handle.url + "/feedback", content=b"{nope").status_code == 400
            body = {"weights": {"a": 0, "b": 100}}
            assert client.post(handle.url + "/admin/weights", json=body).status_code == 403
            wrong = client.post(handle.url + "/admin/weights", json=body, headers={TOKEN_HEADER: "x"})
            assert wrong.status_code == 403
            zero = {"weights": {"a": 0, "b": 0}}
            assert (
                client.post(
                    handle.url + "/admin/weights", json=zero, headers={TOKEN_HEADER: "tok-123"}
                ).status_code
                == 400
            )
            good = client.post(handle.url + "/admin/weights", json=body, headers={TOKEN_HEADER: "tok-123"})
            assert good.status_code == 200 and good.json()["weights"] == {"a": 0, "b": 100}
            seen = {
                client.post(handle.url + "/score", json={"question": "q"}).headers["X-LLMOps-Backend"]
                for _ in range(5)
            }
            assert seen == {"b"}
            assert client.get(handle.url + "/health").json()["weights"] == {"a": 0, "b": 100}
        run_id = handle.capture.run_id
    finally:
        handle.stop()
    _, traffic, _ = _lines(tmp_path, run_id)
    fb = next(t["feedback"] for t in traffic if t["request_id"] == rid)
    assert fb["score"] == 1.0 and fb["label"] == "good"


def test_a_request_is_captured_before_its_answer_leaves(tmp_path, backends, monkeypatch):
    """Feedback sent the moment the answer arrives joins its request, even when storing the capture is
    slow (a busy disk): the router stores the request before it answers, never after."""
    from llmops_tui.core.traffic import TrafficRecorder

    real = TrafficRecorder.record

    def slow_disk(self, rec):
        time.sleep(0.2)
        return real(self, rec)

    monkeypatch.setattr(TrafficRecorder, "record", slow_disk)
    handle = _router(tmp_path, backends)
    try:
        # two clients, two connections: on one kept-alive connection the second request would wait anyway
        with (
            httpx.Client(trust_env=False, timeout=10) as app,
            httpx.Client(trust_env=False, timeout=10) as rater,
        ):
            for _ in range(3):
                rid = app.post(handle.url + "/score", json={"question": "q"}).headers[REQUEST_ID_HEADER]
                joined = rater.post(handle.url + "/feedback", json={"request_id": rid, "label": "good"})
                assert joined.status_code == 200 and joined.json() == {"joined": 1, "unknown": []}
    finally:
        handle.stop()


def test_served_container_writes_the_same_records(tmp_path, monkeypatch):
    from llmops_tui.core import capture as capture_mod
    from llmops_tui.deploy.serve_flow import CaptureLog

    monkeypatch.setenv("LLMOPS_CAPTURE_ARM", "green")
    monkeypatch.setenv("LLMOPS_FLOW_VERSION", "f" * 40)
    monkeypatch.setenv("AOAI_API_KEY", CANARY)

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "application/json")])
        return [json.dumps({"category": "billing", "echo": CANARY}).encode()]

    dest = tmp_path / "vol" / "traffic.jsonl"
    wrapped = CaptureLog(app, str(dest), CaptureSettings(enabled=True, drop=["secret_field"]), capture_mod)
    headers = {}

    def start_response(status, hdrs, exc_info=None):
        headers.update(dict(hdrs))

    body = json.dumps({"title": "t", "secret_field": "x"}).encode()
    environ = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/score",
        "CONTENT_LENGTH": str(len(body)),
        "wsgi.input": io.BytesIO(body),
    }
    out = b"".join(wrapped(environ, start_response))
    assert json.loads(out)["category"] == "billing" and len(headers[REQUEST_ID_HEADER]) == 32
    record = json.loads(dest.read_text())
    assert record["arm"] == "green" and record["version"] == "f" * 40 and record["status"] == 200
    assert record["inputs"] == {"title": "t"} and record["outputs"]["echo"] == "***"
    assert record["request_id"] == headers[REQUEST_ID_HEADER]


def _tickets_ws(tmp_path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(
        REPO / "use_cases" / TICKETS, root / "use_cases" / TICKETS, ignore=shutil.ignore_patterns("approvals")
    )
    extras = root / "use_cases" / TICKETS / "llmops.yaml"
    extras.write_text(extras.read_text() + "capture:\n  enabled: true\n  redact:\n    drop: [email]\n")
    return root


def test_import_container_jsonl_and_azureml_collector_files(tmp_path, capsys):
    ws = _tickets_ws(tmp_path)
    logs = tmp_path / "downloaded"
    (logs / "k8s").mkdir(parents=True)
    settings = CaptureSettings(enabled=True)
    lines = ["serving flow on http://0.0.0.0:8080"]  # a container's stdout also has log lines
    for i in range(3):
        rec = build_record(
            request_id=f"k{i}",
            arm="green",
            version="g" * 40,
            configuration={"variants": {"classify_llm": "variant_2"}},
            body=json.dumps({"title": f"t{i}", "body": "b", "email": "p@example.com"}).encode(),
            status=200,
            response=b'{"category": "billing"}',
            latency_ms=12.5,
            settings=settings,
            secrets=[],
        )
        lines.append(json.dumps(rec))
    (logs / "k8s" / "green.log").write_text("\n".join(lines) + "\n")
    base = logs / "blob" / "tickets-ep" / "blue"
    source = "/subscriptions/s/resourceGroups/r/providers/Microsoft.MachineLearningServices/workspaces/w/onlineEndpoints/tickets-ep/deployments/blue"
    for kind in ("request", "response"):
        folder = base / kind / "2026" / "01" / "31" / "12"
        folder.mkdir(parents=True)
        items = []
        for i in range(2):
            data = (
                {"title": f"a{i}", "body": "b", "email": "x@example.com"}
                if kind == "request"
                else {"category": "technical"}
            )
            items.append(
                {
                    "specversion": "1.0",
                    "id": f"e{kind}{i}",
                    "source": source,
                    "type": f"azureml.inference.{kind}",
                    "datacontenttype": "application/json",
                    "time": f"2026-01-31T12:00:0{i}Z",
                    "data": data,
                    "correlationid": f"c{i}",
                }
            )
        (folder / "part.jsonl").write_text("".join(json.dumps(x) + "\n" for x in items))
    assert (
        main(["traffic", "import", TICKETS, "--env", "dev", "--from", str(logs), "-w", str(ws), "--json"])
        == 0
    )
    result = json.loads(capsys.readouterr().out)
    assert result["imported"] == 5 and result["arms"] == ["blue", "green"]
    with RunStore.for_workspace(ws) as store:
        got = store.lines(result["run_id"])
    assert all("email" not in ln.inputs for ln in got)  # the use case's drop rule applies on the way in
    assert {ln.cell_id: ln.outputs["category"] for ln in got} == {"blue": "technical", "green": "billing"}
    # Importing the same files again adds nothing.
    assert (
        main(["traffic", "import", TICKETS, "--env", "dev", "--from", str(logs), "-w", str(ws), "--json"])
        == 0
    )
    assert json.loads(capsys.readouterr().out)["imported"] == 0
    # Feedback for an imported request, then the comparison of the two arms (too few to decide).
    fb = tmp_path / "fb.csv"
    fb.write_text("request_id,score\nk0,1\nk1,0\nc0,1\nnope,1\n")
    assert main(["traffic", "feedback", str(fb), "-w", str(ws), "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"joined": 3, "unknown": ["nope"]}
    assert main(["traffic", "compare", TICKETS, "--env", "dev", "-w", str(ws), "--json"]) == 0
    cmp = json.loads(capsys.readouterr().out)
    assert cmp["decision"] == "wait" and cmp["verdict"].startswith("no significant difference yet")
    # Bad input: one line naming the file and the field, exit 2.
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"score": 1}\n')
    assert main(["traffic", "feedback", str(bad), "-w", str(ws)]) == 2
    assert "request_id" in capsys.readouterr().err


def test_kubernetes_manifests_capture_to_stdout_and_validate(tmp_path, monkeypatch):
    monkeypatch.setenv("AOAI_API_KEY", CANARY)
    monkeypatch.setenv("KUBECONFIG", str(tmp_path / "no-kubeconfig"))
    ws = make_workspace(tmp_path)
    extras = ws / "use_cases" / USE_CASE / "llmops.yaml"
    extras.write_text(extras.read_text() + "capture:\n  sample_rate: 0.25\n  redact:\n    hash: [text]\n")
    result = deploy(
        ws,
        DeployOptions(USE_CASE, "dev", "kubernetes", image="r.example/ner:1", capture=True),
        kubectl_context=lambda: None,
    )
    folder = ws / ".llmops" / "deploy" / USE_CASE / "dev" / "kubernetes"
    objects = list(yaml.safe_load_all((folder / "k8s" / "all.yaml").read_text()))
    dep = objects[1]
    kubernetes_validate.validate(dep, "1.30.0", strict=True)
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert (
        env["LLMOPS_CAPTURE"]["value"] == "stdout" and env["LLMOPS_CAPTURE_ARM"]["value"] == "ner-k8s-green"
    )
    assert json.loads(env["LLMOPS_CAPTURE_SETTINGS"]["value"])["sample_rate"] == 0.25
    assert env["LLMOPS_CAPTURE_SALT"]["valueFrom"]["secretKeyRef"]["key"] == "LLMOPS_CAPTURE_SALT"
    assert (folder / "llmops_capture.py").is_file() and "llmops_capture.py" in (
        folder / "Dockerfile"
    ).read_text()
    assert CANARY not in all_text(folder)

    # Promote the green arm by the route's weights, once its version is approved for dev.
    monkeypatch.setenv("LLMOPS_APPROVAL_KEY", APPROVAL_KEY)
    args = [
        "promote",
        USE_CASE,
        "--env",
        "dev",
        "--arm",
        "B",
        "--target",
        "kubernetes",
        "-w",
        str(ws),
        "--json",
    ]
    assert main(args) == 2
    write_approval(ws, "dev", result.configuration["variants"], result.configuration["params"])
    assert main(args) == 0
    route = yaml.safe_load((folder / "k8s" / "httproute.yaml").read_text())
    assert [(r["name"], r["weight"]) for r in route["spec"]["rules"][0]["backendRefs"]] == [
        ("ner-k8s-green", 100),
        ("ner-k8s-blue", 0),
    ]
    records = (ws / "use_cases" / USE_CASE / "approvals" / "promotions.jsonl").read_text().splitlines()
    assert json.loads(records[-1])["target"] == "kubernetes"


def test_azureml_data_collection_and_promotion_in_one_update(tmp_path, monkeypatch):
    from llmops_tui.deploy.promote import promote

    monkeypatch.setenv("AOAI_API_KEY", CANARY)
    ws = make_workspace(tmp_path)
    client = RecordingClient(traffic={"blue": 100})
    result = deploy(ws, DeployOptions(USE_CASE, "prod", "azureml", capture=True), ml_client=client)
    assert result.ok
    created = [c for c in client.calls if c[0] == "deployment.create"]
    assert created and created[0][1] == "green"
    # The deployment entity the SDK receives carries its own DataCollector with payload logging.
    dep = _built_deployment(ws, monkeypatch)
    assert isinstance(dep.data_collector, DataCollector)
    assert sorted(dep.data_collector.collections) == ["request", "response"]
    assert all(c.enabled == "true" for c in dep.data_collector.collections.values())
    assert dep._to_dict()["data_collector"]["sampling_rate"] == 1.0

    # Promote green to 100 % in one endpoint update; the version comes from the deployment's tag.
    monkeypatch.setenv("LLMOPS_APPROVAL_KEY", APPROVAL_KEY)
    write_approval(ws, "prod", result.configuration["variants"], result.configuration["params"])
    client.calls.clear()
    client.online_deployments.get = lambda name, endpoint_name: ManagedOnlineDeployment(
        name=name, endpoint_name=endpoint_name, tags={"llmops.version": result.version}
    )
    done = promote(
        ws,
        USE_CASE,
        "prod",
        "green",
        target="azureml",
        ml_client=client,
        endpoint="ner-endpoint",
        reason="better",
    )
    updates = [c for c in client.calls if c[0] == "endpoint.update"]
    assert len(updates) == 1 and updates[0][1] == {"green": 100, "blue": 0}
    assert done["before"] == {"green": 20, "blue": 80} and done["reason"] == "better"
    assert isinstance(client.state, ManagedOnlineEndpoint)


def _built_deployment(ws, monkeypatch):
    """The deployment entity build_entities makes for prod with capture on (nothing is sent)."""
    from llmops_tui.deploy import azureml

    seen = {}
    original = azureml.build_entities

    def spy(ctx, coords):
        endpoint, deployment = original(ctx, coords)
        seen["deployment"] = deployment
        return endpoint, deployment

    monkeypatch.setattr(azureml, "build_entities", spy)
    deploy(
        ws,
        DeployOptions(USE_CASE, "prod", "azureml", capture=True, dry_run=True),
        ml_client=RecordingClient(traffic={"blue": 100}),
    )
    return seen["deployment"]


def test_unpaired_tests_and_power():
    a = np.array([1] * 60 + [0] * 40, dtype=float)
    b = np.array([1] * 85 + [0] * 15, dtype=float)
    res = stats.unpaired_test(a, b)
    assert res.method == "fisher" and res.significant and res.delta == pytest.approx(0.25)
    same = stats.unpaired_test(a, a.copy())
    assert not same.significant and same.p_value == pytest.approx(1.0)
    x = np.random.default_rng(0).normal(1.0, 0.2, 80)
    y = np.random.default_rng(1).normal(1.3, 0.2, 80)
    assert stats.unpaired_test(x, y).method == "welch" and stats.unpaired_test(x, y).significant
    assert stats.unpaired_test([1.0], [0.0]).p_value is None
    need = stats.sample_size_per_arm(a, b, 0.05)
    assert need is not None and need > 500  # a 5-point difference needs hundreds of requests per arm
    assert stats.sample_size_per_arm(a, b, 0.25) < 100
