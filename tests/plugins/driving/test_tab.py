"""The driving demo tab on a real Gradio server on 127.0.0.1, driven by gradio_client: an episode
picked and commented on, an uploaded GIF and frames, a question, and bad input (no clip, empty
question, mismatched frame sizes, a corrupt file) as one-line errors after which the server still
answers."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from .test_predictor import K, driving_bundle, predictor  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow  # shares test_predictor's session bundle (about 15 s to export, once)


@pytest.fixture(scope="module")
def client(predictor):  # noqa: F811
    from gradio_client import Client

    from vfm.serve.app import build_app, free_port, launch

    app = build_app([predictor])
    port = free_port()
    launch(app, [predictor], port=port, block=False)
    try:
        yield Client(f"http://127.0.0.1:{port}/", verbose=False)
    finally:
        app.close()


def _timeline(table: dict) -> list[list]:
    """The rows of a Dataframe output as gradio_client returns it."""
    return table["data"]


def test_episode_is_commented_with_timeline_overlays_and_summary(client, predictor):  # noqa: F811
    table, gallery, summary = client.predict(*predictor.smoke_inputs(), api_name="/driving_predict")
    expected = predictor.predict(str(predictor.episodes()[0]))
    rows = _timeline(table)
    assert table["headers"] == ["step", "speed", "commentary", "action", "cause", "confidence", "reference (simulator)"]
    assert [row[0] for row in rows] == [e["step"] for e in expected["timeline"]]
    assert [row[2] for row in rows] == [e["commentary"] for e in expected["timeline"]]
    assert [row[6] for row in rows] == [e["reference"] for e in expected["timeline"]]  # the episode's truth
    assert rows[-1][1] == f"{expected['timeline'][-1]['ego_speed']:.1f} m/s"
    assert len(gallery) == K and gallery[-1]["caption"].startswith("frame 5 · now · attention")
    assert Image.open(gallery[0]["image"]).size == (256, 256)
    assert summary.startswith("### " + expected["timeline"][-1]["commentary"]) and "m/s (from the clip)" in summary
    assert "driver's settings set speed 25 m/s, time gap 1.5 s" in summary  # the episode's own


def test_example_picker_loads_the_episode_as_the_clip(client, predictor):  # noqa: F811
    name = predictor.episodes()[1].name.removesuffix(".npz")  # names, never server paths
    loaded = client.predict(name, api_name="/driving_example")
    assert [np.load(f)["scenario"].item() for f in loaded] == ["merge"]  # a copy in gradio's cache
    with pytest.raises(Exception, match="list") as info:  # Gradio's or the tab's refusal
        client.predict("/etc/passwd", api_name="/driving_example")
    assert str(predictor.bundle.path) not in str(info.value)


def test_uploads_speed_and_questions(client, predictor, tmp_path):  # noqa: F811
    from gradio_client import handle_file

    with np.load(predictor.episodes()[0]) as data:
        frames = data["frames"]
    paths = []
    for i, frame in enumerate(frames):
        Image.fromarray(frame).save(tmp_path / f"{i:02d}.png")
        paths.append(handle_file(str(tmp_path / f"{i:02d}.png")))
    table, _, summary = client.predict(paths, 9.0, api_name="/driving_predict")
    assert {row[1] for row in _timeline(table)} == {"9.0 m/s"} and "9.0 m/s (as given)" in summary
    stills = [Image.fromarray(f) for f in frames]
    stills[0].save(tmp_path / "clip.gif", save_all=True, append_images=stills[1:], duration=500)
    table, _, summary = client.predict([handle_file(str(tmp_path / "clip.gif"))], None, api_name="/driving_predict")
    assert len(_timeline(table)) == len(frames) - K + 1 and "speed is unknown" in summary
    answer = client.predict(paths, None, "Why?", api_name="/driving_ask")
    expected = predictor.ask(frames, "Why?")
    assert answer.startswith("**Q:** Why?") and f"### {expected['answer']}" in answer
    assert "driver's settings unknown" in summary
    table, _, summary = client.predict(paths, 9.0, 27.0, 1.8, api_name="/driving_predict")
    told = predictor.predict(frames, ego_speed=9.0, driver_settings=(27.0, 1.8))
    assert [row[2] for row in _timeline(table)] == [entry["commentary"] for entry in told["timeline"]]
    assert "driver's settings set speed 27 m/s, time gap 1.8 s" in summary
    answer = client.predict(paths, None, "Why?", 27.0, 1.8, api_name="/driving_ask")
    assert f"### {predictor.ask(frames, 'Why?', driver_settings=(27.0, 1.8))['answer']}" in answer


def test_bad_input_is_an_error_message_and_the_server_keeps_serving(client, predictor, tmp_path):  # noqa: F811
    from gradio_client import handle_file

    inputs = predictor.smoke_inputs()
    first = client.predict(*inputs, api_name="/driving_predict")[2]
    with pytest.raises(Exception, match="no clip given"):
        client.predict(None, None, api_name="/driving_predict")
    with pytest.raises(Exception, match="the question is empty"):
        client.predict(*inputs, "   ", api_name="/driving_ask")
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(tmp_path / "a.png")
    Image.fromarray(np.zeros((24, 32, 3), np.uint8)).save(tmp_path / "b.png")
    with pytest.raises(Exception, match=r"frame 1 is 32x24 \(WxH\) but frame 0 is 32x32"):
        client.predict(
            [handle_file(str(tmp_path / "a.png")), handle_file(str(tmp_path / "b.png"))],
            None,
            api_name="/driving_predict",
        )
    (tmp_path / "broken.gif").write_bytes(b"GIF89a\x10\x00\x10\x00 truncated")
    with pytest.raises(Exception, match="cannot decode the clip"):
        client.predict([handle_file(str(tmp_path / "broken.gif"))], None, api_name="/driving_predict")
    with pytest.raises(Exception, match="the model needs at least 3"):
        client.predict([handle_file(str(tmp_path / "a.png"))], None, api_name="/driving_predict")
    assert client.predict(*inputs, api_name="/driving_predict")[2] == first
