"""zooscope.config: study files written as YAML text, each error checked for the key it names and what it allows."""

import copy
import hashlib
import json
import re
from collections import Counter
from pathlib import Path

import pytest
import yaml

from zooscope.config import SOURCE_KINDS, StudyError, dump_study, load_study, parse_study, write_study
from zooscope.vocab import CATEGORIES, METHODOLOGY_TAGS, pair_category

REPO = Path(__file__).resolve().parents[2]

VALID = """\
dataset:
  source: digits
  seed: 0
  calibration_size: 0.15
  eval_size: 0.3
base: cnn_a
threads: 1
embed: {batch_size: 64}
probe: {l2_grid: [0.01, 0.001], max_iter: 20, knn_k: 3}
predict: {ece_bins: 10}
similarity: {knn_k: 5, n_perm: 20, seed: 0, concat_all_up_to: 8, mix_fractions: [0, 0.5, 1], mix_dim: null}
ensemble: {n_boot: 1000, seed: 0, matched_band: 0.02, greedy_max_size: 2, strongest: 1}
report: {thumbnails: 8, compare_to: HEAD}
mistakes: {consensus_share: 0.75, attack_subset: 20, eps: [0.03, 0.1], transfer_eps: 0.03}
models:
  cnn_a:
    source: recipe:supervised
    tags: {seed: 0, hyperparameters: adamw, architecture: cnn-w4, framework: supervised, data: digits-train}
    arch: {kind: cnn, widths: [4, 8], hidden: 16}
    train: {epochs: 1}
  cnn_b:
    source: recipe:supervised
    tags: {seed: 1, hyperparameters: adamw, architecture: cnn-w4, framework: supervised, data: digits-train}
    arch: {kind: cnn, widths: [4, 8], hidden: 16}
    train: {epochs: 1}
"""


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def _error(tmp_path: Path, text: str) -> str:
    path = _write(tmp_path, text)
    with pytest.raises(StudyError) as err:
        load_study(path)
    message = str(err.value)
    assert message.startswith(str(path)), message  # every error names the file
    return message


def test_valid_study_loads(tmp_path):
    study = load_study(_write(tmp_path, VALID))
    assert list(study.models) == ["cnn_a", "cnn_b"]
    assert study.base == "cnn_a"
    assert study.dataset.source == "digits"
    assert study.dataset.calibration_size == 0.15
    a = study.models["cnn_a"]
    assert a.kind == "recipe" and a.target == "supervised"
    assert a.arch.kind == "cnn" and a.arch.widths == (4, 8) and a.arch.hidden == 16
    assert study.models["cnn_b"].tags.seed == 1
    assert study.threads == 1 and study.embed.batch_size == 64 and study.predict.ece_bins == 10
    assert study.probe.l2_grid == (0.01, 0.001) and study.probe.knn_k == 3
    # the same mapping through parse_study gives the same object
    assert parse_study(yaml.safe_load(VALID)) == study


def test_missing_file_is_a_study_error(tmp_path):
    with pytest.raises(StudyError, match="not found"):
        load_study(tmp_path / "nope.yaml")


def test_unknown_top_level_key(tmp_path):
    msg = _error(tmp_path, VALID + "trainn: {epochs: 3}\n")
    assert "trainn" in msg and "unknown key" in msg
    for allowed in ("dataset", "base", "models", "embed", "probe", "predict", "ensemble", "similarity", "threads"):
        assert allowed in msg


def test_every_top_level_section_is_validated(tmp_path):
    msg = _error(tmp_path, VALID + "flow: {anything: [1, 2]}\n")
    assert "flow: unknown key" in msg and "mistakes" in msg


