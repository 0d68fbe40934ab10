"""Pruning and int8 quantisation (zooscope.zoo.compress), against what they must be: the zeros are the smallest
weights, counted from the weights; each quantised weight is an integer times its channel's scale worked out by
hand; and the network predicts as torch's own int8 kernels (FX graph mode, x86) do."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from zooscope.config import ArchSpec
from zooscope.zoo.arch import build_arch
from zooscope.zoo.compress import attach_int8, make_permanent, prune_global, quantize_int8, sparsity


def _net(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return build_arch(ArchSpec(kind="cnn", widths=(4, 8), hidden=16), in_chans=1, image_size=8, num_classes=10).eval()


def _layer_weights(model: nn.Module) -> dict[str, torch.Tensor]:
    """Every conv and linear weight by name, found by type, not through the library."""
    return {name: m.weight.detach().clone() for name, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))}


@pytest.mark.parametrize("amount", [0.3, 0.8])
def test_global_pruning_zeroes_the_smallest_weights_of_all_layers_together(amount):
    parent = _net()
    before = _layer_weights(parent)
    pruned = make_permanent(prune_global(copy.deepcopy(parent), amount=amount))
    after = _layer_weights(pruned)
    magnitudes = torch.cat([w.abs().flatten() for w in before.values()])
    zero = torch.cat([(after[k] == 0).flatten() for k in before])
    assert int(zero.sum()) == round(amount * len(magnitudes))
    assert sparsity(pruned) == pytest.approx(int(zero.sum()) / len(magnitudes))
    assert magnitudes[zero].max() <= magnitudes[~zero].min()  # global: no layer keeps a smaller weight than one cut
    kept = torch.cat([after[k].flatten() for k in before])[~zero]
    assert torch.equal(kept, torch.cat([w.flatten() for w in before.values()])[~zero])
    assert not any("weight_orig" in k or "weight_mask" in k for k in pruned.state_dict())


def test_quantised_weights_are_integers_times_the_per_channel_scale():
    parent = _net()
    x = torch.randn(64, 1, 8, 8)
    q = quantize_int8(copy.deepcopy(parent), [x[:32], x[32:]])
    for name, w in _layer_weights(parent).items():
        qw = _layer_weights(q)[name].double()
        flat = w.double().flatten(1)
        scale = flat.abs().amax(1) / 127.5  # symmetric int8: the largest magnitude of each output channel at 127.5
        ints = qw.flatten(1) / scale[:, None]
        assert torch.allclose(ints, ints.round(), atol=1e-3), name
        assert ints.round().min() >= -128 and ints.round().max() <= 127
        assert (qw.flatten(1) - flat).abs().max() <= scale.max() / 2 + 1e-6  # rounding error of at most half a step


def test_each_layer_sees_its_input_on_the_observed_int8_grid():
    q = quantize_int8(_net(), [torch.randn(64, 1, 8, 8)])
    seen = {}
    for name, m in q.named_modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            m.register_forward_pre_hook(lambda mod, inputs, name=name: seen.__setitem__(name, (mod, inputs[0])))
    q(torch.randn(16, 1, 8, 8) * 3)  # wider than the calibration: values clip to the range
    for name, (m, x) in seen.items():
        steps = x.double() / m.input_scale.double() + m.input_zero_point.double()
        assert torch.allclose(steps, steps.round(), atol=1e-3), name
        assert steps.round().min() >= 0 and steps.round().max() <= 127  # x86's reduced unsigned range


def test_a_rebuilt_int8_network_loads_its_scales_and_predicts_the_same():
    q = quantize_int8(_net(), [torch.randn(64, 1, 8, 8)])
    rebuilt = attach_int8(_net(seed=5))
    rebuilt.load_state_dict(q.state_dict(), strict=True)
    x = torch.randn(32, 1, 8, 8)
    with torch.no_grad():
        assert torch.equal(rebuilt(x), q(x))


def test_the_int8_network_predicts_as_torchs_own_int8_kernels(digits):
    """Against torch's FX graph-mode post-training quantisation (x86 default qconfig, real quantised kernels): the
    two place the activation observers differently (torch observes each fused conv-BN-ReLU's output, zooscope each
    layer's input), so they agree on nearly, not exactly, every image; each is as close to the other as to float."""
    from torch.ao.quantization import get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    from zooscope.data.transforms import native_preprocess, native_tensor

    pre = native_preprocess(digits.images[digits.split("train")])
    x_train = native_tensor(digits.images[digits.split("train")], pre)
    y_train = torch.from_numpy(digits.labels[digits.split("train")])
    model = build_arch(ArchSpec(kind="cnn", widths=(8, 16), hidden=32), in_chans=1, image_size=8, num_classes=10)
    torch.manual_seed(0)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    for _ in range(60):
        opt.zero_grad()
        nn.functional.cross_entropy(model(x_train), y_train).backward()
        opt.step()
    model.eval()
    calibration = [x_train[:256], x_train[256:512]]
    x = native_tensor(digits.images[digits.split("eval")], pre)
    torch.backends.quantized.engine = "x86"
    reference = prepare_fx(copy.deepcopy(model), get_default_qconfig_mapping("x86"), example_inputs=(x[:2],))
    with torch.no_grad():
        for batch in calibration:
            reference(batch)
    reference = convert_fx(reference)
    ours = quantize_int8(copy.deepcopy(model), calibration)
    with torch.no_grad():
        p_ref, p_ours, p_float = (m(x).argmax(1).numpy() for m in (reference, ours, model))
    assert (p_float == digits.labels[digits.split("eval")]).mean() > 0.9
    assert (p_ours == p_ref).mean() >= 0.97
    assert abs((p_ours == p_float).mean() - (p_ref == p_float).mean()) <= 0.02
