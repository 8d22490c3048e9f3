"""Learning-rate schedules and early stopping: the canonical formulas (checked against PyTorch's own
schedulers where their meanings coincide), the suite keys and their bad input, the hash of suites
without them. Parity of every schedule between the backends: tests/test_parity_schedules.py."""

from __future__ import annotations

import math

import numpy as np
import pytest
from click.testing import CliRunner
from helpers.suites import load_suite_text, write_suite

from harness.cli import cli
from harness.errors import HarnessError
from harness.spec.schedules import PlateauState, resolve_schedule, step_rates
from harness.suite.grid import parse_grid

SUITE = """\
name: sched
dataset: {name: digits, validation: 0.2, train_samples: 200}
model: {mlp: {hidden: [8], activation: relu}}
loss: cross_entropy
optimizer: {name: sgd, lr: 0.1}
initializer: he_normal
training: {epochs: 3, batch_size: 40%s}
"""  # 160 training rows after validation: 4 steps per epoch, T = 12


def suite_text(extra: str = "", dataset: str = "") -> str:
    text = SUITE % extra
    return text.replace("{name: digits, validation: 0.2, train_samples: 200}", dataset) if dataset else text


def rates(raw, total: int, lr0: float = 0.1) -> np.ndarray:
    return step_rates(resolve_schedule(raw), lr0, np.arange(total), total)


# --- the formulas -----------------------------------------------------------------------------


def torch_rates(make, total: int, lr0: float = 0.1) -> np.ndarray:
    """The rate PyTorch's scheduler gives each step when stepped once per optimizer step."""
    torch = pytest.importorskip("torch")
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=lr0)
    scheduler = make(torch.optim.lr_scheduler, optimizer)
    values = []
    for _ in range(total):
        values.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    return np.array(values)


@pytest.mark.parametrize(
    ("raw", "make"),
    [
        ({"name": "step", "step_size": 3, "gamma": 0.5}, lambda s, o: s.StepLR(o, step_size=3, gamma=0.5)),
        ({"name": "exponential", "gamma": 0.9}, lambda s, o: s.ExponentialLR(o, gamma=0.9)),
        (
            {"name": "one_cycle", "pct_start": 0.25, "div_factor": 10.0, "final_div_factor": 100.0},
            lambda s, o: s.OneCycleLR(
                o,
                max_lr=0.1,
                total_steps=40,
                pct_start=0.25,
                div_factor=10.0,
                final_div_factor=100.0,
                cycle_momentum=False,
            ),
        ),
        ("constant", lambda s, o: s.ConstantLR(o, factor=1.0)),
    ],
    ids=["step", "exponential", "one_cycle", "constant"],
)
def test_formulas_equal_pytorch_schedulers_where_they_mean_the_same(raw, make) -> None:
    np.testing.assert_allclose(rates(raw, 40), torch_rates(make, 40), rtol=1e-12, atol=1e-15)


def test_cosine_is_the_closed_form_of_cosine_annealing_and_holds_min_lr_after_T_max() -> None:
    # PyTorch's CosineAnnealingLR is recursive; its closed form (its docs) is what the canonical cosine computes
    got = rates({"name": "cosine", "T_max": 10, "min_lr": 0.01}, 15)
    t = np.arange(15)
    expected = 0.01 + 0.09 * (1 + np.cos(np.pi * np.minimum(t, 10) / 10)) / 2
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    assert got[0] == pytest.approx(0.1) and np.all(got[10:] == pytest.approx(0.01))  # no restart after T_max


def test_warmup_starts_above_zero_peaks_at_its_last_step_and_the_decay_ends_at_the_last_step() -> None:
    got = rates({"name": "cosine", "warmup_steps": 4}, 12)
    np.testing.assert_allclose(got[:4], [0.025, 0.05, 0.075, 0.1])  # (t + 1)/W: no zero-rate step
    assert got[4] == pytest.approx(0.1)  # the decay starts at lr0
    assert got[-1] == pytest.approx(0.1 * (1 + math.cos(math.pi * 7 / 8)) / 2)  # D = T - W = 8
    started = rates({"name": "linear_warmup_cosine", "warmup_steps": 4, "start_factor": 0.2}, 12)
    assert started[0] == pytest.approx(0.1 * (0.2 + 0.8 / 4)) and started[3] == pytest.approx(0.1)


