"""The mistakes stage's cache (zooscope.mistakes.parts) on the tiny digits zoo, built by the stage CLIs in-process
(no DVC): a warm run gives the same bytes as a cold one and computes nothing, a changed model recomputes its own
parts and its 2 (N - 1) ordered pairs only, and ``mistakes.attacks: false`` leaves the attack outputs out while the
report still renders."""

from __future__ import annotations

import copy
import json
import shutil
from pathlib import Path

import numpy as np
import polars as pl
import pytest
import torch

from stages import embed, ensemble, fetch, inputs, mistakes, predict, probe, similarity
from tests.conftest import TINY_STUDY, write_study
from zooscope.mistakes import parts

MODELS = list(TINY_STUDY["models"])
N = len(MODELS)
STUDY = copy.deepcopy(TINY_STUDY)
STUDY["mistakes"] |= {"attack_subset": 24, "pgd_steps": 2, "eps": [0.03, 0.1], "transfer_eps": 0.1}
BUDGETS = 3  # per model: FGSM at both budgets and PGD at 0.03 (PGD at 0.1 is the transfer matrix's diagonal)


def _stage(module, root: Path, *args: str, model: str | None = None) -> None:
    argv = ["--params", str(root / "artifacts/settings.json"), "--no-progress", *args]
    assert module.main(argv + (["--model", model] if model else [])) == 0


def _per_model(root: Path, mid: str) -> None:
    a = root / "artifacts"
    _stage(fetch, root, "--models", str(a / "models"), model=mid)
    _stage(embed, root, "--models", str(a / "models"), "--out", str(a / "embeddings"), model=mid)
    _stage(probe, root, "--embeddings", str(a / "embeddings"), "--out", str(a / "probes"), model=mid)
    _stage(predict, root, "--models", str(a / "models"), "--embeddings", str(a / "embeddings"), "--probes",
           str(a / "probes"), "--out", str(a / "predictions"), "--metrics", str(root / "metrics/models"), model=mid)


def _pairwise(root: Path) -> None:
    a, m = root / "artifacts", root / "metrics"
    _stage(similarity, root, "--models", str(a / "models"), "--embeddings", str(a / "embeddings"), "--probes",
           str(a / "probes"), "--cache", str(a / "pair_cache/similarity"), "--out", str(a / "similarity.parquet"),
           "--mixes", str(a / "feature_mixes.parquet"), "--heatmap", str(root / "plots/cka_heatmap.csv"))
    _stage(ensemble, root, "--models", str(a / "models"), "--predictions", str(a / "predictions"), "--similarity",
           str(a / "similarity.parquet"), "--cache", str(a / "pair_cache/ensemble"), "--pairs", str(a / "pairs.parquet"),
           "--per-class", str(a / "pairs_per_class.parquet"), "--per-group", str(a / "pairs_per_group.parquet"),
           "--groups", str(a / "groups.parquet"), "--study", str(m / "study.json"), "--category-metrics", str(m / "categories"),
           *(arg for name in ensemble.PLOTS for arg in (f"--{name.replace('_', '-')}-plot", str(root / f"plots/{name}.csv"))))


def _resolve(root: Path, study: dict) -> None:
    write_study(root / "params.yaml", study)
    assert inputs.main(["--params", str(root / "params.yaml"), "--out", str(root / "artifacts/inputs"),
                        "--settings", str(root / "artifacts/settings.json")]) == 0


@pytest.fixture(scope="module")
def zoo(tmp_path_factory) -> Path:
    """The tiny zoo's per-model artifacts and pair table, as the stages before mistakes write them."""
    root = tmp_path_factory.mktemp("mistakes-zoo")
    torch.set_num_threads(1)
    _resolve(root, STUDY)
    for mid in MODELS:
        _per_model(root, mid)
    _pairwise(root)
    return root


def _mistakes(root: Path, out: Path, cache: Path) -> dict[str, bytes]:
    """Run the mistakes stage into ``out`` with ``cache``; every file it writes, by name, as bytes."""
    a = root / "artifacts"
    _stage(mistakes, root, "--models", str(a / "models"), "--embeddings", str(a / "embeddings"), "--probes",
           str(a / "probes"), "--predictions", str(a / "predictions"), "--pairs", str(a / "pairs.parquet"),
           "--cache", str(cache), "--out", str(out / "mistakes"), "--metrics", str(out / "mistakes.json"),
           "--transfer-plot", str(out / "adversarial_transfer.csv"))
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