def test_report_settings_are_checked(tmp_path):
    study = load_study(_write(tmp_path, VALID))
    assert study.report.thumbnails == 8 and study.report.compare_to == "HEAD"
    msg = _error(tmp_path, VALID.replace("report: {thumbnails: 8,", "report: {thumbnails: 8, theme: dark,"))
    assert "report.theme" in msg and "unknown key" in msg and "compare_to" in msg


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("n_boot: 1000", "n_boot: 200", ["ensemble.n_boot", "greater than or equal to 1000"]),
    ("matched_band: 0.02", "matched_band: 0", ["ensemble.matched_band", "greater than 0"]),
    ("strongest: 1}", "strongest: 1, bagging: 3}", ["ensemble.bagging", "unknown key", "n_boot", "matched_band"]),
    ("n_perm: 20", "n_perm: 5", ["similarity.n_perm", "greater than or equal to 20"]),
    ("eps: [0.03, 0.1]", "eps: [0.1, 0.03]", ["mistakes.eps", "increasing budgets"]),
    ("consensus_share: 0.75", "consensus_share: 0", ["mistakes.consensus_share", "greater than 0"]),
    ("consensus_share: 0.75", "consensus_share: 0.75, near_miss_k: 0", ["mistakes.near_miss_k",
                                                                       "greater than or equal to 1"]),
    ("transfer_eps: 0.03}", "transfer_eps: 0.03, attack: cw}", ["mistakes.attack", "unknown key", "transfer_attack"]),
    ("mix_fractions: [0, 0.5, 1]", "mix_fractions: [0.5, 0, 1]", ["similarity.mix_fractions", "increasing"]),
    ("mix_dim: null", "mix_dim: 1", ["similarity.mix_dim", "greater than or equal to 2"]),
])
def test_pairwise_settings_name_the_bad_key(tmp_path, old, new, expected):
    assert old in VALID
    msg = _error(tmp_path, VALID.replace(old, new))
    for part in expected:
        assert part in msg


def test_pairwise_settings_are_typed_and_default_when_left_out(tmp_path):
    study = load_study(_write(tmp_path, VALID))
    assert study.ensemble.n_boot == 1000 and study.ensemble.matched_band == 0.02 and study.ensemble.strongest == 1
    assert study.similarity.mix_fractions == (0, 0.5, 1) and study.similarity.mix_dim is None
    assert study.mistakes.near_miss_k is None  # automatic: 2 for digits' 10 classes (zooscope.mistakes.near_miss_k)
    without = "\n".join(line for line in VALID.splitlines() if not line.startswith("ensemble:"))
    study = load_study(_write(tmp_path, without))
    assert study.ensemble.model_dump() == {"n_boot": 1000, "seed": 0, "matched_band": 0.02, "greedy_max_size": 10,
                                           "strongest": 3, "class_groups": {}}


#: VALID without any stage section or threads: the dataset, the base and the zoo are all a study must say.
MINIMAL = "\n".join(line for line in VALID.splitlines() if line.split(":")[0] in ("dataset", "base", "models")
                    or line.startswith(" ")) + "\n"


def test_a_study_of_dataset_base_and_models_takes_every_default(tmp_path):
    assert "threads" not in MINIMAL and "probe" not in MINIMAL and "cnn_b" in MINIMAL
    study = load_study(_write(tmp_path, MINIMAL))
    assert study.threads == 1
    assert study.probe.l2_grid == (1e-4, 1e-3, 1e-2, 1e-1) and study.probe.knn_k == 20 and study.probe.tol == 1e-5
    assert study.embed.batch_size == 256 and study.predict.ece_bins == 15 and study.report.thumbnails == 24
    assert study.similarity.knn_k == 10 and study.mistakes.attack_subset == 200
    assert study.mistakes.eps == (0.01, 0.03, 0.1)