def test_reduce_on_plateau_equals_pytorch_in_abs_threshold_mode() -> None:
    torch = pytest.importorskip("torch")
    values = [1.0, 0.9, 0.95, 0.9, 0.89, 0.91, 0.7, 0.72, 0.71, 0.73, 0.74, 0.69]
    schedule = resolve_schedule(
        {"name": "reduce_on_plateau", "patience": 1, "factor": 0.5, "min_delta": 0.02, "cooldown": 1, "min_lr": 0.02}
    )
    state = PlateauState(schedule, 0.1)
    optimizer = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)
    reference = torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimizer, mode="min", factor=0.5, patience=1, threshold=0.02, threshold_mode="abs", cooldown=1, min_lr=0.02
    )
    ours, theirs = [], []
    for value in values:
        ours.append(state.after_epoch(value))
        reference.step(value)
        theirs.append(optimizer.param_groups[0]["lr"])
    assert ours == pytest.approx(theirs)
    assert min(ours) == pytest.approx(0.02) and len(set(ours)) > 2  # it cut, and stopped at min_lr


# --- the suite keys -----------------------------------------------------------------------------


def test_schedule_and_early_stopping_load_and_their_parameters_are_grid_paths(tmp_path) -> None:
    text = suite_text(", lr_schedule: cosine, early_stopping: {patience: 2}") + (
        "grid:\n  training.lr_schedule.warmup_steps: [0, 3]\n"
        "  sched:\n    zip: {training.lr_schedule.min_lr: [0.0, 0.001]}\n"
    )
    suite = load_suite_text(tmp_path, text)
    schedules = {trial.spec.training.lr_schedule for trial in suite.trials}
    assert {(s["warmup_steps"], s["min_lr"]) for s in schedules} == {(0, 0.0), (3, 0.0), (0, 0.001), (3, 0.001)}
    assert {trial.spec.training.early_stopping.patience for trial in suite.trials} == {2}
    variants = (
        suite_text() + "grid:\n  training.lr_schedule:\n    step: {name: step, step_size: 4}\n    one: one_cycle\n"
    )
    loaded = load_suite_text(tmp_path, variants)
    assert [t.spec.training.lr_schedule.name for t in loaded.trials] == ["step", "one_cycle"]
    assert parse_grid({"training.lr_schedule.gamma": [0.5]})  # an addressable path, like optimizer.lr


def test_suites_without_the_keys_keep_their_hashes_and_the_keys_change_them(tmp_path) -> None:
    plain = load_suite_text(tmp_path, suite_text()).trials[0].spec
    assert "lr_schedule" not in plain.training.to_dict() and "early_stopping" not in plain.training.to_dict()
    scheduled = load_suite_text(tmp_path, suite_text(", lr_schedule: constant")).trials[0].spec
    stopped = load_suite_text(tmp_path, suite_text(", early_stopping: {}")).trials[0].spec
    assert len({plain.hash, scheduled.hash, stopped.hash}) == 3
    assert type(plain).from_dict(scheduled.to_dict()) == scheduled


BAD = {
    "unknown schedule": (
        ", lr_schedule: cosin",
        "training.lr_schedule: unknown lr_schedule 'cosin'. Did you mean 'cosine'?",
    ),
    "unknown parameter": (
        ", lr_schedule: {name: cosine, warmup: 3}",
        "training.lr_schedule.warmup: lr_schedule 'cosine' has no parameter 'warmup'. Did you mean 'warmup_steps'?",
    ),
    "warmup longer than training": (
        ", lr_schedule: {name: linear_warmup_cosine, warmup_steps: 12}",
        "training.lr_schedule.warmup_steps: 12 warmup steps is not shorter than the whole training, 12 optimizer steps",
    ),
    "zero step size": (
        ", lr_schedule: {name: step, step_size: 0}",
        "training.lr_schedule.step_size: expected an integer > 0, got 0",
    ),
    "negative step size": (", lr_schedule: {name: step, step_size: -3}", "expected an integer > 0, got -3"),
    "missing step size": (", lr_schedule: step", "schedule 'step' needs 'step_size'"),
    "patience below 1": (
        ", early_stopping: {patience: 0}",
        "training.early_stopping.patience: expected an integer >= 1, got 0",
    ),
    "test metric": (
        ", early_stopping: {metric: test_accuracy}",
        "training.early_stopping.metric: 'test_accuracy' is a test metric",
    ),
    "plateau on a test metric": (
        ", lr_schedule: {name: reduce_on_plateau, metric: test_loss}",
        "training.lr_schedule.metric: 'test_loss' is a test metric",
    ),
    "unknown metric": (", early_stopping: {metric: validation_acc}", "'validation_acc' is not a validation metric"),
    "metric of another task": (
        ", early_stopping: {metric: validation_r2}",
        "training.early_stopping.metric: 'validation_r2' is not recorded for this dataset's task",
    ),
    "unknown early stopping key": (", early_stopping: {patiense: 3}", "Did you mean 'patience'?"),
}


@pytest.mark.parametrize("case", sorted(BAD), ids=sorted(BAD))
def test_bad_input_names_the_key_and_the_fix(case, tmp_path) -> None:
    extra, message = BAD[case]
    with pytest.raises(HarnessError) as raised:
        load_suite_text(tmp_path, suite_text(extra))
    assert message in str(raised.value)
    assert str(raised.value).startswith(f"{tmp_path / 'suite.yaml'}:7: ")  # the training line


