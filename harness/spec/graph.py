"""The graph form of a model: named nodes wired into a DAG, with one or more weighted outputs.

    model:
      graph:
        inputs: x                       # the name of the model input (default 'input')
        nodes:                          # in order: a node reads only the input and nodes above it
          - {name: a, layer: {dense: {units: 64, activation: relu}}, from: x}
          - {name: b, layer: {dense: {units: 64, activation: tanh}}, from: x}
          - {name: merged, layer: {concatenate: {}}, from: [a, b]}
          - {name: logits, layer: {dense: {}}}            # `from` defaults to the node above
        outputs:                        # default: the last node; a name or a list of names also works
          - {from: logits, weight: 1.0}                   # name defaults to the node, loss to the suite's

Meaning:
    - A node applies its layer to the tensors named in `from` (one, or several for add,
      concatenate and multi_head_attention [query, context]).
    - A dense node read directly by an output and given no `units` gets the dataset's output width.
    - Every output predicts the dataset's target. The minimized data loss is the weighted MEAN of
      the per-output losses, sum_i(weight_i * loss_i) / sum_i(weight_i); each per-output loss is
      recorded too; task metrics (accuracy, ...) come from the FIRST output.
    - Every node must feed an output (a dead branch would train nothing and is refused).
Canonical weight keys are '<node index>.<kind>.<tensor>', like a stack's; node names appear in
messages and in LayerPlan.node.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from harness.errors import SpecError, did_you_mean
from harness.spec.components import LOSSES
from harness.spec.layer_types import LayerPlan, LayerSpec, Shape
from harness.spec.layers import infer_layer, resolve_layer
from harness.spec.params import POSITIVE_NUMBER

DEFAULT_INPUT = "input"
NAME_PATTERN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
GRAPH_KEYS = ("inputs", "nodes", "outputs")
NODE_KEYS = ("name", "layer", "from")
OUTPUT_KEYS = ("from", "name", "loss", "weight")


@dataclass(frozen=True)
class ModelOutput:
    """One output of a model, resolved: which plan produces it, its loss (None: the trial's) and weight."""

    name: str
    index: int  # index of the LayerPlan producing it
    loss: str | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class GraphNode:
    name: str
    sources: tuple[str, ...]  # the input's name or earlier node names, in order


@dataclass(frozen=True)
class GraphOutput:
    name: str
    source: str
    loss: str | None = None
    weight: float = 1.0


@dataclass(frozen=True)
class GraphSpec:
    """The wiring of a graph model; its layers live in ModelSpec.layers, one per node, in node order."""

    input: str
    nodes: tuple[GraphNode, ...]
    outputs: tuple[GraphOutput, ...]

    def to_dict(self) -> dict[str, Any]:
        return {
            "input": self.input,
            "nodes": [{"name": node.name, "from": list(node.sources)} for node in self.nodes],
            "outputs": [{"name": o.name, "from": o.source, "loss": o.loss, "weight": o.weight} for o in self.outputs],
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GraphSpec:
        return cls(
            input=data["input"],
            nodes=tuple(GraphNode(n["name"], tuple(n["from"])) for n in data["nodes"]),
            outputs=tuple(
                GraphOutput(o["name"], o["from"], o.get("loss"), o.get("weight", 1.0)) for o in data["outputs"]
            ),
        )

    def model_outputs(self) -> tuple[ModelOutput, ...]:
        index = {node.name: i for i, node in enumerate(self.nodes)}
        return tuple(ModelOutput(o.name, index[o.source], o.loss, o.weight) for o in self.outputs)


def _name(value: Any, where: str) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise SpecError(
            f"{where}: expected a name of letters, digits and '_' (not starting with a digit), got {value!r}."
        )
    return value


def _names(value: Any, where: str) -> tuple[str, ...]:
    values = value if isinstance(value, list) else [value]
    if not values:
        raise SpecError(f"{where}: expected a node name or a non-empty list of names, got {value!r}.")
    return tuple(_name(item, f"{where}[{i}]" if isinstance(value, list) else where) for i, item in enumerate(values))


def _check_keys(raw: Mapping[str, Any], allowed: tuple[str, ...], where: str) -> None:
    for key in raw:
        if key not in allowed:
            raise SpecError(
                f"{where}.{key}: unknown key {key!r}.{did_you_mean(str(key), allowed)} Expected keys: {', '.join(allowed)}."
            )


def _output(raw: Any, where: str) -> GraphOutput:
    if isinstance(raw, str):
        raw = {"from": raw}
    if not isinstance(raw, Mapping) or "from" not in raw:
        raise SpecError(
            f"{where}: expected a node name or a mapping such as {{from: logits, weight: 1.0}}, got {raw!r}."
        )
    _check_keys(raw, OUTPUT_KEYS, where)
    source = _name(raw["from"], f"{where}.from")
    loss = raw.get("loss")
    if loss is not None and loss not in LOSSES:
        raise SpecError(
            f"{where}.loss: unknown loss {loss!r}.{did_you_mean(str(loss), LOSSES)} Expected one of: {', '.join(LOSSES)}."
        )
    weight = POSITIVE_NUMBER.check(raw.get("weight", 1.0), f"{where}.weight")
    return GraphOutput(_name(raw.get("name", source), f"{where}.name"), source, loss, weight)


def resolve_graph(raw: Any, num_outputs: int, where: str = "model.graph") -> tuple[tuple[LayerSpec, ...], GraphSpec]:
    """Resolve the `graph:` mapping into its layers (node order) and wiring.

    Raises:
        SpecError: bad keys or names, a reference to an unknown or later node, an unused node,
        duplicate names, a bad output, or a bad layer (naming the node).
    """
    if not isinstance(raw, Mapping):
        raise SpecError(f"{where}: expected a mapping with 'nodes' (and optionally 'inputs', 'outputs'), got {raw!r}.")
    _check_keys(raw, GRAPH_KEYS, where)
    inputs = raw.get("inputs", DEFAULT_INPUT)
    if isinstance(inputs, list):
        if len(inputs) != 1:
            raise SpecError(f"{where}.inputs: a dataset feeds exactly one input, got {inputs!r}. Name one input.")
        inputs = inputs[0]
    input_name = _name(inputs, f"{where}.inputs")
    raw_nodes = raw.get("nodes")
    if not isinstance(raw_nodes, list) or not raw_nodes:
        raise SpecError(
            f"{where}.nodes: expected a non-empty list of nodes such as {{name: a, layer: {{dense: {{units: 8}}}}, from: {input_name}}}."
        )
    raw_outputs = raw.get("outputs")
    if raw_outputs is None:
        raw_outputs = [raw_nodes[-1].get("name") if isinstance(raw_nodes[-1], Mapping) else None]
    outputs = tuple(
        _output(o, f"{where}.outputs[{i}]")
        for i, o in enumerate(raw_outputs if isinstance(raw_outputs, list) else [raw_outputs])
    )
    if not outputs:
        raise SpecError(f"{where}.outputs: expected at least one output.")
    output_sources = {o.source for o in outputs}
    raw_names = [n.get("name") for n in raw_nodes if isinstance(n, Mapping)]
    for i, output in enumerate(outputs):
        if output.source not in raw_names:
            valid = [name for name in raw_names if isinstance(name, str)]
            raise SpecError(
                f"{where}.outputs[{i}].from: {output.source!r} is not a node.{did_you_mean(output.source, valid)}"
            )
    output_names = [o.name for o in outputs]
    if len(set(output_names)) != len(output_names):
        raise SpecError(f"{where}.outputs: output names must be unique, got {output_names}. Give each a `name`.")
    nodes: list[GraphNode] = []
    layers: list[LayerSpec] = []
    defined = [input_name]
    for i, node in enumerate(raw_nodes):
        here = f"{where}.nodes[{i}]"
        if not isinstance(node, Mapping) or "name" not in node or "layer" not in node:
            raise SpecError(
                f"{here}: expected a mapping with 'name' and 'layer' (and optionally 'from'), got {node!r}."
            )
        _check_keys(node, NODE_KEYS, here)
        name = _name(node["name"], f"{here}.name")
        if name in defined:
            raise SpecError(
                f"{here}.name: the name {name!r} is already used ({'the input' if name == input_name else 'an earlier node'}). Names must be unique."
            )
        sources = _names(node["from"], f"{here}.from") if "from" in node else (defined[-1],)
        for source in sources:
            if source not in defined:
                later = any(isinstance(n, Mapping) and n.get("name") == source for n in raw_nodes[i:])
                reason = (
                    "is listed below this node: list nodes after the nodes they read from"
                    if later
                    else (f"is not the input or an earlier node.{did_you_mean(source, defined)}")
                )
                raise SpecError(f"{here}.from: {source!r} {reason} (known so far: {', '.join(defined)}).")
        layer = node["layer"]
        if (
            name in output_sources
            and isinstance(layer, Mapping)
            and set(layer) == {"dense"}
            and isinstance(layer["dense"], Mapping)
            and "units" not in layer["dense"]
        ):
            layer = {"dense": {**layer["dense"], "units": num_outputs}}  # an output's width comes from the dataset
        layers.append(resolve_layer(layer, f"{here} '{name}'.layer"))
        nodes.append(GraphNode(name, sources))
        defined.append(name)
    used = output_sources | {source for node in nodes for source in node.sources}
    unused = [node.name for node in nodes if node.name not in used]
    if unused:
        raise SpecError(
            f"{where}: node(s) {', '.join(map(repr, unused))} feed no other node and no output, so they would train "
            "nothing. Remove them, wire them in with `from`, or list them under outputs."
        )
    return tuple(layers), GraphSpec(input_name, tuple(nodes), outputs)


def plan_graph(layers: tuple[LayerSpec, ...], graph: GraphSpec, input_shape: Shape) -> tuple[LayerPlan, ...]:
    """Infer every node's shapes and tensors in node order; raise SpecError naming the node and shapes."""
    index = {graph.input: -1}
    shapes: dict[int, Shape] = {-1: tuple(input_shape)}
    plans = []
    for i, (node, layer) in enumerate(zip(graph.nodes, layers)):
        sources = tuple(index[name] for name in node.sources)
        where = f"model.graph.nodes[{i}] '{node.name}' ({layer.kind})"
        plan = infer_layer(i, layer, tuple(shapes[s] for s in sources), where, inputs=sources, node=node.name)
        plans.append(plan)
        index[node.name] = i
        shapes[i] = plan.output_shape
    return tuple(plans)
