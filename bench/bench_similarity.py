"""The similarity stage's neighbour search and its per-pair cache, each against a baseline measured in the
same run, printed as tables.

    python bench/bench_similarity.py              # the first two parts
    python bench/bench_similarity.py --part knn   # or: --part incremental
    python bench/bench_similarity.py --part scale [--n 50000 --d 2048 --models 100]   # ImageNet scale, projected

1. Mutual k-NN (k=10) of two 20,000 x 512 embeddings: the library's path (``zooscope.similarity.neighbours.knn_ids``,
   FAISS in query blocks, no n x n matrix) against the way platonic-rep does it (the full n x n cosine
   similarity matrix in torch, then ``topk``). Each runs in its own subprocess so that its peak resident
   memory is its own; the script checks that both find the same neighbours and the same score.
2. Adding the 31st model to a 30-model zoo: the similarity and ensemble computations of the stages
   (``similarity_tables``; the cached ensemble rows and ``ensemble_table``) on a synthetic zoo, first
   for 30 models from an empty cache, then for 31 models reusing it, against 31 models from an empty
   cache. The incremental run computes the 30 new pairs only (and the overlap probes whose extreme
   pairs changed); the script checks that it gives the same table as the full run.
3. ImageNet scale (``--part scale``): the similarity stage's scores on two synthetic float16 embeddings of
   ``--n`` x ``--d`` (memory-mapped, as the stage reads them), each part timed once (a model's centred Gram
   summary, one CKA product, one shuffled null draw, a FAISS k-NN search on a sample of queries, the mutual
   k-NN score of a pair with its 20-shuffle null), then projected to ``--models`` models (every pair, 20 null
   draws each, as the stage computes them) with the memory the stage would hold.

Times are wall seconds on this machine; ratios compare runs of the same script.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

N, D, K = 20_000, 512, 10


def _pair(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Two related embeddings [N, D]: y is a random rotation of x plus noise, so neighbours partly agree."""
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(200, D)).astype(np.float32)
    x = centres[rng.integers(0, 200, N)] + rng.normal(size=(N, D)).astype(np.float32)
    q, _ = np.linalg.qr(rng.normal(size=(D, D)))
    return x, (x @ q.astype(np.float32) + 0.5 * rng.normal(size=(N, D)).astype(np.float32)).astype(np.float32)


def _child_knn(way: str, out: Path) -> None:
    """In a subprocess: neighbours of both embeddings one way; writes ids, prints seconds and peak RSS."""
    x, y = _pair()
    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    start = time.perf_counter()
    if way == "faiss":
        from zooscope.similarity import knn_ids

        ids = [knn_ids(e, k=K) for e in (x, y)]
    else:
        import torch

        ids = []
        for e in (x, y):
            t = torch.nn.functional.normalize(torch.from_numpy(e), dim=1)
            sim = t @ t.T  # [N, N], as platonic-rep's compute_nearest_neighbors
            sim.fill_diagonal_(-1e8)
            ids.append(sim.topk(K, dim=1).indices.numpy())
            del sim
    seconds = time.perf_counter() - start
    np.save(out, np.stack(ids))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": seconds, "peak_mb": peak / 1024, "above_inputs_mb": (peak - base) / 1024}))


