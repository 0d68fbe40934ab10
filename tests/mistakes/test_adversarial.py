"""FGSM / PGD on tiny networks trained on digits, the transfer matrix, and probe round trips."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from zooscope.mistakes import (attack, classifier, fgsm, matrix_correlation, pgd, pixel_inputs, predict,
                               robust_accuracy, transfer_matrix, transfer_rates)
from zooscope.config import ArchSpec
from zooscope.data.transforms import native_preprocess
from zooscope.models import fit_probe, load_probe, save_probe
from zooscope.zoo.arch import build_arch

EPS = (0.0, 0.03, 0.1, 0.3)


def _train(digits, arch: dict, *, num_classes: int, seed: int, pre: dict) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = build_arch(ArchSpec(**arch), in_chans=1, image_size=8, num_classes=num_classes)
    tr = digits.split("train")
    x = (pixel_inputs(digits, tr, pre) - pre["mean"][0]) / pre["std"][0]
    y = torch.as_tensor(digits.labels[tr])
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(30):
        for i in range(0, len(x), 128):
            opt.zero_grad()
            torch.nn.functional.cross_entropy(model(x[i:i + 128]), y[i:i + 128]).backward()
            opt.step()
    return model.eval()


@pytest.fixture(scope="module")
def zoo(digits):
    """Two tiny CNNs and an MLP with heads, and a headless random CNN with a fitted linear probe."""
    torch.set_num_threads(1)
    pre = native_preprocess(digits.images[digits.split("train")])
    cnn = {"kind": "cnn", "widths": [4, 8], "hidden": 16}
    fns = {f"cnn{s}": classifier(_train(digits, cnn, num_classes=10, seed=s, pre=pre), mean=pre["mean"], std=pre["std"])
           for s in (0, 1)}
    fns["mlp"] = classifier(_train(digits, {"kind": "mlp", "hidden": [32]}, num_classes=10, seed=0, pre=pre),
                            mean=pre["mean"], std=pre["std"])
    torch.manual_seed(2)
    headless = build_arch(ArchSpec(**cnn), in_chans=1, image_size=8, num_classes=0).eval()
    emb = {s: headless((pixel_inputs(digits, digits.split(s), pre) - pre["mean"][0]) / pre["std"][0]).detach().numpy()
           for s in ("train", "calibration")}
    probe = fit_probe(emb["train"], digits.labels[digits.split("train")], emb["calibration"],
                      digits.labels[digits.split("calibration")], num_classes=10, l2_grid=(1e-3,), max_iter=200)
    fns["headless"] = classifier(headless, mean=pre["mean"], std=pre["std"], probe=vars(probe))
    ev = digits.split("eval")[:120]
    return fns, pixel_inputs(digits, ev, pre), torch.as_tensor(digits.labels[ev]), (headless, probe, pre)


def test_eps_zero_changes_nothing_and_accuracy_falls_as_eps_grows(zoo):
    fns, x, y, _ = zoo
    for name, fn in fns.items():
        assert torch.equal(fgsm(fn, x, y, eps=0.0), x) and torch.equal(pgd(fn, x, y, eps=0.0, steps=3), x)
        for method in ("fgsm", "pgd"):
            acc = [robust_accuracy(fn, x, y, method=method, eps=e, steps=5) for e in EPS]
            assert acc[0] == pytest.approx(float((predict(fn, x) == y.numpy()).mean()))
            assert acc[0] > 0.5 and acc[-1] < acc[1] <= acc[0] and acc[-1] < 0.5 * acc[0], (name, method, acc)


def test_pgd_stays_in_the_ball_and_is_seeded(zoo):
    fns, x, y, _ = zoo
    a = pgd(fns["cnn0"], x, y, eps=0.1, steps=4, seed=3)
    assert (a - x).abs().max() <= 0.1 + 1e-6 and a.min() >= 0 and a.max() <= 1
    assert torch.equal(a, pgd(fns["cnn0"], x, y, eps=0.1, steps=4, seed=3))
    assert not torch.equal(a, pgd(fns["cnn0"], x, y, eps=0.1, steps=4, seed=4))
    batched = attack(fns["cnn0"], x, y, method="fgsm", eps=0.1, batch_size=7)
    assert torch.allclose(batched, fgsm(fns["cnn0"], x, y, eps=0.1), atol=1e-6)
    with pytest.raises(ValueError, match="known: fgsm, pgd"):
        attack(fns["cnn0"], x, y, method="cw", eps=0.1)


@pytest.mark.parametrize("method", ["fgsm", "pgd"])
def test_transfer_diagonal_is_each_models_own_robust_accuracy(zoo, method):
    fns, x, y, _ = zoo
    kept = tuple(fns)[:2]
    got = transfer_matrix(fns, {m: x for m in fns}, y, method=method, eps=0.1, steps=3, keep=kept)
    assert got.accuracy.shape == (4, 4) and np.isfinite(got.accuracy).all()
    for i, m in enumerate(fns):
        assert got.accuracy[i, i] == robust_accuracy(fns[m], x, y, method=method, eps=0.1, steps=3)
    assert set(got.examples) == set(kept) and got.adversarial.shape == (4, 4, len(x))
    for i, m in enumerate(fns):  # every target's answers on each source's examples give the matrix's row
        np.testing.assert_array_equal(got.clean[i], predict(fns[m], x))
        np.testing.assert_array_equal((got.adversarial[i] == y.numpy()).mean(1), got.accuracy[i])
    for m in kept:
        assert got.examples[m].shape == (len(x), 1, 8, 8)
        for j, target in enumerate(fns):
            np.testing.assert_array_equal(got.adversarial[list(fns).index(m), j], predict(fns[target], got.examples[m]))
    # examples crafted on a model fool it more than they fool the others
    assert (np.diag(got.accuracy)[:, None] <= got.accuracy + 1e-12).mean() > 0.8


def test_headless_classifier_is_the_probe_on_the_embedding_and_probe_round_trips(zoo, tmp_path):
    fns, x, _, (headless, probe, pre) = zoo
    emb = headless((x - pre["mean"][0]) / pre["std"][0]).detach().numpy()
    with torch.no_grad():
        np.testing.assert_allclose(fns["headless"](x).numpy(), probe.logits(emb), rtol=1e-4, atol=1e-4)
    save_probe(tmp_path / "probe.safetensors", probe)
    back = load_probe(tmp_path / "probe.safetensors")
    for k in ("mean", "scale", "weight", "bias"):
        np.testing.assert_array_equal(getattr(back, k), getattr(probe, k))
    assert back.l2 == probe.l2


def test_matrix_correlation():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(5, 5))
    got = matrix_correlation(a, 2 * a + 1)
    assert got["pearson"] == pytest.approx(1.0) and got["spearman"] == pytest.approx(1.0) and got["n"] == 20
    b = a.copy()
    b[0, 1] = np.nan
    assert matrix_correlation(a, b)["n"] == 19


def test_transfer_rate_counts_only_examples_that_fool_the_source_and_both_got_right():
    labels = np.array([0, 1, 2, 0, 1, 2])
    clean = np.array([[0, 1, 2, 0, 1, 0],    # model 0 right on samples 0-4
                      [0, 1, 2, 1, 1, 2]])   # model 1 right on 0, 1, 2, 4, 5
    adversarial = np.full((2, 2, 6), -1)
    adversarial[0, 0] = [1, 0, 2, 1, 0, 0]   # source 0 fooled on 0, 1, 3, 4 (5 was wrong when clean anyway)
    adversarial[0, 1] = [1, 1, 0, 1, 0, 2]   # target 1 fooled on 0, 2, 3, 4
    # eligible for 0 -> 1: fooled source, both right clean: samples 0, 1, 4 (3: model 1 wrong clean); 1 also fooled on 0, 4
    adversarial[1, 1] = [0, 1, 2, 0, 1, 2]   # source 1 fooled on nothing
    adversarial[1, 0] = [0, 1, 2, 0, 1, 2]
    got = transfer_rates(clean, adversarial, labels, n_boot=1000, seed=0)
    assert got["eligible"].tolist() == [[4, 3], [0, 0]]
    assert got["rate"][0, 1] == pytest.approx(2 / 3) and np.isnan(got["rate"][1, 0]) and np.isnan(got["rate"][0, 0])
    assert got["lo"][0, 1] <= 2 / 3 <= got["hi"][0, 1] and 0 <= got["lo"][0, 1] < got["hi"][0, 1] <= 1


def test_partial_correlation_removes_what_accuracy_explains():
    rng = np.random.default_rng(1)
    acc = rng.uniform(0.6, 0.95, 8)
    both = acc[:, None] + acc[None, :]  # both matrices move with accuracy only, plus independent noise
    a, b = both + 0.01 * rng.normal(size=(8, 8)), 2 * both + 0.01 * rng.normal(size=(8, 8))
    got = matrix_correlation(a, b, accuracy=acc)
    assert got["pearson"] > 0.95 and abs(got["pearson_partial"]) < 0.4 and got["n"] == 56
    shared = rng.normal(size=(8, 8))  # a common cause beyond accuracy survives the control
    got = matrix_correlation(both + shared, both + shared + 0.1 * rng.normal(size=(8, 8)), accuracy=acc)
    assert got["pearson_partial"] > 0.9 and got["spearman_partial"] > 0.8


def test_pgd_against_a_hand_written_loop_with_the_analytic_gradient():
    """On a linear classifier the input gradient of the summed cross entropy is (softmax - onehot) W^T: PGD
    written out with it, the same random start and step size, must give pgd's examples."""
    rng = np.random.default_rng(0)
    w, b = rng.normal(size=(12, 3)), rng.normal(size=3)
    wt, bt = torch.tensor(w, dtype=torch.float32), torch.tensor(b, dtype=torch.float32)
    fn = lambda x: x.flatten(1) @ wt + bt  # noqa: E731
    x = torch.tensor(rng.uniform(0, 1, size=(20, 1, 3, 4)), dtype=torch.float32)
    y = torch.tensor(rng.integers(0, 3, 20))
    eps, steps, seed = 0.1, 4, 7
    got = pgd(fn, x, y, eps=eps, steps=steps, seed=seed).numpy()

    x0 = x.numpy().astype(np.float64)
    start = (torch.rand(x.shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1).numpy() * eps
    adv, alpha = np.clip(x0 + start, 0, 1), 2.5 * eps / steps
    for _ in range(steps):
        logits = adv.reshape(20, -1) @ w + b
        p = np.exp(logits - logits.max(1, keepdims=True))
        p /= p.sum(1, keepdims=True)
        grad = ((p - np.eye(3)[y.numpy()]) @ w.T).reshape(x0.shape)
        adv = np.clip(np.clip(adv + alpha * np.sign(grad), x0 - eps, x0 + eps), 0, 1)
    np.testing.assert_allclose(got, adv, atol=1e-5)
    assert (np.abs(got - x0) <= eps + 1e-6).all()
