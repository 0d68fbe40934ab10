"""Every pair of a zoo: the ensemble stage's vectorised, blocked path against a plain per-pair loop, and
the whole stage at ImageNet scale.

    python bench/bench_pairs.py                       # 1 only
    python bench/bench_pairs.py --imagenet DIR        # 1, then 2 with its files under DIR

1. 30 models x 10,000 samples x 10 classes (seeded synthetic probabilities). The loop does, for each
   pair, what model-vs-human does for one: align the two models' prediction tables on their sample ids,
   then compute the pair's numbers; here with the library's per-pair functions (error_consistency,
   disagreement, pair_ensemble with probabilities and log-probabilities, bootstrap_pair with 1,000
   resamples, class_specialisation). The vectorised path is what the ensemble stage runs: one alignment
   check, all_pairs_agreement and all_pairs_disagreement (matrix products), and blockwise.ensemble_pairs
   (ensembles, per-class and bootstrap counts of every pair in sample blocks) with the intervals from
   its counts. The script asserts that both give the same numbers and prints both times and the ratio,
   measured in the same run.
2. 100 models x 50,000 samples x 1,000 classes: float16 probabilities written block by block to one
   .npy file per model (10 GB; fewer models when DIR's disk has less room, said in the output), with
   prediction tables and model cards, then the real ensemble stage (stages/ensemble.py, as DVC runs it)
   in a subprocess: its time and peak resident memory, a second run with every pair cached, and the
   time of one pair alone (per-pair functions, and ensemble_pairs on that pair).

BLAS runs single-threaded unless the thread variables are set, so ratios measure vectorisation and
the machine's second core stays free. Times are CPU seconds (the stage's also wall seconds), which other
jobs on a shared machine do not inflate.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")  # before numpy is imported

import numpy as np  # noqa: E402
import polars as pl  # noqa: E402
import yaml  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))  # run from a checkout without installing

from zooscope.ensemble import (all_pairs_agreement, all_pairs_disagreement, bootstrap_pair, bootstrap_statistics,
                               class_specialisation, disagreement, error_consistency, pair_ensemble)
from zooscope.ensemble import ensemble_pairs
from zooscope.ensemble import PAIRS_COLUMNS
from zooscope.ensemble import bootstrap_weights, interval95, resampled_counts

SEED, N_BOOT = 0, 1000


# --------------------------------------------------------------------------------------------- data


class SyntheticZoo:
    """Models that share a per-sample difficulty and a per-sample confusable class, so their errors correlate.

    Model m's logits for a block of samples: standard normal noise, plus (skill_m - 1.5 difficulty) on the
    label and 4 u on the confusable class (u shared by all models), times a sharpness (3 for 1,000 classes,
    which makes the mean confidence about the accuracy, as for temperature-scaled models); softmax.
    """

    def __init__(self, *, n_models: int, n_samples: int, num_classes: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.labels = rng.integers(0, num_classes, n_samples)
        self.difficulty = rng.normal(size=n_samples).astype(np.float32)
        self.confuser = (self.labels + rng.integers(1, num_classes, n_samples)) % num_classes
        self.pull = 4 * rng.random(n_samples).astype(np.float32)
        low, high, self.sharpness = (2.5, 5.0, 1.0) if num_classes <= 10 else (3.5, 6.0, 3.0)
        self.skill = rng.uniform(low, high, n_models).astype(np.float32)
        self.num_classes, self.seed = num_classes, seed

    def blocks(self, m: int, *, block: int):
        """Model m's probabilities float32 [block, C], block after block over the samples."""
        rng = np.random.default_rng([self.seed, m])
        for start in range(0, len(self.labels), block):
            rows = np.arange(min(block, len(self.labels) - start))
            s = slice(start, start + len(rows))
            z = rng.standard_normal((len(rows), self.num_classes), dtype=np.float32)
            z[rows, self.labels[s]] += self.skill[m] - 1.5 * self.difficulty[s]
            z[rows, self.confuser[s]] += self.pull[s]
            z *= self.sharpness
            z -= z.max(1, keepdims=True)
            np.exp(z, out=z)
            yield z / z.sum(1, keepdims=True)