@pytest.mark.parametrize(
    "extra", [", early_stopping: {}", ", lr_schedule: reduce_on_plateau"], ids=["early_stopping", "reduce_on_plateau"]
)
def test_monitoring_without_a_validation_split_exits_2_and_writes_nothing(extra, tmp_path) -> None:
    suite = write_suite(tmp_path, suite_text(extra, dataset="{name: digits, train_samples: 200}"))
    store = tmp_path / "store"
    result = CliRunner().invoke(cli, ["run", str(suite), "--store", str(store)])
    assert result.exit_code == 2, result.output
    assert "the dataset has no validation split" in result.output and "Traceback" not in result.output
    assert not store.exists()


def test_one_cycle_needs_steps_to_rise_and_fall(tmp_path) -> None:
    with pytest.raises(HarnessError, match="one_cycle needs pct_start"):
        load_suite_text(tmp_path, suite_text(", lr_schedule: {name: one_cycle, pct_start: 0.05}"))


def test_list_components_shows_every_schedule_with_its_formula() -> None:
    result = CliRunner().invoke(cli, ["list", "components"])
    assert result.exit_code == 0
    for name in ("constant", "step", "exponential", "cosine", "linear_warmup_cosine", "one_cycle", "reduce_on_plateau"):
        assert name in result.output
    assert "lr0 * gamma^floor(t / step_size)" in result.output


def test_the_report_draws_the_learning_rate_per_arm_and_backend_on_a_log_scale_when_it_spans_decades() -> None:
    import pandas as pd

    from harness.report.figures import learning_rate_curves

    rows = [
        {"arm": arm, "backend": backend, "metric": "lr", "epoch": epoch, "mean": 0.1 * factor**epoch}
        for arm, factor in (("step", 0.1), ("flat", 1.0))
        for backend in ("torch", "keras")
        for epoch in (1, 2, 3)
    ]
    figure = learning_rate_curves(pd.DataFrame(rows), arms=["step", "flat"], backends=["torch", "keras"])
    axes = figure.axes
    assert [axis.get_title() for axis in axes[:2]] == ["torch", "keras"]
    assert axes[0].get_yscale() == "log" and len(axes[0].get_lines()) == 2
    np.testing.assert_allclose(axes[1].get_lines()[0].get_ydata(), [0.01, 0.001, 0.0001])


def test_the_readme_schedule_example_loads(tmp_path) -> None:
    import re
    from pathlib import Path

    import yaml

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(body) for body in re.findall(r"```yaml\n(.*?)```", readme, re.S) if "lr_schedule" in body]
    example = next(block for block in blocks if set(block) == {"training", "grid"})
    text = suite_text().replace("training: {epochs: 3, batch_size: 40}\n", "")
    text = text.replace("{name: digits, validation: 0.2, train_samples: 200}", "{name: digits, validation: 0.1}")
    suite = load_suite_text(tmp_path, text + yaml.safe_dump(example))
    assert len(suite.arms) == 4 and suite.trials[0].spec.training.early_stopping.restore_best


def test_a_restored_trial_s_final_epoch_is_its_best_epoch_in_the_tables() -> None:
    import pandas as pd

    from harness.analysis.tables import final_table

    trials = pd.DataFrame(
        {"hash": ["a", "b"], "arm": ["x", "x"], "backend": ["torch"] * 2, "seed": [0, 1], "status": ["ok"] * 2}
    )
    rows = [("a", epoch, "test_accuracy", 0.5 + 0.1 * epoch) for epoch in range(4)]
    rows += [("a", 1, "restored_epoch", 1.0), ("a", 1, "stopped_epoch", 3.0)]
    rows += [("b", epoch, "test_accuracy", 0.1 * epoch) for epoch in range(4)]
    table = final_table(trials, pd.DataFrame(rows, columns=["hash", "epoch", "metric", "value"]), ())
    assert table["final_epoch"].tolist() == [1, 3]
    assert table["test_accuracy"].tolist() == pytest.approx([0.6, 0.3])
    assert table["stopped_epoch"].tolist()[0] == 3


def test_epochs_without_an_evaluation_neither_improve_nor_count_against_patience() -> None:
    from harness.adapters.schedules import EarlyStopping
    from harness.spec.schedules import resolve_early_stopping

    class Model:
        def get_weights(self):
            return {}

    stopping = EarlyStopping(resolve_early_stopping({"patience": 1}))
    assert not stopping.after_epoch(1, [(1, "validation_loss", 1.0)], Model())
    assert not stopping.after_epoch(2, [(2, "minibatch_loss", 0.5)], Model())  # not evaluated: no count
    assert stopping.after_epoch(3, [(3, "validation_loss", 1.0)], Model())  # no better: patience 1 reached
    assert stopping.best_epoch == 1
