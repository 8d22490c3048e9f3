"""Vectorized trials (harness.adapters.vectorize, harness.adapters.torch.vectorized): K trials trained as one
stacked model give every member the metrics, status and predictions it gets trained alone."""

from __future__ import annotations

import dataclasses
import platform

import numpy as np
import pytest

from harness.adapters.loop import TrialResult, train_trial
from harness.adapters.stackable import group_key, ineligible_reason
from harness.adapters.vectorize import train_group
from harness.data import load_dataset
from harness.runner.devices import visible_gpu_ids
from harness.runner.grouping import GPU_MAX_MEMBERS, MAX_MEMBERS, group_size, group_tasks
from harness.runner.tasks import Task
from harness.spec import DatasetSpec, RegularizerSpec, Trial
from harness.spec.footprint import trial_footprint
from tests.helpers.specs import trial_spec

pytest.importorskip("torch")

DATASET = DatasetSpec("digits", validation=0.1, train_samples=300)
MODEL = {"mlp": {"hidden": [32, 32], "activation": "relu"}}
# float32 rounding only: a batched matmul sums in another order than a single one (measured <= 2e-6 here)
TOLERANCE = 1e-5


def spec(seed=0, optimizer="sgd", regularizer=None, dropout=0.0, initializer="he_normal", epochs=3):
    return trial_spec(
        MODEL,
        10,
        optimizer=optimizer,
        seed=seed,
        epochs=epochs,
        batch_size=32,
        dataset=DATASET,
        regularizer=regularizer,
        dropout=dropout,
        initializer=initializer,
    )


CASES = {
    "adam seeds": [spec(seed, {"name": "adam", "lr": 1e-3}) for seed in (0, 1, 2)],  # one fused update
    "adam lr and betas": [spec(0, {"name": "adam", "lr": 1e-3}), spec(1, {"name": "adam", "lr": 3e-3, "beta2": 0.99})],
    "sgd lr sweep, one diverges": [spec(0, {"name": "sgd", "lr": lr}) for lr in (0.01, 1e4, 0.1)],
    "momentum": [spec(seed, {"name": "momentum", "lr": 0.01, "momentum": mu}) for seed, mu in ((0, 0.9), (1, 0.5))],
    "nesterov": [spec(seed, {"name": "nesterov", "lr": 0.01}) for seed in (0, 1)],
    "adagrad": [spec(seed, {"name": "adagrad", "lr": 0.01}) for seed in (0, 1)],
    "rmsprop": [spec(seed, {"name": "rmsprop", "lr": 0.001}) for seed in (0, 1)],
    "adamw, l1, l2": [
        spec(0, {"name": "adamw", "lr": 1e-3, "weight_decay": 0.01}),
        spec(
            1, {"name": "adamw", "lr": 1e-3, "weight_decay": 0.0}, RegularizerSpec(l1=1e-3, l2=1e-2, weight_decay=0.02)
        ),
    ],
    "dropout rates": [spec(0, dropout=0.3), spec(1, dropout=0.5)],
    # features-first layout: softmax normalizes the units axis, a dense without bias, dropout after an activation
    "layer kinds": [
        trial_spec(
            (
                {"dense": {"units": 16, "activation": "tanh", "use_bias": False}},
                {"activation": {"activation": "softmax"}},
                {"dropout": {"rate": rate}},
                {"dense": {}},
            ),
            10,
            optimizer={"name": "adam", "lr": 1e-2},
            seed=seed,
            epochs=2,
            batch_size=32,
            dataset=DATASET,
        )
        for seed, rate in ((0, 0.2), (1, 0.0))
    ],
    # the backward pass written out (ReLU only): a ReLU layer of its own after a dense without bias, dropout
    # between dense layers, and 30-row batches, whose padding columns (to 32) must get no gradient
    "explicit backward": [
        trial_spec(
            (
                {"dense": {"units": 24, "activation": "linear", "use_bias": False}},
                {"activation": {"activation": "relu"}},
                {"dropout": {"rate": rate}},
                {"dense": {"units": 16, "activation": "relu"}},
                {"dense": {}},
            ),
            10,
            optimizer={"name": "momentum", "lr": 0.05},
            seed=seed,
            epochs=2,
            batch_size=30,
            dataset=DATASET,
        )
        for seed, rate in ((0, 0.25), (1, 0.0))
    ],
    "initializers": [
        spec(0, initializer=name) for name in ("he_normal", "lecun_normal", {"name": "normal", "std": 0.01})
    ],
}


