"""The official Azure ML v2 SDK (azure-ai-ml, pinned in e2e/requirements-v2.txt) against a real `mlhook aml-local`.

The SDK is pointed at aml-local's HTTPS listener the documented way: AZUREML_DEV_URL_MFE for every ARM client,
REQUESTS_CA_BUNDLE for aml-local's self-signed certificate (credentials.json: https_base_url, ca_file), and a
credential object whose tokens come from aml-local's AAD endpoint. Nothing of the SDK is patched.
Run by scripts/test.sh with MLHOOK_BIN pointing at the built binary.
"""
import contextlib
import io
import json
import os
import subprocess
import tempfile
import time

import pytest
import requests


@pytest.fixture(scope="module")
def aml():
    binary = os.environ.get("MLHOOK_BIN", ".build/debug/mlhook")
    data = tempfile.mkdtemp(prefix="aml-sdk-v2-")
    log = open(os.path.join(data, "server.log"), "w")
    proc = subprocess.Popen([binary, "aml-local", "--port", "0", "--https-port", "0", "--data-dir", data],
                            stdout=log, stderr=subprocess.STDOUT)
    creds = os.path.join(data, "credentials.json")
    for _ in range(400):
        if os.path.exists(creds) and os.path.getsize(creds) > 0:
            break
        time.sleep(0.05)
    c = json.load(open(creds))
    assert c["https_base_url"].startswith("https://127.0.0.1:"), c
    os.environ["AZUREML_DEV_URL_MFE"] = c["https_base_url"]
    os.environ["REQUESTS_CA_BUNDLE"] = c["ca_file"]

    from azure.ai.ml import MLClient
    from azure.core.credentials import AccessToken

    class AMLLocalCredential:
        """A client-credentials token from aml-local's AAD v2 endpoint, over TLS."""
        def get_token(self, *scopes, **kwargs):
            r = requests.post(f"{c['https_base_url']}/{c['tenant_id']}/oauth2/v2.0/token", data={
                "grant_type": "client_credentials", "client_id": c["client_id"], "client_secret": c["client_secret"],
                "scope": scopes[0] if scopes else "https://management.azure.com/.default"}, verify=c["ca_file"], timeout=30)
            r.raise_for_status()
            j = r.json()
            return AccessToken(j["access_token"], int(time.time()) + int(j["expires_in"]))

    client = MLClient(AMLLocalCredential(), c["subscription_id"], c["resource_group"], c["workspace"], enable_telemetry=False)
    yield client, c, data
    proc.terminate()
    proc.wait(timeout=30)
    log.close()


@pytest.fixture(scope="module")
def project():
    d = tempfile.mkdtemp(prefix="sdk-v2-src-")
    with open(os.path.join(d, "train.py"), "w") as f:
        f.write(
            "import argparse, os, time\n"
            "p = argparse.ArgumentParser(); p.add_argument('--lr', type=float); a = p.parse_args()\n"
            "print('training with lr', a.lr, flush=True)\n"
            "time.sleep(2)\n"
            "os.makedirs('outputs/model', exist_ok=True)\n"
            "open('outputs/model/weights.txt', 'w').write(str(a.lr))\n"
            "print('model written', flush=True)\n")
    return d


ENV = "azureml:AzureML-sklearn-1.0-ubuntu20.04-py38-cpu@latest"


