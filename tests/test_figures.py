"""Tests of harness.report.figures and gallery: each figure draws exactly the numbers of its table."""

from __future__ import annotations

import io

import matplotlib
import matplotlib.image
import numpy as np
import pandas as pd
import pytest
from helpers.synthetic import synthetic_frames
from matplotlib.collections import LineCollection, PathCollection, PolyCollection

from harness.analysis import Results
from harness.report import figures, gallery

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DRAWN_TOLERANCE = 1e-12  # drawn coordinates are the table's float64 values, copied, not recomputed


@pytest.fixture(scope="module")
def results() -> Results:
    frames = synthetic_frames(
        optimizers=("sgd", "momentum", "adam"), widths=(16, 64), backends=("torch", "keras"), seeds=3, epochs=6
    )
    return Results(
        frames.trials,
        frames.metrics,
        frames.arms,
        frames.axes,
        name="figures",
        report_options={"reference": frames.arms[0]},
    )


def _scatter_points(axis: matplotlib.axes.Axes) -> list[np.ndarray]:
    return [collection.get_offsets() for collection in axis.collections if isinstance(collection, PathCollection)]


def test_learning_curves_draw_each_mean_curve(results: Results) -> None:
    curves = results.curves(["train_loss", "validation_loss"])
    figure = figures.learning_curves(curves, measure="loss", arms=results.arms, backends=results.backends)
    axes = figure.axes
    assert [axis.get_title() for axis in axes] == list(results.backends)
    for axis, backend in zip(axes, results.backends):
        (lines,) = [c for c in axis.collections if isinstance(c, LineCollection)]
        (bands,) = [c for c in axis.collections if isinstance(c, PolyCollection) and not isinstance(c, LineCollection)]
        segments = lines.get_segments()
        expected = [(arm, metric) for arm in results.arms for metric in ("train_loss", "validation_loss")]
        assert len(segments) == len(expected) and len(bands.get_paths()) == len(expected)
        for segment, (arm, metric) in zip(segments, expected):
            rows = curves[(curves["arm"] == arm) & (curves["backend"] == backend) & (curves["metric"] == metric)]
            np.testing.assert_allclose(segment[:, 0], rows["epoch"].to_numpy(), rtol=0, atol=DRAWN_TOLERANCE)
            np.testing.assert_allclose(segment[:, 1], rows["mean"].to_numpy(), rtol=0, atol=DRAWN_TOLERANCE)
    labels = [text.get_text() for text in figure.legends[0].get_texts()]
    assert labels == [*results.arms, "train", "validation"]


def test_final_metric_plot_marks_each_mean_with_its_interval(results: Results) -> None:
    summary = results.summary()
    figure = figures.final_metric_plot(summary, metric="test_accuracy", arms=results.arms, backends=results.backends)
    (axis,) = figure.axes
    assert [label.get_text() for label in axis.get_yticklabels()] == list(results.arms)
    for points, backend in zip(_scatter_points(axis), results.backends):
        rows = summary[(summary["metric"] == "test_accuracy") & (summary["backend"] == backend)]
        np.testing.assert_allclose(points[:, 0], rows["mean"].to_numpy(), rtol=0, atol=DRAWN_TOLERANCE)
    bars = [line for line in axis.collections if isinstance(line, LineCollection)]
    assert len(bars) == len(results.backends)  # one error-bar collection per backend
    first_bar = bars[0].get_segments()[0]
    row = summary[(summary["metric"] == "test_accuracy") & (summary["backend"] == results.backends[0])].iloc[0]
    np.testing.assert_allclose(sorted(first_bar[:, 0]), [row["ci_low"], row["ci_high"]], rtol=0, atol=DRAWN_TOLERANCE)


def test_forest_plot_fills_only_significant_markers(results: Results) -> None:
    comparisons = results.comparisons()
    figure = figures.forest_plot(comparisons, arms=results.arms, backends=results.backends)
    (axis,) = figure.axes
    assert results.reference not in [label.get_text() for label in axis.get_yticklabels()]
    assert any(np.allclose(line.get_xdata(), 0.0) for line in axis.get_lines())  # the zero line
    for collection, backend in zip([c for c in axis.collections if isinstance(c, PathCollection)], results.backends):
        rows = comparisons[comparisons["backend"] == backend]
        np.testing.assert_allclose(
            collection.get_offsets()[:, 0], rows["mean_difference"], rtol=0, atol=DRAWN_TOLERANCE
        )
        white = np.all(np.isclose(collection.get_facecolors()[:, :3], 1.0), axis=1)
        assert white.tolist() == (~rows["significant"].to_numpy(dtype=bool)).tolist()