def limited(trial, max_seconds, **training):
    return dataclasses.replace(trial, training=dataclasses.replace(trial.training, max_seconds=max_seconds, **training))


def metrics(result: TrialResult) -> dict[tuple[int, str], float]:
    return {(epoch, name): value for epoch, name, value in result.metrics}


@pytest.mark.parametrize("specs", list(CASES.values()), ids=list(CASES))
def test_stacked_members_equal_sequential_trials(torch_adapter, specs):
    data = load_dataset(DATASET)
    alone = [train_trial(member, torch_adapter, data) for member in specs]
    stacked = train_group(specs, torch_adapter, data)
    assert len(stacked) == len(specs)
    for one, member in zip(alone, stacked):
        assert (member.status, member.diverged_epoch, member.epochs_completed) == (
            one.status,
            one.diverged_epoch,
            one.epochs_completed,
        )
        expected, got = metrics(one), metrics(member)
        assert got.keys() == expected.keys()  # every epoch's metrics, none after a divergence
        for key, value in expected.items():
            if np.isfinite(value):
                assert got[key] == pytest.approx(value, abs=TOLERANCE), key
            else:
                assert not np.isfinite(got[key]), key
        assert [row[:4] for row in member.predictions] == [row[:4] for row in one.predictions]
        for mine, theirs in zip(member.predictions, one.predictions):
            assert np.mean(mine[4] == theirs[4]) >= 0.99
        assert (member.device["vectorized"], member.device["group_size"]) == ("stacked", str(len(specs)))


@pytest.mark.gpu
@pytest.mark.skipif(not visible_gpu_ids(), reason="no GPU visible (nvidia-smi / CUDA_VISIBLE_DEVICES)")
@pytest.mark.parametrize("specs", list(CASES.values()), ids=list(CASES))
def test_stacked_members_equal_sequential_trials_on_a_gpu(torch_adapter, specs):
    """The same equality on CUDA: a stacked member against its lone trial, both on the GPU. cuBLAS sums a
    batched product in another order than a single one, so the tolerance is ten times the CPU's."""
    on_gpu = [dataclasses.replace(member, device="cuda") for member in specs]
    data = load_dataset(DATASET)
    alone = [train_trial(member, torch_adapter, data) for member in on_gpu]
    stacked = train_group(on_gpu, torch_adapter, data)
    for one, member in zip(alone, stacked):
        assert one.device["device"].startswith("cuda") and member.device["device"] == one.device["device"]
        assert (member.status, member.diverged_epoch, member.epochs_completed) == (
            one.status,
            one.diverged_epoch,
            one.epochs_completed,
        )
        expected, got = metrics(one), metrics(member)
        assert got.keys() == expected.keys()
        for key, value in expected.items():
            if np.isfinite(value):
                assert got[key] == pytest.approx(value, abs=10 * TOLERANCE), key
            else:
                assert not np.isfinite(got[key]), key


def test_the_lr_sweep_really_diverges_and_the_others_go_on(torch_adapter):
    results = train_group(CASES["sgd lr sweep, one diverges"], torch_adapter, load_dataset(DATASET))
    assert [result.status for result in results] == ["ok", "diverged", "ok"]
    assert results[1].diverged_epoch == 1 and results[2].epochs_completed == 3


def test_only_whitelisted_trials_are_stacked():
    assert ineligible_reason(spec()) is None
    assert "backend 'keras'" in ineligible_reason(dataclasses.replace(spec(), backend="keras"))
    assert "init_mode" in ineligible_reason(dataclasses.replace(spec(), init_mode="native"))
    assert "extras probe" in ineligible_reason(dataclasses.replace(spec(), extras=(("probe", {"epochs": [0]}),)))
    assert "clipping" in ineligible_reason(spec(regularizer=RegularizerSpec(clip_norm=1.0)))
    # a time limit is stacked: the members share their group's clock
    assert ineligible_reason(limited(spec(), 5.0)) is None
    conv = trial_spec(
        ({"conv1d": {"filters": 2, "kernel_size": 3}}, {"flatten": {}}, {"dense": {}}), input_shape=(8, 1)
    )
    assert "conv1d" in ineligible_reason(conv)


