"""Every broken study file of the catalogue gets one line naming the key and what is allowed, from `zooscope validate`
and from the first stage `dvc repro` runs (``inputs``), never a traceback; nothing is written. A study whose dataset
cannot give the splits it asks for is refused by validate and by the first stage that reads the dataset."""

from __future__ import annotations

import pytest

from stages import fetch, inputs
from tests.robustness.cases import CLASS_COUNT, DATASET, PARAMS
from zooscope.cli import main as zooscope


def one_line(capsys) -> str:
    """The one line a refused input prints on stderr (and no traceback anywhere)."""
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert "Traceback" not in captured.out + captured.err
    assert len(lines) == 1, captured.err
    return lines[0]


@pytest.mark.parametrize("case", PARAMS + DATASET + CLASS_COUNT, ids=lambda c: c.name)
def test_validate_names_what_is_wrong(tmp_path, capsys, case):
    case.write(tmp_path / "params.yaml")
    assert zooscope(["validate", "--params", str(tmp_path / "params.yaml")]) == 2
    line = one_line(capsys)
    assert line.startswith("zooscope: error: ") and case.expected in line, line


@pytest.mark.parametrize("case", PARAMS, ids=lambda c: c.name)
def test_the_first_stage_refuses_it_and_writes_nothing(tmp_path, capsys, case):
    case.write(tmp_path / "params.yaml")
    assert inputs.main(["--params", str(tmp_path / "params.yaml"), "--out", str(tmp_path / "inputs"),
                        "--settings", str(tmp_path / "settings.json")]) == 2
    assert case.expected in one_line(capsys)
    assert not (tmp_path / "inputs").exists() and not (tmp_path / "settings.json").exists()


@pytest.mark.parametrize("case", DATASET, ids=lambda c: c.name)
def test_the_first_stage_that_reads_the_dataset_refuses_it(tmp_path, capsys, case):
    case.write(tmp_path / "params.yaml")
    models = tmp_path / "models"
    assert fetch.main(["--params", str(tmp_path / "params.yaml"), "--model", "cnn_a", "--models", str(models)]) == 2
    assert case.expected in one_line(capsys)
    assert not models.exists()