@pytest.fixture
def record(monkeypatch) -> dict[str, list]:
    """part (cache file or folder name) -> the items its cache missed and computed this run, in order; ``loaded``:
    the models whose network was loaded."""
    got: dict[str, list] = {"loaded": []}

    def wrap(real):
        def cached(path, keys, compute, **kw):
            name = Path(path).name
            got.setdefault(name, [])

            def counted(todo):
                got[name] += list(todo) if isinstance(todo, list) else [todo]
                return compute(todo)
            return real(path, keys, counted, **kw)
        return cached

    monkeypatch.setattr(parts, "cached_pairs", wrap(parts.cached_pairs))
    monkeypatch.setattr(parts, "cached_arrays", wrap(parts.cached_arrays))
    real_load = parts.sources.load_network
    monkeypatch.setattr(parts.sources, "load_network",
                        lambda builder, path: (got["loaded"].append(Path(path).parent.name), real_load(builder, path))[1])
    return got


def test_a_warm_cache_gives_the_same_bytes_and_computes_nothing(zoo, tmp_path, record):
    cache = tmp_path / "cache"
    cold = _mistakes(zoo, tmp_path / "cold", cache)
    assert sorted(record["loaded"]) == MODELS
    assert len(record["critic.parquet"]) == N and len(record["robustness.parquet"]) == N * BUDGETS
    assert sorted(record["examples"]) == MODELS and len(record["transfer.parquet"]) == N * (N - 1)
    for part in ("loaded", "critic.parquet", "robustness.parquet", "examples", "transfer.parquet"):
        record[part].clear()
    warm = _mistakes(zoo, tmp_path / "warm", cache)
    assert warm == cold and "mistakes/robustness.parquet" in warm and "mistakes/adversarial_images.npy" in warm
    assert {part: items for part, items in record.items() if items} == {"loaded": [_strongest(warm)]}
    # the cache holds the zoo's entries only: one examples entry (json, examples, clean, own) per model
    assert len(list((cache / "examples").iterdir())) == 4 * N
    assert len(pl.read_parquet(cache / "transfer.parquet")) == N * (N - 1)


def _strongest(outputs: dict[str, bytes]) -> str:
    return json.loads(outputs["mistakes.json"])["strongest"]


def test_one_changed_model_recomputes_its_parts_and_pairs_only(zoo, tmp_path, record):
    work = tmp_path / "zoo"
    shutil.copytree(zoo, work)
    cache = tmp_path / "cache"
    before = _mistakes(work, tmp_path / "before", cache)
    changed = copy.deepcopy(STUDY)
    changed["models"]["mlp"]["train"]["epochs"] = 3  # dvc exp run -S models.mlp.train.epochs=3
    _resolve(work, changed)
    _per_model(work, "mlp")
    _pairwise(work)
    for items in record.values():
        items.clear()
    after = _mistakes(work, tmp_path / "after", cache)
    assert record["critic.parquet"] == ["mlp"] and record["examples"] == ["mlp"]
    assert sorted(record["robustness.parquet"]) == sorted(("mlp", m, e) for m, e in (("fgsm", 0.03), ("fgsm", 0.1),
                                                                                     ("pgd", 0.03)))
    assert sorted(record["transfer.parquet"]) == sorted([("mlp", m) for m in MODELS if m != "mlp"]
                                                        + [(m, "mlp") for m in MODELS if m != "mlp"])
    assert len(record["transfer.parquet"]) == 2 * (N - 1)
    assert after != before  # mlp's numbers did change
    # and the result is the one a run from an empty cache computes
    assert _mistakes(work, tmp_path / "cold", tmp_path / "empty") == after
    # the stale entries of the old mlp are gone
    assert len(pl.read_parquet(cache / "transfer.parquet")) == N * (N - 1)
    assert len(pl.read_parquet(cache / "critic.parquet")) == N and len(list((cache / "examples").iterdir())) == 4 * N