def test_a_setting_added_later_makes_a_trial_ineligible(monkeypatch):
    # a future training feature (a schedule, early stopping) shows up as a key the whitelist does not know
    original = type(spec()).to_dict
    monkeypatch.setattr(
        type(spec()),
        "to_dict",
        lambda self: {**original(self), "training": {**original(self)["training"], "patience": 3}},
    )
    assert "training.patience" in ineligible_reason(spec())


def test_group_key_ignores_member_scalars_only():
    base = spec(0, {"name": "adam", "lr": 1e-3})
    assert group_key(base) == group_key(
        spec(5, {"name": "adam", "lr": 0.1}, RegularizerSpec(l2=0.1), initializer="lecun_normal")
    )
    assert group_key(spec(0, dropout=0.2)) == group_key(spec(0, dropout=0.4))
    assert group_key(base) != group_key(spec(0, "sgd"))  # another rule
    assert group_key(base) != group_key(spec(0, {"name": "adam", "lr": 1e-3}, epochs=4))
    with pytest.raises(ValueError, match="share"):
        train_group([base, spec(0, "sgd")], None, load_dataset(DATASET))


@pytest.mark.parametrize("dataset", ["digits", "iris"])
def test_a_member_gets_the_same_numbers_whichever_members_share_its_group(torch_adapter, dataset):
    # so a trial's stored result does not depend on --jobs, an interrupted run or its companions;
    # iris: 3 outputs x 38 test rows, whose (3 x 38) blocks would start at 16-byte offsets that differ by member
    model, batch = (MODEL, 32) if dataset == "digits" else ({"mlp": {"hidden": [16], "activation": "relu"}}, 13)
    grid = ((0, 1e-3), (1, 1e-3), (2, 3e-3))
    data_spec = DATASET if dataset == "digits" else DatasetSpec("iris")
    sweep = [
        trial_spec(
            model,
            10 if dataset == "digits" else 3,
            optimizer={"name": "adam", "lr": lr},
            seed=seed,
            epochs=3,
            batch_size=batch,
            dataset=data_spec,
        )
        for seed, lr in grid
    ]
    data = load_dataset(data_spec)
    together = train_group(sweep, torch_adapter, data)
    alone = train_group(sweep[1:2], torch_adapter, data)[0]
    assert together[1].metrics == alone.metrics


def test_group_size_does_not_change_a_member_on_several_threads(torch_adapter):
    # on 2 threads MKL splits a lone matrix product (a group of one) over both threads, and rounds it otherwise
    torch = pytest.importorskip("torch")
    data = load_dataset(DATASET)
    sweep = [spec(seed, {"name": "adam", "lr": 1e-3}, epochs=1) for seed in (0, 1, 2)]
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        together = train_group(sweep, torch_adapter, data)
        alone = train_group(sweep[1:2], torch_adapter, data)[0]
    finally:
        torch.set_num_threads(threads)
    assert together[1].metrics == alone.metrics


def lone_tasks(specs):
    return [Task(index, Trial("s", f"arm{index}", (), member)) for index, member in enumerate(specs)]


def test_runner_groups_stackable_trials_in_schedule_order():
    adam = [spec(seed, {"name": "adam", "lr": 1e-3}) for seed in range(5)]
    sgd = [spec(seed, "sgd") for seed in range(3)]
    keras = dataclasses.replace(spec(), backend="keras")
    tasks = lone_tasks([adam[0], sgd[0], keras, *adam[1:], *sgd[1:]])
    grouping = group_tasks(tasks, jobs=1)
    assert [len(task.trials) for task in grouping.tasks] == [5, 3, 1]
    assert [task.stacked for task in grouping.tasks] == [True, True, False]
    assert [trial.spec.seed for trial in grouping.tasks[0].trials] == [0, 1, 2, 3, 4]
    assert (grouping.grouped, grouping.groups) == (8, 2)
    assert "backend 'keras'" in grouping.describe() and "1 one at a time" in grouping.describe()
    # more workers than groups: the largest groups are split so no worker idles
    assert sorted(len(task.trials) for task in group_tasks(tasks, jobs=4).tasks) == [1, 2, 3, 3]
    assert not any(task.stacked for task in group_tasks(tasks, jobs=1, mode="off").tasks)
    # a lone stackable trial is a group of one: its numbers match those it gets stacked with others
    assert group_tasks(tasks[:1], jobs=1).tasks[0].stacked


