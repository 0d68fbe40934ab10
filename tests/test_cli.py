"""The zooscope command line: help that explains itself, validation and the per-model table."""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import REPO, write_study
from zooscope.cli import main


def test_help_explains_the_commands_and_sources():
    out = subprocess.run([sys.executable, "-m", "zooscope.cli", "--help"], capture_output=True, text=True, cwd=REPO)
    assert out.returncode == 0
    for word in ("validate", "table", "dvc repro", "recipe:<name>", "timm:<arch.tag>", "file:<path>"):
        assert word in out.stdout


def test_validate_reports_categories(tmp_path, tiny_study_dict, capsys):
    path = write_study(tmp_path / "params.yaml", tiny_study_dict)
    assert main(["validate", "--params", str(path)]) == 0
    out = capsys.readouterr().out
    assert "4 models" in out and "architecture 1" in out and "framework 1" in out and "reinit 1" in out
    # the tiny zoo's mlp and randfeat train with the base's seed: validate says so, naming the pairs
    assert "zoo design: 5 warning(s)" in out
    assert "shared-seed: 1 of 2 architecture pairs share training seed 0 (cnn_a+mlp)" in out


def test_validate_says_when_the_zoo_design_is_sound(tmp_path, tiny_study_dict, capsys):
    for seed, mid in enumerate(tiny_study_dict["models"]):
        tiny_study_dict["models"][mid]["tags"]["seed"] = seed
    path = write_study(tmp_path / "params.yaml", tiny_study_dict)
    assert main(["validate", "--params", str(path)]) == 0
    assert "shared-seed" not in capsys.readouterr().out


def test_validate_names_the_bad_key(tmp_path, tiny_study_dict, capsys):
    tiny_study_dict["models"]["cnn_a"]["train"]["epochs"] = "five"
    path = write_study(tmp_path / "params.yaml", tiny_study_dict)
    assert main(["validate", "--params", str(path)]) == 2
    assert "models.cnn_a" in capsys.readouterr().err


def test_table_shows_metrics_and_categories_relative_to_the_base(tmp_path, tiny_study_dict, capsys):
    path = write_study(tmp_path / "params.yaml", tiny_study_dict)
    mdir = tmp_path / "metrics"
    mdir.mkdir()
    for mid, top1 in (("cnn_a", 0.9), ("mlp", 0.85)):
        (mdir / f"{mid}.json").write_text(json.dumps({"top1": top1, "top5": 1.0, "nll": 0.3, "ece": 0.01,
                                                      "temperature": 1.0, "probe_acc": 0.8, "knn_acc": 0.7}))
    (tmp_path / "study.json").write_text(json.dumps({"headline": ["Sentence one.", "Sentence two."]}))
    assert main(["table", "--params", str(path), "--metrics-dir", str(mdir), "--study-metrics",
                 str(tmp_path / "study.json")]) == 0
    out = capsys.readouterr().out
    assert "\nSentence one.\n\nSentence two.\n" in out  # the finding in sentences, after the table
    rows = {line.split()[0]: line for line in out.splitlines() if line and line.split()[0] in tiny_study_dict["models"]}
    assert "base" in rows["cnn_a"] and "90.00" in rows["cnn_a"]
    assert "architecture" in rows["mlp"] and "-5.00" in rows["mlp"]
    assert "reinit" in rows["cnn_b"]
    assert "no metrics yet for: cnn_b, randfeat" in out


def test_every_help_text_renders(capsys):
    """argparse %-formats help strings but prints descriptions as written: neither may show a doubled '%%'."""
    import pytest

    from zooscope.cli import build_parser

    for command in ("validate", "table", "diff", "explain"):
        with pytest.raises(SystemExit):
            build_parser().parse_args([command, "--help"])
        out = capsys.readouterr().out
        assert "%%" not in out and "%(" not in out, command