def test_the_cached_transfer_is_the_direct_transfer_matrix(zoo, digits, tmp_path):
    """transfer_results (examples and pair predictions from the cache) against adversarial.transfer_matrix, which
    crafts on every model and evaluates every model in one loop; and one model's robust accuracy recomputed."""
    from zooscope.config import load_study
    from zooscope.mistakes.adversarial import robust_accuracy, transfer_matrix

    study = load_study(zoo / "artifacts/settings.json")
    cfg = study.mistakes
    ev = digits.split("eval")
    sub = np.sort(np.random.default_rng(cfg.seed).choice(len(ev), cfg.attack_subset, replace=False))
    models = parts.ZooModels(zoo / "artifacts/models", zoo / "artifacts/probes", digits, ev[sub], "cpu")
    y = torch.as_tensor(digits.labels[ev[sub]])
    for cache in (tmp_path, tmp_path, None):  # computed, then read back, then without a cache
        plan = parts.attack_plan(models, MODELS, settings=cfg, threads=study.threads, cache=cache)
        got, computed = parts.transfer_results(plan, models, y, settings=cfg, cache=cache, keep=("mlp",))
        direct = transfer_matrix({m: models(m)[0] for m in MODELS}, {m: models(m)[1] for m in MODELS}, y,
                                 method=cfg.transfer_attack, eps=cfg.transfer_eps, steps=cfg.pgd_steps, seed=cfg.seed,
                                 keep=("mlp",))
        assert got.models == direct.models
        np.testing.assert_array_equal(got.accuracy, direct.accuracy)
        np.testing.assert_array_equal(got.clean, direct.clean)
        np.testing.assert_array_equal(got.adversarial, direct.adversarial)
        assert torch.equal(got.examples["mlp"], direct.examples["mlp"])
    plan = parts.attack_plan(models, MODELS, settings=cfg, threads=study.threads, cache=tmp_path)
    assert plan.todo == {"robustness": N * BUDGETS, "examples": 0, "transfer": 0}
    accuracies, computed = parts.robust_accuracies(plan, models, y, settings=cfg, cache=tmp_path)
    assert computed == N * BUDGETS
    fn, x, _ = models("cnn_b")
    assert accuracies["cnn_b", "fgsm", 0.03] == robust_accuracy(fn, x, y, method="fgsm", eps=0.03)
    assert accuracies["cnn_b", "pgd", 0.03] == robust_accuracy(fn, x, y, method="pgd", eps=0.03, steps=cfg.pgd_steps,
                                                               seed=cfg.seed)
    assert parts.attack_plan(models, MODELS, settings=cfg, threads=study.threads, cache=tmp_path).todo == {
        "robustness": 0, "examples": 0, "transfer": 0}
    # another thread count is another computation: nothing of it is cached
    assert parts.attack_plan(models, MODELS, settings=cfg, threads=study.threads + 1, cache=tmp_path).todo == {
        "robustness": N * BUDGETS, "examples": N, "transfer": N * (N - 1)}


def test_attacks_off_leaves_out_robustness_and_transfer_and_the_report_says_so(zoo, tmp_path, record):
    from zooscope.config import load_study
    from zooscope.report import build_report, load_report_data

    work = tmp_path / "zoo"
    shutil.copytree(zoo, work)
    out = tmp_path / "out"
    with_attacks = _mistakes(work, out, tmp_path / "cache")
    assert "mistakes/transfer.parquet" in with_attacks
    _resolve(work, {**STUDY, "mistakes": {**STUDY["mistakes"], "attacks": False}})
    for items in record.values():
        items.clear()
    got = _mistakes(work, out, tmp_path / "cache")
    assert not any(record.values())  # no network loaded, no attack; MMD-critic from the cache
    assert sorted(got) == ["adversarial_transfer.csv", "mistakes.json",
                           *(f"mistakes/{t}.parquet" for t in sorted(("taxonomy", "confusions", "consensus", "neighbours",
                                                                        "prototypes", "prototype_overlap")))]
    assert got["adversarial_transfer.csv"] == b"source,target,accuracy\n"
    for name in ("taxonomy", "prototypes", "consensus"):  # what does not attack is unchanged
        assert got[f"mistakes/{name}.parquet"] == with_attacks[f"mistakes/{name}.parquet"]
    metrics = json.loads(got["mistakes.json"])
    assert metrics["attacks"] is False and "transfer_kappa" not in metrics and "attack_subset" not in metrics
    assert not any(key.startswith("robust_accuracy") for key in metrics)
    assert metrics["findings"][2].startswith("adversarial transfer: not measured (mistakes.attacks is false")

    a, m = work / "artifacts", work / "metrics"
    data = load_report_data(load_study(a / "settings.json"), model_metrics=m / "models", study_metrics=m / "study.json",
                            pairs=a / "pairs.parquet", per_class=a / "pairs_per_class.parquet",
                            predictions=a / "predictions", mistakes=out / "mistakes", mistakes_metrics=out / "mistakes.json")
    assert data.mistakes.adversarial_images is None and "transfer" not in data.mistakes.tables
    html = build_report(data)
    assert "Robustness and adversarial transfer: not measured" in html and "mistakes.attacks to false" in html
    assert 'id="adversarial-transfer"' not in html and 'id="adversarial-examples"' not in html
    assert 'id="prototypes-criticisms"' in html and "<h2>Mistakes: taxonomy</h2>" in html