def best_time(fn, *, repeats: int):
    """(fewest CPU seconds of this process over ``repeats`` calls, the last result). CPU time, not wall
    time, so that other jobs on the machine (or a pause of this one) do not count."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        result = fn()
        times.append(time.process_time() - start)
    return min(times), result


# --------------------------------------------------------------------------------------------- 1. all pairs


def loop_pairs(tables: list[pl.DataFrame], probs: np.ndarray) -> dict[tuple[int, int], dict]:
    """Baseline: model-vs-human's way, one pair at a time, each pair aligned on its sample ids first."""
    out = {}
    for i in range(len(tables)):
        for j in range(i + 1, len(tables)):
            a, b = tables[i].sort("sample_id"), tables[j].sort("sample_id")
            assert a["sample_id"].equals(b["sample_id"]), (i, j)
            labels = a["label"].to_numpy()
            pa, pb = probs[i][a["row"].to_numpy()], probs[j][b["row"].to_numpy()]
            ca, cb = a["pred"].to_numpy() == labels, b["pred"].to_numpy() == labels
            ens = pair_ensemble(pa, pb, labels, logits_a=np.log(pa.astype(np.float64)), logits_b=np.log(pb.astype(np.float64)))
            ens_right = (pa.astype(np.float64) + pb).argmax(1) == labels
            out[i, j] = (error_consistency(ca, cb) | ens | {"disagreement": disagreement(a["pred"].to_numpy(), b["pred"].to_numpy())}
                         | {"boot": bootstrap_pair(ca, cb, ens_right, n_boot=N_BOOT, seed=SEED)}
                         | {"spec": class_specialisation(pa, pb, labels, num_classes=probs.shape[2])})
    return out


def vectorised_pairs(tables: list[pl.DataFrame], probs: np.ndarray) -> dict[str, np.ndarray]:
    """The ensemble stage's path: align once, matrix products, then ensemble_pairs over every pair."""
    for t in tables[1:]:
        assert t["sample_id"].equals(tables[0]["sample_id"])
    labels = tables[0]["label"].to_numpy()
    pred = np.stack([t["pred"].to_numpy() for t in tables])
    correct = pred == labels
    pairs = np.array([(i, j) for i in range(len(tables)) for j in range(i + 1, len(tables))])
    got = ensemble_pairs(list(probs), labels, pairs, n_boot=N_BOOT, seed=SEED)
    boot_model = resampled_counts(bootstrap_weights(len(labels), n_boot=N_BOOT, seed=SEED), correct.T)
    draws = bootstrap_statistics(boot_model[:, pairs[:, 0]].T, boot_model[:, pairs[:, 1]].T, got["boot_both_right"],
                                 got["boot_ens_right"], len(labels))
    return {"pairs": pairs, "agreement": all_pairs_agreement(correct), "disagreement": all_pairs_disagreement(pred),
            "intervals": {key: interval95(value) for key, value in draws.items()}, **got}


def check_same(loop: dict, vec: dict, n: int) -> None:
    """Every number of the loop equals the vectorised one (counts exactly; theta to float rounding)."""
    for p, (i, j) in enumerate(vec["pairs"]):
        ref = loop[i, j]
        for key in ("kappa", "kappa_max", "error_inconsistency", "error_corr"):
            np.testing.assert_equal(vec["agreement"][key][i, j], ref[key], err_msg=key)
        assert vec["disagreement"][i, j] == ref["disagreement"]
        assert vec["ens_right"][p] / n == ref["acc_ensemble"] and vec["ens_logits_right"][p] / n == ref["acc_ensemble_logits"]
        for key, (lo, hi) in ref["boot"].items():
            assert (vec["intervals"][key][0][p], vec["intervals"][key][1][p]) == (lo, hi), key
        with np.errstate(invalid="ignore"):
            np.testing.assert_array_equal(vec["class_ens_right"][p] / ref["spec"]["support"], ref["spec"]["acc_ensemble"])
        np.testing.assert_allclose(vec["theta_mean"][p], ref["spec"]["theta_mean"], rtol=1e-6)


def bench_small() -> None:
    n_models, n, num_classes = 30, 10_000, 10
    zoo = SyntheticZoo(n_models=n_models, n_samples=n, num_classes=num_classes, seed=SEED)
    probs = np.stack([next(zoo.blocks(m, block=n)) for m in range(n_models)])
    tables = [pl.DataFrame({"sample_id": np.arange(n) + 10_000, "row": np.arange(n), "label": zoo.labels,
                            "pred": p.argmax(1)}) for p in probs]
    loop_s, loop = best_time(lambda: loop_pairs(tables, probs), repeats=1)
    vec_s, vec = best_time(lambda: vectorised_pairs(tables, probs), repeats=3)
    check_same(loop, vec, n)
    acc, conf = (probs.argmax(2) == zoo.labels).mean(1), probs.max(2).mean()
    print(f"\n1. all {len(vec['pairs'])} pairs of {n_models} models, {n} samples, {num_classes} classes, {N_BOOT} resamples "
          f"(accuracies {acc.min():.2f}-{acc.max():.2f}, mean confidence {conf:.2f}; "
          f"BLAS threads {os.environ['OPENBLAS_NUM_THREADS']})")
    print("   every number identical (counts, kappa, intervals exactly; theta to 1e-6)")
    print(f"   {'path':<62}{'CPU s':>9}")
    print(f"   {'per-pair loop (align, 5 per-pair functions; 1 run)':<62}{loop_s:>9.2f}")
    print(f"   {'vectorised: matrix products + ensemble_pairs (best of 3)':<62}{vec_s:>9.2f}")
    print(f"   {'speed-up':<62}{loop_s / vec_s:>8.1f}x")


