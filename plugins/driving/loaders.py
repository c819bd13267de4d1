"""Read driving samples: the generic folder format (what :func:`simulate.write_dataset` writes,
or a user's own data), BDD-X annotations, and the driving text corpus for text adaptation.

- :func:`load_generic`: ``DIR/samples.jsonl`` + ``DIR/frames/*.png`` -> samples with
  ``uint8 [k, H, W, 3]`` clips; every problem is a one-line ``VfmError`` (what, where, fix).
- :func:`load_bddx`: the BDD-X wide CSV (``Input.Video``, then ``Answer.{i}start``,
  ``Answer.{i}end``, ``Answer.{i}action``, ``Answer.{i}justification`` for ``i`` = 1..15; blank
  rows are common) -> one text-only sample per annotated segment, with the action and cause
  mapped by keyword rules where they apply (``None`` otherwise).
- :func:`driving_text_corpus`: commentary and justification sentences as text-adaptation
  ``Document`` s (one per episode / per video, so a held-out split never cuts one in two).
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from vfm.platform.errors import VfmError
from vfm.platform.fileio import read_jsonl_objects
from vfm.plugins.driving.records import ACTIONS, CAUSES, DrivingSample, QAPair
from vfm.pretrain.text_corpus import Document

_FIELDS = ("id", "scenario", "action", "cause", "commentary")


def _read_clip(root: Path, paths: list, where: str) -> np.ndarray:
    frames = []
    for relative in paths:
        path = root / str(relative)
        if not path.is_file():
            raise VfmError(
                "a frame file is missing", where=f"{where}: {path}", fix="restore the frame or regenerate the dataset"
            )
        try:
            with Image.open(path) as image:
                frames.append(np.asarray(image.convert("RGB"), dtype=np.uint8))
        except OSError as err:
            raise VfmError(
                f"a frame is not a readable image ({err})", where=f"{where}: {path}", fix="replace it with an RGB PNG"
            ) from None
        if frames[0].shape != frames[-1].shape:
            raise VfmError(
                f"frames of one clip differ in size ({frames[0].shape[:2]} vs {frames[-1].shape[:2]})",
                where=f"{where}: {path}",
                fix="resize every frame of the clip to one size",
            )
    return np.stack(frames)


def load_generic(directory: str | Path, clip_length: int | None = None) -> list[DrivingSample]:
    """The samples of a generic-format folder (see ``records``), clips as ``uint8 [k, H, W, 3]``.

    Args:
        directory: the folder holding ``samples.jsonl`` and ``frames/``.
        clip_length: when given, every clip must have exactly this many frames.

    Raises:
        VfmError: a missing folder or file, a bad JSON line (with its number), a missing
            field or unknown label, a missing frame, frames of different sizes in a clip, or a
            clip of the wrong length.
    """
    root = Path(directory)
    if not root.is_dir():
        raise VfmError(
            "the driving dataset folder does not exist",
            where=str(root),
            fix="pass the folder holding samples.jsonl and frames/",
        )
    manifest = root / "samples.jsonl"
    if not manifest.is_file():
        raise VfmError(
            "samples.jsonl is missing",
            where=str(manifest),
            fix="write the dataset with vfm.plugins.driving.simulate.write_dataset",
        )
    samples = []
    for number, record in read_jsonl_objects(manifest, fix="make each line one JSON object"):
        where = f"{manifest}:{number}"
        if any(key not in record for key in _FIELDS):
            raise VfmError(
                f"line {number} lacks one of the fields {', '.join(_FIELDS)}",
                where=where,
                fix="give every sample id, scenario, action, cause and commentary",
            )
        if record["action"] not in (*ACTIONS, None) or record["cause"] not in (*CAUSES, None):
            raise VfmError(
                f"unknown action/cause ({record['action']}, {record['cause']})",
                where=where,
                fix=f"use actions from {ACTIONS} and causes from {CAUSES}, or null",
            )
        frames = None
        if record.get("frames") is not None:
            frames = _read_clip(root, record["frames"], where)
            if clip_length is not None and len(frames) != clip_length:
                raise VfmError(
                    f"the clip has {len(frames)} frames, expected {clip_length}",
                    where=where,
                    fix=f"give every sample {clip_length} frames or load with clip_length={len(frames)}",
                )
        speed = record.get("ego_speed")
        frame_speeds = _frame_speeds(record.get("frame_speeds"), frames, where)
        samples.append(
            DrivingSample(
                id=str(record["id"]),
                scenario=str(record["scenario"]),
                frames=frames,
                ego_speed=math.nan if speed is None else float(speed),
                action=record["action"],
                cause=record["cause"],
                commentary=str(record["commentary"]),
                qa=[QAPair(str(pair["question"]), str(pair["answer"])) for pair in record.get("qa") or []],
                facts=dict(record.get("facts") or {}),
                seed=record.get("seed"),
                step=int(record.get("step") or 0),
                frame_speeds=frame_speeds,
                set_speed=_setting(record, "set_speed", "m/s", where),
                set_time_gap=_setting(record, "set_time_gap", "s", where),
            )
        )
    return samples


def _setting(record: dict, name: str, unit: str, where: str) -> float:
    """A record's optional driver setting (``set_speed``, ``set_time_gap``) as a float, NaN when
    absent or null."""
    value = record.get(name)
    if value is None:
        return math.nan
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise VfmError(
            f"{name} is {value!r}, not a non-negative number",
            where=where,
            fix=f"give {name} in {unit} (or null when the car does not report it)",
        )
    return float(value)


def _frame_speeds(value, frames: np.ndarray | None, where: str) -> list[float] | None:
    """A record's optional ``frame_speeds`` (m/s per frame, null where unknown) as floats (NaN
    for null), checked against the clip's length."""
    if value is None:
        return None
    fix = "give frame_speeds as one number (m/s) or null per frame, or leave it out"
    if not isinstance(value, list) or any(
        v is not None and (isinstance(v, bool) or not isinstance(v, int | float)) for v in value
    ):
        raise VfmError("frame_speeds is not a list of numbers", where=where, fix=fix)
    if frames is None or len(value) != len(frames):
        raise VfmError(
            f"frame_speeds has {len(value)} entries for {0 if frames is None else len(frames)} frames",
            where=where,
            fix=fix,
        )
    speeds = [math.nan if v is None else float(v) for v in value]
    if any(v < 0 or math.isinf(v) for v in speeds):
        raise VfmError("frame_speeds holds a negative or infinite speed", where=where, fix=fix)
    return speeds


