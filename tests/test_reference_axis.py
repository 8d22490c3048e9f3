"""A per-axis report reference (`report: {reference: {optimizer: sgd}}`) end to end: each arm is
compared with the arm that differs from it only in the optimizer, through `harness run`, the
results folder's manifest (no YAML), `harness report`, and `harness validate`'s located errors."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner, Result
from helpers.suites import optimizer_grid_suite, write_suite

import harness
from harness.analysis import Results
from harness.cli import cli
from harness.report import sections

# 2 optimizers x 2 widths, 2 seeds, 2 epochs of torch on iris: 8 tiny trials. The hidden axis is
# the grid's last line (line 15); the report block follows it.
GRID = (
    optimizer_grid_suite(
        "axisref",
        "SGD vs Adam at two widths on iris.",
        dataset="{name: iris, validation: 0.2}",
        model="{mlp: {hidden: [8], activation: relu}}",
        training="{epochs: 2, batch_size: 16}",
        seeds=2,
        arms={"sgd": "{name: sgd, lr: 0.1}", "adam": "{name: adam, lr: 0.01}"},
    )
    + "  model.mlp.hidden: [[4], [8]]\n"
)
SUITE = GRID + "report: {reference: {optimizer: sgd}}\n"
# arm -> the arm it is compared with: same width, optimizer sgd.
EXPECTED_REFERENCES = {"adam,hidden=[4]": "sgd,hidden=[4]", "adam,hidden=[8]": "sgd,hidden=[8]"}


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Result]:
    """One real run of the 2x2 suite, shared by the tests that read its outputs."""
    folder = tmp_path_factory.mktemp("axisref")
    suite = write_suite(folder, SUITE, "axisref.yaml")
    store = folder / "store"
    result = invoke("run", str(suite), "--store", str(store), "--jobs", "1", "--quiet")
    return suite, store, result


def test_run_compares_each_arm_with_its_own_reference(finished_run):
    _, store, result = finished_run
    assert result.exit_code == 0, result.output
    assert "8 trials: 0 already in the store, 8 ok" in result.output
    assert "(reference: optimizer=sgd, each arm vs the arm that differs only there)" in result.output
    table = pd.read_csv(store / "axisref" / "comparisons.csv")
    assert dict(zip(table["arm"], table["reference"])) == EXPECTED_REFERENCES
    assert len(table) == 2 and (table["n_pairs"] == 2).all()


def test_the_manifest_alone_gives_each_arm_its_reference(finished_run):
    """`harness.load` of the results folder reads no YAML: the per-trial labels in suite.json decide."""
    _, store, _ = finished_run
    results = harness.load(store / "axisref")
    assert results.report_options.per_axis
    assert results.report_options.describe_reference() == "optimizer=sgd"
    comparisons = results.comparisons()
    assert dict(zip(comparisons["arm"], comparisons["reference"])) == EXPECTED_REFERENCES
    # Each difference is the arm's final metric minus its own reference's, on the same seed.
    final = results.final().set_index(["arm", "seed"])[results.primary_metric]
    for row in comparisons.to_dict("records"):
        differences = final.loc[row["arm"]] - final.loc[row["reference"]]
        assert row["mean_difference"] == pytest.approx(differences.mean(), abs=1e-12)
        assert row["mean_reference"] == pytest.approx(final.loc[row["reference"]].mean(), abs=1e-12)


def test_an_explicit_reference_still_names_one_arm_for_all(finished_run):
    _, store, _ = finished_run
    results = harness.load(store / "axisref")
    comparisons = results.comparisons(reference="sgd,hidden=[4]")
    assert set(comparisons["reference"]) == {"sgd,hidden=[4]"}
    assert set(comparisons["arm"]) == set(results.arms) - {"sgd,hidden=[4]"}


def test_hand_built_results_take_the_labels_from_the_trials(finished_run):
    _, store, _ = finished_run
    loaded = harness.load(store / "axisref")
    built = Results(
        loaded.trials,
        loaded.metrics,
        loaded.arms,
        loaded.axes,
        name="axisref",
        report_options={"reference": {"optimizer": "sgd"}},
    )
    pd.testing.assert_frame_equal(built.comparisons(), loaded.comparisons())


def test_report_tables_compare_each_arm_with_its_reference(finished_run, tmp_path):
    _, store, _ = finished_run
    result = invoke("report", str(store / "axisref"), "--output", str(tmp_path))
    assert result.exit_code == 0, result.output
    html = (tmp_path / "axisref" / "report.html").read_text()
    assert "Comparisons vs optimizer=sgd" in html
    assert (tmp_path / "axisref" / "report.pdf").stat().st_size > 1000
    results = harness.load(store / "axisref")
    differences = sections.spec_differences_table(results)
    assert differences.columns[:2] == ("arm", "reference")
    pairs = {(row[0], row[1]) for row in differences.rows}
    assert pairs == set(EXPECTED_REFERENCES.items())
    # Only the optimizer differs between an arm and its reference: the width is the same.
    assert all(str(row[2]).startswith("optimizer") for row in differences.rows), differences.rows


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("{optimizer: sgdd}", "report.reference.optimizer: axis 'optimizer' has no label 'sgdd'. Did you mean 'sgd'?"),
        ("{optimiser: sgd}", "report.reference.optimiser: unknown grid axis 'optimiser'. Did you mean 'optimizer'?"),
    ],
)
def test_validate_locates_a_bad_per_axis_reference(tmp_path, reference, message):
    path = write_suite(tmp_path, GRID + f"report:\n  reference: {reference}\n", "bad.yaml")
    result = CliRunner().invoke(cli, ["validate", str(path)])
    assert result.exit_code == 2, result.output
    reference_line = len(GRID.splitlines()) + 2  # `report:` then `  reference: ...`
    assert f"{path}:{reference_line}: {message}" in result.output
    assert "Traceback" not in result.output
