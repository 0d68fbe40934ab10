"""The mistakes stage's expensive parts, each cached per model or per ordered pair (``zooscope.paircache``) in the
stage's cache folder, so a changed model costs its own work and its 2 (N - 1) transfer pairs:

- ``critic.parquet``: each model's MMD-critic picks per class, keyed by its eval embedding file, the eval labels,
  the critic settings and the device;
- ``robustness.parquet``: each model's accuracy under attack per (attack, budget), keyed by the model's files
  (weights, card, and the probe a headless model is attacked through), the attacked images and labels, the attack,
  its budget (steps and seed for PGD) and the device;
- ``examples/``: the transfer attack's examples crafted on each model, with its clean predictions and its own
  predictions on them (arrays, :func:`zooscope.paircache.cached_arrays`), keyed like the robustness rows;
- ``transfer.parquet``: per ordered pair (source, target), the target's predictions on the source's examples, keyed
  by the source's examples and the target's files.

Every key also holds a digest of the code that computes it. Each result depends on its own inputs and seeds only
(the attacks' random starts are seeded by ``mistakes.seed``, never drawn from a stream shared across models), so a
cached result is the one a run from an empty cache computes.
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch

from zooscope.artifacts import PROBE_WEIGHTS, WEIGHTS, CARD, embedding_file, read_card
from zooscope.config import MistakesSettings
from zooscope.data import transforms
from zooscope.io import sha256_file
from zooscope.mistakes import adversarial, critic
from zooscope.mistakes.adversarial import Classifier, Transfer, attack, classifier, pixel_inputs, predict, robust_accuracy
from zooscope.mistakes.critic import mmd_critic
from zooscope.paircache import Pair, cached_arrays, cached_pairs, code_digest, digest, uncached, uncached_arrays
from zooscope.zoo import arch, embedding, sources

__all__ = ["ZooModels", "critic_picks", "AttackPlan", "attack_plan", "robust_accuracies", "transfer_results",
           "robustness_rows"]

#: The files of the stage's cache folder.
CRITIC_CACHE, ROBUSTNESS_CACHE, EXAMPLES_CACHE, TRANSFER_CACHE = ("critic.parquet", "robustness.parquet", "examples",
                                                                  "transfer.parquet")
METHODS = ("fgsm", "pgd")


def _sha(array: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(array).tobytes()).hexdigest()


def _cache(folder: str | Path | None, name: str) -> Path | None:
    return Path(folder) / name if folder is not None else None


def _device_type(device: str | torch.device) -> str:
    return torch.device(device).type


# --------------------------------------------------------------------------- MMD-critic, per model


def critic_picks(embeddings_dir: str | Path, ids: list[str], labels: np.ndarray, *, num_classes: int,
                 settings: MistakesSettings, threads: int, device: str | torch.device = "cpu",
                 cache: str | Path | None = None, progress: bool = False,
                 ) -> tuple[dict[str, dict[int, dict[str, np.ndarray]]], int]:
    """MMD-critic (:func:`zooscope.mistakes.critic.mmd_critic`) on each model's eval embedding, per class with at
    least ``prototypes + criticisms`` samples, cached per model in ``<cache>/critic.parquet``, keyed by the settings,
    the device type and ``threads`` (the kernels' sums depend on how many threads share them).

    Returns:
        (model -> class -> {prototypes, criticisms: int64 row indices into the class's samples (``labels == c``, in
        order), witness: float64 of the criticisms}, models computed).
    """
    members = [np.flatnonzero(labels == c) for c in range(num_classes)]
    root = Path(embeddings_dir)
    code = code_digest(critic, sys.modules[__name__])
    parts = ("critic", code, settings.prototypes, settings.criticisms, settings.gamma, settings.max_candidates,
             settings.seed, _device_type(device), threads, _sha(np.asarray(labels, np.int64)), num_classes)
    keys = {mid: digest(*parts, sha256_file(embedding_file(root / mid, "eval"))) for mid in ids}

    def compute(todo: list[str]) -> dict[str, pl.Series]:
        out: dict[str, list] = {"class": [], "prototypes": [], "criticisms": [], "witness": []}
        for mid in todo:
            emb = np.load(embedding_file(root / mid, "eval"), mmap_mode="r")
            got = [(c, mmd_critic(np.asarray(emb[at]), prototypes=settings.prototypes, criticisms=settings.criticisms,
                                  gamma=settings.gamma, max_candidates=settings.max_candidates, seed=settings.seed,
                                  device=device))
                   for c, at in enumerate(members) if len(at) >= settings.prototypes + settings.criticisms]
            out["class"].append([c for c, _ in got])
            out["prototypes"].append([g.prototypes.tolist() for _, g in got])
            out["criticisms"].append([g.criticisms.tolist() for _, g in got])
            out["witness"].append([g.witness.tolist() for _, g in got])
        nested = pl.List(pl.List(pl.Int64))
        return {"class": pl.Series(out["class"], dtype=pl.List(pl.Int64)),
                "prototypes": pl.Series(out["prototypes"], dtype=nested),
                "criticisms": pl.Series(out["criticisms"], dtype=nested),
                "witness": pl.Series(out["witness"], dtype=pl.List(pl.List(pl.Float64)))}

    rows, computed = cached_pairs(_cache(cache, CRITIC_CACHE), keys, compute, chunk=1, desc="MMD-critic",
                                  progress=progress, unit="model")
    picks = {}
    for mid, row in zip(ids, rows.iter_rows(named=True), strict=True):
        picks[mid] = {c: {"prototypes": np.asarray(p, np.int64), "criticisms": np.asarray(k, np.int64),
                          "witness": np.asarray(w, np.float64)}
                      for c, p, k, w in zip(row["class"], row["prototypes"], row["criticisms"], row["witness"])}
    return picks, computed


# --------------------------------------------------------------------------- the models under attack


@dataclass
class ZooModels:
    """Each model's classifier, clean pixel inputs float32 [n, C, H, W] of ``positions`` and embedder (pixels ->
    embedding, numpy), loaded on ``device`` on first use, once. Headless models classify through their probe's
    weights (``<probes_dir>/<id>/probe.safetensors``)."""

    models_dir: Path
    probes_dir: Path
    dataset: Any
    positions: np.ndarray
    device: str | torch.device
    _loaded: dict[str, tuple[Classifier, torch.Tensor, Callable]] = field(default_factory=dict, repr=False)

    def __call__(self, mid: str) -> tuple[Classifier, torch.Tensor, Callable]:
        if mid not in self._loaded:
            from zooscope.models.probe import load_probe

            card = read_card(Path(self.models_dir) / mid)
            model = sources.load_network(card["builder"], str(Path(self.models_dir) / mid / WEIGHTS))
            pre = card["preprocess"]
            probe = None if card["has_head"] else vars(load_probe(Path(self.probes_dir) / mid / PROBE_WEIGHTS))
            fn = classifier(model, mean=pre["mean"], std=pre["std"], probe=probe, device=self.device)
            m = torch.tensor(pre["mean"], device=self.device).view(1, -1, 1, 1)
            s = torch.tensor(pre["std"], device=self.device).view(1, -1, 1, 1)
            embed = embedding.embedding_fn(model)
            self._loaded[mid] = (fn, pixel_inputs(self.dataset, self.positions, pre),
                                 lambda x, e=embed, m=m, s=s: _no_grad(lambda: e((x.to(m.device) - m) / s)[0].float()
                                                                       .cpu().numpy()))
        return self._loaded[mid]

    def files(self, mid: str) -> str:
        """Digest of what attacking the model reads: its weights and card, and its probe when it is headless."""
        folder = Path(self.models_dir) / mid
        read = [folder / WEIGHTS, folder / CARD]
        if not read_card(folder)["has_head"]:
            read.append(Path(self.probes_dir) / mid / PROBE_WEIGHTS)
        return digest(*(sha256_file(p) for p in read))

    def images(self) -> str:
        """Digest of the attacked samples: their ids, labels and images (the in-memory pixels and the image files
        that models with their own preprocessing read)."""
        d, pos = self.dataset, self.positions
        parts = [_sha(np.asarray(d.sample_ids[pos], np.int64)), _sha(np.asarray(d.labels[pos], np.int64))]
        if d.images is not None:
            parts += [_sha(d.images[pos]), list(d.images.shape[1:])]
        if d.paths is not None:
            parts.append([sha256_file(d.paths[int(p)]) for p in pos])
        return digest(*parts)


def _no_grad(f):
    with torch.inference_mode():
        return f()


# --------------------------------------------------------------------------- the attacks: what to compute


@dataclass(frozen=True)
class AttackPlan:
    """The attacks' cache keys and what is cached.

    Attributes:
        robustness: (model, attack, eps) -> key, every budget of ``mistakes.eps`` but the transfer attack's (the
            transfer matrix's diagonal gives that one).
        examples: model -> key of the transfer attack's examples crafted on it.
        transfer: ordered pair (source, target), source != target -> key.
        todo: part -> how many of its items are not cached (``robustness``, ``examples``, ``transfer``).
        images: samples attacked; steps: gradient steps per image the uncached attacks take (FGSM 1, PGD
            ``pgd_steps``).
    """

    robustness: dict[tuple[str, str, float], str]
    examples: dict[str, str]
    transfer: dict[Pair, str]
    todo: dict[str, int]
    images: int
    steps: int

    def describe(self, settings: MistakesSettings, device: str | torch.device) -> str:
        """One line: the attack work this run does, and what it takes from the cache."""
        todo = self.todo
        return (f"mistakes: attack work on {self.images} eval images ({_device_type(device)}; PGD {settings.pgd_steps} "
                f"steps, transfer {settings.transfer_attack.upper()} eps {settings.transfer_eps:g}): to compute "
                f"{todo['robustness']} of {len(self.robustness)} robustness attacks, the transfer examples of "
                f"{todo['examples']} of {len(self.examples)} models, {todo['transfer']} of {len(self.transfer)} "
                f"ordered transfer pairs (the rest cached): about {self.steps * self.images:,} image-gradient steps")


def _steps(method: str, settings: MistakesSettings) -> int:
    return settings.pgd_steps if method == "pgd" else 1


def attack_plan(zoo: ZooModels, ids: list[str], *, settings: MistakesSettings, threads: int,
                cache: str | Path | None) -> AttackPlan:
    """The keys of every attack result of the zoo ``ids`` (the models' files, the settings, the device type and
    torch's ``threads``, on which a gradient's sums depend) and how many are not cached in ``cache``."""
    code = code_digest(adversarial, sources, arch, embedding, transforms, sys.modules[__name__])
    files = {mid: zoo.files(mid) for mid in ids}
    base = (code, _device_type(zoo.device), threads, zoo.images())

    def budget(method: str, eps: float) -> tuple:  # FGSM has no steps and no random start
        return (method, eps) + ((settings.pgd_steps, settings.seed) if method == "pgd" else ())

    skip = (settings.transfer_attack, settings.transfer_eps)
    robustness = {(mid, method, eps): digest("robustness", *base, *budget(method, eps), files[mid])
                  for mid in ids for method in METHODS for eps in settings.eps if (method, eps) != skip}
    examples = {mid: digest("examples", *base, *budget(*skip), files[mid]) for mid in ids}
    transfer = {(a, b): digest("transfer", code, base[1], examples[a], files[b]) for a in ids for b in ids if a != b}
    todo_robust = uncached(_cache(cache, ROBUSTNESS_CACHE), robustness)
    todo_examples = uncached_arrays(_cache(cache, EXAMPLES_CACHE), examples)
    steps = sum(_steps(method, settings) for _, method, _ in todo_robust) + \
        len(todo_examples) * _steps(settings.transfer_attack, settings)
    todo = {"robustness": len(todo_robust), "examples": len(todo_examples),
            "transfer": len(uncached(_cache(cache, TRANSFER_CACHE), transfer))}
    return AttackPlan(robustness, examples, transfer, todo, len(zoo.positions), steps)


# --------------------------------------------------------------------------- the attacks, cached


def robust_accuracies(plan: AttackPlan, zoo: ZooModels, y: torch.Tensor, *, settings: MistakesSettings,
                      cache: str | Path | None = None, progress: bool = False
                      ) -> tuple[dict[tuple[str, str, float], float], int]:
    """Each model's accuracy on examples crafted against itself (:func:`zooscope.mistakes.adversarial.robust_accuracy`)
    for every budget of ``plan.robustness``: ((model, attack, eps) -> accuracy, attacks computed)."""
    def compute(todo: list[tuple[str, str, float]]) -> dict[str, list[float]]:
        acc = []
        for mid, method, eps in todo:
            fn, x, _ = zoo(mid)
            acc.append(robust_accuracy(fn, x, y, method=method, eps=eps, steps=settings.pgd_steps, seed=settings.seed))
        return {"accuracy": acc}

    rows, computed = cached_pairs(_cache(cache, ROBUSTNESS_CACHE), plan.robustness, compute, chunk=1,
                                  desc="robustness attacks", progress=progress, unit="attack")
    return dict(zip(plan.robustness, rows["accuracy"].to_list(), strict=True)), computed


def transfer_results(plan: AttackPlan, zoo: ZooModels, y: torch.Tensor, *, settings: MistakesSettings,
                     cache: str | Path | None = None, keep: tuple[str, ...] = (), progress: bool = False
                     ) -> tuple[Transfer, dict[str, int]]:
    """The transfer matrix (:func:`zooscope.mistakes.adversarial.transfer_matrix`, the same numbers) from the cached
    examples of each source and the cached predictions of each ordered pair: (the
    :class:`~zooscope.mistakes.adversarial.Transfer` with the examples of the ``keep`` sources, part -> items
    computed: ``examples`` (models), ``transfer`` (ordered pairs))."""
    ids = list(plan.examples)
    labels = y.numpy()

    def craft(mid: str) -> dict[str, np.ndarray]:
        fn, x, _ = zoo(mid)
        adv = attack(fn, x, y, method=settings.transfer_attack, eps=settings.transfer_eps, steps=settings.pgd_steps,
                     seed=settings.seed)
        return {"examples": adv.detach().cpu().numpy(), "clean": predict(fn, x), "own": predict(fn, adv)}

    crafted, n_examples = cached_arrays(_cache(cache, EXAMPLES_CACHE), plan.examples, craft,
                                        desc="transfer: examples", progress=progress, unit="model")
    last: dict[str, torch.Tensor] = {}  # the source whose examples are in use (pairs come grouped by source)

    def examples(mid: str) -> torch.Tensor:
        if mid not in last:
            last.clear()
            last[mid] = torch.from_numpy(np.array(crafted[mid]["examples"]))
        return last[mid]

    def targets(todo: list[Pair]) -> dict[str, np.ndarray]:
        comparable, preds = [], []
        for src, dst in todo:
            adv = examples(src)
            fn, x, _ = zoo(dst)
            comparable.append(x.shape == adv.shape)
            preds.append(predict(fn, adv) if comparable[-1] else np.full(len(labels), -1, np.int64))
        return {"comparable": comparable, "pred": np.stack(preds).astype(np.int64)}

    rows, n_pairs = cached_pairs(_cache(cache, TRANSFER_CACHE), plan.transfer, targets, chunk=len(ids),
                                 desc="transfer: targets", progress=progress)
    m = len(ids)
    acc = np.full((m, m), np.nan)
    preds = np.full((m, m, len(labels)), -1, np.int64)
    for a, mid in enumerate(ids):
        preds[a, a] = crafted[mid]["own"]
        acc[a, a] = float((preds[a, a] == labels).mean())
    index = {mid: i for i, mid in enumerate(ids)}
    if len(rows):
        for (src, dst), ok, pred in zip(plan.transfer, rows["comparable"].to_list(), rows["pred"].to_numpy(),
                                        strict=True):
            if ok:
                a, b = index[src], index[dst]
                preds[a, b] = pred
                acc[a, b] = float((preds[a, b] == labels).mean())
    clean = np.stack([np.asarray(crafted[mid]["clean"], np.int64) for mid in ids])
    kept = {mid: torch.from_numpy(np.array(crafted[mid]["examples"])) for mid in keep}
    return Transfer(tuple(ids), acc, clean, preds, kept), {"examples": n_examples, "transfer": n_pairs}


def robustness_rows(accuracies: Mapping[tuple[str, str, float], float], transfer: Transfer,
                    labels: np.ndarray, *, settings: MistakesSettings) -> pl.DataFrame:
    """Accuracy under attack of every model: {model, attack, eps, accuracy}, eps 0 the clean accuracy (from the
    transfer's clean predictions), the transfer attack's budget its diagonal; sorted by model, attack, eps."""
    rows = []
    for mid, clean in zip(transfer.models, transfer.clean, strict=True):
        clean_acc = float((clean == labels).mean())
        for method in METHODS:
            rows.append({"model": mid, "attack": method, "eps": 0.0, "accuracy": clean_acc})
            rows += [{"model": mid, "attack": method, "eps": eps, "accuracy": accuracies[mid, method, eps]}
                     for eps in settings.eps if (mid, method, eps) in accuracies]
    m = len(transfer.models)
    own = pl.DataFrame({"model": list(transfer.models), "attack": [settings.transfer_attack] * m,
                        "eps": [settings.transfer_eps] * m, "accuracy": np.diag(transfer.accuracy).copy()})
    return pl.concat([pl.DataFrame(rows), own]).sort("model", "attack", "eps", maintain_order=True)
