"""Text for `harness list`: suites, datasets, components and backends, read from the registries."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import yaml

from harness.adapters import BACKENDS
from harness.spec.components import REGISTRIES
from harness.spec.layers import LAYERS
from harness.spec.model import FAMILIES
from harness.spec.params import declared
from harness.spec.schedules import EARLY_STOPPING_FORMULA, EarlyStoppingSpec
from harness.spec.types import RegularizerSpec

SCHEDULES_HEADING = (
    "Learning-rate schedules (suite key `training.lr_schedule`; a bare parameter is required; t = optimizer step "
    "from 0 over the trial, T = its total steps, lr0 = the optimizer's lr)"
)


def list_suites(directory: Path) -> str:
    """Each suite file in `directory` with its name and description (read, not validated)."""
    lines = [f"Suites in {directory}/ (run one with: harness run {directory}/<file>.yaml)"]
    files = sorted(directory.glob("*.yaml")) + sorted(directory.glob("*.yml"))
    if not files:
        lines.append("  (none found; pass --suites-dir)")
    for path in files:
        try:
            document = yaml.safe_load(path.read_text()) or {}
            description = str(document.get("description", "")).strip() if isinstance(document, dict) else ""
        except (OSError, yaml.YAMLError):
            description = "(unreadable: run `harness validate` on it)"
        lines.append(f"  {path.name:<24} {description}")
    return "\n".join(lines) + "\n"


def list_datasets_text() -> str:
    from harness.data import list_datasets

    lines = ["Datasets (all offline; splits fixed per dataset)"]
    for info in list_datasets():
        classes = f"{info.num_classes} classes" if info.num_classes else f"{info.num_outputs} targets"
        if info.target_length and info.num_classes is not None:  # sequence: classes count the ctc blank
            classes = f"{info.num_classes - 1}+blank, <={info.target_length}"  # strings up to target_length
        lines.append(
            f"  {info.name:<16} {info.task:<14} input {info.input_shape!s:<10} {classes:<11} {info.description}"
        )
    lines.extend(_registered_text())
    return "\n".join(lines) + "\n"


def _registered_text() -> list[str]:
    """Datasets and models installed packages register (entry points), with the package each comes from.
    Only their metadata is read: nothing is imported until a suite uses one."""
    from harness.data.plugins import GROUPS, entry_points, origin

    lines = []
    for group in GROUPS:
        points = entry_points(group)
        if points:
            lines.append(f"Registered by installed packages (entry points {group}; a suite using one runs its code)")
            lines.extend(
                f"  {name:<16} {point.value:<32} from {origin(point)}" for name, point in sorted(points.items())
            )
    return lines


def list_components() -> str:
    """Every canonical component with its parameters (defaults) and formula."""
    lines = []
    for kind, registry in REGISTRIES.items():
        lines.append({"loss": "Losses", "lr_schedule": SCHEDULES_HEADING}.get(kind, f"{kind.capitalize()}s"))
        for name, definition in registry.items():
            params = ", ".join(
                key if param.default is None and not param.nullable else f"{key}={param.default}"
                for key, param in definition.params.items()
            )
            lines.append(f"  {name}({params})" if params else f"  {name}")
            lines.append(f"      {definition.formula}")
    stopping = ", ".join(f"{key}={param.default}" for key, param in EarlyStoppingSpec.PARAMETERS.items())
    lines.append(f"Early stopping (suite key `training.early_stopping`)\n  early_stopping({stopping})")
    lines.append(f"      {EARLY_STOPPING_FORMULA}")
    lines.append("Layers (a bare parameter is required; =auto is derived: strides = pool_size, key_dim = width/heads,")
    lines.append("        a recurrent kernel_initializer = the suite's initializer, ...)")
    for name, layer in LAYERS.items():
        params = ", ".join(
            key if key in layer.required else f"{key}={'auto' if param.default is None else param.default}"
            for key, param in layer.params.items()
        )
        lines.append(f"  {name}({params})\n      {layer.doc}")
    lines.append("Model families")
    lines.extend(f"  {name}: {doc}" for name, doc in FAMILIES.items())
    lines.append("Regularizers (suite key `regularizer`)")
    for key, declaration in declared(RegularizerSpec).items():
        lines.append(f"  {key + ':':<13} {declaration.formula}")
        if declaration.description:
            lines.append(f"  ({declaration.description})")
    return "\n".join(lines) + "\n"


def list_backends() -> str:
    lines = ["Backends"]
    for name, entry in BACKENDS.items():
        missing = [package for package in entry.requires if importlib.util.find_spec(package) is None]
        state = "installed" if not missing else f'missing {", ".join(missing)}: pip install "harness[{entry.extra}]"'
        lines.append(f"  {name:<18} {state}")
    return "\n".join(lines) + "\n"
