"""The driving Gradio tab: pick a simulated episode or upload a clip, read the commentary at every
decision step (what the car does and why) and see where the model looked in the last window; ask
a question about the scene. Bad input is an error message; the server keeps serving.
"""

from __future__ import annotations

from typing import Any

from vfm.platform.errors import VfmError
from vfm.plugins.driving.clip_io import CLIP_SUFFIXES, FRAME_INTERVAL_S

TIMELINE_HEADERS = ["step", "speed", "commentary", "action", "cause", "confidence", "reference (simulator)"]
SPEED_SOURCES = {"argument": " (as given)", "clip": " (from the clip)", "unknown": ""}


def build_driving_tab(predictor: Any) -> None:
    """Add the tab's components and events to the enclosing ``gr.Tab``.

    API:

    - ``/<plugin>_predict``: inputs (clip files: one ``.npz``/GIF/APNG/WebP/video or several
      image frames; ego speed m/s or None; the driver's set speed m/s and set time gap s, each
      or None), outputs (timeline rows, overlay gallery of the last window, summary markdown);
    - ``/<plugin>_ask``: inputs (clip files, ego speed, question, set speed, set time gap),
      output (answer markdown);
    - ``/<plugin>_example``: input (a bundled episode's name, e.g. ``01_highway``), output (that episode as the clip).
    """
    import gradio as gr

    name = predictor.plugin.name
    manifest = predictor.plugin.manifest

    def comment(
        files: list[str] | None, speed: float | None, set_speed: float | None = None, time_gap: float | None = None
    ) -> tuple[Any, ...]:
        try:
            result = predictor.predict(_clip(files), ego_speed=speed, driver_settings=(set_speed, time_gap))
        except VfmError as err:
            raise gr.Error(err.public()) from None
        rows = [
            [
                entry["step"],
                _speed_text(entry["ego_speed"]),
                entry["commentary"],
                entry["action"] or "—",
                entry["cause"] or "—",
                round(entry["confidence"], 3),
                entry["reference"] or "—",
            ]
            for entry in result["timeline"]
        ]
        last = result["timeline"][-1]
        k, dt = result["frames_per_window"], result["frame_interval_s"]
        gallery = list(zip(result["overlay"], _captions(last, k, dt), strict=True))
        summary = (
            f"### {last['commentary'] or '(no commentary)'}\n"
            f"action **{last['action'] or 'not stated'}** · cause **{last['cause'] or 'not stated'}** · "
            f"confidence {last['confidence']:.2f} (geometric-mean token probability) · speed "
            f"{_speed_text(last['ego_speed'])}{SPEED_SOURCES[result['ego_speed_source']]} · driver's "
            f"settings {_settings_text(result['driver_settings'])}\n\n"
            f"{result['clip_frames']} frames ({result['clip_frames'] * dt:g} s), {result['windows']} windows "
            f"of {k} frames. The overlay shows where the model looked in the last window: each frame's "
            f"saliency weighted by the decoder's attention to it."
        )
        if result["notes"]:
            summary += "\n\n" + "\n".join(f"- {note}" for note in result["notes"])
        return rows, gallery, summary

    def ask(
        files: list[str] | None,
        speed: float | None,
        question: str,
        set_speed: float | None = None,
        time_gap: float | None = None,
    ) -> str:
        try:
            reply = predictor.ask(_clip(files), question, ego_speed=speed, driver_settings=(set_speed, time_gap))
        except VfmError as err:
            raise gr.Error(err.public()) from None
        return (
            f"**Q:** {reply['question']}\n\n### {reply['answer'] or '(no answer)'}\nconfidence "
            f"{reply['confidence']:.2f} · about the last window (ending at frame {reply['step']})"
        )

    by_name = {path.name.removesuffix(".npz"): str(path) for path in predictor.episodes()}  # no server paths shown

    def load_example(name: str | None) -> list[str] | None:
        if name and name not in by_name:
            raise gr.Error(f"no episode named {name!r}: pick one from the list")
        return [by_name[name]] if name else None

    gr.Markdown(manifest.demo.description)
    with gr.Row():
        with gr.Column():
            picker = gr.Dropdown(
                choices=list(by_name),
                label="Simulated episodes",
                value=None,
            )
            files = gr.File(
                label=f"Clip: one .npz, animated GIF/APNG/WebP or video, or several image frames "
                f"(one per {FRAME_INTERVAL_S:g} s; at least {predictor.k})",
                file_count="multiple",
                file_types=CLIP_SUFFIXES,
                type="filepath",
            )
            speed = gr.Number(label="Ego speed (m/s; empty: the clip's own, or unknown)", value=None, minimum=0)
            with gr.Row():
                set_speed = gr.Number(
                    label="Cruise control: set speed (m/s; empty: the episode's, or unknown)", value=None, minimum=0
                )
                time_gap = gr.Number(
                    label="Cruise control: time gap (s; empty: the episode's, or unknown)", value=None, minimum=0
                )
            button = gr.Button("Comment", variant="primary")
            question = gr.Textbox(
                label="Question about the last window", placeholder="Is it safe to change lanes to the left?"
            )
            ask_button = gr.Button("Ask")
            answer = gr.Markdown()
        with gr.Column():
            summary = gr.Markdown()
            gallery = gr.Gallery(
                label="Last window: where the model looked",
                columns=predictor.k,
                object_fit="contain",
                allow_preview=True,
            )
            timeline = gr.Dataframe(
                headers=TIMELINE_HEADERS,
                label=f"Commentary timeline (one row per {FRAME_INTERVAL_S:g} s)",
                interactive=False,
                wrap=True,
            )
    gr.Markdown(
        "**Intended use.** " + manifest.intended_use.strip() + "\n\n**Limits.** " + " ".join(manifest.limitations)
    )
    picker.change(load_example, inputs=picker, outputs=files, api_name=f"{name}_example")
    button.click(
        comment,
        inputs=[files, speed, set_speed, time_gap],
        outputs=[timeline, gallery, summary],
        api_name=f"{name}_predict",
    )
    ask_button.click(ask, inputs=[files, speed, question, set_speed, time_gap], outputs=answer, api_name=f"{name}_ask")


def _clip(files: list[str] | None) -> list[str]:
    """The uploaded files, or a one-line error when there are none."""
    if not files:
        raise VfmError("no clip given", fix="pick a simulated episode or upload a clip (.npz, GIF, video or frames)")
    return files


def _captions(last: dict[str, Any], k: int, interval: float) -> list[str]:
    """``"frame 7 · -0.5 s · attention 31%"`` for each frame of the last window, oldest first."""
    return [
        f"frame {last['step'] - k + 1 + i} · {_offset((i - k + 1) * interval)} · attention {share:.0%}"
        for i, share in enumerate(last["frame_attention"])
    ]


def _settings_text(settings: dict[str, float | None]) -> str:
    """``"set speed 27.0 m/s, time gap 1.6 s"``; ``"unknown"`` when neither is known."""
    named = (("set speed", settings["set_speed"], " m/s"), ("time gap", settings["set_time_gap"], " s"))
    parts = [f"{label} {value:g}{unit}" for label, value, unit in named if value is not None]
    return ", ".join(parts) or "unknown"


def _speed_text(speed: float | None) -> str:
    return "unknown" if speed is None else f"{speed:.1f} m/s"


def _offset(seconds: float) -> str:
    return "now" if abs(seconds) < 1e-9 else f"{seconds:+g} s"
