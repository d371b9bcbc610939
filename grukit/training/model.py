"""``gk.Model``: Keras' compile / fit / evaluate / predict over grukit's layers, and Keras'
functional API: ``gk.Model(inputs, outputs)`` runs the graph that layers called on
``layers.Input`` make (training/functional.py). ``gk.Sequential`` (training/sequential.py)
is a Model of a stack of layers, as in Keras.

Inputs may be NumPy arrays, torch tensors, Python lists, pandas frames, a torch ``Dataset`` /
``DataLoader`` or a generator yielding ``(x, y)`` pairs; a model of several inputs takes x as a
list of them, one per Input. The one training loop (training/fit.py) also serves
``gk.architect`` networks.
"""

from __future__ import annotations

import numbers
import os
import re
import warnings
from typing import Any, Optional, Sequence, Union

import numpy as np
import torch
from torch import Tensor, nn

from .. import _checks
from . import callbacks as cbks
from . import checkpoint, functional, losses, optimizers, placement
from . import fit as fit_loop
from . import layers as L
from .data import Batches, by_name

OPTIMIZERS = {  # name -> (class, Keras' default learning rate, extra arguments)
    "adam": (torch.optim.Adam, 1e-3, {"eps": 1e-7}),
    "adamw": (torch.optim.AdamW, 1e-3, {"eps": 1e-7}),
    "sgd": (torch.optim.SGD, 1e-2, {}),
    "rmsprop": (torch.optim.RMSprop, 1e-3, {"eps": 1e-7, "alpha": 0.9}),
    "adagrad": (torch.optim.Adagrad, 1e-3, {"initial_accumulator_value": 0.1, "eps": 1e-7}),
    "adamax": (torch.optim.Adamax, 1e-3, {"eps": 1e-7}),
    "nadam": (torch.optim.NAdam, 1e-3, {"eps": 1e-7}),  # torch's momentum schedule, close to Keras'
    "adadelta": (torch.optim.Adadelta, 1e-3, {"eps": 1e-7, "rho": 0.95}),
}


# ------------------------------------------------------------------------ model

_ONE_BATCH = 2**31 - 1  # a batch size no data reaches: train_on_batch and friends take x whole

# Weights files of other formats: {suffix: (write(model, path), read(path, model))}, registered by
# grukit.formats, which builds on this ring (Keras 3's ".weights.h5": formats/keras_files.py)
WEIGHTS_FILES: dict[str, tuple[Any, Any]] = {}
# Model files of other formats, the same way: {suffix: (write(model, path, grukit_bytes), read(path))}
# (Keras 3's ".keras": a Keras model file that holds grukit's own file too)
MODEL_FILES: dict[str, tuple[Any, Any]] = {}

