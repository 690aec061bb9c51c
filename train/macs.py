"""Multiply-accumulates per inference (batch 1), counted from a Keras model.

Only the layers that dominate compute are counted: Conv1D/2D/3D,
DepthwiseConv2D, SeparableConv2D and Dense. For each, every output position
does one MAC per kernel weight, so ``MACs = prod(output spatial dims) *
kernel.size`` (Dense applied to a vector has no spatial dims). Pooling,
activations, BatchNorm and additions are ignored: they are a few percent at
most. VGG16 at 224x224 gives the textbook 15.5 GMAC.

export/ stores the figure in the manifest; benchmarks turn latency into GMAC/s.
"""
from __future__ import annotations

from typing import Any, Iterator

_CONV = {"Conv1D", "Conv2D", "Conv3D", "DepthwiseConv2D", "DepthwiseConv1D", "Dense"}
_SEPARABLE = {"SeparableConv2D", "SeparableConv1D"}


def _walk(model: Any) -> Iterator[Any]:
    for layer in getattr(model, "layers", []):
        if hasattr(layer, "layers") and layer.layers:  # a nested model
            yield from _walk(layer)
        else:
            yield layer


def _output_shapes(layer: Any) -> list[tuple]:
    nodes = getattr(layer, "_inbound_nodes", None) or []
    shapes = []
    for node in nodes:
        for t in getattr(node, "output_tensors", []) or []:
            shapes.append(tuple(t.shape))
    if not shapes:
        try:
            shapes.append(tuple(layer.output.shape))
        except (AttributeError, ValueError):
            pass
    return shapes


def _prod(dims: Any) -> int:
    out = 1
    for d in dims:
        if d is None:
            raise ValueError("MACs need a model with a fixed input size (a dimension is None)")
        out *= int(d)
    return out


def layer_macs(layer: Any) -> int:
    """MACs of one layer for every call recorded in the graph (batch 1)."""
    kind = type(layer).__name__
    if kind not in _CONV and kind not in _SEPARABLE:
        return 0
    total = 0
    for shape in _output_shapes(layer):
        spatial = _prod(shape[1:-1])
        if kind in _SEPARABLE:
            total += spatial * (_prod(layer.depthwise_kernel.shape) + _prod(layer.pointwise_kernel.shape))
        else:
            total += spatial * _prod(layer.kernel.shape)
    return total


def count_macs(model: Any) -> int:
    """Total multiply-accumulates of one inference of ``model`` (batch size 1)."""
    return int(sum(layer_macs(layer) for layer in _walk(model)))


def macs_by_layer(model: Any) -> dict[str, int]:
    return {layer.name: layer_macs(layer) for layer in _walk(model) if layer_macs(layer)}
