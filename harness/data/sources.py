"""Where the raw arrays come from: MNIST-1D's generator, scikit-learn's bundled files, synthetic sets.

Everything here is offline and deterministic: nothing downloads, and every random draw
comes from a FIXED dataset seed (never the trial seed), so every arm and seed of a suite
sees the same data. Producers return float64 features and the original labels; the cut
into splits, scaling, dtype and shape are done by `harness.data.splits` and `load_dataset`.

The two slow producers (MNIST-1D: ~1 s import + ~1.4 s generation; scikit-learn: ~1.5 s
import) are cached on disk under `$HARNESS_CACHE` (default ~/.cache/harness) as .npz,
keyed by the producing package's version, and written atomically. A cache hit returns
bit-identical arrays and imports neither package.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import tempfile
import zipfile
from collections.abc import Callable, Mapping
from importlib import metadata
from pathlib import Path

import numpy as np

Arrays = dict[str, np.ndarray]

DATASET_SEED = 20_240_601  # root of every dataset-level draw; changing it changes every split (and every result)
# Stream ids under DATASET_SEED: default_rng([DATASET_SEED, stream, ...]) keeps the draws independent.
TEST_SPLIT_STREAM = 0  # held-out test split of datasets without their own (harness.data.splits)
VALIDATION_STREAM = 1  # validation carved from the training split
PERMUTE_STREAM = 2  # MNIST-1D position permutation (spatial-prior ablation)
SPIRALS_STREAM = 3
TEACHER_WEIGHTS_STREAM = 4  # the teacher network: independent of n_samples
TEACHER_INPUTS_STREAM = 5
TEACHER_NOISE_STREAM = 6
SYMBOL_PROTOTYPES_STREAM = 7  # symbol_sequences: the symbols' feature vectors, independent of n_samples
SYMBOL_SEQUENCES_STREAM = 8  # symbol_sequences: label strings, durations, gaps and noise

CACHE_ENVIRONMENT_VARIABLE = "HARNESS_CACHE"
CACHE_FORMAT = 1  # bump when the stored layout changes so old files are never misread

# MNIST-1D's generator arguments as returned by mnist1d.data.get_dataset_args() in 0.0.2.x
# (the published dataset, Greydanus & Kobak 2024). Kept here so a cache hit needs no import;
# `generate_mnist1d` checks the installed package still returns exactly these.
MNIST1D_ARGS: dict[str, object] = {
    "num_samples": 5000,
    "train_split": 0.8,
    "template_len": 12,
    "padding": [36, 60],
    "scale_coeff": 0.4,
    "max_translation": 48,
    "corr_noise_scale": 0.25,
    "iid_noise_scale": 2e-2,
    "shear_scale": 0.75,
    "shuffle_seq": False,
    "final_seq_length": 40,
    "seed": 42,
}

SKLEARN_LOADERS = {  # dataset name -> function in sklearn.datasets (all read files shipped inside the wheel)
    "digits": "load_digits",
    "breast_cancer": "load_breast_cancer",
    "iris": "load_iris",
    "wine": "load_wine",
    "diabetes": "load_diabetes",
}


# ---------------------------------------------------------------------------------------------
# Disk cache
# ---------------------------------------------------------------------------------------------


def cache_directory() -> Path:
    """`$HARNESS_CACHE` if set, else ~/.cache/harness (read at call time, so tests can redirect it)."""
    configured = os.environ.get(CACHE_ENVIRONMENT_VARIABLE)
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "harness"


def cache_path(kind: str, key: Mapping[str, object]) -> Path:
    """The .npz file for `kind` (e.g. 'mnist1d') under a digest of `key` (versions and arguments)."""
    digest = hashlib.sha256(json.dumps({"format": CACHE_FORMAT, **key}, sort_keys=True).encode()).hexdigest()[:16]
    return cache_directory() / "datasets" / f"{kind}-{digest}.npz"


def cached_arrays(path: Path, produce: Callable[[], Arrays]) -> Arrays:
    """Arrays from `path` if present and readable, else `produce()` them and store them there.

    The file is written to a temporary name in the same directory and renamed into place
    (os.replace is atomic on POSIX and Windows), so concurrent workers never read a half
    written file. An unwritable or corrupt cache is not an error: the arrays are produced
    in memory and returned, identical either way.
    """
    try:
        with np.load(path, allow_pickle=False) as stored:
            return {name: stored[name] for name in stored.files}
    except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):  # missing, truncated or foreign: regenerate
        pass
    arrays = produce()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(prefix=path.stem, suffix=".tmp", dir=path.parent)
        try:
            with os.fdopen(handle, "wb") as stream:
                # numeric arrays only: the cache is read back with allow_pickle=False, so say so on write too
                np.savez(stream, allow_pickle=False, **arrays)
            os.chmod(temporary, 0o644)  # mkstemp makes 0600; the cache holds public data
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError:
        pass  # read-only home, full disk: caching is an optimization only
    return arrays


def package_version(package: str) -> str:
    """Installed version of `package`, read from its metadata (no import)."""
    return metadata.version(package)


# ---------------------------------------------------------------------------------------------
# MNIST-1D
# ---------------------------------------------------------------------------------------------


def generate_mnist1d() -> Arrays:
    """Run `mnist1d.data.make_dataset(get_dataset_args())` (never `get_dataset`, which downloads).

    Returns:
        {'x': (4000, 40) float64, 'y': (4000,) int64, 'x_test': (1000, 40) float64,
        'y_test': (1000,) int64}, exactly make_dataset's arrays.

    make_dataset reseeds Python's and NumPy's GLOBAL generators (seed 42); their previous
    states are restored so loading data never changes another component's random stream.
    """
    import mnist1d.data  # lazy: imports matplotlib and requests (~1 s)

    arguments = mnist1d.data.get_dataset_args()
    received = {key: value for key, value in vars(arguments).items() if key != "url"}
    if received != MNIST1D_ARGS:
        raise RuntimeError(
            f"mnist1d {package_version('mnist1d')} returns dataset arguments {received}, not the published "
            f"{MNIST1D_ARGS} this harness was built against; update MNIST1D_ARGS in harness/data/sources.py."
        )
    numpy_state, python_state = np.random.get_state(), random.getstate()
    try:
        generated = mnist1d.data.make_dataset(arguments)
    finally:
        np.random.set_state(numpy_state)
        random.setstate(python_state)
    return {name: np.asarray(generated[name]) for name in ("x", "y", "x_test", "y_test")}


def mnist1d_arrays() -> Arrays:
    """MNIST-1D through the disk cache (keyed by mnist1d version and generator arguments)."""
    key = {"mnist1d": package_version("mnist1d"), "arguments": MNIST1D_ARGS}
    return cached_arrays(cache_path("mnist1d", key), generate_mnist1d)


def mnist1d_permutation(length: int = 40) -> np.ndarray:
    """The ONE fixed permutation of MNIST-1D's positions (option `permute: true`), int64 (length,).

    Column j of the permuted data is column permutation[j] of the original, in train and test alike.
    """
    return np.random.default_rng([DATASET_SEED, PERMUTE_STREAM]).permutation(length)


# ---------------------------------------------------------------------------------------------
# scikit-learn's bundled data
# ---------------------------------------------------------------------------------------------


def load_sklearn(name: str) -> Arrays:
    """Read one of scikit-learn's bundled datasets (no download): {'x': (N, D) float64, 'y': (N,)}.

    diabetes is read UNSCALED (scaled=False): sklearn's default pre-scales with statistics of
    all 442 rows, test rows included; the harness standardizes with training statistics instead.
    """
    import sklearn.datasets  # lazy: ~1.5 s

    loader = getattr(sklearn.datasets, SKLEARN_LOADERS[name])
    extra = {"scaled": False} if name == "diabetes" else {}
    x, y = loader(return_X_y=True, **extra)
    return {"x": np.asarray(x, dtype=np.float64), "y": np.asarray(y)}


def sklearn_arrays(name: str) -> Arrays:
    """A scikit-learn bundled dataset through the disk cache (keyed by scikit-learn's version)."""
    key = {"scikit-learn": package_version("scikit-learn"), "loader": SKLEARN_LOADERS[name]}
    return cached_arrays(cache_path(f"sklearn-{name}", key), lambda: load_sklearn(name))


# ---------------------------------------------------------------------------------------------
# Synthetic sets (cheap: made in memory every time)
# ---------------------------------------------------------------------------------------------


def make_spirals(n_samples: int, noise: float, turns: float) -> Arrays:
    """Two interleaved spirals (binary), in the style of Lang & Witbrock (1988).

    Sample i has label i % 2 (so the classes differ in size by at most one) and angle
    theta = turns * 2*pi * sqrt(u), u ~ U(0, 1) (sqrt: density even along the arm, not
    crowded at the centre). Radius r = theta / pi, so adjacent arms of the two classes are
    1 unit apart and `noise` (std of Gaussian jitter added to each coordinate) is in those
    units. Class 0 sits at (r cos theta, r sin theta), class 1 at the point reflected
    through the origin.

    Returns:
        {'x': (n_samples, 2) float64, 'y': (n_samples,) int64}
    """
    rng = np.random.default_rng([DATASET_SEED, SPIRALS_STREAM])
    labels = np.arange(n_samples, dtype=np.int64) % 2
    theta = turns * 2.0 * np.pi * np.sqrt(rng.uniform(size=n_samples))
    radius = theta / np.pi
    sign = np.where(labels == 0, 1.0, -1.0)
    points = sign[:, None] * np.stack([radius * np.cos(theta), radius * np.sin(theta)], axis=1)
    return {"x": points + noise * rng.standard_normal((n_samples, 2)), "y": labels}


def make_teacher_student(n_samples: int, n_features: int, teacher_hidden: int, n_targets: int, noise: float) -> Arrays:
    """Regression targets from a fixed random teacher network.

    x ~ N(0, I) (n_features); y = tanh(x W1 + b1) W2 + noise * eps, with W1 ~ N(0, 1/n_features)
    (teacher_hidden units, so pre-activations have unit variance), b1 ~ N(0, 1),
    W2 ~ N(0, 1/teacher_hidden) and eps ~ N(0, 1). The teacher is drawn from its own stream,
    so it does not change with n_samples; `noise` is the irreducible error's std.

    Returns:
        {'x': (n_samples, n_features) float64, 'y': (n_samples, n_targets) float64}
    """
    teacher = np.random.default_rng([DATASET_SEED, TEACHER_WEIGHTS_STREAM, n_features, teacher_hidden, n_targets])
    first = teacher.standard_normal((n_features, teacher_hidden)) / np.sqrt(n_features)
    bias = teacher.standard_normal(teacher_hidden)
    second = teacher.standard_normal((teacher_hidden, n_targets)) / np.sqrt(teacher_hidden)
    x = np.random.default_rng([DATASET_SEED, TEACHER_INPUTS_STREAM]).standard_normal((n_samples, n_features))
    standard_noise = np.random.default_rng([DATASET_SEED, TEACHER_NOISE_STREAM]).standard_normal((n_samples, n_targets))
    return {"x": x, "y": np.tanh(x @ first + bias) @ second + noise * standard_noise}


SYMBOL_FRAMES = (2, 4)  # symbol_sequences: each symbol lasts 2, 3 or 4 frames (uniform)


def symbol_sequence_frames(max_length: int) -> int:
    """Fewest timesteps that fit every symbol_sequences sample: max_length symbols of the longest
    duration, with one silent frame between neighbours."""
    return max_length * SYMBOL_FRAMES[1] + max_length - 1


def make_symbol_sequences(
    n_samples: int, num_symbols: int, max_length: int, timesteps: int, features: int, noise: float
) -> Arrays:
    """Unaligned sequence labelling (a toy speech recognizer's task), made in code for the ctc loss.

    Each sample is a string of L ~ U{1..max_length} symbols drawn uniformly from 1..num_symbols
    (repeats allowed). It is rendered as `timesteps` frames of `features` values: symbol k
    fills d ~ U{2..4} consecutive frames with its prototype vector p_k, and silent frames (zeros)
    separate neighbours (at least one) and pad both ends, the silence spread at random; then
    N(0, noise^2) is added to every value. Prototypes are N(0, 1) draws from their own stream,
    so they do not change with n_samples. The model must output the string without being told
    where each symbol is, which is what CTC (Graves et al. 2006) learns.

    The target is the string padded with 0 to max_length: 0 is never a symbol because it is the
    ctc blank. Every sample is feasible for ctc on `timesteps` output steps (a repeated symbol is
    separated by silence, and timesteps >= symbol_sequence_frames(max_length)).

    Returns:
        {'x': (n_samples, timesteps * features) float64, 'y': (n_samples, max_length) int64}
    """
    if timesteps < symbol_sequence_frames(max_length):
        raise ValueError(
            f"timesteps {timesteps} < {symbol_sequence_frames(max_length)} frames needed for max_length {max_length}"
        )
    prototypes = np.random.default_rng([DATASET_SEED, SYMBOL_PROTOTYPES_STREAM, num_symbols, features]).standard_normal(
        (num_symbols + 1, features)
    )
    prototypes[0] = 0.0  # index 0: silence
    rng = np.random.default_rng([DATASET_SEED, SYMBOL_SEQUENCES_STREAM])
    lengths = rng.integers(1, max_length + 1, size=n_samples)
    labels = np.zeros((n_samples, max_length), dtype=np.int64)
    frames = np.zeros((n_samples, timesteps), dtype=np.int64)  # the symbol (or 0) shown at each frame
    for row, length in enumerate(lengths):
        symbols = rng.integers(1, num_symbols + 1, size=length)
        durations = rng.integers(SYMBOL_FRAMES[0], SYMBOL_FRAMES[1] + 1, size=length)
        # silence: one frame between neighbours, the rest spread over the length + 1 gaps
        spare = timesteps - durations.sum() - (length - 1)
        gaps = rng.multinomial(spare, np.full(length + 1, 1.0 / (length + 1)))
        gaps[1:-1] += 1
        position = gaps[0]
        for symbol, duration, gap in zip(symbols, durations, gaps[1:]):
            frames[row, position : position + duration] = symbol
            position += duration + gap
        labels[row, :length] = symbols
    x = prototypes[frames] + noise * rng.standard_normal((n_samples, timesteps, features))
    return {"x": x.reshape(n_samples, timesteps * features), "y": labels}
