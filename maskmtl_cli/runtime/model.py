"""Read a Keras 3 ``.keras`` file and run its functional graph with the numpy layers.

Weights layout (Keras 3 ``saving_lib``, checked on files written by Keras 3.15): the variables of
the i-th layer of class ``C`` in the model's layer order live in
``layers/<snake_case(C)>[_i]/vars/0..n`` (no suffix for the first of a class), in the order the
layer created them, and the ``vars`` group carries the layer name as its ``name`` attribute.
Sublayers of a custom layer sit in groups named after the Python attribute that holds them, e.g.
``layers/non_local_block/theta/vars`` and ``layers/non_local_block/batch_norm/vars``.
"""

from __future__ import annotations

import functools
import io
import json
import os
import re
import zipfile
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from maskmtl_cli.blas import limit_blas_threads
from maskmtl_cli.errors import InputError
from maskmtl_cli.runtime.layers import (
    FOLDABLE_LAYERS,
    Op,
    UnsupportedModelError,
    WeightsGetter,
    batch_norm_affine,
    identity,
    make_op,
)

TensorKey = tuple[str, int]  # (layer name, node index): the output of one layer call
#: Images per forward pass inside ``predict_on_batch``: feature maps of 16 faces stay in cache,
#: which made batches of 256 about 1.4x faster than one pass over all of them (2-core CPU).
CHUNK_SIZE = 16
#: Threads that run chunks side by side (numpy releases the GIL in its array work); each calls
#: BLAS single-threaded, which is 2.2x faster than one thread on 2 cores for the wide preset.
WORKERS = min(os.cpu_count() or 1, 8)


@dataclass(frozen=True)
class TensorSpec:
    """Name and static shape (batch dimension None) of a model input or output."""

    name: str
    shape: tuple[int | None, ...]


@dataclass(frozen=True)
class _Step:
    """One layer call of the graph: ``output = op(inputs)``."""

    layer_name: str
    op: Op
    inputs: tuple[TensorKey, ...]
    output: TensorKey


