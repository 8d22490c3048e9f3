"""Make the small data the example suites read, in examples/data/ (no download; a fixed seed, so the
files, their content hashes and the examples' results are the same on every machine).

    python examples/make_data.py [FOLDER]     # FOLDER: default examples/data

housing.csv   400 rows: rooms, area, age, district (categorical) -> price (regression)
shapes.npz    Keras' layout (x_train, y_train, x_test, y_test): 16x16 uint8 greyscale images of a
              square, a disc or a cross at a random place and size, with noise (600 train, 200 test)
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parent / "data"
SEED = 20_261_206


def housing(folder: Path, rows: int = 400) -> None:
    rng = np.random.default_rng([SEED, 0])
    districts = np.array(["harbour", "hills", "old_town", "suburbs"])
    district = districts[rng.integers(0, len(districts), rows)]
    rooms = rng.integers(1, 7, rows)
    area = rooms * 18 + rng.normal(0, 12, rows).round(1)
    age = rng.uniform(0, 80, rows).round(0)
    premium = {"harbour": 60.0, "hills": 35.0, "old_town": 20.0, "suburbs": 0.0}
    price = (80 + 2.1 * area - 0.6 * age + np.vectorize(premium.get)(district) + 0.004 * (area - 90) ** 2) + rng.normal(
        0, 12, rows
    )
    lines = ["rooms,area,age,district,price"]
    lines += [f"{r},{a:.1f},{g:.0f},{d},{p:.1f}" for r, a, g, d, p in zip(rooms, area, age, district, price)]
    (folder / "housing.csv").write_text("\n".join(lines) + "\n")


def shapes(rows: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    size = 16
    rows_axis, cols_axis = np.mgrid[0:size, 0:size]
    labels = np.arange(rows) % 3
    rng.shuffle(labels)
    images = np.zeros((rows, size, size), dtype=np.float64)
    for index, label in enumerate(labels):
        radius = rng.uniform(2.5, 5.0)
        row, col = rng.uniform(radius, size - 1 - radius, 2)
        dy, dx = rows_axis - row, cols_axis - col
        if label == 0:  # square
            shape = (np.abs(dy) <= radius) & (np.abs(dx) <= radius)
        elif label == 1:  # disc
            shape = dy**2 + dx**2 <= radius**2
        else:  # cross
            shape = ((np.abs(dy) <= 1) & (np.abs(dx) <= radius)) | ((np.abs(dx) <= 1) & (np.abs(dy) <= radius))
        images[index] = shape * rng.uniform(150, 255)
    images += rng.normal(0, 40, images.shape)
    return np.clip(images, 0, 255).astype(np.uint8), labels.astype(np.int64)


def main(folder: Path = DATA) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    housing(folder)
    x_train, y_train = shapes(600, np.random.default_rng([SEED, 1]))
    x_test, y_test = shapes(200, np.random.default_rng([SEED, 2]))
    np.savez_compressed(folder / "shapes.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    print(f"wrote {folder / 'housing.csv'} and {folder / 'shapes.npz'}")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DATA)
