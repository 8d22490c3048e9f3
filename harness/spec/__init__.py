"""The framework-free spec: canonical components, layers, and the frozen TrialSpec."""

from __future__ import annotations

from harness.spec.components import ACTIVATIONS, INITIALIZERS, LOSSES, OPTIMIZERS, Component, resolve_component
from harness.spec.graph import GraphSpec, ModelOutput
from harness.spec.init import initial_weights, weight_key
from harness.spec.layers import LAYERS, LayerPlan, LayerSpec, TensorSpec, fans
from harness.spec.model import check_model_against_task, resolve_model
from harness.spec.types import DatasetSpec, ModelSpec, RegularizerSpec, TrainingSpec, Trial, TrialSpec

__all__ = [
    "ACTIVATIONS",
    "INITIALIZERS",
    "LAYERS",
    "LOSSES",
    "OPTIMIZERS",
    "Component",
    "DatasetSpec",
    "GraphSpec",
    "LayerPlan",
    "LayerSpec",
    "ModelOutput",
    "ModelSpec",
    "RegularizerSpec",
    "TensorSpec",
    "TrainingSpec",
    "Trial",
    "TrialSpec",
    "check_model_against_task",
    "fans",
    "initial_weights",
    "resolve_component",
    "resolve_model",
    "weight_key",
]
