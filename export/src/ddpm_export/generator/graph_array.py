"""Arrays that write ONNX nodes: the runtime's samplers, run on these, write themselves into a graph.

A ``GraphArray`` stands for one tensor of the graph being built (a ``GraphBuilder``). Arithmetic,
the ufuncs and NumPy functions the samplers use (``np.clip``, ``np.abs``, ``np.quantile``,
``np.maximum``, ``np.rint``, ``np.nan_to_num``), slicing with ``None`` and the array methods
``astype``, ``reshape``, ``transpose`` and ``as_float64`` each add nodes and return a new
``GraphArray``. Python and NumPy numbers become constants of the array's dtype, computed in float64
first as the NumPy code computes them. Anything else raises ``TypeError`` at build time, so a sampler
that starts to use an operation this module does not know fails loudly instead of writing a wrong graph.

The batch axis is symbolic in the graph; ``shape`` and ``len`` report it as 1 (the samplers use the
shape only to ask for noise and for a per-row time array, and ``reshape(len(x), -1)`` to flatten
each row).
"""

from __future__ import annotations

from itertools import count

import numpy as np

ONNX_TYPES = {np.dtype(np.float32): 1, np.dtype(np.uint8): 2, np.dtype(np.int64): 7, np.dtype(np.float64): 11}
NOMINAL_BATCH = 1


class GraphBuilder:
    """Nodes and constants of one graph, with fresh short tensor names."""

    def __init__(self, prefix: str = "s"):
        self.nodes: list = []
        self.initializers: list = []
        self._prefix, self._ids, self._constants = prefix, count(), {}

    def fresh(self) -> str:
        return f"{self._prefix}{next(self._ids)}"

    def op(self, op_type: str, inputs: list[str], outputs: int = 1, **attributes) -> list[str]:
        from onnx import helper

        names = [self.fresh() for _ in range(outputs)]
        self.nodes.append(helper.make_node(op_type, inputs, names, **attributes))
        return names

    def constant(self, value, dtype) -> str:
        """An initializer holding ``value`` as ``dtype``, stored once per distinct value."""
        from onnx import numpy_helper

        array = np.asarray(value, dtype=dtype)
        key = (array.dtype.str, array.shape, array.tobytes())
        if key not in self._constants:
            name = self.fresh()
            self.initializers.append(numpy_helper.from_array(array, name))
            self._constants[key] = name
        return self._constants[key]


class GraphArray:
    """One tensor of a ``GraphBuilder``'s graph; ``rank`` and ``dims`` (None for the batch axis) are known."""

    def __init__(self, builder: GraphBuilder, name: str, dtype, dims: tuple):
        self.builder, self.name, self.dtype, self.dims = builder, name, np.dtype(dtype), tuple(dims)

    # --- what NumPy code reads -------------------------------------------------------------------
    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(NOMINAL_BATCH if d is None else d for d in self.dims)

    @property
    def ndim(self) -> int:
        return len(self.dims)

    def __len__(self) -> int:
        return self.shape[0]

    def _new(self, name: str, dtype=None, dims=None) -> GraphArray:
        return GraphArray(
            self.builder, name, self.dtype if dtype is None else dtype, self.dims if dims is None else dims
        )

    def _operand(self, other) -> tuple[str, tuple]:
        if isinstance(other, GraphArray):
            if other.builder is not self.builder:
                raise TypeError("GraphArrays of two graphs")
            return other.name, other.dims
        if isinstance(other, (int, float, np.number)) or (isinstance(other, np.ndarray) and other.ndim == 0):
            return self.builder.constant(other, self.dtype), ()
        raise TypeError(f"a GraphArray meets a {type(other).__name__}; only numbers and GraphArrays are supported")

    def _binary(self, op_type: str, other, reverse: bool = False) -> GraphArray:
        other_name, other_dims = self._operand(other)
        if isinstance(other, GraphArray) and other.dtype != self.dtype:
            raise TypeError(f"{op_type} of {self.dtype} and {other.dtype}: cast first, as NumPy code would")
        inputs = [other_name, self.name] if reverse else [self.name, other_name]
        dims = _broadcast(self.dims, other_dims)
        return self._new(self.builder.op(op_type, inputs)[0], dims=dims)

    # --- arithmetic ------------------------------------------------------------------------------
    def __add__(self, other):
        return self._binary("Add", other)

    def __radd__(self, other):
        return self._binary("Add", other, reverse=True)

    def __sub__(self, other):
        return self._binary("Sub", other)

    def __rsub__(self, other):
        return self._binary("Sub", other, reverse=True)

    def __mul__(self, other):
        return self._binary("Mul", other)

    def __rmul__(self, other):
        return self._binary("Mul", other, reverse=True)

    def __truediv__(self, other):
        return self._binary("Div", other)

    def __rtruediv__(self, other):
        return self._binary("Div", other, reverse=True)

    def __neg__(self):
        return self._new(self.builder.op("Neg", [self.name])[0])

    def __abs__(self):
        return self._new(self.builder.op("Abs", [self.name])[0])

    # --- array methods ---------------------------------------------------------------------------
    def astype(self, dtype) -> GraphArray:
        dtype = np.dtype(dtype)
        if dtype == self.dtype:
            return self
        return self._new(self.builder.op("Cast", [self.name], to=ONNX_TYPES[dtype])[0], dtype=dtype)

    def as_float64(self) -> GraphArray:
        return self.astype(np.float64)

    def reshape(self, *shape) -> GraphArray:
        shape = shape[0] if len(shape) == 1 and isinstance(shape[0], tuple) else shape
        if len(shape) == 2 and shape[0] == NOMINAL_BATCH and shape[1] == -1 and self.dims[0] is None:
            flat = int(np.prod(self.dims[1:]))
            return self._new(self.builder.op("Flatten", [self.name], axis=1)[0], dims=(None, flat))
        raise TypeError(f"GraphArray.reshape{shape}: only reshape(len(x), -1), one row per image, is supported")

    def transpose(self, *axes) -> GraphArray:
        axes = tuple(axes[0]) if len(axes) == 1 and isinstance(axes[0], (tuple, list)) else tuple(axes)
        dims = tuple(self.dims[a] for a in axes)
        return self._new(self.builder.op("Transpose", [self.name], perm=list(axes))[0], dims=dims)

    def __getitem__(self, key) -> GraphArray:
        key = key if isinstance(key, tuple) else (key,)
        full = slice(None)
        if key and key[0] == full and all(k is None for k in key[1:]) and len(key) > 1:
            axes = list(range(self.ndim, self.ndim + len(key) - 1))
            name = self.builder.op("Unsqueeze", [self.name, self.builder.constant(axes, np.int64)])[0]
            return self._new(name, dims=self.dims + (1,) * len(axes))
        raise TypeError(f"GraphArray[{key}]: only x[:, None, ...] is supported")

    # --- NumPy dispatch --------------------------------------------------------------------------
    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        if method != "__call__" or kwargs:
            return NotImplemented
        first, *rest = inputs
        if ufunc in _BINARY and len(inputs) == 2:
            if isinstance(first, GraphArray):
                return first._binary(_BINARY[ufunc], rest[0])
            return rest[0]._binary(_BINARY[ufunc], first, reverse=True)
        if ufunc in _UNARY and len(inputs) == 1:
            return first._new(first.builder.op(_UNARY[ufunc], [first.name])[0])
        return NotImplemented

    def __array_function__(self, func, types, args, kwargs):
        handler = _FUNCTIONS.get(func)
        if handler is None:
            return NotImplemented
        return handler(*args, **kwargs)