def test_group_size_follows_the_memory_estimate(monkeypatch):
    assert group_size(spec()) == MAX_MEMBERS  # a few KB per member
    monkeypatch.setattr("harness.runner.grouping.GROUP_MEMORY_BYTES", 3 * trial_footprint(spec(), (64,)).total_bytes)
    assert group_size(spec()) == 3


def test_gpu_groups_are_larger_and_split_per_gpu_not_per_worker():
    # 40 seeds on one GPU with 16 workers: one group of 40 (a CPU run splits them into 16 groups of 2-3)
    cpu = [spec(seed, {"name": "adam", "lr": 1e-3}) for seed in range(40)]
    gpu = [dataclasses.replace(member, device="cuda") for member in cpu]
    assert group_size(gpu[0]) == GPU_MAX_MEMBERS and group_size(cpu[0]) == MAX_MEMBERS
    assert [len(task.trials) for task in group_tasks(lone_tasks(gpu), jobs=16, gpus=1).tasks] == [40]
    assert sorted(len(task.trials) for task in group_tasks(lone_tasks(gpu), jobs=16, gpus=2).tasks) == [20, 20]
    assert len(group_tasks(lone_tasks(cpu), jobs=16, gpus=1).tasks) == 16
    # Ray (gpus unknown): GPU groups are spread over the workers as before
    assert len(group_tasks(lone_tasks(gpu), jobs=4).tasks) == 4
    # both kinds in one run: the CPU trials fill the workers, the GPU ones stay one group
    mixed = group_tasks(lone_tasks([*cpu[:6], *gpu[:6]]), jobs=4, gpus=1).tasks
    assert sorted(len(task.trials) for task in mixed if task.trial.spec.device == "cuda") == [6]
    assert sorted(len(task.trials) for task in mixed if task.trial.spec.device == "cpu") == [1, 1, 2, 2]


def test_eval_every_evaluates_every_nth_and_the_last_epoch_alone_and_stacked(torch_adapter):
    base = spec(0, {"name": "adam", "lr": 1e-3}, epochs=5)
    sparse = dataclasses.replace(base, training=dataclasses.replace(base.training, eval_every=2))
    assert "eval_every" not in base.to_dict()["training"]  # the default leaves every earlier hash as it was
    assert sparse.hash != base.hash
    data = load_dataset(DATASET)
    for result in (train_trial(sparse, torch_adapter, data), train_group([sparse], torch_adapter, data)[0]):
        evaluated = sorted({epoch for epoch, name, _ in result.metrics if name == "test_accuracy"})
        assert evaluated == [0, 2, 4, 5] and result.epochs_completed == 5
        assert sorted({epoch for epoch, name, _ in result.metrics if name == "minibatch_loss"}) == [1, 2, 3, 4, 5]


def test_stacked_diagnostics_equal_each_member_probed_alone(torch_adapter):
    """Per-layer diagnostics (activation statistics and histograms, gradient and weight norms, update
    ratios) of stacked members equal those of the lone trials, and probing does not move a member's
    training (its dropout masks are restored after the training-mode gradient pass)."""
    probe = (("diagnostics", {"epochs": [0, 1, 3], "samples": 64, "bins": 10}),)
    specs = [
        dataclasses.replace(member, extras=probe)
        for member in (
            spec(0, {"name": "sgd", "lr": 0.05}, RegularizerSpec(l1=1e-3, l2=1e-2), dropout=0.3),
            spec(1, {"name": "sgd", "lr": 0.05}, dropout=0.5, initializer="lecun_normal"),
        )
    ]
    assert ineligible_reason(specs[0]) is None
    data = load_dataset(DATASET)
    alone = [train_trial(member, torch_adapter, data) for member in specs]
    stacked = train_group(specs, torch_adapter, data)
    for one, member in zip(alone, stacked):
        expected = {row[:4]: row[4] for row in one.diagnostics if row[3] != "seconds"}
        got = {row[:4]: row[4] for row in member.diagnostics if row[3] != "seconds"}
        assert got.keys() == expected.keys() and len(got) > 100
        assert {key[3] for key in got} >= {"gradient_norm", "weight_norm", "update_ratio", "fraction_zero"}
        for key, value in expected.items():
            assert got[key] == pytest.approx(value, rel=1e-4, abs=TOLERANCE), key
        for key, value in metrics(one).items():
            assert metrics(member)[key] == pytest.approx(value, abs=TOLERANCE), key