def bench_knn() -> None:
    from zooscope.similarity import mutual_knn_scores

    results, ids = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for way in ("torch", "faiss"):
            out = Path(tmp) / f"{way}.npy"
            run = subprocess.run([sys.executable, __file__, "--child", way, str(out)], check=True,
                                 capture_output=True, text=True)
            results[way] = json.loads(run.stdout.strip().splitlines()[-1])
            ids[way] = np.load(out)
    same_sets = np.mean([set(a) == set(b) for m in range(2) for a, b in zip(ids["faiss"][m], ids["torch"][m])])
    scores = {way: mutual_knn_scores(v[0], v[1], n_perm=1)["mutual_knn"] for way, v in ids.items()}
    print(f"\nmutual k-NN, two {N:,} x {D} embeddings, k={K}")
    print(f"{'path':<34}{'seconds':>9}{'peak RSS MB':>13}{'above inputs MB':>17}{'score':>8}")
    for way, label in (("torch", "full n x n matrix in torch"), ("faiss", "FAISS, query blocks (zooscope)")):
        r = results[way]
        print(f"{label:<34}{r['seconds']:>9.2f}{r['peak_mb']:>13.0f}{r['above_inputs_mb']:>17.0f}{scores[way]:>8.4f}")
    print(f"same neighbour sets: {same_sets:.4%} of rows; memory above the inputs, torch / FAISS: "
          f"{results['torch']['above_inputs_mb'] / max(results['faiss']['above_inputs_mb'], 1):.1f}x")
    assert same_sets > 0.999 and abs(scores["faiss"] - scores["torch"]) < 1e-3, "the two paths disagree"


# ---------------------------------------------------------------------------------------------
# incremental pairwise runs

SPLIT_SIZES = {"train": 3000, "calibration": 1000, "eval": 5000}
NUM_CLASSES = 10
_ARCHS = ("cnn", "mlp", "vit", "resnet")


def _study(n_models: int):
    from zooscope.config import parse_study

    tags = {"seed": 0, "hyperparameters": "h", "architecture": "cnn", "framework": "supervised", "data": "d"}
    models = {f"m{m:02d}": {"source": "recipe:random_features", "arch": {"kind": "cnn", "widths": [4], "hidden": 8},
                            "tags": {**tags, "seed": m, "architecture": _ARCHS[m % 4],
                                     "framework": "supervised" if m % 5 else "contrastive"}}
              for m in range(n_models)}
    return parse_study({
        "dataset": {"source": "digits"}, "base": "m00", "threads": 2, "embed": {}, "probe": {"l2_grid": [0.01, 0.001]},
        "predict": {}, "similarity": {"concat_all_up_to": 8, "mix_max_pairs": 2, "mix_fractions": [0, 0.5, 1]},
        "ensemble": {}, "report": {}, "models": models})


def _write_zoo(root: Path, n_models: int, labels: dict[str, np.ndarray]) -> None:
    """Embeddings (a shared class signal plus model noise), probe accuracies, cards and predictions."""
    import polars as pl

    from zooscope.io import write_json

    rng = np.random.default_rng(1)
    means = rng.normal(size=(NUM_CLASSES, 32))
    for m in range(n_models):
        mid, r = f"m{m:02d}", np.random.default_rng(100 + m)
        mix = r.normal(size=(32, 64))
        for split, y in labels.items():
            x = (means[y] + r.normal(scale=2.0, size=(len(y), 32))) @ mix
            (root / "embeddings" / mid).mkdir(parents=True, exist_ok=True)
            np.save(root / "embeddings" / mid / f"{split}.npy", x.astype(np.float32))
        write_json(root / "probes" / mid / "probe.json", {"probe_acc": 0.8})
        logits = 2.0 * np.eye(NUM_CLASSES)[labels["eval"]] + r.normal(scale=1.5, size=(len(labels["eval"]), NUM_CLASSES))
        probs = np.exp(logits - logits.max(1, keepdims=True))
        probs /= probs.sum(1, keepdims=True)
        (root / "predictions" / mid).mkdir(parents=True, exist_ok=True)
        np.save(root / "predictions" / mid / "eval_probs.npy", probs.astype(np.float32))
        pl.DataFrame({"sample_id": np.arange(len(probs)), "label": labels["eval"], "pred": probs.argmax(1)}).write_parquet(
            root / "predictions" / mid / "eval.parquet")


