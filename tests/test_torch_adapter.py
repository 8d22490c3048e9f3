"""What only the PyTorch adapter has to get right: its own clipping (not clip_grad_norm_'s), its dropout
module's rate and scale, the process settings it pins, and torch.optim run without torch._dynamo. The
canonical optimizers, losses, regularizers, activations, weights, native initializers and the loop end to
end are checked for every adapter in tests/test_adapters.py."""

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


@pytest.mark.parametrize("rule", ["sgd", "momentum", "nesterov", "adagrad", "rmsprop", "adam", "adamw"])
def test_steps_without_the_compiler_wrappers_are_torch_optims_steps(rule):
    # CanonicalOptimizer steps the built-in without the wrappers that import torch._dynamo (plain_step); the
    # public, wrapped `step` must give the same bits: over lr changes, clipping, decay and a save and restore
    from harness.adapters.torch.optimizers import CanonicalOptimizer

    generator = torch.Generator().manual_seed(3)
    start = [torch.randn(5, 4, generator=generator), torch.randn(4, generator=generator)]
    component = resolve_component("optimizer", {"name": rule, "lr": 0.05}, "optimizer")
    regularizer = RegularizerSpec(clip_norm=2.0, l2=0.01 if rule == "adamw" else 0.0)
    runs = []
    for public in (False, True):
        parameters = [torch.nn.Parameter(tensor.clone()) for tensor in start]
        optimizer = CanonicalOptimizer(component, regularizer, parameters, kernels=parameters[:1])
        if public:
            optimizer._step = optimizer.optimizer.step
        gradients = torch.Generator().manual_seed(4)
        for step in range(12):
            optimizer.zero_grad()
            for parameter in parameters:
                parameter.grad = torch.randn(parameter.shape, generator=gradients)
            if step == 5:
                optimizer.set_learning_rate(0.02)
            if step == 8:  # a checkpoint's round trip, as harness.adapters.torch.state does it
                saved = optimizer.optimizer.state_dict()
                optimizer.reset()
                if public:
                    optimizer._step = optimizer.optimizer.step
                optimizer.set_learning_rate(0.02)
                optimizer.optimizer.load_state_dict(saved)
            optimizer.step()
        runs.append([parameter.detach().clone() for parameter in parameters])
    assert not torch.equal(runs[0][0], start[0])
    for plain, public in zip(*runs):
        assert torch.equal(plain, public)


TORCH_TRIAL_IMPORTS = """
import sys, tempfile
from harness.runner.worker import TrialExecutor
from harness.spec import DatasetSpec, RegularizerSpec, TrainingSpec, TrialSpec, resolve_component, resolve_model

for name in ("adam", "rmsprop"):
    spec = TrialSpec(
        dataset=DatasetSpec("iris"), model=resolve_model({"mlp": {"hidden": [4]}}, num_outputs=3),
        loss=resolve_component("loss", "cross_entropy", "loss"),
        optimizer=resolve_component("optimizer", name, "optimizer"),
        initializer=resolve_component("initializer", "he_normal", "initializer"),
        regularizer=RegularizerSpec(l2=0.01), training=TrainingSpec(epochs=2, batch_size=32, checkpoint_every=1),
        seed=0, backend="torch")
    with tempfile.TemporaryDirectory() as folder:
        result = TrialExecutor(1).run(spec, checkpoints=folder)
    assert result.status == "ok", result.error
print("torch._dynamo" in sys.modules)
"""


def test_a_lone_torch_trial_never_imports_the_compiler():
    # torch.optim imports torch._dynamo (1.0-1.5 s here) on an optimizer's first build and step; a trial,
    # checkpoints included, must not pay it. The control shows what the probe would see if it did.
    import subprocess
    import sys

    def probe(code: str) -> str:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()

    assert probe(TORCH_TRIAL_IMPORTS) == "False"
    control = "import sys, torch\ntorch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)\nprint('torch._dynamo' in sys.modules)"
    assert probe(control) == "True"
