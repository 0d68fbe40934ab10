"""The similarity stage's per-pair tables: representation similarity and overlapping features of a zoo.

Every pair gets linear and debiased CKA and mutual k-NN alignment on the eval embeddings, each with a
permutation null (``zooscope.similarity.cka``). Concatenated probes (``zooscope.similarity.overlap``) cover every pair
of a small zoo and, above ``similarity.concat_all_up_to`` models, the most and least similar pair of
each category (by debiased CKA); those extreme pairs also get the subsampled-mix curve (at most
``similarity.mix_max_pairs`` of them, the zoo's most and least similar first). All three are
cached per pair (``zooscope.paircache``), keyed by the embedding files they read. The scores of the pairs
not cached are computed in one go, so that each model's centred embedding, neighbour lists and shuffles
serve all its pairs; the probes, a few seconds each, write the cache after every pair.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import polars.selectors as cs

from zooscope._checks import is_constant
from zooscope.models import knn, probe
from zooscope.similarity import cka, neighbours, nulls, overlap
from zooscope.config import ProbeSettings, SimilaritySettings, Study, compression_roots
from zooscope.io import sha256_file
from zooscope.vocab import pair_categories
from zooscope.similarity.overlap import concat_probe_acc, extreme_pairs, mix_curve, outermost
from zooscope.paircache import Pair, cached_pairs, code_digest, digest
from zooscope.similarity.cka import cka_pairs
from zooscope.similarity.neighbours import knn_ids, mutual_knn_pairs
from zooscope.artifacts import embedding_file, read_probe_summary, unordered_pairs
from zooscope.data.datasets import SPLITS

__all__ = ["SimilarityTables", "similarity_tables", "cka_heatmap"]


@dataclass(frozen=True)
class SimilarityTables:
    """What the similarity stage writes, and how many pairs it computed (the rest came from the cache).

    Attributes:
        frame: one row per pair: model_a, model_b, category, CKA, debiased CKA and mutual k-NN with
            their nulls (``*_null``, ``*_null_std``, ``*_corrected``), each model's own probe accuracy and,
            where computed, ``concat_probe_acc`` and ``concat_gain`` (over the better single probe). A score that is
            undefined (an embedding that is the same for every sample) is null.
        mixes: one row per (extreme pair, share): ``share_a`` of the ``dim`` features from model_a.
        computed: stage part -> pairs computed this run (``similarity``, ``concat``, ``mix``).
    """

    frame: pl.DataFrame
    mixes: pl.DataFrame
    computed: dict[str, int]


class _Embeddings:
    """Memory-mapped ``<root>/<id>/<split>.npy`` files, their digests (each file hashed once per run, though the
    scores, the concatenated probes and the mixes all key on it) and whether each model's is constant."""

    def __init__(self, root: str | Path, *, threads: int) -> None:
        self.root, self.threads = Path(root), threads
        self._sha: dict[tuple[str, str], str] = {}
        self._constant: dict[str, bool] = {}

    def load(self, mid: str, split: str) -> np.ndarray:
        return np.load(embedding_file(self.root / mid, split), mmap_mode="r")

    def splits(self, mid: str) -> dict[str, np.ndarray]:
        return {s: self.load(mid, s) for s in SPLITS}

    def digest(self, mid: str, splits: tuple[str, ...]) -> str:
        for s in splits:
            if (mid, s) not in self._sha:
                self._sha[mid, s] = sha256_file(embedding_file(self.root / mid, s))
        return digest(*(self._sha[mid, s] for s in splits))

    def constant(self, mid: str) -> bool:
        """Whether the model's eval embedding is the same for every sample (checked once per model)."""
        if mid not in self._constant:
            self._constant[mid] = is_constant(self.load(mid, "eval"))
        return self._constant[mid]


def _keys(emb: _Embeddings, pairs: list[Pair], splits: tuple[str, ...], *settings: Any) -> dict[Pair, str]:
    """Per pair: a digest of both models' embedding files for ``splits``, the settings, the threads (the products'
    sums, FAISS's and the BLAS's, depend on how many share them) and this code."""
    files = {mid: emb.digest(mid, splits) for mid in {m for pair in pairs for m in pair}}
    code = code_digest(knn, cka, neighbours, nulls, overlap, probe, sys.modules[__name__])
    return {(a, b): digest(code, *settings, emb.threads, files[a], files[b]) for a, b in pairs}


