"""MMD-critic against a slow, literal evaluation of its greedy objectives; the MMD between prototype sets against
a double loop, and its reference against every possible pair of random draws."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from zooscope.mistakes import median_gamma, mmd_critic, prototype_mmd


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


def _rbf(a: np.ndarray, b: np.ndarray, gamma: float) -> float:
    return float(np.exp(-gamma * ((a - b) ** 2).sum()))


def _mmd2_loop(x: np.ndarray, a: list[int], b: list[int], gamma: float) -> float:
    """MMD^2 between rows ``a`` and ``b`` of ``x`` from its definition, one kernel value at a time."""
    def mean(p: list[int], q: list[int]) -> float:
        return sum(_rbf(x[i], x[j], gamma) for i in p for j in q) / (len(p) * len(q))
    return mean(a, a) + mean(b, b) - 2 * mean(a, b)


def test_prototype_mmd_matches_a_double_loop_and_is_zero_for_the_same_set():
    rng = np.random.default_rng(5)
    x = rng.normal(size=(40, 3)).astype(np.float32)
    sets = [np.array([3, 1, 7]), np.array([7, 3, 1]), np.array([10, 20, 30, 39]), np.array([0])]
    got = prototype_mmd(x, sets, gamma=0.3, block=7)
    x64 = x.astype(np.float64)
    for i, j in itertools.product(range(4), repeat=2):
        assert got.mmd2[i, j] == pytest.approx(_mmd2_loop(x64, sets[i].tolist(), sets[j].tolist(), 0.3), abs=1e-12)
    assert got.mmd2[0, 1] == pytest.approx(0.0, abs=1e-12) and (np.diag(got.mmd2) == 0).all()  # same set, any order
    np.testing.assert_allclose(got.mmd2, got.mmd2.T, atol=1e-15)
    assert got.gamma == 0.3
    assert prototype_mmd(x, sets[:1]).gamma == median_gamma(x)


def test_the_reference_is_the_mean_over_every_pair_of_random_draws():
    """Every draw of 2 and of 3 of 6 rows, each pair equally likely: the exact expectation of two random draws' MMD^2."""
    rng = np.random.default_rng(6)
    x = rng.normal(size=(6, 2))
    gamma = 0.7
    got = prototype_mmd(x, [np.array([0, 1]), np.array([2, 3, 4])], gamma=gamma)
    for i, (ma, mb) in enumerate([(2, 2), (2, 3), (3, 3)]):
        draws_a, draws_b = list(itertools.combinations(range(6), ma)), list(itertools.combinations(range(6), mb))
        exact = np.mean([_mmd2_loop(x, list(a), list(b), gamma) for a in draws_a for b in draws_b])
        row, col = [(0, 0), (0, 1), (1, 1)][i]
        assert got.reference[row, col] == pytest.approx(exact, rel=1e-10)
    # drawing every row twice gives the class itself both times: no spread left
    assert prototype_mmd(x, [np.arange(6)], gamma=gamma).reference[0, 0] == pytest.approx(0.0, abs=1e-15)


def test_sets_of_opposite_modes_are_farther_than_random_and_two_balanced_ones_closer():
    """A class of two equal modes: 8 samples of one mode against 8 of the other lie far beyond two random draws
    (ratio > 1); two sets with 4 of each mode, no sample in common, are closer than random draws (ratio < 1)."""
    rng = np.random.default_rng(7)
    x = np.concatenate([rng.normal(0, 1, (200, 2)), rng.normal(4, 1, (200, 2))])
    sets = [np.arange(0, 8), np.arange(200, 208), np.r_[0:4, 200:204], np.r_[4:8, 204:208]]
    got = prototype_mmd(x, sets, gamma=0.5)
    ratio = got.mmd2 / got.reference
    assert ratio[0, 1] > 3 and ratio[2, 3] < 1


def test_bad_input():
    with pytest.raises(ValueError, match="candidates"):
        mmd_critic(np.zeros((3, 2)), prototypes=3, criticisms=1)
    with pytest.raises(ValueError, match=r"\[n, d\]"):
        mmd_critic(np.zeros(3), prototypes=1, criticisms=0)
    with pytest.raises(ValueError, match="distinct row indices in \\[0, 2\\]"):
        prototype_mmd(np.zeros((3, 2)), [np.array([0, 3])])
    with pytest.raises(ValueError, match="distinct"):
        prototype_mmd(np.zeros((3, 2)), [np.array([1, 1])])
    with pytest.raises(ValueError, match="n >= 2"):
        prototype_mmd(np.zeros((1, 2)), [np.array([0])])


def test_critic_tables_compare_prototypes_in_the_base_embedding(tmp_path):
    """The stage's overlap rows, recomputed from its picks table with the double loop in the base's embedding."""
    from zooscope.config import MistakesSettings
    from zooscope.mistakes.tables import critic_tables

    rng = np.random.default_rng(8)
    labels = np.repeat([0, 1], 30)
    sample_ids = np.arange(100, 160)
    embeddings = {"a": rng.normal(size=(60, 4)), "b": rng.normal(size=(60, 3)), "c": rng.normal(size=(60, 5))}
    for mid, emb in embeddings.items():
        (tmp_path / mid).mkdir()
        np.save(tmp_path / mid / "eval.npy", emb.astype(np.float32))
    settings = MistakesSettings(prototypes=4, criticisms=2)
    picks, overlap, _ = critic_tables(tmp_path, list(embeddings), labels, sample_ids, num_classes=2, base="b",
                                      settings=settings, threads=1)
    assert len(picks) == 3 * 2 * (4 + 2) and len(overlap) == 2 * 3
    base = embeddings["b"].astype(np.float32).astype(np.float64)
    for row in overlap.iter_rows(named=True):
        members = np.flatnonzero(labels == row["class"])
        x = base[members]
        gamma = median_gamma(x)
        rows = {}
        for mid in (row["model_a"], row["model_b"]):
            ids = picks.filter(model=mid, kind="prototype")
            ids = ids.filter(ids["class"] == row["class"])["sample_id"].to_numpy()
            rows[mid] = [int(np.flatnonzero(sample_ids[members] == s)[0]) for s in ids]
        assert row["mmd2"] == pytest.approx(_mmd2_loop(x, rows[row["model_a"]], rows[row["model_b"]], gamma), abs=1e-9)
        kbar = np.mean([_rbf(p, q, gamma) for p in x for q in x])
        assert row["reference"] == pytest.approx(2 * (1 - kbar) * (30 - 4) / (4 * 29), rel=1e-9)
        assert row["ratio"] == pytest.approx(row["mmd2"] / row["reference"])
