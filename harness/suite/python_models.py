"""A suite's Python models (model.python): which init_mode they take, that every backend has a factory that
builds a model fitting the loss, and their torch/Keras parameter pairing (harness.suite.load calls these)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

from harness.spec import TrialSpec
from harness.suite.schema import check_init_mode
from harness.suite.yaml_source import SuiteIssue


def python_model_init(document: Mapping[str, Any], diagnostics: Any, paired: bool) -> str:
    """A Python model whose torch and Keras parameters are paired (`names`) takes either init_mode, `shared` by
    default (harness.adapters.python_models.shared_initial_weights). An unpaired one starts from its framework's
    own initial weights (`native`): the harness cannot draw shared ones for tensors it cannot pair, so its trials
    are not paired across backends."""
    if paired:
        init_mode = check_init_mode(document.get("init_mode", "shared"))
    elif document.get("init_mode", "native") != "native":
        raise SuiteIssue(
            ("init_mode",),
            f"{document.get('init_mode')!r}: a Python model (model.python) without `names` starts from its "
            "framework's own initial weights; the harness cannot draw shared ones for tensors it cannot pair across "
            "the frameworks. Pair the torch and Keras parameters (model.names: {torch_parameter: "
            "keras_variable_path, ...} or names: by_shape), or use init_mode: native (or drop the key).",
        )
    else:
        init_mode = "native"
    if diagnostics is not None:
        raise SuiteIssue(
            ("diagnostics",),
            "per-layer diagnostics need the harness's own layers; a Python model (model.python) has none it can "
            "see. Drop diagnostics for this suite.",
        )
    return init_mode


def check_python_models(templates: list[TrialSpec | None], backends: Sequence[str]) -> None:
    """Every backend of the suite has a factory for each Python model, and each factory builds a model whose
    output fits the loss (this imports the framework and runs the user's code, and says so). A paired model's
    pairing is checked against both built models (`by_shape`: found), and its template then carries it."""
    from harness.adapters.python_models import check_python_model, factory_key

    for position, template in enumerate(templates):
        if template is None or not template.model.python:
            continue
        given = dict(template.model.python)
        for backend in backends:
            if factory_key(backend) not in given:
                raise SuiteIssue(
                    ("model", "python"),
                    f"backend {backend!r} needs a {factory_key(backend)!r} factory, and this model gives only "
                    f"{', '.join(given)}. Add {factory_key(backend)}: module:function, or run only backends "
                    f"{[name for name in backends if factory_key(name) in given]}.",
                )
        for key in sorted({factory_key(backend) for backend in backends}):
            check_python_model(template, key)
        if template.model.names or template.model.by_shape:
            templates[position] = dataclasses.replace(template, model=pair_python_model(template))


def pair_python_model(template: TrialSpec) -> Any:
    """The Python model with its pairing checked against both built models (and found, by_shape): every
    resolution of a paired model's spec goes through here (the suite's cells, a search's configurations)."""
    from harness.adapters.keras.python_model import variable_shapes
    from harness.adapters.python_models import resolve_names
    from harness.adapters.torch.python_model import build_module, canonical_shapes
    from harness.data import dataset_info
    from harness.data.user_datasets import note

    info = dataset_info(template.dataset)
    note("model.names: building both factories' models to pair their parameters (Python code the suite names)")
    torch_shapes = canonical_shapes(build_module(template.model, info.input_shape, info.num_outputs))
    keras_shapes = variable_shapes(template.model, info.input_shape, info.num_outputs)
    names = resolve_names(template.model, torch_shapes, keras_shapes)
    return dataclasses.replace(template.model, names=names)
