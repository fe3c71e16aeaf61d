"""The status page (/ui) in a real headless Chromium (Debian's chromium and chromium-driver), against a running
`mlhook serve` holding real data: a push trained by python3 on the embedded aml-local, a push that no rule wants,
a job that fails, and a callback that is dead-lettered. Signs in with the admin token, checks what the page shows,
saves a screenshot, and presses Replay on the dead callback.

Run by scripts/test.sh with MLHOOK_BIN pointing at the built binary; the screenshot goes to $UI_SCREENSHOT
(default .build/ui/status.png).
"""
import json
import os
import re
import signal
import subprocess
import tempfile
import time
import urllib.request

import pytest
from selenium import webdriver
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

BINARY = os.path.abspath(os.environ.get("MLHOOK_BIN", ".build/debug/mlhook"))
TOKEN = "ui-admin-token-" + os.urandom(16).hex()
SECRET = "ui-github-secret"


def git(repo, *args):
    return subprocess.run(["git", "-C", repo, *args], check=True, capture_output=True, text=True).stdout.strip()


def github_push(sha, clone_url, branch):
    return {"ref": f"refs/heads/{branch}", "before": "0" * 40, "after": sha, "deleted": False,
            "repository": {"full_name": "ml/demo", "name": "demo", "clone_url": clone_url, "default_branch": "main"},
            "pusher": {"name": "octocat"}, "sender": {"login": "octocat"},
            "commits": [{"id": sha, "added": ["train/train.py"], "modified": [], "removed": []}],
            "head_commit": {"id": sha, "added": ["train/train.py"], "modified": [], "removed": []}}


@pytest.fixture(scope="module")
def service():
    work = tempfile.mkdtemp(prefix="mlhook-ui-")
    repo = os.path.join(work, "repo")
    os.makedirs(os.path.join(repo, "train"))
    with open(os.path.join(repo, "train", "train.py"), "w") as f:
        f.write("print('status page demo run')\n")
    git(repo, "init", "-q", "-b", "main")
    git(repo, "add", ".")
    git(repo, "-c", "user.email=u@x", "-c", "user.name=U", "commit", "-q", "-m", "train")
    sha = git(repo, "rev-parse", "HEAD")
    config = os.path.join(work, "mlhook.yaml")
    with open(config, "w") as f:
        f.write(f"""
server: {{ listen: "127.0.0.1:0" }}
store: {{ path: "{work}/mlhook.db" }}
admin: {{ token: {{ env: MLHOOK_ADMIN_TOKEN }} }}
azureml: {{ mode: local, local: {{ data_dir: "{work}/aml" }} }}
callbacks: {{ retry_schedule_seconds: [1] }}
sources: [ {{ name: github, type: github, secrets: [ {{ env: GH_SECRET }} ], git_schemes: [file] }} ]
rules:
  - name: train-main
    when: {{ source: github, kind: push, branches: [main] }}
    actions: [ {{ start_run: {{ experiment: ui-demo, dir: train, script: train.py, compute: cpu-cluster }} }} ]
    callback: [ {{ url: {{ url: "http://127.0.0.1:9/unreachable", secret: {{ env: CB_SECRET }} }} }} ]
  - name: cleanup-release
    when: {{ source: github, kind: push, branches: ["release/*"] }}
    actions: [ {{ scale_compute: {{ name: no-such-cluster, max_nodes: 1 }} }} ]
""")
    env = dict(os.environ, MLHOOK_ADMIN_TOKEN=TOKEN, GH_SECRET=SECRET, CB_SECRET="whsec_" + "A" * 43 + "=")
    log = open(os.path.join(work, "serve.log"), "w+")
    proc = subprocess.Popen([BINARY, "serve", "--config", config], cwd=work, env=env, stdout=log, stderr=subprocess.STDOUT)
    port = None
    for _ in range(600):
        log.seek(0)
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)", log.read())
        if m:
            port = int(m.group(1))
            break
        time.sleep(0.05)
    assert port, "mlhook serve did not start"
    base = f"http://127.0.0.1:{port}"
    # `send --wait` exits 1 when a job fails or a callback is dead-lettered, which two of these do on purpose.
    for branch, delivery, status in [("main", "ui-push-main", 1), ("feature/x", "ui-push-ignored", 0), ("release/1", "ui-push-release", 1)]:
        payload = os.path.join(work, f"{delivery}.json")
        with open(payload, "w") as f:
            json.dump(github_push(sha, "file://" + repo, branch), f)
        sent = subprocess.run([BINARY, "send", "github", "push", "--payload", payload, "--config", config, "--to", f"{base}/hooks/github",
                               "--delivery", delivery, "--wait"], cwd=work, env=env, capture_output=True, text=True, timeout=120)
        assert sent.returncode == status, f"{delivery}: exit {sent.returncode}\n{sent.stdout}\n{sent.stderr}"
    yield base, env, work
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=30)