def test_the_resolved_study_holds_every_section_in_schema_order_and_loads_back_the_same(tmp_path):
    study = load_study(_write(tmp_path, MINIMAL))
    text, models = dump_study(study, folder="settings")
    resolved = json.loads(text)
    assert list(resolved) == ["dataset", "base", "models", "embed", "probe", "predict", "ensemble", "similarity",
                              "report", "mistakes", "shift", "threads", "models_digest"]
    assert resolved["probe"] == {"l2_grid": [0.0001, 0.001, 0.01, 0.1], "max_iter": 100, "tol": 1e-05, "knn_k": 20}
    assert resolved["dataset"] == {"source": "digits", "root": None, "seed": 0, "train_size": None,
                                   "calibration_size": 0.15, "eval_size": 0.3, "image_size": None}
    assert resolved["models"] == {"cnn_a": "settings/cnn_a.json", "cnn_b": "settings/cnn_b.json"}
    assert list(models) == ["settings/cnn_a.json", "settings/cnn_b.json"]
    assert json.loads(models["settings/cnn_b.json"])["arch"]["widths"] == [4, 8]
    resolved_file = tmp_path / "out" / "settings.json"
    write_study(resolved_file, study)
    assert resolved_file.read_text() == text
    assert {p.name: p.read_text() for p in (tmp_path / "out" / "settings").iterdir()} == {
        "cnn_a.json": models["settings/cnn_a.json"], "cnn_b.json": models["settings/cnn_b.json"]}
    assert load_study(resolved_file) == study
    resolved_file.write_text(text[:-3])
    with pytest.raises(StudyError, match=r"settings.json: not valid JSON \(line \d+, column \d+: "):
        load_study(resolved_file)
    with pytest.raises(ValueError, match=r"settings.yaml: the resolved study is JSON"):
        write_study(tmp_path / "settings.yaml", study)


def test_rewriting_the_resolved_study_removes_the_file_of_a_model_that_left_the_zoo(tmp_path):
    three = MINIMAL + "  cnn_c:\n" + MINIMAL.split("  cnn_b:\n")[1]  # a copy of cnn_b
    write_study(tmp_path / "settings.json", load_study(_write(tmp_path, three)))
    assert sorted(p.name for p in (tmp_path / "settings").iterdir()) == ["cnn_a.json", "cnn_b.json", "cnn_c.json"]
    write_study(tmp_path / "settings.json", load_study(_write(tmp_path, MINIMAL)))
    assert sorted(p.name for p in (tmp_path / "settings").iterdir()) == ["cnn_a.json", "cnn_b.json"]


