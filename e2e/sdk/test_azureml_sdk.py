"""The official Python SDK (azureml-core) against a real `mlhook aml-local`.

Uses the SDK's own pieces: the generated REST client (azureml._restclient.RestClient) with a static token,
RunConfiguration serialized exactly as the SDK serializes it, and the SDK's own multipart startrun call.
Run by scripts/test.sh with MLHOOK_BIN pointing at the built binary.
"""
import io
import json
import os
import subprocess
import tempfile
import time
import zipfile

import pytest
import requests
from msrest.authentication import BasicTokenAuthentication

from azureml._execution._commands import _serialize_run_config_to_dict
from azureml._restclient.clientbase import ClientBase
from azureml._restclient.models import ExperimentQueryParamsDto, Model
from azureml._restclient.rest_client import RestClient
from azureml.core.runconfig import RunConfiguration


@pytest.fixture(scope="module")
def server():
    binary = os.environ.get("MLHOOK_BIN", ".build/debug/mlhook")
    data = tempfile.mkdtemp(prefix="aml-sdk-")
    proc = subprocess.Popen([binary, "aml-local", "--port", "0", "--data-dir", data],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    creds = os.path.join(data, "credentials.json")
    for _ in range(400):
        if os.path.exists(creds) and os.path.getsize(creds) > 0:
            break
        time.sleep(0.05)
    c = json.load(open(creds))
    token = requests.post(f"{c['base_url']}/{c['tenant_id']}/oauth2/token", data={
        "grant_type": "client_credentials", "client_id": c["client_id"], "client_secret": c["client_secret"],
        "resource": "https://management.azure.com/"}).json()["access_token"]
    yield c, token
    proc.terminate()
    proc.wait(timeout=30)


def client(c, token):
    return RestClient(BasicTokenAuthentication({"access_token": token}), base_url=c["base_url"])


def scope(c):
    return (c["subscription_id"], c["resource_group"], c["workspace"])


def test_list_experiments_start_a_run_and_follow_it_to_completed(server):
    c, token = server
    rest = client(c, token)
    # Start a run the way the SDK's zip path does (azureml._execution._commands._start_internal).
    config = RunConfiguration()
    config.script = "train.py"
    config.arguments = ["--alpha", "0.5"]
    config.target = "cpu-cluster"
    config.environment.python.user_managed_dependencies = True
    definition = {"TargetDetails": None, "Configuration": _serialize_run_config_to_dict(config), "TelemetryValues": None}
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("train.py", "import sys\nprint('trained with', sys.argv[1:])\n")
    archive.seek(0)
    run_id = "sdk_run_" + str(int(time.time() * 1000))
    ws_scope = "/subscriptions/{}/resourceGroups/{}/providers/Microsoft.MachineLearningServices/workspaces/{}".format(*scope(c))
    uri = c["base_url"] + "/execution/v1.0" + ws_scope + "/experiments/sdk-demo/startrun?runId=" + run_id
    files = [("runDefinitionFile", ("definition.json", json.dumps(definition, indent=4, sort_keys=True))),
             ("projectZipFile", ("project.zip", archive))]
    response = ClientBase._execute_func(requests.post, uri, files=files, headers={"Authorization": "Bearer " + token})
    assert response.status_code == 200, response.text
    assert response.json()["runId"] == run_id

    experiments = rest.experiment.get_by_query(*scope(c), query_params=ExperimentQueryParamsDto())
    assert "sdk-demo" in [e.name for e in experiments.value]

    status = None
    for _ in range(300):
        run = rest.run.get(*scope(c), "sdk-demo", run_id)
        status = run.status
        if status in ("Completed", "Failed", "Canceled"):
            break
        time.sleep(0.1)
    assert status == "Completed"
    details = rest.run.get_details(*scope(c), "sdk-demo", run_id)
    log_url = details.log_files["azureml-logs/70_driver_log.txt"]
    assert "trained with ['--alpha', '0.5']" in requests.get(log_url).text


def test_register_get_and_delete_a_model(server):
    c, token = server
    rest = client(c, token)
    registered = rest.ml_models.register(*scope(c), Model(name="sdk-model", url="aml://artifact/x/model.pkl",
                                                          mime_type="application/octet-stream", kv_tags={"k": "v"}))
    assert registered.id == "sdk-model:1" and registered.version == 1
    fetched = rest.ml_models.query_by_id(*scope(c), "sdk-model:1")
    assert fetched.name == "sdk-model" and fetched.kv_tags == {"k": "v"}
    rest.ml_models.delete(*scope(c), "sdk-model:1")
    with pytest.raises(Exception):
        rest.ml_models.query_by_id(*scope(c), "sdk-model:1")