def _columns(rows: list[dict[str, Any]]) -> dict[str, list[Any]]:
    """Per-pair result dicts (the same fields) as columns."""
    return {key: [row[key] for row in rows] for key in rows[0]}


def _pair_frame(pairs: list[Pair], cards: Mapping[str, Mapping[str, Any]], roots: Mapping[str, str]) -> pl.DataFrame:
    tags = {mid: card["tags"] for mid, card in cards.items()}
    return pl.DataFrame({"model_a": [a for a, _ in pairs], "model_b": [b for _, b in pairs],
                         "category": pair_categories(pairs, tags, roots=roots)},
                        schema={"model_a": pl.String, "model_b": pl.String, "category": pl.String})


def _scores(emb: _Embeddings, pairs: list[Pair], cache: Path, settings: SimilaritySettings,
            progress: bool) -> tuple[pl.DataFrame, int]:
    """CKA, debiased CKA and mutual k-NN of every pair, with nulls: (one row per pair, pairs computed). Mutual k-NN
    is NaN (missing) for a pair with an embedding that is the same for every sample, whose neighbour lists are
    then only the search's tie order."""

    def compute(todo: list[Pair]) -> dict[str, list[float]]:
        models = sorted({m for pair in todo for m in pair})
        at = {mid: i for i, mid in enumerate(models)}
        indices = [(at[a], at[b]) for a, b in todo]
        # once per model: its Gram summaries and its neighbour lists (the centred rows, within a memory bound)
        cka = cka_pairs([emb.load(mid, "eval") for mid in models], indices, n_perm=settings.n_perm, seed=settings.seed)
        knn = mutual_knn_pairs([knn_ids(emb.load(mid, "eval"), k=settings.knn_k).astype(np.int32) for mid in models],
                               indices, n_perm=settings.n_perm, seed=settings.seed)
        undefined = [emb.constant(a) or emb.constant(b) for a, b in todo]
        return _columns([c | (dict.fromkeys(k, float("nan")) if nan else k)
                         for c, k, nan in zip(cka, knn, undefined, strict=True)])

    keys = _keys(emb, pairs, ("eval",), "similarity", settings.knn_k, settings.n_perm, settings.seed)
    return cached_pairs(cache / "similarity.parquet", keys, compute, desc="CKA, mutual k-NN", progress=progress)


@dataclass(frozen=True)
class _Probes:
    """Linear probes on two models' features under the study's probe protocol, cached per pair."""

    emb: _Embeddings
    labels: Mapping[str, np.ndarray]
    num_classes: int
    settings: ProbeSettings
    cache: Path
    progress: bool

    def _key_parts(self) -> tuple[Any, ...]:
        labels = digest(*(hashlib.sha256(np.asarray(self.labels[s]).tobytes()).hexdigest() for s in SPLITS))
        return labels, list(self.settings.l2_grid), self.settings.max_iter, self.settings.tol

    @property
    def _protocol(self) -> dict[str, Any]:
        return {"num_classes": self.num_classes, "l2_grid": self.settings.l2_grid, "max_iter": self.settings.max_iter,
                "tol": self.settings.tol}

    def concat(self, pairs: list[Pair]) -> tuple[pl.DataFrame, int]:
        """``concat_probe_acc`` of each pair: (one row per pair, pairs computed)."""
        return cached_pairs(self.cache / "concat.parquet", _keys(self.emb, pairs, SPLITS, "concat", *self._key_parts()),
                            lambda todo: {"concat_probe_acc": [
                                concat_probe_acc([self.emb.splits(a), self.emb.splits(b)], self.labels, **self._protocol)
                                for a, b in todo]}, chunk=1, desc="concatenated probes", progress=self.progress)

    def mixes(self, pairs: list[Pair], settings: SimilaritySettings) -> tuple[pl.DataFrame, int]:
        """The subsampled-mix curve of each pair (``dim``, ``acc`` per share): (one row per pair, pairs computed)."""
        def compute(todo: list[Pair]) -> dict[str, list[Any]]:
            curves = [mix_curve(self.emb.splits(a), self.emb.splits(b), self.labels, fractions=settings.mix_fractions,
                                dim=settings.mix_dim, seed=settings.seed, **self._protocol) for a, b in todo]
            return {"dim": [dim for dim, _ in curves], "acc": [accs for _, accs in curves]}

        keys = _keys(self.emb, pairs, SPLITS, "mix", *self._key_parts(), list(settings.mix_fractions), settings.mix_dim,
                     settings.seed)
        return cached_pairs(self.cache / "mix.parquet", keys, compute, chunk=1, desc="mix curves", progress=self.progress)


