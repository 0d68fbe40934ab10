"""The embedding of each kind of network, against the same quantity computed by hand."""

from __future__ import annotations

import copy

import numpy as np
import torch

from zooscope.models import extract
from zooscope.zoo.embedding import embedding_fn


def test_torchvision_embedding_is_the_classifier_input():
    import torchvision

    torch.manual_seed(0)
    model = torchvision.models.resnet18(weights=None, num_classes=5).eval()
    x = torch.randn(3, 3, 64, 64)
    with torch.inference_mode():
        emb, logits = embedding_fn(model)(x)
        f = model.layer4(model.layer3(model.layer2(model.layer1(model.maxpool(model.relu(model.bn1(model.conv1(x))))))))
        by_hand = torch.flatten(model.avgpool(f), 1)
        torch.testing.assert_close(emb, by_hand)
        torch.testing.assert_close(logits, model.fc(by_hand))


def test_recipe_cnn_embedding_is_the_hidden_layer_or_conv_and_hidden():
    from zooscope.config import ArchSpec
    from zooscope.zoo.arch import build_arch

    torch.manual_seed(1)
    x = torch.randn(4, 1, 28, 28)
    for embedding, width in (("hidden", 32), ("conv+hidden", 32 + 16 * 3 * 3)):
        model = build_arch(ArchSpec(kind="cnn", widths=(4, 8, 16), hidden=32, embedding=embedding),
                           in_chans=1, image_size=28, num_classes=10).eval()
        with torch.inference_mode():
            emb, logits = embedding_fn(model)(x)
            flat = model.features(x).flatten(1)
            hidden = torch.relu(model.fc(flat))
            head = model.head(hidden)
        assert emb.shape == (4, width)
        torch.testing.assert_close(emb[:, -32:], hidden)
        torch.testing.assert_close(logits, head)


def test_extract_in_batches_equals_one_pass():
    torch.manual_seed(2)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    x = torch.randn(10, 3, 2, 2)
    emb, logits = extract(model, (x[i:i + 3] for i in range(0, 10, 3)), n=10, with_logits=True,
                          device=torch.device("cpu"), progress=False)
    with torch.inference_mode():
        hidden = model[2](model[1](model[0](x)))
        np.testing.assert_allclose(emb, hidden.numpy(), rtol=1e-6)
        np.testing.assert_allclose(logits, model(x).numpy(), rtol=1e-6)
    assert emb.dtype == np.float32


def test_bfloat16_runs_the_forward_pass_in_bfloat16_and_auto_keeps_float32_on_the_cpu():
    """bfloat16: the result of the same network run by hand in bfloat16 (weights and inputs cast), written as float32;
    auto on the CPU: float32, bit for bit the plain pass."""
    from zooscope.models import pick_dtype

    torch.manual_seed(3)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(12, 6), torch.nn.ReLU(), torch.nn.Linear(6, 3))
    x = torch.randn(10, 3, 2, 2)
    cpu = torch.device("cpu")
    assert pick_dtype("auto", cpu) == torch.float32 and pick_dtype("bfloat16", cpu) == torch.bfloat16
    emb, logits = extract(model, [x], n=10, with_logits=True, device=cpu, dtype=pick_dtype("bfloat16", cpu),
                          progress=False)
    half = copy.deepcopy(model).to(torch.bfloat16)
    with torch.inference_mode():
        h = half[2](half[1](half[0](x.to(torch.bfloat16))))
        np.testing.assert_array_equal(emb, h.float().numpy())
        np.testing.assert_array_equal(logits, half[3](h).float().numpy())
        assert emb.dtype == np.float32 and not np.array_equal(emb, model[2](model[1](model[0](x))).numpy())
    plain, _ = extract(model, [x], n=10, with_logits=True, device=cpu, progress=False)
    auto, _ = extract(model, [x], n=10, with_logits=True, device=cpu, dtype=pick_dtype("auto", cpu), progress=False)
    np.testing.assert_array_equal(auto, plain)