BDDX_ANSWERS = 15
"""Annotated segments per BDD-X row at most."""

_LANE_MOVE = r"\b(?:merg|chang|switch|mov|pull|veer|shift|drift)\w*\b[^.]*\b(?:lane to (?:its|the) |to the )?"

BDDX_ACTION_RULES: tuple[tuple[str, str], ...] = (
    (_LANE_MOVE + r"left\b", "change_lane_left"),
    (_LANE_MOVE + r"right\b", "change_lane_right"),
    (r"\byield|\bgives? way|\bwait(?:s|ing)? for\b|\blets? \w+ (?:pass|go)", "yield"),
    (
        r"\bstop|\bstopped\b|\bstationary\b|\bnot moving\b|\bparked\b|\bcomes? to a (?:halt|stop)|\bstand(?:s|ing)? still|"
        r"\bstays? (?:in (?:one )?place|put)|\bremains? (?:still|in place|at rest)",
        "stop",
    ),
    (r"\bslow(?:s|ing|ed)?\b|\bbrak|\bdecelerat|\breduc\w* (?:its )?speed", "slow_down"),
    (
        r"\baccelerat|\bspeeds? up|\bspeeding up|\bpicks? up speed|\bgains? speed|\bstarts? (?:to )?mov|\bbegins? to mov",
        "accelerate",
    ),
    (
        r"\bsteady|\bconstant|\bmaintain|\bsame speed|\bcruis|\bdriv\w* (?:forward|down|along|straight)|"
        r"\bmov\w* (?:forward|along|down)|\btravel|\bcontinu|\bheads? (?:down|forward)|\bproceed",
        "keep_speed",
    ),
)
"""BDD-X action text -> action (first match wins); turns and reversing get None."""