def test_heatmap_annotates_every_cell(results: Results) -> None:
    table = results.pivot(backend="torch")
    figure = figures.grid_heatmap(table, metric="test_accuracy")
    axis = figure.axes[0]
    annotations = [text.get_text() for text in axis.texts]
    assert annotations == [f"{value:.3g}" for value in table.to_numpy().ravel()]
    assert [label.get_text() for label in axis.get_yticklabels()] == list(table.index)
    assert len(figure.axes) == 2  # the heatmap and its colorbar


def test_backend_parity_plots_each_seed_pair(results: Results) -> None:
    final = results.final()
    figure = figures.backend_parity_plot(
        final, metric="test_accuracy", arms=results.arms, first="torch", second="keras"
    )
    (axis,) = figure.axes
    points = np.concatenate(_scatter_points(axis))
    ok = final[final["status"] == "ok"]
    paired = ok.pivot_table(index=["arm", "seed"], columns="backend", values="test_accuracy").dropna()
    assert len(points) == len(paired)
    expected = {(round(x, 12), round(y, 12)) for x, y in paired[["torch", "keras"]].to_numpy()}
    assert {(round(x, 12), round(y, 12)) for x, y in points} == expected
    largest = float((paired["torch"] - paired["keras"]).abs().max())
    assert f"largest |difference| {largest:.3g}" in axis.get_title()


def test_generalization_gap_plot_draws_the_gap_means(results: Results) -> None:
    gap = results.generalization_gap()
    figure = figures.generalization_gap_plot(gap, arms=results.arms, backends=results.backends)
    (axis,) = figure.axes
    first = _scatter_points(axis)[0]
    rows = gap[gap["backend"] == results.backends[0]]
    np.testing.assert_allclose(first[:, 0], rows["mean"].to_numpy(), rtol=0, atol=DRAWN_TOLERANCE)


@pytest.mark.parametrize(
    "arm", [r"$\notacommand{$", "cost $5 and $6", "<b>x</b> & y"], ids=["bad-mathtext", "dollars", "markup"]
)
def test_user_strings_are_printed_not_parsed_as_mathtext(results: Results, arm: str) -> None:
    summary = results.summary()
    summary = summary.assign(arm=summary["arm"].replace({results.arms[0]: arm}))
    arms = [arm, *results.arms[1:]]
    figure = figures.final_metric_plot(summary, metric="test_accuracy", arms=arms, backends=results.backends)
    png = figures.figure_png(figure)  # with mathtext on, r"$\notacommand{$" raises ValueError here
    assert png.startswith(PNG_SIGNATURE) and len(png) > 5_000
    assert figure.axes[0].get_yticklabels()[0].get_text() == arm


def test_figures_change_no_global_setting(results: Results) -> None:
    before = dict(matplotlib.rcParams)
    gallery.build_figures(results)
    after = dict(matplotlib.rcParams)
    assert {key for key in before if before[key] != after[key]} == set()


def test_gallery_picks_the_figures_that_apply(results: Results) -> None:
    keys = [item.key for item in gallery.build_figures(results)]
    assert keys == [
        "curves_loss",
        "curves_accuracy",
        "final_metric",
        "forest",
        "heatmap_torch",
        "heatmap_keras",
        "gap",
        "parity_keras",
    ]
    frames = synthetic_frames(
        optimizers=("sgd",), widths=(16,), backends=("torch",), seeds=2, epochs=3, failed=0, diverged=0
    )
    single = Results(frames.trials, frames.metrics, frames.arms, frames.axes[:1], name="single")
    assert [item.key for item in gallery.build_figures(single)] == [
        "curves_loss",
        "curves_accuracy",
        "final_metric",
        "gap",
    ]


def test_a_registered_builder_adds_its_figure(results: Results) -> None:
    def activation_histograms(results: Results) -> list[gallery.ReportFigure]:
        figure = figures.new_figure(4, 3)
        figure.subplots().hist(np.arange(10))
        return [gallery.ReportFigure("activations", "Activations", "per layer", figure)]

    gallery.register_figure_builder(activation_histograms)
    gallery.register_figure_builder(activation_histograms)  # idempotent
    try:
        keys = [item.key for item in gallery.build_figures(results)]
        assert keys.count("activations") == 1 and keys[-1] == "activations"
    finally:
        gallery.FIGURE_BUILDERS.remove(activation_histograms)


