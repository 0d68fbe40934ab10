"""The zooscope command line: help that explains itself, validation, the per-model table, explaining a sample,
listing the valid sample ids and ranking a model's partners without labels."""

from __future__ import annotations

import copy
import json
import subprocess
import sys

import numpy as np
import polars as pl
import pytest

from tests.conftest import REPO, write_study
from zooscope.cli import main
from zooscope.data.datasets import SPLITS


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
    from zooscope.cli import build_parser

    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert set(sub.choices) == {"validate", "table", "diff", "explain", "samples", "partners"}
    for command in ([], *([c] for c in sub.choices)):
        with pytest.raises(SystemExit):
            build_parser().parse_args([*command, "--help"])
        out = capsys.readouterr().out
        assert "%%" not in out and "%(" not in out, command
        if command == ["explain"]:
            assert "(default:\n" in out and "reports/explain/<model>-<sample_id>.html; '' for none)" in out
    assert "zooscope samples" in build_parser().epilog


# --------------------------------------------------------------------------- explain and samples


@pytest.fixture
def explained(tmp_path, tiny_study_dict, digits):
    """The tiny study with what `zooscope explain` reads for cnn_a: its embedding (the digits' pixels), the predict
    stage's probabilities and tables (cnn_a predicts every third eval sample as the next class, confidently) and
    metrics: (explain's options, samples' options, split -> the ids cnn_a predicts wrongly)."""
    params = write_study(tmp_path / "params.yaml", tiny_study_dict)
    emb, preds, metrics = tmp_path / "embeddings" / "cnn_a", tmp_path / "predictions" / "cnn_a", tmp_path / "metrics"
    for folder in (emb, preds, metrics):
        folder.mkdir(parents=True)
    pixels = digits.images.reshape(len(digits.images), -1).astype(np.float32)
    wrong = {}
    for split in SPLITS:
        pos = digits.split(split)
        np.save(emb / f"{split}.npy", pixels[pos])
        if split == "train":
            continue
        labels = digits.labels[pos]
        pred = np.where(np.arange(len(pos)) % 3 == 0, (labels + 1) % 10, labels)
        probs = np.full((len(pos), 10), 0.1 / 9, np.float32)
        probs[np.arange(len(pos)), pred] = 0.9
        np.save(preds / f"{split}_probs.npy", probs)
        pl.DataFrame({"sample_id": digits.sample_ids[pos], "label": labels, "pred": pred,
                      "correct": pred == labels}).write_parquet(preds / f"{split}.parquet")
        wrong[split] = digits.sample_ids[pos][pred != labels]
    (metrics / "cnn_a.json").write_text('{"temperature": 1.0}')
    options = ["--params", str(params), "--predictions", str(preds.parent)]
    return [*options, "--embeddings", str(emb.parent), "--metrics-dir", str(metrics)], options, wrong