BDDX_CAUSE_RULES: tuple[tuple[str, str], ...] = (
    (
        r"\bcut(?:s|ting)? (?:in|off)|\bpull\w* (?:in|out) in front|\bentering (?:the car's|its|our) lane|"
        r"(?:car|vehicle|truck|bus)\w* (?:is )?(?:merg\w*|chang\w* lanes?|moving) into (?:its|the car's|our) lane",
        "cut_in",
    ),
    (r"\bmerging (?:car|vehicle|traffic|truck)|(?:car|vehicle|traffic) (?:is )?merging|\bon-?ramp", "merging_vehicle"),
    (
        r"\bcross(?:ing|es)?\b|\bpedestrian|\bcross traffic|\bright of way|\boncoming traffic|\bother cars? (?:to )?pass",
        "crossing_traffic",
    ),
    (r"\blane (?:ends|is ending)|\bend of (?:the|its) lane|\blane closes|\bconstruction", "end_of_lane"),
    (r"\b(?:pass|overtake|get around|go around|get past)\b", "free_lane_to_overtake"),
    (r"\blane is (?:blocked|occupied)|\bblocked\b", "lane_blocked"),
    (
        r"\btoo close|\b(?:car|vehicle|traffic|truck|bus)\w* (?:in front|ahead)[^.]*\b(?:stop|stopped|stopping|brak)|"
        r"\bstopped (?:car|traffic|vehicle)|\btraffic (?:is )?(?:stopped|backed up)",
        "close_lead_vehicle",
    ),
    (
        r"\bslow(?:er)? (?:moving )?(?:car|traffic|vehicle|truck)|\b(?:car|vehicle|traffic|truck)\w* (?:in front|ahead)"
        r"[^.]*\bslow|\btraffic (?:is )?(?:slow|heavy)|\bslowing traffic",
        "slower_lead_vehicle",
    ),
    (r"\bspeed limit|\breached (?:the|its|a) (?:desired |normal )?speed|\bcruising speed", "target_speed_reached"),
    (
        r"\b(?:road|lane|traffic|way|path) (?:is |ahead is )?(?:clear|open|free|empty)|\bno (?:cars|traffic|vehicles)|"
        r"\btraffic (?:is )?(?:flowing|moving) (?:freely|smoothly)|\bclear road|"
        r"\bno obstructions|\bnothing (?:in front|ahead)|\btraffic (?:is )?(?:light|moving|begins moving)",
        "free_road",
    ),
)
"""BDD-X justification text -> cause (first match wins); traffic lights, turns, signs get None."""

_CONNECTOR_START = re.compile(r"^(?:because|as|since|due to|so|to|for|in order to|while)\b", re.IGNORECASE)


def _first_rule(text: str, rules: tuple[tuple[str, str], ...]) -> str | None:
    for pattern, name in rules:
        if re.search(pattern, text, re.IGNORECASE):
            return name
    return None


def _clean(text: str) -> str:
    return " ".join(text.split()).strip().rstrip(".").strip()


def bddx_commentary(action_text: str, justification: str) -> str:
    """``"<action> because <justification>."``, whitespace and final stops normalised; a
    justification that already starts with a connector (``because``, ``as``, ``to``, ...)
    keeps it; an empty one leaves the action alone."""
    action, why = _clean(action_text), _clean(justification)
    if not why:
        return action + "."
    why = why[0].lower() + why[1:]
    return f"{action} {why}." if _CONNECTOR_START.match(why) else f"{action} because {why}."


def _video_key(url: str) -> str:
    return Path(url.strip()).stem