class Model(nn.Module):
    """Keras' Model: ``gk.Model(inputs, outputs)`` makes a model of the graph between
    ``layers.Input`` objects and the outputs of layers called on them (Keras' functional
    API; a list of Inputs for several inputs, a list of outputs for several), with Keras'
    training API, which ``gk.Sequential`` shares.

    Example::

        >>> import numpy as np, grukit as gk
        >>> from grukit import layers
        >>> inputs = layers.Input((None, 3))
        >>> outputs = layers.Dense(1)(layers.GRU(8)(inputs))
        >>> model = gk.Model(inputs, outputs)
        >>> model.compile(optimizer="adam", loss="mse")
        >>> history = model.fit(np.random.rand(16, 5, 3), np.random.rand(16, 1), epochs=2, verbose=0)
        >>> model.predict(np.random.rand(4, 9, 3)).shape
        (4, 1)

    A model of several inputs takes x as a list (one array per Input, in ``inputs``' order) or a
    dict by the Inputs' names in fit, evaluate, predict and calls; one of several outputs gives
    a list of them when called or predicted (fit and evaluate train a model of one output).
    """

    _functional = True  # a graph of layers.Input and layer outputs (Sequential: a stack of layers)

    def __init__(self, inputs: Any = None, outputs: Any = None, device: Any = "auto",
                 name: Optional[str] = None) -> None:
        super().__init__()
        self.device_spec = placement.check("device", device)  # see training/placement.py
        self.layers = nn.ModuleList()
        self.compiled = False
        self.stop_training = False
        self.optimizer: Optional[torch.optim.Optimizer] = None
        self.input_spec: Optional[tuple[list[int], str]] = None  # one sample's shape, dtype
        self.compute_dtype: Optional[torch.dtype] = None  # set by gk.quantize(model, torch.bfloat16)
        if name is not None and not isinstance(name, str):
            raise TypeError(f"name must be a str, got {_checks.describe(name)}")
        self.name = name
        self.graph: Optional[functional.Graph] = None
        if not self._functional:  # a Sequential: its layers come from the list
            return
        if inputs is None or outputs is None:
            raise TypeError("gk.Model takes inputs and outputs: layers.Input objects and the outputs of "
                            "layers called on them (Keras' functional API); a stack of layers is "
                            "gk.Sequential([...]); a model with its own forward is a torch.nn.Module")
        self.graph = functional.Graph(*functional.cut(inputs, outputs))
        for layer in self.graph.layers:
            self.layers.append(layer)
        first = self.graph.inputs[0]
        self.input_spec = ([1 if d is None else d for d in first.shape], first.dtype)

    # ------------------------------------------------------------------ calling

    @property
    def inputs(self) -> list[functional.KerasTensor]:
        """Keras' ``model.inputs``: the graph's input tensors."""
        return [functional.source(layer) for layer in self._graph("inputs").inputs]

    @property
    def outputs(self) -> list[functional.KerasTensor]:
        """Keras' ``model.outputs``: the graph's output tensors."""
        return list(self._graph("outputs").outputs)

    def input_count(self) -> int:
        """How many inputs the model takes (a functional model's Inputs; 1 for a Sequential)."""
        return 1 if self.graph is None else len(self.graph.inputs)

    def _inputs(self) -> Any:
        """What the data helpers take as ``inputs``: a functional model's Input names (x may be a
        list in their order, or a dict by them), else 1."""
        return 1 if self.graph is None else [layer.name for layer in self.graph.inputs]

    @property
    def input(self) -> Any:
        """Keras' ``model.input``: the input tensor (a list of them for several inputs)."""
        found = self.inputs
        return found[0] if len(found) == 1 else found

    @property
    def output(self) -> Any:
        """Keras' ``model.output``: the output tensor (a list of them for several outputs)."""
        graph = self._graph("output")
        return graph.outputs[0] if graph.single_output else list(graph.outputs)

    def _graph(self, what: str) -> functional.Graph:
        if self.graph is None:
            raise AttributeError(f"{what} belongs to a functional model (gk.Model(inputs, outputs)); "
                                 f"this {type(self).__name__} has none")
        return self.graph

    def _as_input(self, x: Any) -> Tensor:
        """One input as a tensor on the model's device: a NumPy array or list as a Keras model
        takes it (NumPy's float64 as float32), in the model's compute dtype where it is lower."""
        if L._symbolic(x):
            raise TypeError("a model is not called on a functional graph's tensors here: build the graph "
                            "from the model's layers (a layer called again shares its weights), or call "
                            "the model on data")
        if not isinstance(x, Tensor):
            if not isinstance(x, (np.ndarray, list, tuple)):
                raise TypeError(f"x must be a tensor or a NumPy array, got {_checks.describe(x)}")
            x = torch.as_tensor(np.asarray(x), device=self.device)
            if x.dtype == torch.float64:
                x = x.float()  # NumPy's default float: the model's float32, as Keras casts it
        low = self.compute_dtype  # float inputs in, float32 outputs out, as Keras' mixed precision
        if low is not None and x.dtype.is_floating_point:
            x = x.to(low)
        return x

    def _as_output(self, y: Any) -> Any:
        low = self.compute_dtype
        if low is not None and isinstance(y, Tensor) and y.dtype == low:
            return y.float()
        return y

    def forward(self, x: Any, mask: Optional[Tensor] = None, return_mask: bool = False) -> Any:
        """The model's output for x (a list of outputs for a model of several); with
        ``return_mask``, (output, its mask) as Sequential's forward gives them. x: one tensor
        or array, or for a model of several inputs a list of them in ``inputs``' order."""
        graph = self._graph("forward")
        if mask is not None:
            raise ValueError("a functional model takes no mask: its masks come from its Embedding("
                             "mask_zero=True) and Masking layers")
        n = len(graph.inputs)
        if isinstance(x, dict):
            x = by_name(x, [layer.name for layer in graph.inputs], "x")
        one = isinstance(x, (list, tuple)) and len(x) == 1 and isinstance(x[0], (np.ndarray, Tensor))
        parts = list(x) if isinstance(x, (list, tuple)) and (n > 1 or one) else [x]
        if len(parts) != n:
            raise ValueError(f"x must be a list of {n} inputs (one per layers.Input, in inputs' order), got "
                             f"{len(parts)}")
        tensors = [self._as_input(p) for p in parts]
        for i, (t, layer) in enumerate(zip(tensors, graph.inputs, strict=True)):
            want = (None, *layer.shape)
            if t.dim() != len(want) or any(w not in (None, d) for w, d in zip(want, t.shape, strict=True)):
                shown = "(" + ", ".join("None" if d is None else str(d) for d in want) + ")"
                raise ValueError(f"input {layer.name or i} of the model expected shape={shown}, found "
                                 f"shape={tuple(t.shape)}")
        outs = graph.run(tensors)
        values = [self._as_output(t) for t, _ in outs]
        if graph.single_output:
            return (values[0], outs[0][1]) if return_mask else values[0]
        return (values, None) if return_mask else values

    def call_with_mask(self, x: Tensor, mask: Optional[Tensor] = None) -> Tensor:
        return self.forward(x, mask)


    def build_from(self, x: Tensor) -> None:
        """Create every layer's weights from one sample batch (as Keras does on first call)."""
        if self.input_spec is None:
            with torch.no_grad():
                was = self.training
                self.eval()
                self.call_with_mask(x[:1])
                self.train(was)
            self.reset_states()  # the build pass's state is not a real call's: stateful layers start at zeros
            ids = not x.dtype.is_floating_point and self._takes_ids()
            self.input_spec = (list(x.shape[1:]), "int64" if ids else "float32")
        self._place()

    @property
    def device(self) -> torch.device:
        """Where the model's weights are (the CPU before it is built)."""
        p = next(self.parameters(), None)
        return torch.device("cpu") if p is None else p.device

    def _place(self) -> None:
        """Move the built model to its device: ``device_spec``, except that under "auto" a
        model that the user moved to a GPU stays there."""
        if next(self.parameters(), None) is None:
            return
        current = self.device
        if self.device_spec == "auto" and current.type != "cpu":
            return
        target = placement.resolve(self.device_spec)
        if target != current:
            self.to(target)
            self.reset_states()

    def reset_states(self) -> None:
        for layer in self.layers:
            layer.reset_states()

    reset_state = reset_states  # Keras 3's name

    # ------------------------------------------------------------------ compile

    def compile(self, optimizer: Any = "adam", loss: Any = None, metrics: Optional[Sequence[Any]] = None,
                learning_rate: Optional[float] = None, device: Any = None) -> None:
        """optimizer: a name (adam, adamw, sgd, rmsprop, adagrad; Keras' default learning
        rates unless ``learning_rate``), a torch optimizer class, or a function of the
        parameters returning an optimizer. loss: a name, a torch loss module, or a
        callable ``loss(y_true, y_pred)``. metrics: names (``accuracy``...) or callables.
        Keras' optimizer objects: ``gk.optimizers.Adam(learning_rate=..., clipnorm=...)`` and the
        like, or Keras' own (``keras.optimizers.Adam(...)``), read by class and config.
        device: where fit, evaluate and predict run ("auto": CUDA when there is a GPU,
        as Keras does; "cpu", "cuda", "cuda:N"); None keeps the model's ``device=``."""
        if device is not None:
            self.device_spec = placement.check("device", device)
        if loss is None:
            raise ValueError("loss is required, e.g. loss='mse' or loss='binary_crossentropy'")
        keras_object = optimizers.from_keras(optimizer)  # keras.optimizers.Adam(...) itself
        if keras_object is not None:
            optimizer = keras_object
        if isinstance(optimizer, str) and optimizer.lower() not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {sorted(OPTIMIZERS)}, a torch optimizer class "
                             f"or a function of the parameters, got {optimizer!r}")
        if not isinstance(optimizer, str) and not callable(optimizer) and not isinstance(
                optimizer, torch.optim.Optimizer):
            raise TypeError(f"optimizer must be a name, class or function, got {_checks.describe(optimizer)}")
        if learning_rate is not None and (isinstance(learning_rate, bool) or not isinstance(
                learning_rate, numbers.Real) or not learning_rate > 0):
            raise ValueError(f"learning_rate must be a positive number, got {learning_rate!r}")
        if metrics is not None and (isinstance(metrics, str) or not isinstance(metrics, (list, tuple))):
            raise TypeError(f"metrics must be a list, e.g. ['accuracy'], got {metrics!r}")
        self.loss_name, self.loss_fn = losses.get_loss(loss)
        self.metric_fns = [losses.get_metric(m, self.loss_name) for m in metrics or []]
        self.optimizer_spec, self.learning_rate = optimizer, learning_rate
        self.optimizer = optimizer if isinstance(optimizer, torch.optim.Optimizer) else None
        self.compile_config = {
            "optimizer": optimizer.lower() if isinstance(optimizer, str) else None,
            "learning_rate": learning_rate, "loss": loss if isinstance(loss, str) else None,
            "metrics": [m for m in metrics or [] if isinstance(m, str)],
        }
        if isinstance(optimizer, optimizers.Optimizer):  # Keras' class and arguments: saved with the model
            self.compile_config["optimizer"] = type(optimizer).__name__.lower()
            self.compile_config["optimizer_config"] = optimizer.get_config()
        self.compiled = True

    def _make_optimizer(self) -> torch.optim.Optimizer:
        if self.optimizer is None:
            spec, params = self.optimizer_spec, [p for p in self.parameters() if p.requires_grad]
            if isinstance(spec, str):
                cls, lr, extra = OPTIMIZERS[spec.lower()]
                self.optimizer = cls(params, lr=self.learning_rate or lr, **extra)
            else:
                kwargs = {} if self.learning_rate is None else {"lr": self.learning_rate}
                if isinstance(spec, optimizers.Optimizer):
                    kwargs["variables"] = L.keras_variable_groups(self)
                self.optimizer = spec(params, **kwargs)
            if not isinstance(self.optimizer, torch.optim.Optimizer):
                raise TypeError(f"optimizer must make a torch.optim.Optimizer, got "
                                f"{_checks.describe(self.optimizer)}")
        return self.optimizer

    def _require_compiled(self, what: str) -> None:
        if not getattr(self, "compiled", False):
            raise ValueError(f"call model.compile(optimizer=..., loss=...) before model.{what}()")
        if self.graph is not None and not self.graph.single_output:
            raise ValueError(f"model.{what}() trains and scores a model of one output; this one has "
                             f"{len(self.graph.outputs)}: make a gk.Model of each output (they share the "
                             "layers, and so the weights) and fit them in turn, or sum their losses in a "
                             "torch loop")

    # ---------------------------------------------------------------- training

    def fit(self, x: Any = None, y: Any = None, batch_size: Optional[int] = 32, epochs: int = 1,
            verbose: Union[int, str] = "auto", callbacks: Optional[Sequence[cbks.Callback]] = None,
            validation_split: float = 0.0, validation_data: Any = None, shuffle: bool = True,
            initial_epoch: int = 0, tbptt: Optional[int] = None,
            resume: Optional[str] = None, sample_weight: Any = None,
            class_weight: Optional[dict] = None, steps_per_epoch: Optional[int] = None,
            validation_steps: Optional[int] = None, validation_batch_size: Optional[int] = None,
            validation_freq: Union[int, Sequence[int]] = 1) -> cbks.History:
        """Train for ``epochs`` passes over (x, y); returns a History (``.history``).

        x: arrays, tensors, lists or pandas frames with y; a torch Dataset/DataLoader, or a
        Python generator of batches, (x, y) or (x, y, sample_weight) tuples, with y left
        out (Keras' way). ``steps_per_epoch``: the batches of an epoch (a generator must give
        it, or its epoch ends when it stops; with arrays, the draws go on through the pass).
        ``validation_steps``: the batches of each validation (needed for a generator that
        validates more than once), ``validation_batch_size`` (default batch_size) and
        ``validation_freq`` (validate after every freq-th epoch, or after the epochs listed,
        counted from 1) as in Keras. A generator that stops before ``steps_per_epoch *
        epochs`` batches stops training with a warning, as Keras does.

        ``sample_weight``: (N,) per sample or (N, T) per step of a per-step output, as
        Keras weighs them; a per-step output's mask (from Embedding(mask_zero) or
        Masking) leaves padded steps out of the loss and metrics, as in Keras.
        ``class_weight``: {class index: weight}, Keras' way of weighing rare classes up: each
        training sample's loss (not the validation loss) times its class's weight (integer
        labels, 0/1 floats, or one-hot rows by their argmax; times sample_weight if given).

        ``tbptt=k``: truncated backpropagation through time for long streams. Each
        batch (B, T, F) with per-step targets (B, T, ...) is cut into windows of k steps,
        an optimizer step per window; the model's stateful GRU layers carry their state
        from one window to the next (gradients stop at window edges) and start each
        batch from zeros. Needs a stateful GRU layer and per-step targets.

        ``resume=path``: a file written by ``callbacks.ModelCheckpoint``; the weights,
        optimizer, random generators, callbacks' state and history are restored and
        training goes on with the epoch after the one saved (call fit with the same data,
        settings and callbacks; with ``gk.set_seed`` the end result is the same as
        without the interruption). The loop itself is training/fit.py.
        """
        self._require_compiled("fit")
        return fit_loop.fit(self, x, y, batch_size=batch_size, epochs=epochs, verbose=verbose,
                            callbacks=callbacks, validation_split=validation_split,
                            validation_data=validation_data, shuffle=shuffle, initial_epoch=initial_epoch,
                            tbptt=tbptt, resume=resume, sample_weight=sample_weight,
                            class_weight=class_weight, steps_per_epoch=steps_per_epoch,
                            validation_steps=validation_steps, validation_batch_size=validation_batch_size,
                            validation_freq=validation_freq)

    def evaluate(self, x: Any = None, y: Any = None, batch_size: Optional[int] = 32, verbose: int = 0,
                 sample_weight: Any = None, return_dict: bool = False,
                 steps: Optional[int] = None) -> Union[float, list[float], dict]:
        """The loss, or [loss, *metrics] when metrics were compiled (Keras' order), or with
        ``return_dict`` {name: value}; masks and sample weights count as in fit. x as fit
        takes it; ``steps``: evaluate on that many batches (a generator: until it stops)."""
        self._require_compiled("evaluate")
        batches = Batches(x, y, _checks.batch_size(batch_size), False, need_y=True,
                          sample_weight=sample_weight, steps=_checks.optional_positive_int("steps", steps),
                          inputs=self._inputs())
        self.build_from(batches.first_x())
        batches.device = self.device
        logs = fit_loop.evaluate(self, batches)
        if not logs:
            raise ValueError("evaluate found no batch in x: the generator had nothing left")
        if verbose:
            print(" - ".join(f"{k}: {v:.4g}" for k, v in logs.items()))
        return self._results(logs, _checks.boolean("return_dict", return_dict))

    def _results(self, logs: dict[str, float], as_dict: bool) -> Union[float, list[float], dict]:
        names = ["loss", *(name for name, _ in self.metric_fns)]
        if as_dict:
            return {k: logs[k] for k in names}
        return logs["loss"] if len(names) == 1 else [logs[k] for k in names]

    def train_on_batch(self, x: Any, y: Any, sample_weight: Any = None, class_weight: Optional[dict] = None,
                       return_dict: bool = False) -> Union[float, list[float], dict]:
        """Keras' ``train_on_batch``: one optimizer step on (x, y) as one batch; the loss (and
        metrics, as evaluate returns them) of that step, computed before it."""
        self._require_compiled("train_on_batch")
        batch = fit_loop.prepare(x, y, _ONE_BATCH, False, 0.0, None, sample_weight, class_weight,
                                 inputs=self._inputs())[0]
        self.build_from(batch.first_x())
        batch.device = self.device
        self.train()
        logs = fit_loop.train_epoch(self, self, self._make_optimizer(), batch, [], None, None).values()
        return self._results(logs, _checks.boolean("return_dict", return_dict))

    def test_on_batch(self, x: Any, y: Any, sample_weight: Any = None,
                      return_dict: bool = False) -> Union[float, list[float], dict]:
        """Keras' ``test_on_batch``: evaluate on (x, y) as one batch."""
        return self.evaluate(x, y, batch_size=_ONE_BATCH, sample_weight=sample_weight,
                             return_dict=return_dict)

    # Keras 2's generator methods, which the tutorials of its day call (Chollet's GRU on the
    # Jena weather series; R keras' fit_generator): fit, evaluate and predict take generators.
    # The queue and worker settings are accepted and not used: batches are drawn in order here.
    def fit_generator(self, generator: Any, steps_per_epoch: Optional[int] = None, epochs: int = 1,
                      verbose: Union[int, str] = 1, callbacks: Optional[Sequence[cbks.Callback]] = None,
                      validation_data: Any = None, validation_steps: Optional[int] = None,
                      validation_freq: Union[int, Sequence[int]] = 1, class_weight: Optional[dict] = None,
                      max_queue_size: int = 10, workers: int = 1, use_multiprocessing: bool = False,
                      shuffle: bool = True, initial_epoch: int = 0) -> cbks.History:
        """Keras 2's ``fit_generator``: ``fit(generator, ...)``, with Keras 2's warning."""
        _generator_method("fit")
        return self.fit(generator, epochs=epochs, verbose=verbose, callbacks=callbacks,
                        validation_data=validation_data, shuffle=shuffle, initial_epoch=initial_epoch,
                        class_weight=class_weight, steps_per_epoch=steps_per_epoch,
                        validation_steps=validation_steps, validation_freq=validation_freq)

    def evaluate_generator(self, generator: Any, steps: Optional[int] = None, callbacks: Any = None,
                           max_queue_size: int = 10, workers: int = 1, use_multiprocessing: bool = False,
                           verbose: int = 0) -> Union[float, list[float], dict]:
        """Keras 2's ``evaluate_generator``: ``evaluate(generator, steps=steps)``."""
        _generator_method("evaluate", callbacks)
        return self.evaluate(generator, steps=steps, verbose=verbose)

    def predict_generator(self, generator: Any, steps: Optional[int] = None, callbacks: Any = None,
                          max_queue_size: int = 10, workers: int = 1, use_multiprocessing: bool = False,
                          verbose: int = 0) -> np.ndarray:
        """Keras 2's ``predict_generator``: ``predict(generator, steps=steps)``."""
        _generator_method("predict", callbacks)
        return self.predict(generator, steps=steps, verbose=verbose)

    def predict_on_batch(self, x: Any) -> np.ndarray:
        """Keras' ``predict_on_batch``: predict on x as one batch."""
        return self.predict(x, batch_size=_ONE_BATCH)

    def predict(self, x: Any, batch_size: Optional[int] = 32, verbose: int = 0,
                steps: Optional[int] = None) -> np.ndarray:
        """Model outputs for x, as a NumPy array (batched; eval mode, no gradients). x as fit
        takes it (a generator may yield x alone); ``steps``: that many batches only."""
        batches = Batches(x, None, _checks.batch_size(batch_size), False, need_y=False,
                          steps=_checks.optional_positive_int("steps", steps), inputs=self._inputs())
        self.build_from(batches.first_x())
        batches.device = self.device
        self.eval()
        with torch.no_grad():
            outs = [self.call_with_mask(xb) for xb, _, _ in batches]
        if not outs:
            raise ValueError("predict found no batch in x: the generator had nothing left")
        if isinstance(outs[0], list):  # a functional model of several outputs: one array each
            return [torch.cat(parts).cpu().numpy() for parts in zip(*outs, strict=True)]
        return torch.cat(outs).cpu().numpy()

    # ------------------------------------------------------- Keras' model helpers

    def get_weights(self) -> list[np.ndarray]:
        """Keras' ``model.get_weights()``: every layer's get_weights(), in layer order (Keras'
        layout: a Keras model of the same layers takes them with set_weights)."""
        self._require_built("get_weights")
        return [w for layer in self.layers for w in layer.get_weights()]

    def set_weights(self, weights: Any) -> None:
        """Keras' ``model.set_weights(weights)``: the arrays get_weights() gives, in its order."""
        self._require_built("set_weights")
        if not isinstance(weights, (list, tuple)):
            raise TypeError(f"weights must be a list of arrays, got {_checks.describe(weights)}")
        counts = [sum(len(v) for v in layer.keras_variables().values()) for layer in self.layers]
        if len(weights) != sum(counts):
            raise ValueError(f"weights must hold {sum(counts)} arrays (as get_weights() gives), "
                             f"got {len(weights)}")
        for layer, part in zip(self.layers, L.split_weights(weights, counts), strict=True):
            if part:
                layer.set_weights(part)

    def save_weights(self, path: str) -> None:
        """Keras' ``save_weights``: the weights alone, as a Keras 3 weights file (the path ends in
        ``.weights.h5``, as Keras 3 wants), which ``keras_model.load_weights`` reads too.
        ``model.save`` writes the whole model in grukit's own file."""
        self._weights_file(path, "save_weights")[0](self, str(path))

    def load_weights(self, path: str) -> None:
        """Keras' ``load_weights``: a ``.weights.h5`` file (grukit's save_weights or Keras') into
        this built model of the same layers."""
        self._weights_file(path, "load_weights")[1](str(path), self)

    def _weights_file(self, path: Any, what: str) -> tuple[Any, Any]:
        self._require_built(what)
        for suffix, pair in WEIGHTS_FILES.items():
            if str(path).endswith(suffix):
                return pair
        raise ValueError(f"path must end in {' or '.join(sorted(WEIGHTS_FILES)) or '.weights.h5'} (Keras 3's "
                         f"weights file), got {os.path.basename(str(path))!r}; model.save(path) writes "
                         "grukit's whole-model file")

    @property
    def trainable(self) -> bool:
        """Keras' ``model.trainable``: False freezes every layer (each layer has its own too)."""
        return all(layer.trainable for layer in self.layers)

    @trainable.setter
    def trainable(self, value: bool) -> None:
        for layer in self.layers:
            layer.trainable = value

    @property
    def losses(self) -> list[Tensor]:
        """Keras' ``model.losses``: every layer's weight penalties (kernel_regularizer and the
        like), which fit and evaluate add to the loss."""
        return [p for layer in self.layers for p in layer.losses]

    def penalty(self) -> Union[Tensor, float]:
        """The sum of ``losses`` (0.0 when no layer has a regularizer)."""
        found = self.losses
        return torch.stack(found).sum() if found else 0.0

    def count_params(self) -> int:
        """Keras' ``count_params()``: the number of weights of the built model."""
        self._require_built("count_params")
        return L.count_params(self)

    def get_layer(self, name: Optional[str] = None, index: Optional[int] = None) -> L.Layer:
        """Keras' ``get_layer(name=..., index=...)``: a layer by its name or position."""
        if (name is None) == (index is None):
            raise ValueError("get_layer needs exactly one of name and index")
        if index is not None:
            if isinstance(index, bool) or not isinstance(index, int):
                raise TypeError(f"index must be an int, got {_checks.describe(index)}")
            if not 0 <= index < len(self.layers):
                raise ValueError(f"index must be in [0, {len(self.layers)}), got {index}")
            return self.layers[index]
        found = [layer for layer in self.layers if layer.name == name]
        if not found:
            raise ValueError(f"no layer is named {name!r}; the names are "
                             f"{[layer.name for layer in self.layers if layer.name]}")
        return found[0]

    def _require_built(self, what: str) -> None:
        if self.input_spec is None:
            raise ValueError(f"{what} needs a built model: its weights are made on the first call of "
                             "fit/predict (or start it with layers.Input(shape) or input_shape=)")

    # ----------------------------------------------------------------- saving

    def save(self, path: str, extra: Optional[dict] = None, training: Optional[tuple] = None) -> None:
        """One file: safetensors weights with the JSON config in its header, written
        atomically. ``gk.load(path)`` reads it back without executing any code; a
        JSON-able ``extra`` dict comes back as ``model.extra``. ``training`` is for
        ModelCheckpoint: the state that ``fit(..., resume=path)`` goes on from.

        A path ending in ``.keras`` gets a Keras 3 model file (``keras.models.load_model``
        reads it) that holds grukit's own file as one more member, so that ``gk.load`` and
        ``resume`` get everything back (grukit's options, the compile settings, the training
        state); a model Keras cannot hold (layer norm, zoneout, MinGRU) gets grukit's own
        file under that name, with a warning."""
        suffix = os.path.splitext(str(path))[1]
        data = checkpoint.model_bytes(self, extra, training)
        why = "; model.save('m.keras') writes a Keras file"
        if suffix in MODEL_FILES:  # ".keras": a Keras file, with grukit's own inside it
            try:
                MODEL_FILES[suffix][0](self, path, data)
                return
            except (ValueError, ImportError) as exc:  # a layer Keras does not have; h5py missing
                why = f": {exc}"
        if suffix in (".keras", ".h5"):
            warnings.warn(f"model.save writes grukit's own file (safetensors and JSON), which gk.load reads "
                          f"and Keras does not, under Keras' file name {os.path.basename(str(path))!r}{why}",
                          stacklevel=2)
        checkpoint.atomic_write(str(path), data)

    def get_config(self) -> dict[str, Any]:
        """The layers' configs, the graph between them (training/functional.py) and the
        first input's shape, as the model file keeps them."""
        graph = self._graph("get_config")
        return {"layers": layer_configs(self.layers), "graph": graph.config(),
                "input_spec": {"shape": self.input_spec[0], "dtype": self.input_spec[1]}}

    def summary(self) -> str:
        """Keras' summary of a functional model: each layer (its name, else its kind in Keras'
        style: gru, gru_1, ...), its output shape(s), its number of weights and the layers it
        reads; printed and returned."""
        graph = self._graph("summary")
        names = display_names(self.layers)
        rows = []
        for layer in self.layers:
            nodes = [n for n in graph.nodes if n.layer is layer]
            shape = ", ".join(_shape_text(t.shape) for t in nodes[0].tensors)
            reads = dict.fromkeys(names[id(t.node.layer)] for n in nodes for t in n.inbound())
            rows.append((f"{names[id(layer)]} ({type(layer).__name__})", shape,
                         f"{L.count_params(layer):,}", ", ".join(reads)))
        head = ("layer", "output", "params", "reads")
        widths = [max(len(r[i]) for r in [head, *rows]) + 2 for i in range(3)]
        lines = [f"{head[0]:<{widths[0]}}{head[1]:<{widths[1]}}{head[2]:>{widths[2]}}  {head[3]}"]
        lines += [f"{a:<{widths[0]}}{b:<{widths[1]}}{c:>{widths[2]}}  {d}".rstrip() for a, b, c, d in rows]
        total, frozen = L.count_params(self), L.count_params(self, trainable=False)
        lines += [f"total params: {total:,}", f"trainable params: {total - frozen:,}",
                  f"non-trainable params: {frozen:,}"]
        text = "\n".join(lines)
        print(text)
        return text


