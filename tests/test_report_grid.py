"""Reports that scale with the grid: a large grid's report shows its structure, and the structure is right."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.synthetic import synthetic_frames

from harness.analysis import Results, grid_effects
from harness.report import sections
from harness.report.gallery import build_figures

LEVELS = {"a": ("1", "2", "3", "4"), "b": ("x", "y", "z", "w"), "c": ("p", "q", "r", "s")}  # 64 arms


@pytest.fixture(scope="module")
def results() -> Results:
    """A 4 x 4 x 4 grid (64 arms > LARGE_GRID_ARMS), 1 seed: accuracy rises 0.1 per step of `a`,
    `b` does nothing, `c` adds a little, plus small noise."""
    cells = [(a, b, c) for a in LEVELS["a"] for b in LEVELS["b"] for c in LEVELS["c"]]
    frames = synthetic_frames(
        optimizers=("sgd",),
        widths=tuple(range(1, len(cells) + 1)),
        backends=("torch",),
        seeds=1,
        epochs=1,
        diverged=0,
        failed=0,
    )
    names = {old: f"a{a}-b{b}-c{c}" for old, (a, b, c) in zip(frames.arms, cells)}
    cell_of = dict(zip(names.values(), cells))
    trials = frames.trials.drop(columns=list(frames.axes)).assign(arm=lambda f: f["arm"].map(names))
    for index, axis in enumerate(LEVELS):
        trials[axis] = [cell_of[arm][index] for arm in trials["arm"]]
    rng = np.random.default_rng(0)
    value = {
        arm: 0.4 + 0.1 * LEVELS["a"].index(a) + 0.01 * LEVELS["c"].index(c) + rng.normal(0, 0.002)
        for arm, (a, _, c) in cell_of.items()
    }
    metrics = frames.metrics.copy()
    arm_of = dict(zip(trials["hash"], trials["arm"]))
    chosen = metrics["metric"] == "test_accuracy"
    metrics.loc[chosen, "value"] = metrics.loc[chosen, "hash"].map(arm_of).map(value)
    return Results(trials, metrics, tuple(names.values()), tuple(LEVELS), name="grid")


def test_a_large_grid_shows_structure_not_rows(results) -> None:
    assert sections.is_large_grid(results)
    tables = {table.key: table for table in sections.report_tables(results)}
    assert list(tables) == ["top_bottom", "main_effects", "importance"]  # no 64-row summary or comparisons
    top = tables["top_bottom"].rows
    assert len(top) == 20 and top[0][0] == "top 1" and top[0][1].startswith("a4-") and top[-1][1].startswith("a1-")
    effects = [row for row in tables["main_effects"].rows if row[0] == "a"]
    assert [row[1] for row in effects] == list(LEVELS["a"]) and all(row[3] == "16" for row in effects)
    assert [float(row[4]) for row in effects] == pytest.approx([0.415, 0.515, 0.615, 0.715], abs=0.002)
    terms = [row[0] for row in tables["importance"].rows]
    assert terms[0] == "a" and terms[-1] == "Residual"  # a explains nearly everything
    keys = [figure.key for figure in build_figures(results)]
    assert keys[:3] == ["main_effects", "importance", "interaction_a_b"]
    assert "final_metric" not in keys and "forest" not in keys and "gap" not in keys


def test_importance_shares(results) -> None:
    means = grid_effects.arm_means(results.final(), "test_accuracy", results.axes)
    table = grid_effects.anova_importance(means, results.axes, "torch").set_index("term")
    assert table.loc["a", "share"] > 0.95 and table.loc["b", "share"] < 0.01
    assert table["share"].sum() == pytest.approx(1.0, abs=1e-6)  # a balanced grid: type II = the total
    assert table.loc["a", "p"] < 1e-6 and table.loc["b", "p"] > 0.01
    # an arm missing (failed, excluded): not balanced, so statsmodels' type II main effects
    gappy = grid_effects.anova_importance(means.iloc[1:], results.axes, "torch")
    assert gappy["term"].tolist() == ["a", "c", "b", "Residual"] and gappy["share"].iloc[0] > 0.95


def test_a_small_grid_keeps_its_per_arm_tables() -> None:
    frames = synthetic_frames(widths=(16,), backends=("torch",), seeds=2, epochs=2, diverged=0, failed=0)
    small = Results(frames.trials, frames.metrics, frames.arms, frames.axes, name="small")
    assert [table.key for table in sections.report_tables(small)] == ["summary", "comparisons"]
