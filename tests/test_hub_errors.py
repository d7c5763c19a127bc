"""What a user sees when the Hub is reachable but slow, or lacks a file (issue 19 item 4):
one line naming the file, the cache folder and the way back to the quick profile, soon.

The Hub is a local stand-in (http.server on 127.0.0.1, set as HF_ENDPOINT) and the cache a
temporary folder, so nothing here needs the network or touches the real cache.
"""

import hashlib
import http.server
import json
import threading
import time

import pytest

from course_lib import backbones
from course_lib.settings import CourseError

REPO = "course-test/tiny-bert"
COMMIT = "c0" * 20


class StandInHub(http.server.BaseHTTPRequestHandler):
    """Just enough of the Hub for transformers' from_pretrained: the file HEAD/GET at
    ``/{repo}/resolve/{revision}/{file}`` and the model-info and tree API calls."""

    files: dict[str, bytes] = {}
    broken: set[str] = set()  # files whose download (GET) fails with HTTP 500
    answer = threading.Event()  # a slow Hub: requests wait for it (set: answer at once)

    def do_HEAD(self):  # noqa: N802 - the http.server API
        self.respond(body=False)

    def do_GET(self):  # noqa: N802
        self.respond(body=True)

    def respond(self, body: bool):
        if not self.answer.wait(timeout=120):
            return
        path = self.path.split("?")[0]
        api, resolve = f"/api/models/{REPO}", f"/{REPO}/resolve/"
        if path in (api, f"{api}/revision/main"):
            self.send(json.dumps({"id": REPO, "sha": COMMIT,
                                  "siblings": [{"rfilename": n} for n in self.files]}).encode(),
                      body, content_type="application/json")
        elif path == f"{api}/tree/main" or path == f"{api}/tree/{COMMIT}":
            self.send(json.dumps([{"type": "file", "path": n, "size": len(data), "oid": "0" * 40}
                                  for n, data in self.files.items()]).encode(),
                      body, content_type="application/json")
        elif path.startswith(resolve) and path.split("/", 5)[-1] in self.files:
            if body and path.split("/", 5)[-1] in self.broken:
                self.send_error(500)
                return
            self.send(self.files[path.split("/", 5)[-1]], body)
        else:  # as the Hub answers for a file (or folder) that the repo does not have
            self.send_response(404)
            self.send_header("X-Error-Code", "EntryNotFound")
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("Content-Length", "0")
            self.end_headers()

    def send(self, data: bytes, body: bool, content_type: str = "application/octet-stream"):
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Repo-Commit", COMMIT)
        self.send_header("ETag", f'"{hashlib.sha256(data).hexdigest()}"')
        self.end_headers()
        if body:
            self.wfile.write(data)

    def log_message(self, *args):
        pass


@pytest.fixture
def hub(tmp_path, monkeypatch, tiny_model_dir):
    """The stand-in Hub as HF_ENDPOINT, online, with a temporary cache; yields the handler
    class (its ``files`` and ``answer`` change what the Hub serves and how fast)."""
    import huggingface_hub.constants as constants
    import transformers.utils.hub

    StandInHub.files = {"config.json": (tiny_model_dir / "config.json").read_bytes()}
    StandInHub.broken = set()
    StandInHub.answer = threading.Event()
    StandInHub.answer.set()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), StandInHub)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    cache = tmp_path / "hf-home" / "hub"
    monkeypatch.setenv("HF_ENDPOINT", endpoint)
    monkeypatch.setenv("HF_HOME", str(cache.parent))
    monkeypatch.setenv("HF_HUB_CACHE", str(cache))
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("COURSE_PROFILE", "full")
    monkeypatch.delenv("COURSE_MODEL", raising=False)
    # huggingface_hub read these at import; transformers keeps an HfApi made with the endpoint
    for name, value in (("ENDPOINT", endpoint), ("HF_HUB_OFFLINE", False),
                        ("HUGGINGFACE_CO_URL_TEMPLATE",
                         endpoint + "/{repo_id}/resolve/{revision}/{filename}"),
                        ("HF_HOME", str(cache.parent)), ("HF_HUB_CACHE", str(cache)),
                        ("AGENT_HARNESSES_PATH", str(cache.parent / "agents.json"))):
        monkeypatch.setattr(constants, name, value)
    monkeypatch.setattr(transformers.utils.hub, "_hf_api", None)
    StandInHub.cache = cache
    yield StandInHub
    StandInHub.answer.set()  # let waiting requests finish
    server.shutdown()
    server.server_close()


def load_within(seconds: float, *args):
    """``backbones.load_model(*args)`` in a thread: (result or error, seconds taken); fails
    the test if it is still waiting after ``seconds``, instead of hanging with it."""
    outcome = {}

    def load():
        try:
            outcome["value"] = backbones.load_model(*args)
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome["value"] = error

    started = time.monotonic()
    worker = threading.Thread(target=load, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"load_model still waiting after {seconds} s"
    return outcome["value"], time.monotonic() - started


def assert_one_line(error, *needles):
    assert isinstance(error, CourseError), repr(error)
    message = str(error)
    assert "\n" not in message, message
    for needle in needles:
        assert needle in message, message
    return message


def test_a_missing_weights_file_is_one_line_naming_it_the_cache_and_the_way_back(
        hub, tiny_model_dir):
    error, _ = load_within(60, "classification", REPO)
    assert_one_line(error, "model.safetensors", REPO, str(hub.cache), "COURSE_PROFILE=quick")
    # once the Hub has the file, the same call downloads and loads it
    hub.files["model.safetensors"] = (tiny_model_dir / "model.safetensors").read_bytes()
    model, _ = load_within(60, "classification", REPO)
    assert model.config.hidden_size == 32
    assert (hub.cache / f"models--{REPO.replace('/', '--')}").is_dir()


def test_a_hub_that_accepts_but_never_answers_fails_soon_with_one_line(hub, monkeypatch):
    import huggingface_hub.constants as constants

    monkeypatch.setattr(constants, "HF_HUB_ETAG_TIMEOUT", 2)  # as HF_HUB_ETAG_TIMEOUT=2 does
    hub.answer.clear()  # connections are accepted, requests wait
    error, seconds = load_within(30, "classification", REPO)
    assert seconds < 15
    message = assert_one_line(error, "config.json", str(hub.cache), "COURSE_PROFILE=quick")
    assert "did not answer within 2 s" in message


def test_a_download_that_fails_midway_is_one_line_naming_the_file(hub, tiny_model_dir):
    """The Hub lists the weights (the check before the load passes) but serving them fails:
    huggingface_hub's and transformers' errors become the same one line."""
    hub.files["model.safetensors"] = (tiny_model_dir / "model.safetensors").read_bytes()
    hub.broken = {"model.safetensors"}
    error, _ = load_within(60, "classification", REPO)
    message = assert_one_line(error, REPO, str(hub.cache), "COURSE_PROFILE=quick")
    assert "could not get model.safetensors of" in message


def test_a_local_folder_without_safetensors_weights_is_one_line(tmp_path, tiny_model_dir):
    (tmp_path / "config.json").write_bytes((tiny_model_dir / "config.json").read_bytes())
    with pytest.raises(CourseError) as info:
        backbones.load_model("classification", str(tmp_path))
    assert_one_line(info.value, "model.safetensors", str(tmp_path), "COURSE_PROFILE=quick")