def load_bddx(csv_path: str | Path, split_file: str | Path | None = None) -> list[DrivingSample]:
    """One text-only sample per annotated BDD-X segment (``frames=None``, ``ego_speed=nan``).

    Args:
        csv_path: ``BDD-X-Annotations_v1.csv`` (the wide format described in the module docstring).
        split_file: optional BDD-X split list (lines ``<n>_<video key>``): keep only those videos.

    Returns:
        Samples ``bddx-<video key>-<i>`` with ``action``/``cause`` from :data:`BDDX_ACTION_RULES` /
        :data:`BDDX_CAUSE_RULES` (``None`` where no rule applies), the normalised commentary,
        two QA pairs (what, why) and facts ``video``, ``start_s``, ``end_s``, ``action_text``,
        ``justification``.

    Raises:
        VfmError: a missing file or a CSV without the ``Input.Video`` column.
    """
    path = Path(csv_path)
    if not path.is_file():
        raise VfmError(
            "the BDD-X annotation file does not exist", where=str(path), fix="pass the path of BDD-X-Annotations_v1.csv"
        )
    keep = None
    if split_file is not None:
        split = Path(split_file)
        if not split.is_file():
            raise VfmError(
                "the BDD-X split file does not exist",
                where=str(split),
                fix="pass train.txt, val.txt or test.txt from BDD-X, or no split",
            )
        keep = {
            line.strip().split("_", 1)[-1] for line in split.read_text(encoding="utf-8").splitlines() if line.strip()
        }
    samples = []
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        if "Input.Video" not in (reader.fieldnames or []):
            raise VfmError(
                "the CSV has no Input.Video column: not the BDD-X wide format",
                where=str(path),
                fix="pass BDD-X-Annotations_v1.csv (Input.Video, Answer.1start, Answer.1end, ...)",
            )
        for row in reader:
            url = (row.get("Input.Video") or "").strip()
            if not url or (keep is not None and _video_key(url) not in keep):
                continue
            for i in range(1, BDDX_ANSWERS + 1):
                action_text = _clean(row.get(f"Answer.{i}action") or "")
                if not action_text:
                    continue
                justification = _clean(row.get(f"Answer.{i}justification") or "")
                samples.append(
                    DrivingSample(
                        id=f"bddx-{_video_key(url)}-{i}",
                        scenario="bddx",
                        frames=None,
                        ego_speed=math.nan,
                        action=_first_rule(action_text, BDDX_ACTION_RULES),
                        cause=_first_rule(justification, BDDX_CAUSE_RULES),
                        commentary=bddx_commentary(action_text, justification),
                        qa=[
                            QAPair("What is the car doing?", action_text + "."),
                            QAPair("Why is the car doing this?", (justification + ".") if justification else ""),
                        ],
                        facts={
                            "video": url,
                            "start_s": _number(row.get(f"Answer.{i}start")),
                            "end_s": _number(row.get(f"Answer.{i}end")),
                            "action_text": action_text,
                            "justification": justification,
                        },
                        seed=None,
                        step=i,
                    )
                )
    return samples


def _number(text: str | None) -> float | None:
    try:
        return float(text) if text not in (None, "") else None
    except ValueError:
        return None


def driving_text_corpus(
    samples: Iterable[DrivingSample] = (), bddx_csv: str | Path | None = None, bddx_split_file: str | Path | None = None
) -> list[Document]:
    """Driving sentences for domain text adaptation (``vfm.pretrain.text_adaptation``).

    One ``Document`` per episode of ``samples`` (its commentaries and QA answers, source
    ``driving-sim``; episodes are ``scenario-s<seed>``) and, with ``bddx_csv``, one per BDD-X
    video (its commentaries, source ``bddx``). ``record_ids`` are the sample ids, so an
    evaluation split can be excluded with ``build_corpus(..., exclude_ids=...)``.
    """
    groups: dict[tuple[str, str], list[DrivingSample]] = {}
    for sample in samples:
        groups.setdefault(("driving-sim", f"{sample.scenario}-s{sample.seed}"), []).append(sample)
    if bddx_csv is not None:
        for sample in load_bddx(bddx_csv, bddx_split_file):
            groups.setdefault(("bddx", _video_key(sample.facts["video"])), []).append(sample)
    documents = []
    for (source, key), members in groups.items():
        sentences = []
        for sample in members:
            sentences.append(sample.commentary)
            if source == "driving-sim":
                sentences.extend(pair.answer for pair in sample.qa)
        documents.append(
            Document(
                id=f"{source}:{key}",
                text="\n".join(sentences),
                source=source,
                record_ids=tuple(sample.id for sample in members),
            )
        )
    return documents