def similarity_tables(study: Study, cards: Mapping[str, Mapping[str, Any]], *, embeddings: str | Path,
                      probes: str | Path, cache: str | Path, labels: Mapping[str, np.ndarray],
                      num_classes: int, progress: bool = True) -> SimilarityTables:
    """Similarity and overlap of every pair of the study's zoo, reusing cached pairs.

    Args:
        study: the study (models in order, ``similarity`` and ``probe`` settings).
        cards: model id -> card (for ``tags``).
        embeddings: folder of ``<id>/{train,calibration,eval}.npy``; probes: folder of ``<id>/probe.json``.
        cache: folder of the per-pair caches (``similarity.parquet``, ``concat.parquet``, ``mix.parquet``).
        labels: split name -> int [n_split], the labels of the embeddings' rows; num_classes: of the dataset.
        progress: progress bars over the pairs computed.
    """
    settings, emb, cache = study.similarity, _Embeddings(embeddings, threads=study.threads), Path(cache)
    ids, roots = list(study.models), compression_roots(study.models)
    pairs = unordered_pairs(ids)
    rows, n_scores = _scores(emb, pairs, cache, settings, progress)
    own = {mid: read_probe_summary(Path(probes) / mid)["probe_acc"] for mid in ids}
    frame = pl.concat([_pair_frame(pairs, cards, roots), rows], how="horizontal").with_columns(
        probe_acc_a=pl.col("model_a").replace_strict(own, return_dtype=pl.Float64),
        probe_acc_b=pl.col("model_b").replace_strict(own, return_dtype=pl.Float64))

    extremes = extreme_pairs(frame, score="cka_debiased")
    probing = _Probes(emb, labels, num_classes, study.probe, cache, progress)
    concat_pairs = pairs if len(ids) <= settings.concat_all_up_to else extremes
    concat, n_concat = probing.concat(concat_pairs)
    mixed = outermost(frame, extremes, score="cka_debiased", limit=settings.mix_max_pairs)
    mixes, n_mix = probing.mixes(mixed, settings)

    concat = pl.concat([_pair_frame(concat_pairs, cards, roots).drop("category"), concat], how="horizontal")
    frame = frame.join(concat, on=["model_a", "model_b"], how="left", maintain_order="left").with_columns(
        concat_gain=pl.col("concat_probe_acc") - pl.max_horizontal("probe_acc_a", "probe_acc_b"))
    shares = pl.Series("share_a", [list(settings.mix_fractions)] * len(mixed), dtype=pl.List(pl.Float64))
    mix_frame = (pl.concat([_pair_frame(mixed, cards, roots), mixes], how="horizontal").with_columns(shares)
                 .explode("share_a", "acc").rename({"acc": "probe_acc"}))
    frame = frame.with_columns(cs.float().fill_nan(None))  # undefined scores (a constant embedding) are missing
    return SimilarityTables(frame, mix_frame, {"similarity": n_scores, "concat": n_concat, "mix": n_mix})


def cka_heatmap(frame: pl.DataFrame, ids: list[str]) -> pl.DataFrame:
    """Linear and debiased CKA of every ordered pair of models, the diagonal (1) included: the heatmap's data."""
    cols = ["model_a", "model_b", "cka", "cka_debiased"]
    swapped = frame.select(pl.col("model_b").alias("model_a"), pl.col("model_a").alias("model_b"), "cka", "cka_debiased")
    diagonal = pl.DataFrame({"model_a": ids, "model_b": ids, "cka": [1.0] * len(ids), "cka_debiased": [1.0] * len(ids)})
    return pl.concat([frame.select(cols), swapped, diagonal])
