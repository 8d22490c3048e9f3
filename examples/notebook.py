# %% [markdown]
# # harness from a notebook
#
# Run a suite, get its tables as pandas DataFrames and its figures as matplotlib Figures.
# Each `# %%` block is a cell: open this file in Jupyter (with jupytext), VS Code or PyCharm and
# run it cell by cell from the repository root. Trials run in worker processes started with
# `spawn`, which import a script's top level again; a notebook has none, so to run this whole as
# the tests do (tests/test_api.py), execute it the way a kernel would:
#     python -c "exec(open('examples/notebook.py').read())"

# %%
import os
from pathlib import Path

import harness

# Where results go; the store is resumable: running this cell again reuses every stored trial.
STORE = Path(os.environ.get("HARNESS_EXAMPLE_STORE", "results"))
# The shipped smoke suite; paths are relative to the repository root (start Jupyter there).
SUITE = Path("suites/smoke.yaml")

# %% [markdown]
# `harness.run` runs every trial not in the store yet (a progress bar shows them in Jupyter),
# records the run with its git commit (for `harness history`) and returns the Results.
# Here: the smoke suite (SGD vs Adam on digits), PyTorch only, two seeds.

# %%
results = harness.run(SUITE, store=STORE, backends=["torch"], seeds=2, jobs=1)

# %% [markdown]
# Every table is a DataFrame: the summary over seeds (mean, 95% CI), the paired comparisons
# against the reference arm, and the per-epoch curves in tidy form.

# %%
summary = results.summary()
accuracy = summary[summary["metric"] == "test_accuracy"][["arm", "backend", "n", "mean", "ci_low", "ci_high"]]
print(accuracy.to_string(index=False))

# %%
comparisons = results.comparisons()
print(comparisons[["arm", "reference", "metric", "mean_difference", "ci_low", "ci_high"]].to_string(index=False))

# %%
epochs = results.epochs()  # one row per trial, epoch and metric
curve = epochs[epochs["metric"] == "test_accuracy"].groupby(["epoch", "arm"])["value"].mean().unstack("arm")
print(curve.tail(3))

# %% [markdown]
# The report's figures, by key; in a notebook a Figure as the cell's value shows inline.

# %%
figures = harness.figures(results)
print(sorted(figures))
figures["curves_accuracy"]

# %% [markdown]
# Later, in another session: `harness.load` reads the stored results without running anything.

# %%
again = harness.load(STORE / "smoke")
assert again.summary().equals(summary)