class NumpyModel:
    """A functional ``.keras`` model run with numpy; duck-types ``keras.Model`` for inference.

    Build it with ``load_numpy_model``. It has the attributes maskmtl's inference code reads
    (``name``, ``input_shape``, ``inputs``, ``outputs``, ``output_names``) and
    ``predict_on_batch``, with Keras' conventions: dict outputs come in sorted key order and
    ``output_names`` are the output layers' names.

    Args:
        name: Model name from the file.
        input_spec: The single input.
        steps: Layer calls in dependency order.
        output_keys: Output key (task name) -> the tensor holding it.
        blas_threads: Cap on BLAS threads during ``predict_on_batch`` (None: leave as is).
    """

    def __init__(
        self,
        name: str,
        input_spec: TensorSpec,
        steps: list[_Step],
        output_keys: dict[str, TensorKey],
        blas_threads: int | None = 1,
    ):
        self.name = name
        self.inputs = [input_spec]
        self.input_shape = input_spec.shape
        self.output_names = [key[0] for key in output_keys.values()]
        self.blas_threads = blas_threads
        self._steps = steps
        self._input_key: TensorKey = (input_spec.name, 0)
        self._output_keys = output_keys
        self._last_use = {key: index for index, step in enumerate(steps) for key in step.inputs}
        probe = np.zeros((1,) + tuple(input_spec.shape[1:]), dtype="float32")
        try:  # also checks that every weight fits its layer
            shapes = {key: value.shape[1:] for key, value in self.predict_on_batch(probe).items()}
        except (ValueError, IndexError) as error:
            raise UnsupportedModelError(
                f"Model '{name}' does not run in the numpy runtime ({error}); load it with Keras."
            ) from None
        self.outputs = [TensorSpec(key, (None,) + shapes[key]) for key in output_keys]

    def predict_on_batch(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run the model on one batch.

        Args:
            x: Array of shape ``(N,) + input_shape[1:]``; converted to float32.

        Returns:
            The outputs keyed like the model's outputs (task names for maskmtl models), float32.

        Raises:
            InputError: ``x`` does not have the model's input shape.
        """
        x = np.asarray(x, dtype="float32")
        if x.ndim != len(self.input_shape) or x.shape[1:] != tuple(self.input_shape[1:]):
            raise InputError(
                f"Model '{self.name}' takes inputs of shape {self.input_shape}; "
                f"received an array of shape {x.shape}."
            )
        parts = [x[start : start + CHUNK_SIZE] for start in range(0, max(len(x), 1), CHUNK_SIZE)]
        with limit_blas_threads(self.blas_threads):
            if len(parts) > 1 and WORKERS > 1:
                chunks = list(_chunk_pool().map(self._forward, parts))
            else:
                chunks = [self._forward(part) for part in parts]
        if len(chunks) == 1:
            return chunks[0]
        return {name: np.concatenate([part[name] for part in chunks]) for name in self._output_keys}

    def _forward(self, x: np.ndarray) -> dict[str, np.ndarray]:
        """Run the layer calls in order on one chunk, dropping feature maps after their last use."""
        tensors = {self._input_key: x}
        keep = set(self._output_keys.values())
        for index, step in enumerate(self._steps):
            tensors[step.output] = step.op([tensors[key] for key in step.inputs])
            for key in step.inputs:
                if self._last_use[key] == index and key not in keep:
                    tensors.pop(key, None)
        return {
            name: tensors[key].astype("float32", copy=False)
            for name, key in self._output_keys.items()
        }

    def __repr__(self) -> str:
        return (
            f"NumpyModel(name={self.name!r}, input_shape={self.input_shape}, "
            f"outputs={self.output_names})"
        )


def load_numpy_model(path: str | Path, blas_threads: int | None = 1) -> NumpyModel:
    """Load a Keras 3 ``.keras`` functional model for numpy inference.

    Args:
        path: The ``.keras`` file.
        blas_threads: Cap on BLAS threads while predicting. 1 (the default) is fastest for the
            small matmuls of a few faces and on a busy machine, where OpenBLAS threads spin
            waiting for each other; None leaves the BLAS library's own setting.

    Returns:
        A ``NumpyModel`` ready for ``predict_on_batch`` (and ``inference.predict_arrays``).

    Raises:
        UnsupportedModelError: The file is not a readable ``.keras`` zip, or the model uses a
            layer or option the runtime does not implement (the message names it).
    """
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
            weights_bytes = archive.read("model.weights.h5")
    except (OSError, zipfile.BadZipFile, KeyError, ValueError, EOFError) as error:
        raise UnsupportedModelError(
            f"'{path}' is not a readable .keras file ({type(error).__name__}: {error})."
        ) from None
    kind = config.get("class_name") if isinstance(config, dict) else type(config).__name__
    if kind != "Functional":
        raise UnsupportedModelError(
            f"'{path}' holds a {kind} model; the numpy runtime runs functional models only.",
            layer_class=str(kind),
        )
    try:
        with h5py.File(io.BytesIO(weights_bytes), "r") as weights_file:
            name, input_spec, steps, output_keys = _build_graph(config["config"], weights_file)
    except (OSError, KeyError, TypeError, IndexError, AttributeError) as error:
        raise UnsupportedModelError(
            f"'{path}' has a malformed graph or weights file ({type(error).__name__}: {error})."
        ) from None
    return NumpyModel(name, input_spec, steps, output_keys, blas_threads)


def _build_graph(graph: dict, weights_file: h5py.File):
    """The parts of a ``NumpyModel`` from the ``config`` of a Functional model and its weights."""
    layers = {layer["name"]: layer for layer in graph["layers"]}
    input_layers = graph["input_layers"]
    if len(input_layers) == 1 and isinstance(input_layers[0], list):  # [[name, node, tensor]]
        input_layers = input_layers[0]
    if not (isinstance(input_layers, list) and isinstance(input_layers[0], str)):
        raise UnsupportedModelError("The numpy runtime runs single-input models only.")
    input_config = layers[input_layers[0]]["config"]
    shape = input_config.get("batch_shape") or input_config.get("batch_input_shape")
    if shape is None or any(dim is None for dim in shape[1:]):
        raise UnsupportedModelError(f"Input shape {shape} is not static; the runtime needs one.")
    input_spec = TensorSpec(input_layers[0], tuple(shape))

    outputs = graph["output_layers"]
    if isinstance(outputs, dict):  # Keras flattens dict outputs in sorted key order
        output_keys = {key: (outputs[key][0], outputs[key][1]) for key in sorted(outputs)}
    else:
        outputs = [outputs] if isinstance(outputs[0], str) else outputs
        output_keys = {item[0]: (item[0], item[1]) for item in outputs}

    nodes = {
        (layer["name"], index): _node_inputs(layer, node)
        for layer in graph["layers"]
        for index, node in enumerate(layer.get("inbound_nodes", []))
    }
    order = _topological_order(nodes, (input_spec.name, 0), list(output_keys.values()))
    folds = _batch_norm_folds(layers, nodes, order, set(output_keys.values()))
    paths = _weight_paths(graph["layers"], weights_file)
    ops: dict[str, Op] = {}
    steps = []
    for key in order:
        name = key[0]
        if name not in ops:
            weights = _weights_getter(weights_file, paths.get(name), name)
            if name in folds.values():  # already folded into the conv or dense before it
                ops[name] = identity
            elif name in folds:
                bn_name = folds[name]
                bn_weights = _weights_getter(weights_file, paths.get(bn_name), bn_name)
                fold = batch_norm_affine(layers[bn_name], bn_weights)
                ops[name] = make_op(layers[name], weights, fold)
            else:
                ops[name] = make_op(layers[name], weights)
        steps.append(_Step(name, ops[name], nodes[key], key))
    return graph.get("name", "model"), input_spec, steps, output_keys


def _node_inputs(layer: dict, node: dict) -> tuple[TensorKey, ...]:
    """The tensors one call of a layer reads, in argument order."""
    found: list[TensorKey] = []

    def collect(value: Any) -> None:
        if isinstance(value, dict) and value.get("class_name") == "__keras_tensor__":
            source, node_index, tensor_index = value["config"]["keras_history"]
            if tensor_index != 0:
                raise UnsupportedModelError(
                    f"Layer '{source}' has several outputs; the numpy runtime does not support it."
                )
            found.append((source, node_index))
        elif isinstance(value, (list, tuple)):
            for item in value:
                collect(item)
        elif isinstance(value, dict):
            for item in value.values():
                collect(item)

    collect(node.get("args", []))
    positional = len(found)
    collect(node.get("kwargs", {}))
    if len(found) != positional:
        raise UnsupportedModelError(
            f"Layer '{layer['name']}' ({layer['class_name']}) takes tensors as keyword arguments "
            "(such as a mask); the numpy runtime does not support that.",
            layer_class=layer["class_name"],
        )
    return tuple(found)


def _topological_order(
    nodes: dict, input_key: TensorKey, outputs: list[TensorKey]
) -> list[TensorKey]:
    """The layer calls the outputs need, each after the calls it reads (iterative DFS)."""
    order, done, on_path = [], {input_key}, set()
    for root in outputs:
        stack = [(root, False)]
        while stack:
            key, expanded = stack.pop()
            if key in done:
                continue
            if expanded:
                on_path.discard(key)
                done.add(key)
                order.append(key)
                continue
            if key not in nodes or key in on_path:
                raise UnsupportedModelError(f"The graph reads an unknown or cyclic tensor {key}.")
            on_path.add(key)
            stack.append((key, True))
            stack.extend((parent, False) for parent in reversed(nodes[key]) if parent not in done)
    return order


def _batch_norm_folds(
    layers: dict, nodes: dict, order: list[TensorKey], outputs: set
) -> dict[str, str]:
    """Conv2D/Dense layer -> the BatchNormalization that alone reads it, to fold at load time.

    Only single-call layers with a linear activation whose output is not a model output qualify,
    so folding changes nothing but float rounding.
    """
    readers: dict[TensorKey, list[TensorKey]] = {}
    for key in order:
        for parent in nodes[key]:
            readers.setdefault(parent, []).append(key)
    calls: dict[str, int] = {}
    for name, _ in nodes:
        calls[name] = calls.get(name, 0) + 1
    folds = {}
    for key in order:
        layer = layers[key[0]]
        config = layer.get("config", {})
        if (
            layer["class_name"] not in FOLDABLE_LAYERS
            or layer.get("registered_name")
            or calls[key[0]] != 1
            or config.get("activation") not in (None, "linear")
            or key in outputs
            or len(readers.get(key, [])) != 1
        ):
            continue
        reader = readers[key][0]
        if layers[reader[0]]["class_name"] == "BatchNormalization" and calls[reader[0]] == 1:
            if not layers[reader[0]].get("registered_name"):
                folds[key[0]] = reader[0]
    return folds


def _snake_case(name: str) -> str:
    """Keras' ``naming.to_snake_case``: the h5 group name of a layer class."""
    name = re.sub(r"\W+", "", name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    return re.sub("([a-z])([A-Z])", r"\1_\2", name).lower()


def _weight_paths(layer_configs: list[dict], weights_file: h5py.File) -> dict[str, str]:
    """Layer name -> its h5 group, found as Keras' loader finds it (class counters, layer order).

    Where a ``vars`` group's ``name`` attribute names another layer (a file whose layer order
    differs from its config), the group that carries the layer's own name is used instead.
    """
    counts: dict[str, int] = {}
    paths = {}
    for layer in layer_configs:
        base = _snake_case(layer["class_name"])
        counts[base] = counts.get(base, -1) + 1
        paths[layer["name"]] = f"layers/{base}" + (f"_{counts[base]}" if counts[base] else "")
    by_stored_name = {}
    for group_name, group in weights_file.get("layers", {}).items():
        stored = group["vars"].attrs.get("name") if "vars" in group else None
        if stored is not None:
            by_stored_name[_text(stored)] = f"layers/{group_name}"
    for name, path in paths.items():
        vars_group = weights_file.get(f"{path}/vars")
        stored = vars_group.attrs.get("name") if vars_group is not None else None
        if stored is not None and _text(stored) != name and name in by_stored_name:
            paths[name] = by_stored_name[name]
    return paths


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def _weights_getter(weights_file: h5py.File, path: str | None, layer_name: str) -> WeightsGetter:
    """A function reading a layer's (or a sublayer's) variables as float32 arrays, in order."""

    def get(sublayer: str | None = None) -> list[np.ndarray]:
        group_path = path if sublayer is None else f"{path}/{sublayer}"
        group = weights_file.get(f"{group_path}/vars") if path else None
        if group is None:
            return []
        arrays = [np.asarray(group[str(index)]) for index in range(len(group))]
        if any(array.dtype.kind != "f" for array in arrays):
            raise UnsupportedModelError(
                f"Layer '{layer_name}' has non-float (quantised) weights; load it with Keras."
            )
        return [array.astype("float32") for array in arrays]

    return get


@functools.lru_cache(maxsize=1)
def _chunk_pool() -> ThreadPoolExecutor:
    """The process-wide threads that run the chunks of a batch."""
    return ThreadPoolExecutor(WORKERS, thread_name_prefix="maskmtl-runtime")
