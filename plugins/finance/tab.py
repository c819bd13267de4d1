"""The finance Gradio tab: paste a report excerpt (text, a CSV or markdown table, text) or pick
an example, ask a question, and see the answer, the program trace with each step's value (or
the table cells the answer is read from), and the evidence the model read, highlighted. Bad
input is an error message; the server keeps serving.
"""

from __future__ import annotations

from typing import Any

from vfm.platform.errors import VfmError
from vfm.plugins.finance.predictor import format_number, read_question

TRACE_HEADERS = ["step", "operation", "arguments", "value"]


def build_finance_tab(predictor: Any) -> None:
    """Add the tab's components and events to the enclosing ``gr.Tab``.

    API: ``/<plugin>_predict`` with inputs (text before, table, text after, question) and
    outputs (answer markdown, program trace rows, highlighted evidence).
    """
    import gradio as gr

    name = predictor.plugin.name
    manifest = predictor.plugin.manifest

    def answer(pre_text: str, table: str, post_text: str, question: str) -> tuple[Any, ...]:
        try:
            result = predictor.predict(
                {"question": question, "table": table, "pre_text": pre_text, "post_text": post_text}
            )
        except VfmError as err:
            raise gr.Error(err.public()) from None
        if result["kind"] == "lookup":
            read = "; ".join(
                f"*{cell['row_name'] or 'header'}*, *{cell['column_name'] or cell['column']}*: `{cell['text']}`"
                for cell in result["cells"]
            )
            summary = (
                f"### {result['display']}\nRead from the table (no arithmetic): {read} · confidence "
                f"{result['confidence']:.2f} (the probability that the question asks for table cells)"
            )
        elif result["kind"] == "text":
            summary = (
                f"### {result['display']}\nThe sentence of the report that answers it (highlighted below) · "
                f"confidence {result['confidence']:.2f} (the probability that the answer is text)"
            )
        elif result["answer"] is None:
            summary = (
                f"### No answer\nThe most probable program `{result['program']}` does not run on this "
                f"table: {result['no_answer_reason']}"
            )
        else:
            summary = (
                f"### {result['display']}\n`{result['program']}` · confidence "
                f"{result['confidence']:.2f} (the program's probability under the model)"
            )
        trace = [
            [
                s["ref"],
                s["op"],
                ", ".join(s["args"]),
                s["value"] if isinstance(s["value"], str) else format_number(s["value"]),
            ]
            for s in result["steps"]
        ]
        evidence = [(unit["text"] + "\n", "used" if unit["used"] else None) for unit in result["evidence"]]
        return summary, trace, evidence

    by_name = {path.name: path for path in predictor.bundle.examples()}  # the app never shows server paths

    def load_example(name: str) -> tuple[str, str, str, str]:
        if name not in by_name:
            raise gr.Error(f"no example named {name!r}: pick one from the list")
        question, table, pre_text, post_text, _ = read_question(by_name[name])
        return "\n".join(pre_text), "\n".join(" | ".join(row) for row in table), "\n".join(post_text), question

    gr.Markdown(manifest.demo.description)
    with gr.Row():
        with gr.Column():
            pre = gr.Textbox(label="Text before the table", lines=4)
            table = gr.Textbox(label="Table (CSV, TSV or markdown; header row first, row names in column 1)", lines=8)
            post = gr.Textbox(label="Text after the table", lines=3)
            question = gr.Textbox(
                label="Question", placeholder="what was the percentage change in revenue from 2019 to 2020?"
            )
            button = gr.Button("Answer", variant="primary")
            if by_name:
                picker = gr.Dropdown(
                    choices=list(by_name),
                    label="Examples (synthetic statements)",
                    value=None,
                )
                picker.change(
                    load_example, inputs=picker, outputs=[pre, table, post, question], api_name=f"{name}_example"
                )
        with gr.Column():
            summary = gr.Markdown()
            steps = gr.Dataframe(headers=TRACE_HEADERS, label="Program trace", interactive=False)
            evidence = gr.HighlightedText(
                label="Evidence (highlighted: what the model read)", color_map={"used": "#fde68a"}, show_legend=False
            )
    gr.Markdown(
        "**Intended use.** " + manifest.intended_use.strip() + "\n\n**Limits.** " + " ".join(manifest.limitations)
    )
    button.click(
        answer, inputs=[pre, table, post, question], outputs=[summary, steps, evidence], api_name=f"{name}_predict"
    )