def test_explain_prints_and_writes_the_sample_its_prediction_and_neighbours(explained, digits, tmp_path, capsys):
    options = explained[0]
    eval_pos = digits.split("eval")
    sid, label = int(digits.sample_ids[eval_pos[0]]), int(digits.labels[eval_pos[0]])  # row 0: predicted wrongly
    out = tmp_path / "page.html"
    assert main(["explain", "cnn_a", str(sid), "-k", "4", *options, "--out", str(out)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == f"sample {sid} (eval split, label {label} {digits.classes[label]})"
    assert lines[1].startswith(f"cnn_a predicts {(label + 1) % 10} with confidence 0.900 (wrong; the label {label} "
                               "has probability 0.011); from ")
    # the neighbours, by cosine similarity of the pixels computed here
    x = digits.images.reshape(len(digits.images), -1).astype(np.float64)
    train = digits.split("train")
    unit = x / np.linalg.norm(x, axis=1, keepdims=True)
    sims = unit[train] @ unit[eval_pos[0]]
    nearest = np.argsort(-sims, kind="stable")[:4]
    rows = [line.split() for line in lines[4:8]]
    assert [int(r[1]) for r in rows] == digits.sample_ids[train[nearest]].tolist()
    np.testing.assert_allclose([float(r[-1]) for r in rows], sims[nearest], atol=1e-4)
    assert lines[-1] == f"written: {out}"
    page = out.read_text()
    assert f"Sample {sid}" in page and f"{(label + 1) % 10} (wrong)" in page
    assert all(f'alt="sample {i}: ' in page for i in digits.sample_ids[train[nearest]])


def test_explain_writes_its_page_under_reports_by_default(explained, digits, tmp_path, monkeypatch, capsys):
    options = explained[0]
    sid = int(digits.sample_ids[digits.split("train")[0]])  # a training sample: the head's logits are missing here
    monkeypatch.chdir(tmp_path)
    assert main(["explain", "cnn_a", str(sid), *options]) == 0
    out = capsys.readouterr().out
    assert "(train split" in out and "cnn_a predicts nothing for the train split" in out
    assert out.rstrip().endswith(f"written: reports/explain/cnn_a-{sid}.html")
    assert (tmp_path / "reports" / "explain" / f"cnn_a-{sid}.html").exists()
    assert main(["explain", "cnn_a", str(sid), *options, "--out", ""]) == 0
    assert "written" not in capsys.readouterr().out


def test_explain_names_an_unknown_sample_and_the_valid_ids(explained, capsys):
    options = explained[0]
    assert main(["explain", "cnn_a", "60000", *options]) == 2
    err = capsys.readouterr().err
    assert err == ("zooscope: error: no sample with id 60000 in digits; valid ids: train: 988 ids within 0..1795; "
                   "calibration: 270 ids within 5..1790; eval: 539 ids within 2..1796 (zooscope samples lists them)\n")
    assert main(["explain", "nosuch", "0", *options]) == 2
    assert "no model 'nosuch'" in capsys.readouterr().err


def test_samples_lists_each_split_and_filters(explained, digits, capsys):
    _, options, wrong = explained
    assert main(["samples", *options, "-n", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("digits: 1,797 ids: 0..1796. The study's splits")
    for line, split in zip(lines[1:], SPLITS):
        ids = np.sort(digits.sample_ids[digits.split(split)])
        assert line.split() == [split, f"{len(ids):,}", "ids", "within", f"{ids[0]}..{ids[-1]};", "e.g.",
                                *(f"{i}," for i in ids[:2]), str(ids[2])]
    assert main(["samples", *options, "--wrong", "cnn_a", "--class", "3", "-n", "1000"]) == 0
    out = capsys.readouterr().out
    assert "only the samples that cnn_a gets wrong and of class 3:" in out
    for split in ("calibration", "eval"):
        line = next(line for line in out.splitlines() if line.split()[0] == split)
        threes = [i for i in wrong[split] if digits.labels[i] == 3]  # ids are positions in digits
        assert line.endswith("e.g. " + ", ".join(map(str, threes)))
    assert "train        no predictions" in out
    assert main(["samples", *options, "--split", "eval", "--class", "nosuch"]) == 2
    assert "--class 'nosuch': no such class; classes (index name): 0 0, 1 1" in capsys.readouterr().err


# --------------------------------------------------------------------------- partners


@pytest.fixture
def partner_files(tmp_path, tiny_study_dict):
    """The tiny study's ids with a pair table and study results as the ensemble stage writes them (made up numbers):
    mlp's held-out predictions rank randfeat, cnn_b, cnn_a; the measured gains put cnn_b first."""
    from zooscope.ensemble.partners import FEATURES

    params = write_study(tmp_path / "params.yaml", tiny_study_dict)
    pairs = pl.DataFrame({
        "model_a": ["cnn_a", "cnn_a", "cnn_a", "cnn_b", "cnn_b", "mlp"],
        "model_b": ["cnn_b", "mlp", "randfeat", "mlp", "randfeat", "randfeat"],
        "category": ["reinit", "architecture", "framework", "architecture", "framework", "framework"],
        "gain": [0.001, 0.004, -0.02, 0.012, -0.03, -0.01],
        "predicted_gain_a": [0.0, 0.003, -0.01, 0.005, -0.02, 0.009],
        "predicted_gain_b": [0.001, 0.002, -0.01, 0.004, -0.02, 0.0],
    } | {f: [0.1, 0.2, 0.3, 0.4, 0.5, None] for f in FEATURES})
    pairs.write_parquet(tmp_path / "pairs.parquet")
    models = {m: {"spearman": 0.5, "hit": True, "chance": 1.0, "best_rank": 1, "best": ["x"], "predicted_order": []}
              for m in tiny_study_dict["models"]}
    models["mlp"] = {"spearman": -0.5, "hit": True, "chance": 1.0, "best_rank": 2, "best": ["cnn_b"],
                     "predicted_order": ["randfeat", "cnn_b", "cnn_a"]}
    study = {"partners": {"top_k": 3, "models": models, "summary": {"models": 4, "spearman_mean": 0.25, "spearman_models": 4,
                                                                    "hit_rate": 1.0, "chance": 1.0}}}
    (tmp_path / "study.json").write_text(json.dumps(study))
    return ["--params", str(params), "--pairs", str(tmp_path / "pairs.parquet"), "--study-metrics",
            str(tmp_path / "study.json")]


def test_partners_ranks_by_the_held_out_prediction_and_says_how_it_did(partner_files, capsys):
    assert main(["partners", "mlp", *partner_files]) == 0
    out = capsys.readouterr().out
    ranked = [line.split()[:5] for line in out.splitlines() if line.strip()[:1].isdigit()]
    # mlp is model_b of its pairs with cnn_a and cnn_b (their predicted_gain_b) and model_a of its pair with randfeat
    assert ranked == [["1", "randfeat", "framework", "+0.90", "-1.00"], ["2", "cnn_b", "architecture", "+0.40", "+1.20"],
                      ["3", "cnn_a", "architecture", "+0.20", "+0.40"]]
    assert out.splitlines()[-1] == (
        "On this zoo: Spearman -0.50 between this ranking and the measured gains; the best measured partner (cnn_b) is "
        "ranked 2, in the top 3 (chance 100%). Every model left out in turn: mean Spearman +0.25 over 4 models, best "
        "partner in the top 3 for 100% of 4 (chance 100%).")
    assert "     -" in out  # the missing features of mlp + randfeat


def test_partners_names_an_unknown_model_and_missing_artifacts(partner_files, tmp_path, capsys):
    assert main(["partners", "nosuch", *partner_files]) == 2
    assert capsys.readouterr().err.startswith("zooscope: error: no model 'nosuch' in ")
    (tmp_path / "pairs.parquet").unlink()
    assert main(["partners", "mlp", *partner_files]) == 2
    err = capsys.readouterr().err
    assert "pairs.parquet: not found; run the ensemble stage (dvc repro ensemble) first" in err and len(err.splitlines()) == 1


def test_partners_of_a_compressed_model_point_to_the_compression_section(partner_files, tmp_path, tiny_study_dict, capsys):
    study = copy.deepcopy(tiny_study_dict)
    study["models"]["cnn_a_int8"] = {"source": "recipe:quantize", "tags": study["models"]["cnn_a"]["tags"],
                                     "train": {"parent": copy.deepcopy(study["models"]["cnn_a"])}}
    write_study(tmp_path / "params.yaml", study)
    assert main(["partners", "cnn_a_int8", *partner_files]) == 2
    err = capsys.readouterr().err
    assert "cnn_a_int8 is a compressed model (recipe:quantize)" in err and "compression section" in err
    assert len(err.splitlines()) == 1
