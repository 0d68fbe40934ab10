"""Model criticism with MMD-critic (Kim, Khanna, Koyejo, NeurIPS 2016; docs/science.md section 7).

For the samples X [n, d] of one class in a model's embedding, with the RBF kernel
k(x, y) = exp(-gamma ||x - y||^2):

- prototypes P (m of them) are picked greedily to minimise MMD^2(X, P), i.e. to maximise
  J(P) = 2 / (n |P|) sum_{i, p} k(x_i, p) - 1 / |P|^2 sum_{p, q} k(p, q)
  (MMD^2 = mean_{i,j} k(x_i, x_j) - J(P); the first term does not depend on P);
- criticisms C (c of them, never prototypes) are then picked greedily to maximise
  F(C) = sum_{z in C} |w(z)| + diversity * log det K_CC, with the witness
  w(z) = mean_i k(z, x_i) - mean_p k(z, p).

Everything is computed in blocks (torch, on the GPU when asked): the only kernel values held are a
[block, block] tile, the chosen points' rows [m + c, n_candidates] and vectors over the candidates,
so a class of 50,000 samples never materialises a 50,000 x 50,000 kernel. ``max_candidates`` limits
the points that may be picked (a seeded subset) while the mean embedding still uses every sample.

Two models' prototypes of a class are compared by :func:`prototype_mmd`: their MMD^2 in one shared embedding
(the base model's, in the mistakes stage), against its expectation for two random draws of the class.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

__all__ = ["Criticism", "median_gamma", "mmd_critic", "SetMMD", "prototype_mmd"]


@dataclass(frozen=True)
class Criticism:
    """MMD-critic picks for one sample set.

    Attributes:
        prototypes: int64 [m], row indices into X, in the order picked.
        criticisms: int64 [c], row indices into X, in the order picked.
        witness: float64 [c], the witness w(z) of each criticism (positive: the class is denser there
            than the prototypes suggest; negative: the prototypes over-represent that region).
        gamma: the RBF kernel's gamma.
    """

    prototypes: np.ndarray
    criticisms: np.ndarray
    witness: np.ndarray
    gamma: float


def median_gamma(x: np.ndarray, *, sample: int = 1000, seed: int = 0) -> float:
    """Median heuristic: gamma = 1 / (2 median^2), median of the pairwise distances of ``x`` [n, d]
    (of a seeded subset of ``sample`` rows when n is larger)."""
    x = np.asarray(x)
    if len(x) > sample:
        x = x[np.sort(np.random.default_rng(seed).choice(len(x), sample, replace=False))]
    t = torch.as_tensor(np.asarray(x, np.float64))
    dist = torch.pdist(t)
    med = float(dist.median()) if len(dist) else 0.0
    return 1.0 / (2.0 * med * med) if med > 0 else 1.0


def _sqnorm(t: torch.Tensor) -> torch.Tensor:
    return (t * t).sum(1)


def _kernel(a: torch.Tensor, a2: torch.Tensor, b: torch.Tensor, b2: torch.Tensor, gamma: float) -> torch.Tensor:
    """RBF kernel tile [len(a), len(b)] from rows and their squared norms."""
    d2 = (a2[:, None] + b2[None, :] - 2.0 * (a @ b.T)).clamp_(min=0.0)
    return torch.exp(d2.mul_(-gamma))


def _mean_embedding(x: torch.Tensor, x2: torch.Tensor, cand: torch.Tensor, c2: torch.Tensor, gamma: float,
                    block: int) -> torch.Tensor:
    """mu[j] = mean_i k(x_i, cand_j), in [block, block] tiles: float [n_candidates]."""
    mu = torch.zeros(len(cand), dtype=x.dtype, device=x.device)
    for i in range(0, len(x), block):
        xi, xi2 = x[i:i + block], x2[i:i + block]
        for j in range(0, len(cand), block):
            mu[j:j + block] += _kernel(xi, xi2, cand[j:j + block], c2[j:j + block], gamma).sum(0)
    return mu / len(x)


def _pick_prototypes(mu: torch.Tensor, row, m: int) -> tuple[list[int], torch.Tensor]:
    """Greedy argmax of J(P); ``row(j)`` is k(cand_j, cand) [n_candidates]. Returns (picks, s = sum_p k(p, .))."""
    s = torch.zeros_like(mu)
    picked: list[int] = []
    sum_mu, sum_k = 0.0, 0.0
    taken = torch.zeros(len(mu), dtype=torch.bool, device=mu.device)
    for size in range(1, m + 1):
        gain = 2.0 * (sum_mu + mu) / size - (sum_k + 2.0 * s + 1.0) / (size * size)
        gain[taken] = -torch.inf
        j = int(torch.argmax(gain))
        kj = row(j)
        sum_mu += float(mu[j])
        sum_k += 2.0 * float(s[j]) + 1.0
        s += kj
        taken[j] = True
        picked.append(j)
    return picked, s


def _pick_criticisms(witness: torch.Tensor, row, c: int, exclude: list[int], diversity: float) -> list[int]:
    """Greedy argmax of sum |w| + diversity * log det K_CC, the log det grown by incremental pivoted Cholesky."""
    resid = torch.ones_like(witness)  # k(z, z) - k_Cz^T K_CC^-1 k_Cz, the Schur complement
    chol_rows: list[torch.Tensor] = []  # rows of L^-1 K_C. [|C|, n_candidates]
    taken = torch.zeros(len(witness), dtype=torch.bool, device=witness.device)
    taken[exclude] = True
    picked: list[int] = []
    tiny = torch.finfo(witness.dtype).tiny
    for _ in range(c):
        gain = witness.abs() + diversity * torch.log(resid.clamp(min=tiny))
        gain[taken] = -torch.inf
        j = int(torch.argmax(gain))
        if not torch.isfinite(gain[j]):
            break
        v = row(j)
        for r in chol_rows:
            v = v - r[j] * r
        v = v / torch.sqrt(resid[j].clamp(min=tiny))
        chol_rows.append(v)
        resid = resid - v * v
        taken[j] = True
        picked.append(j)
    return picked


def mmd_critic(
    x: np.ndarray,
    *,
    prototypes: int,
    criticisms: int,
    gamma: float | None = None,
    diversity: float = 1.0,
    max_candidates: int | None = None,
    seed: int = 0,
    block: int = 4096,
    device: str | torch.device = "cpu",
) -> Criticism:
    """MMD-critic prototypes and criticisms of one class's embeddings.

    Args:
        x: float [n, d], one class's samples in a model's embedding (float64 input computes in float64,
            anything else in float32).
        prototypes: m >= 1 prototypes to pick; criticisms: c >= 0 criticisms.
        gamma: RBF gamma; None: the median heuristic (:func:`median_gamma`).
        diversity: weight of the log-det diversity term of the criticism objective.
        max_candidates: pick among a seeded subset of this many rows (None: every row); the mean
            embedding always uses every row.
        block: tile side of the blocked kernel sums.
        device: torch device of the computation.

    Returns:
        :class:`Criticism` with row indices into ``x``.
    """
    x = np.asarray(x)
    if x.ndim != 2 or len(x) == 0:
        raise ValueError(f"x must be a non-empty [n, d] array, got shape {x.shape}")
    n = len(x)
    n_cand = n if max_candidates is None else min(n, max_candidates)
    if prototypes < 1 or criticisms < 0 or prototypes + criticisms > n_cand:
        raise ValueError(f"need 1 <= prototypes and 0 <= criticisms with prototypes + criticisms <= {n_cand} "
                         f"candidates; got {prototypes} and {criticisms}")
    if gamma is None:
        gamma = median_gamma(x, seed=seed)
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    dtype = torch.float64 if x.dtype == np.float64 else torch.float32
    xt = torch.as_tensor(np.ascontiguousarray(x), dtype=dtype, device=device)
    cand_idx = np.arange(n) if n_cand == n else np.sort(np.random.default_rng(seed).choice(n, n_cand, replace=False))
    cand = xt if n_cand == n else xt[torch.as_tensor(cand_idx, device=xt.device)]
    x2, c2 = _sqnorm(xt), _sqnorm(cand)

    def row(j: int) -> torch.Tensor:
        return _kernel(cand[j:j + 1], c2[j:j + 1], cand, c2, gamma)[0]

    mu = _mean_embedding(xt, x2, cand, c2, gamma, block)
    protos, s = _pick_prototypes(mu, row, prototypes)
    witness = mu - s / len(protos)
    crits = _pick_criticisms(witness, row, criticisms, protos, diversity) if criticisms else []
    return Criticism(
        prototypes=cand_idx[protos].astype(np.int64),
        criticisms=cand_idx[crits].astype(np.int64),
        witness=witness[crits].double().cpu().numpy() if crits else np.zeros(0),
        gamma=float(gamma),
    )


@dataclass(frozen=True)
class SetMMD:
    """MMD^2 between sample sets of one class in one shared embedding (:func:`prototype_mmd`).

    Attributes:
        mmd2: float64 [s, s], MMD^2 (biased, V-statistic) between every two sets; zero diagonal.
        reference: float64 [s, s], its expectation for two independent uniform draws without replacement of
            the same sizes from the class: what "no more alike than random samples" means.
        gamma: the RBF kernel's gamma.
    """

    mmd2: np.ndarray
    reference: np.ndarray
    gamma: float


def prototype_mmd(
    x: np.ndarray,
    sets: Sequence[np.ndarray],
    *,
    gamma: float | None = None,
    seed: int = 0,
    block: int = 4096,
    device: str | torch.device = "cpu",
) -> SetMMD:
    """MMD^2 between every two of ``sets`` (e.g. each model's prototypes of one class) in one embedding ``x``.

    MMD^2(A, B) = mean_{a, a'} k(a, a') + mean_{b, b'} k(b, b') - 2 mean_{a, b} k(a, b), with the RBF kernel
    of :func:`mmd_critic`. Its reference, for random draws R_A and R_B of |A| and |B| of the n rows, is
    E MMD^2(R_A, R_B) = (1 - Kbar) [(n - |A|) / (|A| (n - 1)) + (n - |B|) / (|B| (n - 1))],
    Kbar = mean_{i, j} k(x_i, x_j) over all n^2 pairs (summed in [block, block] tiles).

    Args:
        x: float [n, d], the class's samples in the shared embedding.
        sets: s int arrays [m_i] of distinct row indices into ``x``.
        gamma: RBF gamma; None: the median heuristic of ``x`` (:func:`median_gamma`, ``seed``).
        block, device: as in :func:`mmd_critic`.
    """
    x = np.asarray(x)
    if x.ndim != 2 or len(x) < 2:
        raise ValueError(f"x must be an [n, d] array with n >= 2, got shape {x.shape}")
    n = len(x)
    rows = [np.asarray(r, np.int64) for r in sets]
    for r in rows:
        if r.ndim != 1 or len(r) == 0 or r.min() < 0 or r.max() >= n or len(np.unique(r)) != len(r):
            raise ValueError(f"each set must hold distinct row indices in [0, {n - 1}], got {r.tolist()}")
    if gamma is None:
        gamma = median_gamma(x, seed=seed)
    if gamma <= 0:
        raise ValueError(f"gamma must be positive, got {gamma}")
    xt = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float64, device=device)
    x2 = _sqnorm(xt)
    kbar = float(_mean_embedding(xt, x2, xt, x2, gamma, block).mean())
    union, inverse = np.unique(np.concatenate(rows), return_inverse=True)
    at_union = torch.as_tensor(union, device=xt.device)
    u, u2 = xt[at_union], x2[at_union]
    k = _kernel(u, u2, u, u2, gamma).cpu().numpy()
    at = np.split(inverse, np.cumsum([len(r) for r in rows])[:-1])
    cross = np.array([[k[np.ix_(a, b)].mean() for b in at] for a in at])
    self_term = np.diag(cross)
    sizes = np.array([len(r) for r in rows], np.float64)
    spread = (1.0 - kbar) * (n - sizes) / (sizes * (n - 1))
    return SetMMD(mmd2=np.clip(self_term[:, None] + self_term[None, :] - 2.0 * cross, 0.0, None),
                  reference=spread[:, None] + spread[None, :], gamma=float(gamma))