def wait_terminal(ml, name, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        job = ml.jobs.get(name)
        if job.status in ("Completed", "Failed", "Canceled"):
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {name} did not end in {seconds} s")


@pytest.fixture(scope="module")
def trained(aml, project):
    from azure.ai.ml import command
    ml, _, _ = aml
    job = ml.jobs.create_or_update(command(code=project, command="python train.py --lr ${{inputs.lr}}", inputs={"lr": 0.25},
                                           environment=ENV, compute="cpu-cluster", experiment_name="sdk-v2",
                                           display_name="sdk v2 train", tags={"git_sha": "abc123"}))
    return job


def test_a_command_job_runs_to_completed_and_stream_shows_its_output(aml, trained):
    ml, _, _ = aml
    assert trained.status in ("NotStarted", "Queued", "Preparing", "Running")
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        ml.jobs.stream(trained.name)
    assert "training with lr 0.25" in out.getvalue(), out.getvalue()
    job = ml.jobs.get(trained.name)
    assert job.status == "Completed"
    assert job.display_name == "sdk v2 train" and job.tags["git_sha"] == "abc123"
    assert job.experiment_name == "sdk-v2"


def test_submitting_the_same_folder_again_reuses_the_code_asset(aml, project, trained):
    from azure.ai.ml import command
    ml, _, data = aml
    blobs_before = sorted(os.listdir(os.path.join(data, "blobs", "local")))
    again = ml.jobs.create_or_update(command(code=project, command="python train.py --lr 0.5", environment=ENV, compute="cpu-cluster"))
    assert again.code == trained.code
    assert sorted(os.listdir(os.path.join(data, "blobs", "local"))) == blobs_before
    assert wait_terminal(ml, again.name).status == "Completed"


def test_a_failing_command_ends_failed_with_its_output(aml, project):
    from azure.ai.ml import command
    ml, _, _ = aml
    job = ml.jobs.create_or_update(command(code=project, command="python -c \"import sys; print('boom'); sys.exit(3)\"",
                                           environment="azureml://registries/azureml/environments/sklearn-1.5/labels/latest"))
    ended = wait_terminal(ml, job.name)
    assert ended.status == "Failed"


def test_begin_cancel_cancels_a_long_job(aml, project):
    from azure.ai.ml import command
    ml, _, _ = aml
    job = ml.jobs.create_or_update(command(code=project, command="sleep 120", environment=ENV, compute="cpu-cluster"))
    for _ in range(50):
        if ml.jobs.get(job.name).status == "Running":
            break
        time.sleep(0.1)
    started = time.time()
    ml.jobs.begin_cancel(job.name).result()
    assert wait_terminal(ml, job.name, seconds=20).status == "Canceled"
    assert time.time() - started < 20


def test_models_are_registered_from_the_job_output_listed_and_archived(aml, trained):
    from azure.ai.ml.entities import Model
    ml, _, _ = aml
    wait_terminal(ml, trained.name)
    uri = f"azureml://jobs/{trained.name}/outputs/artifacts/paths/model/"
    first = ml.models.create_or_update(Model(name="sdk-model", path=uri, type="custom_model", tags={"git_sha": "abc123"}))
    second = ml.models.create_or_update(Model(name="sdk-model", path=uri, type="custom_model"))
    assert (first.version, second.version) == ("1", "2")
    assert sorted(m.version for m in ml.models.list(name="sdk-model")) == ["1", "2"]
    assert ml.models.get("sdk-model", "1").tags["git_sha"] == "abc123"
    ml.models.archive(name="sdk-model", version="1")
    assert [m.version for m in ml.models.list(name="sdk-model")] == ["2"]


def test_compute_begin_update_changes_the_scale_settings(aml):
    ml, _, _ = aml
    compute = ml.compute.get("cpu-cluster")
    compute.max_instances = 3
    ml.compute.begin_update(compute).result()
    assert ml.compute.get("cpu-cluster").max_instances == 3


def test_an_online_endpoint_is_created_and_invoked(aml, trained):
    from azure.ai.ml.entities import CodeConfiguration, ManagedOnlineDeployment, ManagedOnlineEndpoint, Model
    ml, _, _ = aml
    wait_terminal(ml, trained.name)
    model = ml.models.create_or_update(Model(name="served", path=f"azureml://jobs/{trained.name}/outputs/artifacts/paths/model/"))
    code = tempfile.mkdtemp(prefix="sdk-v2-score-")
    with open(os.path.join(code, "score.py"), "w") as f:
        f.write("import json, os\n"
                "def init():\n"
                "    global lr\n"
                "    lr = open(os.path.join(os.environ['AZUREML_MODEL_DIR'], 'weights.txt')).read()\n"
                "def run(raw):\n"
                "    return {'lr': lr, 'n': len(json.loads(raw)['data'])}\n")
    endpoint = ml.online_endpoints.begin_create_or_update(ManagedOnlineEndpoint(name="sdk-ep", auth_mode="key")).result()
    assert endpoint.scoring_uri.startswith("https://127.0.0.1:")
    ml.online_deployments.begin_create_or_update(ManagedOnlineDeployment(
        name="blue", endpoint_name="sdk-ep", model=f"azureml:served:{model.version}",
        code_configuration=CodeConfiguration(code=code, scoring_script="score.py"), environment=ENV,
        instance_type="Standard_DS3_v2", instance_count=1)).result()
    endpoint.traffic = {"blue": 100}
    ml.online_endpoints.begin_create_or_update(endpoint).result()
    request = os.path.join(code, "request.json")
    with open(request, "w") as f:
        f.write('{"data": [[1, 2], [3, 4], [5, 6]]}')
    answer = json.loads(ml.online_endpoints.invoke(endpoint_name="sdk-ep", request_file=request))
    assert answer == {"lr": "0.25", "n": 3}
    keys = ml.online_endpoints.get_keys("sdk-ep")
    refused = requests.post(endpoint.scoring_uri, data=b'{"data": []}', headers={"Authorization": "Bearer wrong"})
    assert refused.status_code == 401
    ok = requests.post(endpoint.scoring_uri, data=b'{"data": []}', headers={"Authorization": "Bearer " + keys.primary_key})
    assert ok.json() == {"lr": "0.25", "n": 0}