def test_figure_png_is_a_decodable_image(results: Results) -> None:
    figure = figures.final_metric_plot(
        results.summary(), metric="test_accuracy", arms=results.arms, backends=results.backends
    )
    png = figures.figure_png(figure, dpi=50)
    pixels = matplotlib.image.imread(io.BytesIO(png), format="png")  # a real PNG decoder
    width, height = figures.png_size(png)
    inches = figure.get_size_inches()
    assert pixels.shape[:2] == (height, width)
    assert abs(width - inches[0] * 50) <= 1 and abs(height - inches[1] * 50) <= 1  # matplotlib truncates px
    assert pixels[..., :3].std() > 0.05  # not a blank canvas


def test_empty_comparisons_still_draw() -> None:
    empty = pd.DataFrame(
        columns=["arm", "backend", "metric", "reference", "mean_difference", "ci_low", "ci_high", "significant"]
    )
    figure = figures.forest_plot(empty, arms=["a"], backends=["torch"])
    assert figures.figure_png(figure).startswith(PNG_SIGNATURE)


def _numeric_axis_results() -> Results:
    """The synthetic optimizer x width grid with the width axis labelled by plain numbers (a swept value);
    every torch trial of the last arm diverges, so one point has no mean."""
    frames = synthetic_frames(
        optimizers=("sgd", "adam"), widths=(4, 64, 512), backends=("torch", "keras"), seeds=3, epochs=3, diverged=3
    )
    trials = frames.trials.rename(columns={"model.mlp.hidden": "model.mlp.width"})
    trials["model.mlp.width"] = trials["model.mlp.width"].str.strip("[]")
    axes = ("optimizer", "model.mlp.width")
    return Results(
        trials, frames.metrics, frames.arms, axes, name="numeric", report_options={"metric": "test_accuracy"}
    )


def test_a_numeric_axis_gets_the_metric_against_its_values_per_backend() -> None:
    from harness.report import sections

    numeric = _numeric_axis_results()
    (axis,) = sections.numeric_axes(numeric)  # 'optimizer' is not numeric
    assert (axis.name, axis.series_axis, axis.log_scale) == ("model.mlp.width", "optimizer", True)
    (item,) = gallery.numeric_axis_figures(numeric)
    summary = numeric.summary()
    summary = summary[summary["metric"] == "test_accuracy"]
    torch_panel, keras_panel = item.figure.axes[:2]
    assert torch_panel.get_xscale() == "log" and torch_panel.get_title() == "torch"
    for panel, backend in ((torch_panel, "torch"), (keras_panel, "keras")):
        lines = {line.get_label(): line for line in panel.get_lines() if line.get_marker() == "o"}
        assert set(lines) == {"sgd", "adam"}
        for optimizer, line in lines.items():
            expected = summary[(summary["backend"] == backend) & (summary["optimizer"] == optimizer)]
            expected = expected.assign(x=expected["model.mlp.width"].astype(float)).sort_values("x")
            np.testing.assert_array_equal(line.get_xdata(), expected["x"])
            np.testing.assert_allclose(line.get_ydata(), expected["mean"], atol=DRAWN_TOLERANCE)
    # the torch trials of adam at width 512 all diverged: no mean there, an x on the bottom edge instead
    crosses = [line for line in torch_panel.get_lines() if line.get_marker() == "x"]
    assert len(crosses) == 1 and list(crosses[0].get_xdata()) == [512.0]
    assert not [line for line in keras_panel.get_lines() if line.get_marker() == "x"]
    table = sections.numeric_axis_table(numeric, axis)
    assert table.columns == ("model.mlp.width", "sgd (torch)", "sgd (keras)", "adam (torch)", "adam (keras)")
    assert [row[0] for row in table.rows] == ["4", "64", "512"]
    assert table.rows[2][3] == "- (0/3 ok)"
    assert float(table.rows[0][1]) > 0.1  # a plain mean where every trial finished ok


def test_no_numeric_axis_figure_for_labelled_variants(results: Results) -> None:
    from harness.report import sections

    assert sections.numeric_axes(results) == [] and gallery.numeric_axis_figures(results) == []