def _broadcast(a: tuple, b: tuple) -> tuple:
    """NumPy's broadcast of two dims tuples (None: the batch axis)."""
    rank = max(len(a), len(b))
    a, b = (1,) * (rank - len(a)) + a, (1,) * (rank - len(b)) + b
    return tuple(y if x == 1 else x for x, y in zip(a, b, strict=True))


_BINARY = {
    np.add: "Add",
    np.subtract: "Sub",
    np.multiply: "Mul",
    np.true_divide: "Div",
    np.maximum: "Max",
    np.minimum: "Min",
}
_UNARY = {np.negative: "Neg", np.absolute: "Abs", np.sqrt: "Sqrt", np.exp: "Exp", np.rint: "Round"}


def _clip(a: GraphArray, a_min, a_max, **kwargs) -> GraphArray:
    """np.clip(a, lo, hi) = minimum(maximum(a, lo), hi), with scalar or broadcast bounds."""
    if kwargs:
        raise TypeError(f"np.clip on a GraphArray takes no {sorted(kwargs)}")
    return np.minimum(np.maximum(a, a_min), a_max)


def _nan_to_num(x: GraphArray, copy=True, nan=0.0, posinf=None, neginf=None) -> GraphArray:
    if posinf is not None or neginf is not None:
        raise TypeError("np.nan_to_num on a GraphArray replaces NaN only")
    builder = x.builder
    is_nan = builder.op("IsNaN", [x.name])[0]
    return x._new(builder.op("Where", [is_nan, builder.constant(nan, x.dtype), x.name])[0])


def _quantile(a: GraphArray, q, axis=None, method="linear", **kwargs) -> GraphArray:
    """np.quantile along axis 1 of (batch, n), method linear: with i = q (n - 1), lo = floor(i), the
    lerp of the sorted row's values lo and lo + 1 as NumPy's ``_lerp`` computes it. Only the top
    n - lo values are sorted (TopK)."""
    if axis != 1 or a.ndim != 2 or method != "linear" or kwargs or np.ndim(q) != 0:
        raise TypeError("np.quantile on a GraphArray: one q, along axis 1 of (batch, n), method linear")
    builder, n = a.builder, a.dims[1]
    index = float(q) * (n - 1)
    low = int(np.floor(index))
    fraction = index - low
    k = n - low  # the values at sorted positions low..n-1, largest first: position low is the last
    values = builder.op("TopK", [a.name, builder.constant([k], np.int64)], outputs=2, axis=1, largest=1, sorted=1)[0]

    def column(j: int) -> GraphArray:
        picked = builder.op("Gather", [values, builder.constant(j, np.int64)], axis=1)[0]
        return a._new(picked, dims=(None,))

    below = column(k - 1)
    if k == 1 or fraction == 0.0:
        return below
    above = column(k - 2)
    difference = above - below
    if fraction >= 0.5:  # NumPy's _lerp: the form that is exact at the upper end
        return above - difference * (1.0 - fraction)
    return below + difference * fraction


_FUNCTIONS = {np.clip: _clip, np.nan_to_num: _nan_to_num, np.quantile: _quantile}