def display_names(layers: Any) -> dict[int, str]:
    """{id(layer): its name}: the name given, else its kind as Keras names layers (gru,
    gru_1, global_average_pooling1d, ...), counted within the model."""
    seen: dict[str, int] = {}
    names = {}
    for layer in layers:
        if layer.name:
            names[id(layer)] = layer.name
            continue
        base = re.sub(r"(?<=[a-z])(?=[A-Z])", "_", type(layer).__name__).lower()
        count = seen.get(base, 0)
        seen[base] = count + 1
        names[id(layer)] = base if count == 0 else f"{base}_{count}"
    return names


def layer_configs(layers: Any) -> list[dict[str, Any]]:
    """Each layer's class name and config (with its name when it has one, and trainable=False
    when it is frozen), as model files keep them."""
    return [{"class_name": type(layer).__name__,
             "config": {**layer.get_config(), **({"name": layer.name} if layer.name else {}),
                        **({} if layer.trainable else {"trainable": False})}}
            for layer in layers]


def _shape_text(shape: tuple) -> str:
    dims = ["None" if d is None else str(d) for d in shape]
    return "(" + ", ".join(dims) + ("," if len(dims) == 1 else "") + ")"


def _generator_method(name: str, callbacks: Any = None) -> None:
    if callbacks:
        raise ValueError(f"{name}_generator takes no callbacks here (grukit's {name} has none), got "
                         f"{_checks.describe(callbacks)}")
    warnings.warn(f"Model.{name}_generator is deprecated (Keras 2 deprecated it too): call model.{name}, "
                  "which takes generators", DeprecationWarning, stacklevel=3)