def _pairwise(root: Path, n_models: int, labels: dict[str, np.ndarray], cache: Path):
    """The two stages' computations for the first ``n_models`` models: (pair table, seconds)."""
    from zooscope.ensemble import ensemble_keys, ensemble_rows, ensemble_table
    from zooscope.paircache import cached_pairs
    from zooscope.similarity import similarity_tables
    from zooscope.artifacts import read_predictions, unordered_pairs

    study = _study(n_models)
    ids = list(study.models)
    cards = {mid: {"tags": spec.tags.model_dump()} for mid, spec in study.models.items()}
    start = time.perf_counter()
    sim = similarity_tables(study, cards, embeddings=root / "embeddings", probes=root / "probes", cache=cache / "sim",
                            labels=labels, num_classes=NUM_CLASSES, progress=False)
    preds, pairs = read_predictions(root / "predictions", ids), unordered_pairs(ids)
    boot = {"n_boot": study.ensemble.n_boot, "seed": study.ensemble.seed}
    rows, _ = cached_pairs(cache / "ensemble.parquet", ensemble_keys(preds, pairs, **boot),
                           lambda todo: ensemble_rows(preds, todo, **boot), progress=False)
    table = ensemble_table(preds, cards, pairs, rows, matched_band=0.02, **boot)
    return (table.frame, sim.frame, sim.computed), time.perf_counter() - start


def bench_incremental() -> None:
    rng = np.random.default_rng(0)
    labels = {s: rng.integers(0, NUM_CLASSES, n) for s, n in SPLIT_SIZES.items()}
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _write_zoo(root, 31, labels)
        _, t30 = _pairwise(root, 30, labels, root / "cache")
        (frame, sim, computed), t_inc = _pairwise(root, 31, labels, root / "cache")
        (full_frame, full_sim, full_computed), t_full = _pairwise(root, 31, labels, root / "fresh")
        shutil.rmtree(root / "fresh")
    assert frame.equals(full_frame) and sim.equals(full_sim), "incremental and full runs differ"
    print(f"\nadding the 31st model to a 30-model zoo ({SPLIT_SIZES['eval']:,} eval samples, 64-d embeddings, "
          f"{NUM_CLASSES} classes, 1,000 bootstrap resamples)")
    print(f"{'run':<40}{'seconds':>9}  pairs computed (similarity, concatenated probes, mix curves)")
    print(f"{'30 models, empty cache':<40}{t30:>9.2f}")
    print(f"{'31 models, full (empty cache)':<40}{t_full:>9.2f}  {full_computed}")
    print(f"{'31 models, incremental (cache of 30)':<40}{t_inc:>9.2f}  {computed}")
    print(f"incremental / full: {t_inc / t_full:.2f} ({t_full / t_inc:.1f}x faster), same table")