# --------------------------------------------------------------------------------------------- 2. ImageNet scale


def _tags(m: int) -> dict:
    """Methodology tags that spread the synthetic zoo over the five categories."""
    return {"seed": m % 2, "hyperparameters": f"h{m // 2 % 2}", "architecture": f"arch{m // 4 % 3}",
            "framework": f"fw{m // 12 % 2}", "data": f"data{m // 24 % 4}"}


def _written(out: Path, shape: tuple[int, int]) -> bool:
    """Whether a model's files are already there (generation is seeded, so they would be the same)."""
    if not (out / "eval.parquet").exists() or not (out / "eval_probs.npy").exists():
        return False
    probs = np.load(out / "eval_probs.npy", mmap_mode="r")
    return probs.shape == shape and probs.dtype == np.float16


def write_zoo(root: Path, zoo: SyntheticZoo, n_models: int, *, block: int) -> tuple[list[str], int]:
    """Cards, float16 eval_probs.npy (written block by block) and eval.parquet of each model under ``root``:
    (model ids, how many models were already on disk from an earlier run)."""
    ids = [f"m{m:03d}" for m in range(n_models)]
    n, num_classes = len(zoo.labels), zoo.num_classes
    reused = 0
    for m, mid in enumerate(ids):
        (root / "models" / mid).mkdir(parents=True, exist_ok=True)
        (root / "models" / mid / "card.json").write_text(json.dumps({"id": mid, "tags": _tags(m)}))
        out = root / "predictions" / mid
        out.mkdir(parents=True, exist_ok=True)
        if _written(out, (n, num_classes)):
            reused += 1
            continue
        probs = np.lib.format.open_memmap(out / "eval_probs.npy", mode="w+", dtype=np.float16, shape=(n, num_classes))
        pred = np.empty(n, np.int64)
        for start, p in zip(range(0, n, block), zoo.blocks(m, block=block), strict=True):
            probs[start:start + len(p)] = p
            pred[start:start + len(p)] = probs[start:start + len(p)].argmax(1)
        probs.flush()
        del probs
        pl.DataFrame({"sample_id": np.arange(n), "label": zoo.labels, "pred": pred}).write_parquet(out / "eval.parquet")
    study = {"dataset": {"source": "digits"}, "base": ids[0], "threads": 1, "embed": {}, "probe": {}, "predict": {},
             "similarity": {}, "report": {}, "ensemble": {"n_boot": N_BOOT, "seed": SEED, "matched_band": 0.02, "greedy_max_size": 10,
                                            "strongest": 5},
             "models": {mid: {"source": "file:synthetic.safetensors", "arch": "resnet50", "tags": _tags(m)}
                        for m, mid in enumerate(ids)}}
    (root / "params.yaml").write_text(yaml.safe_dump(study, sort_keys=False))
    pairs = [(a, b) for i, a in enumerate(ids) for b in ids[i + 1:]]
    similarity = pl.DataFrame({"model_a": [a for a, _ in pairs], "model_b": [b for _, b in pairs],
                               "category": ["-"] * len(pairs)})  # the similarity stage's columns, left empty
    similarity.with_columns(*(pl.lit(None, pl.Float64).alias(c) for c in PAIRS_COLUMNS[PAIRS_COLUMNS.index("cka"):])
                            ).write_parquet(root / "similarity.parquet")
    return ids, reused


