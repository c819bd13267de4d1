"""Gold-program checking: the report, the benchmark script that runs it, and the real FinQA files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vfm.plugins.finance.data.check_gold import check_gold_programs

from .conftest import DATA_DIR, needs_data

GOOD = {
    "id": "good",
    "pre_text": [],
    "post_text": [],
    "table": [["", "2019"], ["sales", "5"]],
    "qa": {"question": "q", "program": "table_sum(sales, none)", "exe_ans": 5.0, "gold_inds": {}},
}
WRONG = dict(GOOD, id="wrong", qa=dict(GOOD["qa"], exe_ans=6.0))
BROKEN = dict(GOOD, id="broken", qa=dict(GOOD["qa"], program="divide(5, 0)"))


@pytest.fixture
def finqa_file(tmp_path: Path) -> Path:
    path = tmp_path / "gold.json"
    path.write_text(json.dumps([GOOD, WRONG, BROKEN]), encoding="utf-8")
    return path


def test_report_counts_and_explains_mismatches(finqa_file):
    report = check_gold_programs(finqa_file)
    assert (report.records, report.checked, report.matched) == (3, 3, 1)
    wrong, broken = report.mismatches
    assert (wrong.id, wrong.got, wrong.gold, wrong.reason) == ("wrong", 5.0, 6.0, "gives 5.0, gold is 6.0")
    assert broken.got is None and "does not execute: division by zero" in broken.reason
    assert report.summary().endswith("1/3 gold programs give the gold answer (3 records, 0 without a program)")


SCRIPT = Path(__file__).parents[3] / "benchmarks" / "finance_check_gold.py"


def _check(*files: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(SCRIPT), *map(str, files)], capture_output=True, text=True, timeout=60)


def test_the_script_exits_1_on_a_mismatch_and_names_each(finqa_file, tmp_path):
    result = _check(finqa_file)
    assert result.returncode == 1
    assert "wrong: table_sum(sales, none) — gives 5.0" in result.stdout and "broken:" in result.stdout
    good = tmp_path / "good.json"
    good.write_text(json.dumps([GOOD]), encoding="utf-8")
    result = _check(good)
    assert result.returncode == 0 and "1/1 gold programs" in result.stdout
    result = _check(tmp_path / "missing.json")
    assert result.returncode == 1 and result.stderr.startswith("error: file not found")


@needs_data("finqa/dev_sample200.original.json", "finqa/train_sample100.original.json")
@pytest.mark.parametrize("name", ["finqa/dev_sample200.original.json", "finqa/train_sample100.original.json"])
def test_every_real_finqa_gold_program_gives_its_answer(name):
    report = check_gold_programs(DATA_DIR / name)
    assert report.checked == report.records and report.mismatches == []


@needs_data("tatqa/tatqa_dataset_dev.json", "convfinqa/convfinqa_dev.pot_format.json")
@pytest.mark.parametrize("name", ["tatqa/tatqa_dataset_dev.json", "convfinqa/convfinqa_dev.pot_format.json"])
def test_derived_programs_give_the_real_answers(name):
    report = check_gold_programs(DATA_DIR / name)
    assert report.checked > 0 and report.mismatches == []