def bench_scale(*, n: int, d: int, models: int, knn_queries: int, n_perm: int = 20, k: int = 10) -> None:
    from zooscope.models.knn import l2_normalize, search
    from zooscope.similarity.cka import MAX_ROWS_BYTES, _centred, _cka_pair, centred_gram
    from zooscope.similarity.neighbours import mutual_knn_pairs
    from zooscope.similarity.nulls import permutations

    rng = np.random.default_rng(0)
    with tempfile.TemporaryDirectory() as tmp:
        files = []
        for m in range(2):  # two related float16 embeddings, written and memory-mapped as the stage reads them
            x = rng.standard_normal((n, d), dtype=np.float32)
            if m:
                x += np.load(files[0], mmap_mode="r").astype(np.float32)
            files.append(Path(tmp) / f"m{m}.npy")
            np.save(files[-1], x.astype(np.float16))
            del x
        emb = [np.load(f, mmap_mode="r") for f in files]
        start = time.perf_counter()
        grams = [centred_gram(e) for e in emb]
        t_gram = (time.perf_counter() - start) / 2
        start = time.perf_counter()
        _cka_pair(grams[0], grams[1])
        t_pair = time.perf_counter() - start
        perm = next(permutations(n, n_perm=1, seed=0))
        start = time.perf_counter()
        _cka_pair(grams[0], grams[1].shuffled(perm))
        t_draw = time.perf_counter() - start
        del grams
        start = time.perf_counter()
        _centred(emb[1])
        t_centre = time.perf_counter() - start
        queries = min(knn_queries, n)
        unit = l2_normalize(emb[0])
        start = time.perf_counter()
        search(unit, unit[:queries], k=k + 1)
        t_knn = (time.perf_counter() - start) * n / queries
        ids = [((np.arange(n)[:, None] + 1 + rng.permutation(n - 1)[:k]) % n).astype(np.int32)
               for _ in range(2)]  # k distinct other samples per row, as knn_ids gives
        start = time.perf_counter()
        mutual_knn_pairs(ids, [(0, 1)], n_perm=n_perm)
        t_mknn = time.perf_counter() - start
    pairs = models * (models - 1) // 2
    row_bytes = n * d * 8
    group = max(1, (MAX_ROWS_BYTES - row_bytes) // 2 // row_bytes)  # models per group in cka_pairs
    groups = -(-models // group)
    # each of the groups * (groups + 1) / 2 blocks of pairs centres one group's rows, but the last (its rows stay);
    # each model's first centring is in its Gram summary
    centrings = groups * (groups + 1) // 2 * group - models - group if groups > 1 else 0
    parts = {"centred Gram summaries (one per model)": (t_gram, models * t_gram),
             f"rows centred again, groups of {group} model(s) in {MAX_ROWS_BYTES >> 30} GiB": (t_centre,
                                                                                           centrings * t_centre),
             f"CKA products (one per pair, then {n_perm} null draws)": (t_pair + n_perm * t_draw,
                                                                        pairs * (t_pair + n_perm * t_draw)),
             f"FAISS k-NN of each model (k={k}, {n:,} queries; {queries:,} timed, scaled)": (t_knn, models * t_knn),
             f"mutual k-NN with its {n_perm}-shuffle null (one per pair)": (t_mknn, pairs * t_mknn)}
    total = sum(v[1] for v in parts.values())
    held_gb = (min(models, 2 * group) + 1) * row_bytes / 1e9 + models * n * (16 + 4 * k) / 1e9
    print(f"\nthe similarity scores at {n:,} samples x {d:,} features (float16 on disk), measured on 2 models and "
          f"projected to {models} models ({pairs:,} pairs)")
    print(f"{'part':<72}{'s per model or pair':>20}{f'x {models} models':>16}")
    for name, (one, all_) in parts.items():
        print(f"{name:<72}{one:>20.2f}{all_ / 3600:>14.1f} h")
    print(f"{'total':<72}{'':>20}{total / 3600:>14.1f} h  ({total / 86400:.1f} days on this machine)")
    print(f"one model's centred float64 rows: {row_bytes / 1e6:,.0f} MB; the stage holds at most "
          f"{held_gb:,.1f} GB for {models} models (two groups' rows and a shuffled copy, every model's O(n) "
          f"summaries and neighbour lists), against {models * row_bytes / 1e9:,.0f} GB for every model's rows at once; one CKA product "
          f"{t_pair:.2f} s, one null draw with its shuffle {t_draw:.2f} s")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("knn", "incremental", "all", "scale"), default="all",
                   help="which benchmark to run (all: knn and incremental)")
    p.add_argument("--n", type=int, default=50_000, help="scale: samples (default 50,000, ImageNet's validation set)")
    p.add_argument("--d", type=int, default=2_048, help="scale: embedding width (default 2,048, a ResNet-50's)")
    p.add_argument("--models", type=int, default=100, help="scale: models projected to (default 100)")
    p.add_argument("--knn-queries", type=int, default=5_000, help="scale: k-NN queries timed (default 5,000)")
    p.add_argument("--child", nargs=2, metavar=("WAY", "OUT"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        _child_knn(args.child[0], Path(args.child[1]))
        return
    if args.part in ("knn", "all"):
        bench_knn()
    if args.part in ("incremental", "all"):
        bench_incremental()
    if args.part == "scale":
        bench_scale(n=args.n, d=args.d, models=args.models, knn_queries=args.knn_queries)


if __name__ == "__main__":
    main()