def test_the_resolved_study_carries_a_digest_of_its_models_that_a_hand_edit_breaks(tmp_path):
    study = load_study(_write(tmp_path, MINIMAL))
    resolved_file = tmp_path / "settings.json"
    write_study(resolved_file, study)
    resolved = json.loads(resolved_file.read_text())
    entries = {mid: json.loads((tmp_path / name).read_text()) for mid, name in resolved["models"].items()}
    assert entries["cnn_b"] == study.models["cnn_b"].model_dump(mode="json")
    digest = hashlib.sha256(json.dumps(entries, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    assert resolved["models_digest"] == digest
    entries["cnn_b"]["train"]["epochs"] += 1  # edited by hand: the zoo-wide stages' param would lie
    (tmp_path / "settings" / "cnn_b.json").write_text(json.dumps(entries["cnn_b"]))
    with pytest.raises(StudyError, match=r"settings.json: models_digest does not match its models' files .*"
                                         r"re-run it \(dvc repro inputs\)"):
        load_study(resolved_file)
    (tmp_path / "settings" / "cnn_b.json").unlink()
    with pytest.raises(StudyError, match=r"settings.json: models.cnn_b: .*settings/cnn_b.json not found; the inputs "
                                         r"stage writes it"):
        load_study(resolved_file)
    study_b = load_study(_write(tmp_path, MINIMAL.replace("widths: [4, 8]", "widths: [4, 6]")))
    assert json.loads(dump_study(study_b, folder="settings")[0])["models_digest"] != resolved["models_digest"]


def test_unknown_key_in_model_spec_lists_allowed_keys(tmp_path):
    text = VALID.replace("  cnn_b:\n    source: recipe:supervised\n",
                         "  cnn_b:\n    source: recipe:supervised\n    weigths: foo.pt\n")
    msg = _error(tmp_path, text)
    assert "models.cnn_b.weigths" in msg and "unknown key" in msg
    for allowed in ("source", "tags", "arch", "train", "weights", "num_classes", "pretrained_file", "weak"):
        assert allowed in msg


def test_unknown_key_in_train_options_lists_allowed_keys(tmp_path):
    msg = _error(tmp_path, VALID.replace("train: {epochs: 1}\n  cnn_b", "train: {epochs: 1, lr_max: 3}\n  cnn_b"))
    assert "cnn_a" in msg and "train.lr_max" in msg and "unknown key" in msg
    for allowed in ("epochs", "batch_size", "lr", "weight_decay", "optimizer", "label_smoothing", "augment"):
        assert allowed in msg


def test_unknown_key_in_arch_lists_allowed_keys(tmp_path):
    msg = _error(tmp_path, VALID.replace("widths: [4, 8], hidden: 16}\n    train: {epochs: 1}\n  cnn_b",
                                         "widhts: [4, 8], hidden: 16}\n    train: {epochs: 1}\n  cnn_b"))
    assert "models.cnn_a.arch: widhts" in msg
    assert "allowed here" in msg and "widths" in msg and "hidden" in msg
    assert "valid string" not in msg


def test_wrong_type(tmp_path):
    msg = _error(tmp_path, VALID.replace("train: {epochs: 1}\n  cnn_b", "train: {epochs: five}\n  cnn_b"))
    assert "cnn_a" in msg and "train.epochs" in msg and "integer" in msg


def test_wrong_type_in_stage_settings(tmp_path):
    msg = _error(tmp_path, VALID.replace("knn_k: 3}", "knn_k: many}"))
    assert "probe.knn_k" in msg and "integer" in msg


def test_wrong_literal_lists_choices(tmp_path):
    msg = _error(tmp_path, VALID.replace("kind: cnn, widths: [4, 8], hidden: 16}\n    train: {epochs: 1}\n  cnn_b",
                                         "kind: rnn, widths: [4, 8], hidden: 16}\n    train: {epochs: 1}\n  cnn_b"))
    assert "cnn_a" in msg and "rnn" in msg
    for kind in ("cnn", "mlp", "timm_resnet", "timm_vit"):
        assert kind in msg


def test_duplicate_model_id(tmp_path):
    text = VALID + (
        "  cnn_a:\n"
        "    source: recipe:supervised\n"
        "    tags: {seed: 5, hyperparameters: adamw, architecture: cnn-w4, framework: supervised, data: digits-train}\n"
        "    arch: {kind: cnn}\n"
    )
    lines = text.splitlines()
    first = lines.index("  cnn_a:") + 1
    second = len(lines) - 3
    assert lines[second - 1] == "  cnn_a:"
    msg = _error(tmp_path, text)
    assert "duplicate" in msg and "cnn_a" in msg
    assert re.search(rf"\bline {second}\b", msg), msg
    assert re.search(rf"\bline {first}\b", msg), msg


def test_duplicate_setting_inside_a_mapping(tmp_path):
    msg = _error(tmp_path, VALID.replace("train: {epochs: 1}\n  cnn_b", "train: {epochs: 1, epochs: 2}\n  cnn_b"))
    assert "duplicate" in msg and "epochs" in msg


def test_invalid_model_id(tmp_path):
    msg = _error(tmp_path, VALID.replace("  cnn_b:", '  "bad id!":'))
    assert "bad id!" in msg
    assert "letters" in msg and "digits" in msg and "'_'" in msg and "'-'" in msg


def test_unknown_source_prefix(tmp_path):
    msg = _error(tmp_path, VALID.replace("  cnn_b:\n    source: recipe:supervised", "  cnn_b:\n    source: pytorch:foo"))
    assert "cnn_b" in msg and "pytorch:foo" in msg
    for kind in ("recipe", "timm", "torchvision", "hf-hub", "file"):
        assert f"{kind}:" in msg
    assert set(SOURCE_KINDS) == {"recipe", "timm", "torchvision", "hf-hub", "file"}


def test_unknown_methodology_tag(tmp_path):
    msg = _error(tmp_path, VALID.replace("tags: {seed: 1,", "tags: {optimizer: sgd, seed: 1,"))
    assert "models.cnn_b.tags.optimizer" in msg and "unknown key" in msg
    for tag in METHODOLOGY_TAGS:
        assert tag in msg.split("allowed here:")[1]


def test_missing_methodology_tag(tmp_path):
    msg = _error(tmp_path, VALID.replace("tags: {seed: 1, hyperparameters: adamw,", "tags: {seed: 1,"))
    assert "models.cnn_b.tags.hyperparameters" in msg


def test_unknown_recipe(tmp_path):
    msg = _error(tmp_path, VALID.replace("  cnn_b:\n    source: recipe:supervised", "  cnn_b:\n    source: recipe:mixup"))
    assert "mixup" in msg
    for recipe in ("supervised", "distill", "simclr", "autoencoder", "random_features"):
        assert recipe in msg


def test_base_not_a_model(tmp_path):
    msg = _error(tmp_path, VALID.replace("base: cnn_a", "base: cnn_z"))
    assert "base" in msg and "cnn_z" in msg
    assert "cnn_a" in msg and "cnn_b" in msg  # lists the ids


def test_recipe_seed_must_be_an_integer(tmp_path):
    msg = _error(tmp_path, VALID.replace("tags: {seed: 1,", "tags: {seed: unknown,"))
    assert "cnn_b" in msg and "tags.seed" in msg and "integer" in msg and "unknown" in msg


def test_non_recipe_seed_may_be_a_string(tmp_path):
    text = VALID.split("  cnn_b:")[0] + (
        "  hub_b:\n"
        "    source: timm:resnet18.a1_in1k\n"
        "    tags: {seed: unknown, hyperparameters: a1, architecture: resnet18, framework: supervised, data: in1k}\n"
    )
    study = load_study(_write(tmp_path, text))
    assert study.models["hub_b"].tags.seed == "unknown"
    assert study.models["hub_b"].kind == "timm" and study.models["hub_b"].target == "resnet18.a1_in1k"


def test_unknown_dataset_source(tmp_path):
    msg = _error(tmp_path, VALID.replace("source: digits", "source: mnist-c"))
    assert "dataset.source" in msg and "mnist-c" in msg
    for source in ("fashion-mnist", "digits", "imagefolder", "torchvision"):
        assert source in msg


def test_merge_keys_with_overrides_are_not_duplicates(tmp_path):
    text = """\
dataset: {source: digits}
base: cnn_a
threads: 1
embed: {}
probe: {}
predict: {}
ensemble: {}
similarity: {}
report: {}
mistakes: {}
models:
  cnn_a:
    source: recipe:supervised
    tags: &tags {seed: 0, hyperparameters: adamw, architecture: cnn-w4, framework: supervised, data: digits-train}
    arch: &arch {kind: cnn, widths: [4, 8], hidden: 16}
    train: &train {epochs: 1, lr: 0.01}
  cnn_b:
    source: recipe:supervised
    tags: {<<: *tags, seed: 1}
    arch: *arch
    train:
      <<: *train
      lr: 0.02
      batch_size: 32
"""
    study = load_study(_write(tmp_path, text))
    b = study.models["cnn_b"]
    assert b.tags.seed == 1 and b.tags.hyperparameters == "adamw" and b.tags.data == "digits-train"
    assert b.train == {"epochs": 1, "lr": 0.02, "batch_size": 32}
    assert study.models["cnn_a"].train == {"epochs": 1, "lr": 0.01}  # the anchor itself is untouched
    # an explicit key repeated beside a merge is still a duplicate
    msg = _error(tmp_path, text.replace("      batch_size: 32\n", "      batch_size: 32\n      lr: 0.03\n"))
    assert "duplicate" in msg and "'lr'" in msg


def test_parse_study_rejects_non_mapping():
    with pytest.raises(StudyError, match="mapping"):
        parse_study([1, 2], source="x.yaml")


def test_project_params_cover_every_category():
    study = load_study(REPO / "params.yaml")
    assert len(study.models) >= 16
    base = study.models[study.base].tags.model_dump()
    counts = Counter(pair_category(base, spec.tags.model_dump())
                     for mid, spec in study.models.items() if mid != study.base)
    assert set(CATEGORIES) == {"reinit", "hyperparameters", "architecture", "framework", "dataset"}
    for category in CATEGORIES:
        assert counts[category] >= 2, (category, counts)


def test_class_groups_must_not_overlap(tmp_path):
    msg = _error(tmp_path, VALID.replace("ensemble: {", "ensemble: {class_groups: {a: [0, 1], b: [1, 2]}, ", 1))
    assert "ensemble.class_groups" in msg and "class 1 is in groups 'a' and 'b'" in msg


def test_a_model_id_with_a_trailing_newline_is_refused(tiny_study_dict):
    tiny_study_dict["models"]["cnn_a\n"] = tiny_study_dict["models"].pop("cnn_b")
    with pytest.raises(StudyError, match="is not allowed"):
        parse_study(tiny_study_dict)


@pytest.mark.parametrize("imbalance, words", [
    ("{label: 3, keep: 0}", ("train.imbalance.keep", "greater than 0")),
    ("{label: 3, keep: 1.5}", ("train.imbalance.keep", "less than 1")),
    ("{label: -1, keep: 0.1}", ("train.imbalance.label", "greater than or equal to 0")),
    ("{keep: 0.1}", ("train.imbalance.label",)),
    ("{label: 3, keep: 0.1, share: 2}", ("train.imbalance.share", "unknown key")),
])
def test_a_bad_imbalance_is_refused_in_one_line(tmp_path, imbalance, words):
    msg = _error(tmp_path, VALID.replace("train: {epochs: 1}\n  cnn_b", f"train: {{epochs: 1, imbalance: {imbalance}}}\n  cnn_b"))
    assert "\n" not in msg and "cnn_a" in msg
    for word in words:
        assert word in msg, msg


def test_a_distilled_model_finds_its_teacher_by_spec(tiny_study_dict):
    from zooscope.config import parse_study, teacher_of

    models = tiny_study_dict["models"]
    student = {"source": "recipe:distill", "tags": {**models["cnn_a"]["tags"], "seed": 7, "framework": "kd"},
               "arch": models["mlp"]["arch"], "train": {"epochs": 1, "teacher": copy.deepcopy(models["cnn_b"])}}
    # cnn_b's spec with its train defaults written out is the same spec
    student["train"]["teacher"]["train"] |= {"weight_decay": 1e-4, "optimizer": "adamw"}
    elsewhere = copy.deepcopy(student)
    elsewhere["train"]["teacher"]["tags"]["seed"] = 99  # a teacher no zoo member has: no pair to compare
    study = parse_study({**tiny_study_dict, "models": {**models, "kd": student, "kd_other": elsewhere}})
    assert teacher_of(study.models) == {"kd": "cnn_b"}


COMPRESSED = VALID + """\
  pruned:
    source: recipe:prune
    tags: {seed: 0, hyperparameters: adamw, architecture: cnn-w4, framework: prune, data: digits-train}
    train:
      parent:
        source: recipe:supervised
        tags: {seed: 0, hyperparameters: adamw, architecture: cnn-w4, framework: supervised, data: digits-train}
        arch: {kind: cnn, widths: [4, 8], hidden: 16}
        train: {epochs: 1}
      sparsity: 0.5
"""


@pytest.mark.parametrize("old, new, words", [
    ("sparsity: 0.5", "sparsity: 1.5", ("models.pruned", "train.sparsity", "less than 1")),
    ("      sparsity: 0.5", "      sparsity: 0.5\n      epochs: -1", ("train.epochs", "greater than or equal to 0")),
    ("    source: recipe:prune\n", "    source: recipe:prune\n    arch: {kind: mlp}\n", ("takes its architecture from train.parent",)),
    ("      sparsity: 0.5", "      sparsity: 0.5\n      teacher: 1", ("train.teacher", "unknown key")),
    ("        train: {epochs: 1}\n      sparsity", "        train: {epochs: 1}\n        colour: red\n      sparsity",
     ("train.parent.colour", "unknown key")),
])
def test_a_bad_compression_is_refused_in_one_line(tmp_path, old, new, words):
    assert old in COMPRESSED
    msg = _error(tmp_path, COMPRESSED.replace(old, new))
    assert "\n" not in msg, msg
    for word in words:
        assert word in msg, msg


def test_a_compressed_model_finds_its_parent_and_its_family_root_by_spec(tmp_path):
    from zooscope.config import compression_parents, compression_roots, lint_zoo
    from zooscope.vocab import pair_categories

    raw = yaml.safe_load(COMPRESSED)
    pruned = raw["models"]["pruned"]
    raw["models"]["pruned_int8"] = {"source": "recipe:quantize", "tags": {**pruned["tags"], "framework": "int8"},
                                    "train": {"parent": copy.deepcopy(pruned)}}
    orphan = copy.deepcopy(pruned)
    orphan["train"]["parent"]["tags"]["seed"] = 42  # no zoo member has this spec
    raw["models"]["orphan"] = orphan
    study = parse_study(raw)
    assert compression_parents(study.models) == {"pruned": "cnn_a", "pruned_int8": "pruned"}
    roots = compression_roots(study.models)
    assert roots == {"pruned": "cnn_a", "pruned_int8": "cnn_a", "orphan": "orphan"}
    tags = {mid: spec.tags.model_dump() for mid, spec in study.models.items()}
    pairs = [("cnn_a", "pruned_int8"), ("pruned", "pruned_int8"), ("cnn_b", "pruned"), ("cnn_a", "orphan"),
             ("cnn_a", "cnn_b")]
    assert pair_categories(pairs, tags, roots=roots) == ["compression", "compression", "compressed-other",
                                                         "compressed-other", "reinit"]
    warnings = lint_zoo(study)
    assert [w.models for w in warnings if w.kind == "no-parent"] == [("orphan",)]
    assert not any(w.kind in ("duplicate", "shared-seed") for w in warnings)  # a compression shares its parent's seed


def test_a_compressed_model_reads_its_parents_local_file():
    from zooscope.config import ModelSpec

    tags = {"seed": 0, "hyperparameters": "h", "architecture": "a", "framework": "f", "data": "d"}
    parent = {"source": "file:/ckpt/r18.safetensors", "tags": tags, "arch": "resnet18"}
    spec = ModelSpec(source="recipe:quantize", tags=tags, train={"parent": parent})
    assert spec.local_file == "/ckpt/r18.safetensors" and spec.parent.local_file == "/ckpt/r18.safetensors"
    assert ModelSpec(**parent).parent is None


def test_the_imagenet_studys_compression_block_parses_when_uncommented():
    """A compression of a pretrained timm model is fed as its parent is, so an image-folder study needs no image_size
    for it (a compression of a recipe architecture would)."""
    from zooscope.config import compression_parents

    text = (REPO / "studies/imagenet.yaml").read_text()
    block = text[text.index("  # r50_tv_prune50:"):]
    uncommented = text.replace(block, block.replace("  # ", "  "))
    study = parse_study(yaml.safe_load(uncommented))
    assert compression_parents(study.models) == {"r50_tv_prune50": "r50_tv", "r50_tv_int8": "r50_tv"}
    raw = yaml.safe_load(uncommented)
    raw["models"]["native_int8"] = {"source": "recipe:quantize", "tags": raw["models"]["r50_tv_int8"]["tags"],
                                    "train": {"parent": {"source": "recipe:supervised", "tags": {**raw["models"][
                                        "r50_tv_int8"]["tags"], "seed": 1}, "arch": {"kind": "cnn"}}}}
    with pytest.raises(StudyError, match="models native_int8: a recipe architecture needs the images in memory"):
        parse_study(raw)


def test_a_parent_that_writes_its_defaults_out_is_the_same_zoo_member():
    from zooscope.config import compression_parents, same_model

    raw = yaml.safe_load(COMPRESSED)
    raw["models"]["pruned"]["train"]["parent"]["train"] |= {"batch_size": 128, "optimizer": "adamw"}  # the defaults
    study = parse_study(raw)
    assert compression_parents(study.models) == {"pruned": "cnn_a"}
    assert same_model(study.models["cnn_a"], study.models["pruned"].parent)
    assert not same_model(study.models["cnn_b"], study.models["pruned"].parent)  # another seed
