"""Recipes train deterministically, and each one yields a network of the declared kind."""

from __future__ import annotations

import pytest
import torch

from zooscope.config import Augment, ModelSpec
from zooscope.zoo.recipes import augment_batch, train_recipe

TAGS = {"seed": 0, "hyperparameters": "h", "architecture": "a", "framework": "f", "data": "d"}
CNN = {"kind": "cnn", "widths": [4, 8], "hidden": 16}


def _spec(recipe: str, train: dict | None = None, arch: dict = CNN, seed: int = 0) -> ModelSpec:
    return ModelSpec(source=f"recipe:{recipe}", tags={**TAGS, "seed": seed}, arch=arch, train=train)


def _weights(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_same_params_give_identical_weights_and_another_seed_does_not(digits):
    spec = _spec("supervised", {"epochs": 1, "batch_size": 64, "augment": {"shift": 1, "hflip": 0.5, "erase": 0.5, "erase_size": 3}})
    a, pre_a, _ = train_recipe(spec, dataset=digits, progress=False)
    b, pre_b, _ = train_recipe(spec, dataset=digits, progress=False)
    wa, wb = _weights(a), _weights(b)
    assert pre_a == pre_b
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
    c, _, _ = train_recipe(_spec("supervised", spec.train, seed=1), dataset=digits, progress=False)
    assert not torch.equal(wa["fc.weight"], _weights(c)["fc.weight"])


@pytest.mark.parametrize("recipe,train,has_head", [
    ("supervised", {"epochs": 1, "optimizer": "sgd", "lr": 0.05, "label_smoothing": 0.1}, True),
    ("simclr", {"epochs": 1, "batch_size": 64}, False),
    ("autoencoder", {"epochs": 1}, False),
    ("random_features", None, False),
])
def test_each_recipe_builds_the_declared_kind_of_network(digits, recipe, train, has_head):
    arch = {**CNN, "embedding": "conv+hidden"} if recipe in ("simclr", "autoencoder") else CNN
    model, pre, summary = train_recipe(_spec(recipe, train, arch), dataset=digits, progress=False)
    out = model(torch.zeros(2, 1, 8, 8))
    assert out.shape[1] == (digits.num_classes if has_head else model.num_features)
    assert pre["kind"] == "native" and len(pre["mean"]) == 1
    assert not model.training


def test_supervised_training_learns_digits(digits):
    """A real learning signal: well above the 10 % chance level after a few epochs."""
    from zooscope.data.transforms import native_tensor

    model, pre, _ = train_recipe(_spec("supervised", {"epochs": 8, "batch_size": 32, "lr": 0.01}), dataset=digits, progress=False)
    pos = digits.split("eval")
    with torch.inference_mode():
        pred = model(native_tensor(digits.images[pos], pre)).argmax(1).numpy()
    assert (pred == digits.labels[pos]).mean() > 0.8


def test_distillation_retrains_a_teacher_identical_to_the_zoo_model(digits):
    base = {"source": "recipe:supervised", "tags": TAGS, "arch": CNN, "train": {"epochs": 1, "batch_size": 64}}
    _, _, base_summary = train_recipe(ModelSpec(**base), dataset=digits, progress=False)
    student_spec = _spec("distill", {"epochs": 1, "batch_size": 64, "teacher": base})
    student, _, summary = train_recipe(student_spec, dataset=digits, progress=False)
    # the teacher retrained inside the student's stage follows the zoo model's exact trajectory
    assert summary["teacher"]["final_loss"] == base_summary["final_loss"] > 0
    assert student(torch.zeros(1, 1, 8, 8)).shape == (1, digits.num_classes)


def test_augment_batch_shift_moves_pixels_and_keeps_the_background():
    x = torch.zeros(1, 1, 5, 5)
    x[0, 0, 2, 2] = 1.0
    g = torch.Generator().manual_seed(0)
    out = augment_batch(x, Augment(shift=2), background=torch.tensor([0.0]), generator=g)
    assert out.sum() in (0.0, 1.0)  # the pixel moved (or left the frame), nothing was invented
    erased = augment_batch(torch.ones(4, 1, 6, 6), Augment(erase=1.0, erase_size=3), background=torch.tensor([-1.0]),
                           generator=g)
    assert ((erased == -1).sum(dim=(1, 2, 3)) == 9).all()
    flipped = augment_batch(torch.arange(4.0).view(1, 1, 1, 4), Augment(hflip=1.0), background=torch.tensor([0.0]),
                            generator=g)
    assert flipped.flatten().tolist() == [3.0, 2.0, 1.0, 0.0]


def test_training_sets_the_deterministic_flags_of_the_public_switch_without_importing_the_compiler():
    """What torch.use_deterministic_algorithms(True, warn_only=True) reports afterwards, read through torch's own
    public getters, in a fresh process that never imports torch._inductor."""
    import subprocess
    import sys

    probe = ("import sys, torch\n"
             "from zooscope.zoo.recipes import _deterministic_kernels\n"
             "assert not torch.are_deterministic_algorithms_enabled()\n"
             "_deterministic_kernels()\n"
             "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),"
             " 'torch._inductor' in sys.modules)\n"
             "torch.use_deterministic_algorithms(True, warn_only=True)\n"
             "print(torch.are_deterministic_algorithms_enabled(), torch.is_deterministic_algorithms_warn_only_enabled(),"
             " 'torch._inductor' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[0] == "True True False"  # the flags set, the compiler not loaded
    assert out[1] == "True True True"   # the public switch: the same flags, and it loads the compiler


def test_imbalance_keeps_a_seeded_share_of_one_class_by_hand():
    import numpy as np

    from zooscope.config import Imbalance
    from zooscope.zoo.recipes import imbalanced

    labels = np.array([0, 1, 1, 2, 1, 0, 1, 1, 1, 1, 1, 2])  # class 1: 8 samples at positions 1, 2, 4, 6..10
    positions = np.arange(100, 112)
    got = imbalanced(positions, labels, Imbalance(label=1, keep=0.25, seed=3), num_classes=3)
    kept = sorted(np.random.default_rng(3).choice(np.flatnonzero(labels == 1), size=2, replace=False))
    assert list(got) == sorted([100, 103, 105, 111] + [100 + k for k in kept])
    assert len(imbalanced(positions, labels, Imbalance(label=1, keep=0.01), num_classes=3)) == 4 + 1  # at least one
    with pytest.raises(ValueError, match=r"train.imbalance.label: class 5 does not exist; the dataset has classes 0..2"):
        imbalanced(positions, labels, Imbalance(label=5, keep=0.5), num_classes=3)
    with pytest.raises(ValueError, match="no sample of class 2"):
        imbalanced(positions[:3], labels[:3], Imbalance(label=2, keep=0.5), num_classes=3)


def test_a_pruned_model_fine_tunes_on_its_parents_training_data(digits):
    """Without train.subset, the fine-tune takes the parent's subset and imbalance (here: a tenth of class 3's
    samples), up a chain of compressions too; with it, its own."""
    import copy

    from tests.conftest import TINY_STUDY
    from zooscope.config import ModelSpec, recipe_train_options
    from zooscope.zoo.recipes import _parent_data, imbalanced
    from zooscope.zoo.sources import fetch_model

    parent = copy.deepcopy(TINY_STUDY["models"]["cnn_a"])
    parent["train"] |= {"imbalance": {"label": 3, "keep": 0.1, "seed": 0}}
    tags = {**parent["tags"], "seed": 9}
    pruned = ModelSpec(source="recipe:prune", tags=tags, train={"parent": parent, "sparsity": 0.5, "epochs": 1})
    subset, imbalance = _parent_data(pruned, recipe_train_options(pruned))
    assert subset == "train" and (imbalance.label, imbalance.keep) == (3, 0.1)
    own = ModelSpec(source="recipe:prune", tags=tags, train={"parent": parent, "sparsity": 0.5, "subset": "train"})
    assert _parent_data(own, recipe_train_options(own)) == ("train", None)
    int8_of_pruned = ModelSpec(source="recipe:quantize", tags=tags, train={"parent": pruned.model_dump()})
    assert _parent_data(int8_of_pruned, recipe_train_options(int8_of_pruned))[1].label == 3
    fetched = fetch_model(pruned, dataset=digits, progress=False)
    pos = digits.split("train")
    kept = imbalanced(pos, digits.labels[pos], imbalance, num_classes=digits.num_classes)
    assert fetched.training["compression"]["finetune"]["train_samples"] == len(kept) < len(pos)
