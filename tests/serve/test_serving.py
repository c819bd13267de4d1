"""A real `vfm serve` process on 127.0.0.1, driven by gradio_client."""

import os
import socket
import subprocess
import sys
import time

import pytest
from gradio_client import Client, handle_file

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server(retina_run):
    port = _free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "vfm.platform.cli", "serve", str(retina_run["bundle"]), "--port", str(port)],
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