def test_the_written_out_backward_pass_is_autograds(torch_adapter):
    # ReLU-only stacks skip autograd (StackedMLP._explicit_step): the same losses bit for bit, and every step's
    # update from gradients equal to float32 rounding, through dropout, a ReLU layer, a biasless dense, padding
    from harness.data.batches import epoch_batches
    from harness.spec.init import initial_weights

    specs = CASES["explicit backward"] + [dataclasses.replace(CASES["explicit backward"][0], seed=5)]
    data = load_dataset(DATASET)
    plans = specs[0].model.plan(data.info.input_shape)
    runs = {}
    for explicit in (True, False):
        model = torch_adapter.build_stacked(specs, data.info)
        assert model.explicit is True
        if not explicit:
            model.explicit = False
            model._make_views()
        model.set_weights([initial_weights(plans, member.initializer, member.seed) for member in specs])
        model.set_training_data(data.x_train, data.y_train)
        batches = [epoch_batches(len(data.y_train), member.training, member.seed, 1) for member in specs]
        runs[explicit] = (model.train_epoch(batches), model.get_weights())
    (losses, weights), (autograd_losses, autograd_weights) = runs[True], runs[False]
    np.testing.assert_array_equal(losses[0], autograd_losses[0])  # the first step: the same weights, the same loss
    np.testing.assert_allclose(losses, autograd_losses, rtol=0, atol=1e-5)
    for key, value in autograd_weights.items():
        np.testing.assert_allclose(weights[key], value, rtol=0, atol=1e-5, err_msg=key)
    start = initial_weights(plans, specs[0].initializer, specs[0].seed)["0.dense.kernel"]
    assert np.abs(weights["0.dense.kernel"][0] - start).max() > 1e-3  # the first layer did learn
    tanh = trial_spec({"mlp": {"hidden": [8], "activation": "tanh"}}, 10, dataset=DATASET)
    assert torch_adapter.build_stacked([tanh], data.info).explicit is False  # other activations keep autograd


def test_building_a_stacked_model_keeps_freed_memory_in_glibc_processes():
    # without it every K = 32 step faults its MB-sized tensors in afresh (a third of the step, measured)
    from harness.adapters.torch.vectorized import retain_freed_memory

    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("mallopt thresholds are glibc's")
    assert retain_freed_memory() is True


def test_a_time_limit_stops_stacked_members_as_it_stops_a_lone_trial(torch_adapter):
    # a limit no epoch fits in: each member stops after epoch 1, evaluated there though eval_every skips it
    data = load_dataset(DATASET)
    sweep = [limited(spec(seed, {"name": "adam", "lr": 1e-3}), 1e-6, eval_every=2) for seed in (0, 1)]
    assert len({group_key(member) for member in sweep}) == 1  # the limit is a group's, in its key
    alone = [train_trial(member, torch_adapter, data) for member in sweep]
    stacked = train_group(sweep, torch_adapter, data)
    for one, member in zip(alone, stacked):
        assert (member.status, member.error, member.epochs_completed) == ("timeout", one.error, 1)
        assert one.status == "timeout" and "exceeded after epoch 1" in one.error
        expected, got = metrics(one), metrics(member)
        assert got.keys() == expected.keys() and {epoch for epoch, _ in got} == {0, 1}
        assert all(got[key] == pytest.approx(value, abs=TOLERANCE) for key, value in expected.items())
        assert [row[:4] for row in member.predictions] == [row[:4] for row in one.predictions]
    # a generous limit changes nothing
    roomy = train_group([limited(member, 3600.0, eval_every=2) for member in sweep], torch_adapter, data)
    assert [(result.status, result.epochs_completed) for result in roomy] == [("ok", 3), ("ok", 3)]