def api(base, path, method="GET"):
    req = urllib.request.Request(base + path, method=method, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.load(r)


@pytest.fixture(scope="module")
def browser():
    options = webdriver.ChromeOptions()
    options.binary_location = "/usr/bin/chromium"
    for arg in ["--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1600"]:
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service("/usr/bin/chromedriver"), options=options)
    yield driver
    driver.quit()


def test_sign_in_see_the_state_replay_a_dead_callback_and_save_a_screenshot(service, browser):
    base, env, work = service
    dead = api(base, "/api/v1/callbacks?state=dead")["items"]
    assert len(dead) == 1, "the unreachable callback is dead-lettered"

    browser.get(base + "/ui")
    assert browser.current_url.endswith("/ui/login"), "no session: the sign-in form"
    wait = WebDriverWait(browser, 15)
    browser.find_element(By.NAME, "token").send_keys("wrong")
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda b: "That is not the admin token." in b.page_source)
    browser.find_element(By.NAME, "token").send_keys(TOKEN)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    wait.until(lambda b: b.current_url.endswith("/ui") and "Dead-lettered callbacks" in b.page_source)
    assert 'http-equiv="refresh" content="5"' in browser.page_source, "the page refreshes itself"
    # Held still while the test reads and clicks (?refresh=0), so a reload cannot pull elements away.
    browser.get(base + "/ui?refresh=0")
    wait.until(lambda b: "Dead-lettered callbacks" in b.page_source)

    text = browser.find_element(By.TAG_NAME, "body").text
    for expected in ["Recent events", "ui-push-main", "ui-push-ignored", "ui-push-release", "train-main#1", "start_run",
                     "succeeded", "cleanup-release#1", "failed", "Dead-lettered callbacks", "http://127.0.0.1:9/…"]:
        assert expected in text, f"{expected!r} is not on the page:\n{text}"
    assert re.search(r"mlhook_job_\w+ \(Completed\)", text), "the run and its status"
    # Why the feature-branch push did nothing, one click away.
    ignored_row = browser.find_element(By.XPATH, "//tr[td[contains(., 'ui-push-ignored')]]")
    ignored_row.find_element(By.TAG_NAME, "summary").click()
    assert "not in [main]" in ignored_row.text
    # A job's own page lists its attempts.
    browser.find_element(By.XPATH, "//a[starts-with(., 'job_')]").click()
    wait.until(lambda b: "/ui/jobs/job_" in b.current_url and "Attempts" in b.page_source)
    browser.back()
    wait.until(lambda b: b.current_url.endswith("/ui?refresh=0") and "Dead-lettered callbacks" in b.page_source)

    shot = os.environ.get("UI_SCREENSHOT", os.path.abspath(".build/ui/status.png"))
    os.makedirs(os.path.dirname(shot), exist_ok=True)
    assert browser.save_screenshot(shot) and os.path.getsize(shot) > 10_000
    print(f"screenshot: {shot}")

    browser.find_element(By.XPATH, "//button[.='Replay']").click()
    wait.until(lambda b: "callback queued for delivery" in b.page_source)
    after = api(base, f"/api/v1/callbacks/{dead[0]['id']}")
    assert after["state"] == "pending", "replayed: back in the delivery queue (it dead-letters again a second later)"
