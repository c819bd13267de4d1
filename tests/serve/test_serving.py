"""A real `vfm serve` process on 127.0.0.1, driven by gradio_client."""

import os
import socket
import subprocess
import sys
import time

import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AuthenticationError

from vfm.serve.app import free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(retina_run):
    port = free_port()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "vfm.platform.cli",
            "serve",
            str(retina_run["bundle"]),
            "--port",
            str(port),
            "--max-upload-mb",
            "1",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=os.environ | {"PYTHONUNBUFFERED": "1"},
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"server exited: {process.stdout.read()[-3000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            time.sleep(0.5)
    else:
        process.kill()
        pytest.fail("server did not come up within 120 s")
    yield {"url": f"http://127.0.0.1:{port}/", "port": port, "bundle": retina_run["bundle"]}
    process.terminate()
    process.wait(timeout=30)


def test_binds_to_loopback_only(server):
    with pytest.raises(OSError):
        hostname_ip = socket.gethostbyname(socket.gethostname())
        if hostname_ip.startswith("127."):
            raise OSError("no non-loopback address to test against")
        socket.create_connection((hostname_ip, server["port"]), timeout=2)


def test_predicts_an_example_and_keeps_serving_after_bad_input(server, tmp_path):
    client = Client(server["url"], verbose=False)
    example = sorted((server["bundle"] / "examples").iterdir())[0]
    view, probabilities, rollout, gradcam, summary = client.predict(
        handle_file(str(example)), api_name="/retina_predict"
    )
    assert probabilities["label"] in summary
    assert len(probabilities["confidences"]) == 5
    assert all(os.path.getsize(path) > 0 for path in (view, rollout, gradcam))

    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20)
    with pytest.raises(Exception) as info:
        client.predict(handle_file(str(corrupt)), api_name="/retina_predict")
    assert "fix:" in str(info.value), str(info.value)

    tiny = tmp_path / "tiny.png"
    from PIL import Image

    Image.new("RGB", (1, 1)).save(tiny)
    with pytest.raises(Exception, match="small"):
        client.predict(handle_file(str(tiny)), api_name="/retina_predict")

    again = client.predict(handle_file(str(example)), api_name="/retina_predict")
    assert again[1]["label"] == probabilities["label"]


def test_server_paths_and_bundle_internals_stay_private(server, tmp_path):
    """Error messages name the uploaded file, not where the server keeps it; the bundle's examples
    download, its model and config do not."""
    import urllib.error
    import urllib.request

    client = Client(server["url"], verbose=False)
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 20)
    with pytest.raises(Exception) as info:
        client.predict(handle_file(str(corrupt)), api_name="/retina_predict")
    message = str(info.value)
    import re

    assert "fix:" in message and not re.search(r"(^|[\s\[(])/\w", message), message

    def status(path) -> int:
        try:
            with urllib.request.urlopen(f"{server['url']}gradio_api/file={path}", timeout=10) as response:
                return response.status
        except urllib.error.HTTPError as err:
            return err.code

    bundle = server["bundle"].resolve()
    assert status(sorted((bundle / "examples").iterdir())[0]) == 200
    for private in ("config.yaml", "model.onnx", "SHA256SUMS", "manifest.json"):
        assert status(bundle / private) in (403, 404), private


def test_an_upload_over_the_limit_is_refused_and_the_server_keeps_serving(server, tmp_path):
    client = Client(server["url"], verbose=False)
    big = tmp_path / "big.png"
    big.write_bytes(b"\x89PNG\r\n\x1a\n" + os.urandom(2 * 1024 * 1024))  # 2 MB against --max-upload-mb 1
    with pytest.raises(Exception) as info:
        client.predict(handle_file(str(big)), api_name="/retina_predict")
    assert "size" in str(info.value).lower() or "large" in str(info.value).lower(), str(info.value)
    example = sorted((server["bundle"] / "examples").iterdir())[0]
    assert client.predict(handle_file(str(example)), api_name="/retina_predict")[1]["label"]


def test_a_busy_port_is_one_line_naming_the_fix(server):
    result = subprocess.run(
        [sys.executable, "-m", "vfm.platform.cli", "serve", str(server["bundle"]), "--port", str(server["port"])],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "--port" in result.stderr and "Traceback" not in result.stderr, result.stderr


def test_a_login_is_required_when_configured(retina_run, tmp_path):
    from vfm.serve.app import ServerLimits, read_auth_file, serve_bundles

    logins = tmp_path / "logins"
    logins.write_text("# who may log in\nclinic:s3cret\n")
    port = free_port()
    app = serve_bundles(
        [retina_run["bundle"]], port=port, block=False, limits=ServerLimits(auth=read_auth_file(logins))
    )
    try:
        with pytest.raises(AuthenticationError, match="login"):
            Client(f"http://127.0.0.1:{port}/", verbose=False)
        client = Client(f"http://127.0.0.1:{port}/", auth=("clinic", "s3cret"), verbose=False)
        example = sorted((retina_run["bundle"] / "examples").iterdir())[0]
        assert client.predict(handle_file(str(example)), api_name="/retina_predict")[1]["label"]
    finally:
        app.close()


def test_bad_server_options_get_one_line(tmp_path, retina_run):
    from vfm.platform.errors import VfmError
    from vfm.serve.app import read_auth_file

    (tmp_path / "bad").write_text("no colon here\n")
    with pytest.raises(VfmError, match="line 1 of the login file"):
        read_auth_file(tmp_path / "bad")
    with pytest.raises(VfmError, match="cannot read the login file"):
        read_auth_file(tmp_path / "missing")
    result = subprocess.run(
        [sys.executable, "-m", "vfm.platform.cli", "serve", str(retina_run["bundle"]), "--queue-size", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2 and "--queue-size must be positive" in result.stderr


def test_serving_beyond_loopback_without_a_login_warns(capsys):
    """What launch tells Gradio and the user (a stand-in app: nothing binds beyond loopback in a test)."""
    from vfm.serve.app import ServerLimits, launch

    class App:
        def queue(self, **options):
            self.queued = options

        def launch(self, **options):
            self.launched = options

    app = App()
    launch(app, [], host="0.0.0.0", block=False, limits=ServerLimits(max_upload_mb=5, queue_size=3))
    assert "pass --auth-file" in capsys.readouterr().err
    assert app.queued == {"default_concurrency_limit": 2, "max_size": 3}
    assert app.launched["max_file_size"] == 5 * 2**20 and app.launched["auth"] is None
    launch(app, [], host="127.0.0.1", block=False)
    assert capsys.readouterr().err == ""


def test_labels_that_do_not_fit_the_model_are_refused_at_load(retina_run, tmp_path):
    import json
    import shutil

    from tests.conftest import forge_file
    from vfm.platform.errors import VfmError
    from vfm.serve.runtime import open_predictor

    copy = tmp_path / "bundle"
    shutil.copytree(retina_run["bundle"], copy)
    labels = json.loads((copy / "labels.json").read_text())
    forge_file(copy, "labels.json", json.dumps(labels[:-1]))
    with pytest.raises(VfmError, match=f"outputs {len(labels)} classes but labels.json names {len(labels) - 1}"):
        open_predictor(copy)