def run_stage(root: Path) -> tuple[float, float, float, str]:
    """Run stages/ensemble.py on the zoo under ``root``: (wall seconds, CPU seconds, peak RSS in GB of the
    stage process, its output)."""
    cmd = [sys.executable, "-m", "stages.ensemble", "--params", str(root / "params.yaml"), "--models", str(root / "models"),
           "--predictions", str(root / "predictions"), "--similarity", str(root / "similarity.parquet"),
           "--cache", str(root / "cache"), "--pairs", str(root / "out/pairs.parquet"),
           "--per-class", str(root / "out/pairs_per_class.parquet"), "--metrics", str(root / "out/study.json")]
    cmd += [arg for name in ("kappa-by-category", "gain-vs-kappa", "greedy-curve")
            for arg in (f"--{name}-plot", str(root / f"out/{name}.csv"))]
    before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    seconds, after = time.perf_counter() - start, resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode:
        raise RuntimeError(f"the ensemble stage failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    return seconds, cpu, after.ru_maxrss / 2**20, proc.stdout


def one_pair(root: Path, ids: list[str]) -> tuple[float, float]:
    """Seconds for pair (0, 1) alone: the per-pair functions on memory-mapped files, and ensemble_pairs."""
    labels = pl.read_parquet(root / "predictions" / ids[0] / "eval.parquet", columns=["label"])["label"].to_numpy()
    paths = [root / "predictions" / mid / "eval_probs.npy" for mid in ids[:2]]

    def per_pair():
        pa, pb = (np.load(p, mmap_mode="r") for p in paths)
        ca, cb = pa.argmax(1) == labels, pb.argmax(1) == labels
        with np.errstate(divide="ignore"):  # float16 probabilities of 0
            logs = np.log(pa.astype(np.float64)), np.log(pb.astype(np.float64))
        ens = pair_ensemble(pa, pb, labels, logits_a=logs[0], logits_b=logs[1])
        right = (pa.astype(np.float64) + pb).argmax(1) == labels
        return (error_consistency(ca, cb), ens, disagreement(pa.argmax(1), pb.argmax(1)),
                bootstrap_pair(ca, cb, right, n_boot=N_BOOT, seed=SEED), class_specialisation(pa, pb, labels, num_classes=pa.shape[1]))

    loop_s, _ = best_time(per_pair, repeats=1)
    kernel_s, _ = best_time(lambda: ensemble_pairs(paths, labels, np.array([(0, 1)]), n_boot=N_BOOT, seed=SEED), repeats=1)
    return loop_s, kernel_s


def bench_imagenet(root: Path, *, n_models: int = 100, n: int = 50_000, num_classes: int = 1000) -> None:
    root.mkdir(parents=True, exist_ok=True)
    per_model = n * num_classes * 2 + 2**20
    free = shutil.disk_usage(root).free
    fits = min(n_models, int(0.9 * free // per_model))
    print(f"\n2. ImageNet scale under {root}: {free / 1e9:.1f} GB free, {per_model * n_models / 1e9:.1f} GB needed for "
          f"{n_models} models" + ("" if fits == n_models else f": scaled down to {fits} models, the disk holds no more"))
    zoo = SyntheticZoo(n_models=fits, n_samples=n, num_classes=num_classes, seed=SEED)
    start = time.perf_counter()
    ids, reused = write_zoo(root, zoo, fits, block=5000)
    print(f"   {fits} models x {n} x {num_classes} float16 ({fits * n * num_classes * 2 / 1e9:.1f} GB): wrote "
          f"{fits - reused} in {time.perf_counter() - start:.0f} s" + (f", {reused} were already there" if reused else ""))
    shutil.rmtree(root / "cache", ignore_errors=True)
    full_s, full_cpu, rss, out = run_stage(root)
    cached_s, cached_cpu, _, _ = run_stage(root)
    loop_s, kernel_s = one_pair(root, ids)
    pairs = fits * (fits - 1) // 2
    print(f"   {'':<56}{'wall s':>9}{'CPU s':>9}")
    print(f"   {'ensemble stage, every pair computed (' + str(pairs) + ' pairs)':<56}{full_s:>9.1f}{full_cpu:>9.1f}"
          f"   peak RSS {rss:.2f} GB")
    print(f"   {'ensemble stage again, every pair cached':<56}{cached_s:>9.1f}{cached_cpu:>9.1f}")
    print(f"   {'one pair: per-pair functions on the memory-mapped files':<56}{'':>9}{loop_s:>9.2f}")
    print(f"   {'one pair: ensemble_pairs':<56}{'':>9}{kernel_s:>9.2f}")
    print(f"   {'per pair within the full stage':<56}{'':>9}{full_cpu / pairs:>9.3f}")
    print("   stage output: " + out.strip().splitlines()[0] + " ... " + out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--imagenet", type=Path, metavar="DIR", help="also run the ImageNet-scale benchmark, files under DIR")
    args = p.parse_args()
    bench_small()
    if args.imagenet:
        bench_imagenet(args.imagenet)


if __name__ == "__main__":
    main()
