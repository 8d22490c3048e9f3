"""What only the PyTorch adapter has to get right: its own clipping (not clip_grad_norm_'s), its dropout
module's rate and scale, and the process settings it pins. The canonical optimizers, losses, regularizers,
activations, weights, native initializers and the loop end to end are checked for every adapter in
tests/test_adapters.py."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.specs import arrays_info, trial_spec

from harness.spec import RegularizerSpec, resolve_component

torch = pytest.importorskip("torch")


def test_clip_norm_scales_by_exactly_c_over_norm():
    from harness.adapters.torch.optimizers import CanonicalOptimizer

    parameters = [torch.nn.Parameter(torch.zeros(3)), torch.nn.Parameter(torch.zeros(2))]
    parameters[0].grad = torch.tensor([3e-5, 0.0, 0.0])
    parameters[1].grad = torch.tensor([0.0, 4e-5])  # global norm 5e-5
    sgd = resolve_component("optimizer", {"name": "sgd", "lr": 1.0}, "optimizer")
    CanonicalOptimizer(sgd, RegularizerSpec(clip_norm=1e-5), parameters, kernels=[]).step()
    # p = -g * c/norm = -g/5; torch's clip_grad_norm_ (c/(norm + 1e-6)) would be 2% smaller
    np.testing.assert_allclose(parameters[0].detach().numpy(), [-6e-6, 0.0, 0.0], rtol=1e-6)
    np.testing.assert_allclose(parameters[1].detach().numpy(), [0.0, -8e-6], rtol=1e-6)


def test_dropout_module_rate_and_scale(torch_adapter):
    """Inverted dropout: a fraction `rate` zeroed, the rest scaled by 1/(1-rate); the identity in eval mode
    (predict's mode, checked for every adapter in tests/test_adapters.py)."""
    rate, width = 0.3, 50_000
    spec = trial_spec([{"dense": {"units": width}}, {"dropout": rate}, {"dense": {}}], 1, loss="mse")
    model = torch_adapter.build(spec, arrays_info((3,), 1))
    dropout = model.network.module[1]
    ones = torch.ones(1, width)
    dropout.train()
    outputs = dropout(ones).numpy()
    zero_fraction = float((outputs == 0).mean())
    # binomial: std of the fraction is sqrt(0.3*0.7/50000) = 0.002; 5 std
    assert abs(zero_fraction - rate) < 0.011
    np.testing.assert_allclose(outputs[outputs != 0], 1.0 / (1.0 - rate), rtol=1e-6)
    assert abs(outputs.mean() - 1.0) < 0.02  # expected activation scale kept: 5 std of the mean
    dropout.eval()
    assert torch.equal(dropout(ones), ones)


def test_adapter_identity_versions_and_process_settings(torch_adapter):
    assert torch_adapter.name == "torch"
    assert torch_adapter.versions() == {"torch": torch.__version__, "numpy": np.__version__}
    assert torch.get_num_threads() == 1 and torch.are_deterministic_algorithms_enabled()  # configure(1)
