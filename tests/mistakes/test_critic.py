"""MMD-critic against a slow, literal evaluation of its greedy objectives."""

from __future__ import annotations

import numpy as np
import pytest

from zooscope.mistakes import median_gamma, mmd_critic, prototype_overlap


def _literal(x: np.ndarray, *, m: int, c: int, gamma: float, diversity: float) -> tuple[list[int], list[int]]:
    """Full kernel; every greedy step evaluates MMD^2 and the criticism objective from their definitions."""
    k = np.exp(-gamma * ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1))
    n = len(x)

    def mmd2(p: list[int]) -> float:
        return k.mean() - 2 * k[:, p].mean() + k[np.ix_(p, p)].mean()

    protos: list[int] = []
    for _ in range(m):
        protos.append(min((j for j in range(n) if j not in protos), key=lambda j: mmd2([*protos, j])))
    witness = k.mean(0) - k[:, protos].mean(1)

    def objective(cs: list[int]) -> float:
        sign, logdet = np.linalg.slogdet(k[np.ix_(cs, cs)])
        return np.abs(witness[cs]).sum() + diversity * (logdet if sign > 0 else -np.inf)

    crits: list[int] = []
    for _ in range(c):
        crits.append(max((j for j in range(n) if j not in protos and j not in crits),
                         key=lambda j: objective([*crits, j])))
    return protos, crits


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_greedy_picks_match_the_literal_objective(seed):
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0, 1, (40, 5)), rng.normal(3, 0.5, (15, 5)), rng.normal(-4, 2, (5, 5))])
    gamma = median_gamma(x)
    for diversity in (1.0, 0.1):
        got = mmd_critic(x, prototypes=6, criticisms=4, gamma=gamma, diversity=diversity, block=16)
        protos, crits = _literal(x, m=6, c=4, gamma=gamma, diversity=diversity)
        assert got.prototypes.tolist() == protos
        assert got.criticisms.tolist() == crits
        k = np.exp(-gamma * ((x[:, None] - x[None]) ** 2).sum(-1))
        np.testing.assert_allclose(got.witness, (k.mean(0) - k[:, protos].mean(1))[crits], rtol=1e-10)


def test_blocks_and_float32_give_the_same_picks_and_candidates_subset_is_respected():
    rng = np.random.default_rng(3)
    x = rng.normal(size=(300, 8))
    a = mmd_critic(x, prototypes=5, criticisms=3, block=4096)
    b = mmd_critic(x.astype(np.float32), prototypes=5, criticisms=3, block=37)
    assert a.prototypes.tolist() == b.prototypes.tolist() and a.criticisms.tolist() == b.criticisms.tolist()
    sub = mmd_critic(x, prototypes=5, criticisms=3, max_candidates=50, seed=4)
    allowed = set(np.random.default_rng(4).choice(300, 50, replace=False).tolist())
    assert set(sub.prototypes.tolist()) | set(sub.criticisms.tolist()) <= allowed
    assert not set(sub.prototypes.tolist()) & set(sub.criticisms.tolist())


def test_prototypes_cover_the_big_modes_and_criticisms_the_mode_they_miss():
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(0, 0.3, (100, 2)), rng.normal(5, 0.3, (100, 2)), rng.normal((0, 5), 0.3, (60, 2))])
    got = mmd_critic(x, prototypes=2, criticisms=2, gamma=1.0)
    assert sorted(int(p) // 100 for p in got.prototypes) == [0, 1]
    # the strongest criticism lies in the mode no prototype covers, where the class is denser than they say
    assert got.criticisms[0] >= 200 and got.witness[0] > 0


def test_bad_input_and_overlap():
    with pytest.raises(ValueError, match="candidates"):
        mmd_critic(np.zeros((3, 2)), prototypes=3, criticisms=1)
    with pytest.raises(ValueError, match=r"\[n, d\]"):
        mmd_critic(np.zeros(3), prototypes=1, criticisms=0)
    ov = prototype_overlap({"a": np.array([1, 2, 3]), "b": np.array([3, 4]), "c": np.array([7])})
    assert ov == {("a", "b"): 0.25, ("a", "c"): 0.0, ("b", "c"): 0.0}
