"""Keras networks run by TensorFlow Lite's interpreter with XNNPACK, for the CPU.

TensorFlow's graph runtime spends most of a small network's time around the kernels (MTCNN's
PNet: 21 ms for nine pyramid levels, where TFLite with XNNPACK takes 6 ms). The network is
converted once, in memory, from its traced function with the weights frozen in (about 0.6 s for
each MTCNN network, 2 s for the age/gender net; no files, no download), and the interpreter uses
XNNPACK, TFLite's default CPU delegate.

Each interpreter is planned for one input shape, and planning it again for another costs up to
about 1 ms (a PNet level; 0.1 ms for RNet's and ONet's batches), so a :class:`LiteNetwork` keeps
up to ``max_shapes`` interpreters, one per recent shape, and plans the least recently used one
again for a new shape.

``tf.lite.Interpreter`` is deprecated in favour of the separate ``ai_edge_litert`` package,
but TF 2.21 still ships it; we silence its warning rather than add a dependency.
"""

from __future__ import annotations

import os
import threading
import warnings

import numpy as np


def default_threads() -> int:
    """The CPU cores this process may use (TensorFlow's graph runtime uses them all, too)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class LiteNetwork:
    """A Keras network's outputs for an input batch, as arrays: a list in the model's output order,
    or a dict by name for a model whose outputs are named (the age/gender net).

    ``input_shape`` is the shape of one input with ``None`` for open sizes (PNet: ``(None, None, 3)``);
    the batch is always open. Calls may come from several threads: they take turns.
    """

    def __init__(self, model, input_shape: tuple[int | None, ...], threads: int | None = None, max_shapes: int = 1):
        import tensorflow as tf
        from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2

        spec = [tf.TensorSpec((None, *input_shape), tf.float32, name="x")]
        traced = tf.function(lambda x: model(x, training=False), input_signature=spec).get_concrete_function()
        # Frozen: converted with its variables, the graph would read uninitialised ones (NaN).
        frozen = convert_variables_to_constants_v2(traced)
        self._flatbuffer = tf.lite.TFLiteConverter.from_concrete_functions([frozen], model).convert()
        self._tf, self._threads = tf, threads or default_threads()
        self._max_shapes = max_shapes
        self._interpreters: dict[tuple[int, ...], object] = {}  # by input shape, least recently used first
        self._lock = threading.Lock()
        # The converter may list the outputs in another order; the signature names them output_0, output_1...
        # in tf.nest's order of the model's outputs (a dict's by sorted key).
        signature = self._new_interpreter().get_signature_runner()
        self._input = signature.get_input_details()["x"]["index"]
        outputs = signature.get_output_details()
        self._output_order = [outputs[f"output_{i}"]["index"] for i in range(len(outputs))]
        self._structure = traced.structured_outputs

    def __call__(self, batch: np.ndarray) -> list[np.ndarray] | dict[str, np.ndarray]:
        batch = np.ascontiguousarray(batch, dtype=np.float32)
        with self._lock:
            interpreter = self._interpreter(batch.shape)
            interpreter.set_tensor(self._input, batch)
            interpreter.invoke()
            outputs = [interpreter.get_tensor(index) for index in self._output_order]  # copies
        return self._tf.nest.pack_sequence_as(self._structure, outputs)

    def _interpreter(self, shape: tuple[int, ...]):
        """The interpreter planned for ``shape``: a kept one, a new one, or the least recently used one
        planned again."""
        interpreter = self._interpreters.pop(shape, None)
        if interpreter is None:
            if len(self._interpreters) >= self._max_shapes:
                interpreter = self._interpreters.pop(next(iter(self._interpreters)))
            else:
                interpreter = self._new_interpreter()
            interpreter.resize_tensor_input(self._input, shape)
            interpreter.allocate_tensors()
        self._interpreters[shape] = interpreter
        return interpreter

    def _new_interpreter(self):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", r"\s*Warning: tf.lite.Interpreter is deprecated")
            return self._tf.lite.Interpreter(model_content=self._flatbuffer, num_threads=self._threads)
