"""Keras' optimizers, by Keras' class names and arguments, for ``compile(optimizer=...)``.

``gk.optimizers.Adam(learning_rate=1e-3, clipnorm=1.0)`` is what Keras code writes; each
makes a torch optimizer of Keras' update with Keras' defaults (epsilon 1e-7, RMSprop's rho
0.9, Adagrad's initial accumulator 0.1, ...): torch's own where it computes Keras' rule (SGD,
Adadelta; Adam with its epsilon set per step to where Keras adds it), Keras' rule written
here where torch puts epsilon elsewhere (RMSprop, Adagrad, Adamax), torch's NAdam for Nadam
(close, not equal); tests hold each against Keras. Keras' extras are applied around the step:
``weight_decay`` decoupled from the gradient (the weight shrinks by learning_rate *
weight_decay before each step, as Keras 3 does for every optimizer), ``clipnorm`` (each
weight tensor's gradient to that norm at most), ``clipvalue`` (each element to that
magnitude) and ``global_clipnorm`` (all gradients together). A Keras optimizer object
itself (``keras.optimizers.Adam(...)``) is read the same way from its config.
"""

from __future__ import annotations

import numbers
from typing import Any, Callable, Optional

import torch

from .. import _checks


def _positive(name: str, value: Any, allow_zero: bool = False) -> float:
    ok = value >= 0 if allow_zero else value > 0
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not ok:
        raise ValueError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} number, got "
                         f"{value!r}")
    return float(value)


class _KerasRule(torch.optim.Optimizer):
    """A torch optimizer that applies one of Keras' update rules where torch's own differ from
    Keras' in where epsilon goes (RMSprop, Adagrad, Adamax): ``rule(p, grad, state, group, t)``."""

    def __init__(self, params: Any, rule: Callable, lr: float, **defaults: Any) -> None:
        super().__init__(params, {"lr": lr, **defaults})
        self.rule = rule

    @torch.no_grad()
    def step(self, closure: Optional[Callable] = None) -> Any:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for p in group["params"]:
                if p.grad is None:
                    continue
                state = self.state[p]
                state["step"] = state.get("step", 0) + 1
                self.rule(p, p.grad, state, group, state["step"])
        return loss


def _rmsprop(p: torch.Tensor, g: torch.Tensor, state: dict, group: dict, t: int) -> None:
    """Keras' RMSprop: v = rho v + (1 - rho) g^2 (centered: less the mean gradient squared);
    the increment lr g / sqrt(v + epsilon), through momentum when it is set."""
    rho, eps = group["rho"], group["eps"]
    v = state.setdefault("velocity", torch.zeros_like(p))
    v.mul_(rho).addcmul_(g, g, value=1 - rho)
    denominator = v + eps
    if group["centered"]:
        mean = state.setdefault("average_grad", torch.zeros_like(p))
        mean.mul_(rho).add_(g, alpha=1 - rho)
        denominator = denominator - mean * mean
    increment = group["lr"] * g / denominator.sqrt()
    if group["momentum"] > 0:
        m = state.setdefault("momentum", torch.zeros_like(p))
        m.mul_(group["momentum"]).add_(increment)
        increment = m
    p.sub_(increment)


def _adagrad(p: torch.Tensor, g: torch.Tensor, state: dict, group: dict, t: int) -> None:
    """Keras' Adagrad: acc += g^2 (from initial_accumulator_value); p -= lr g / sqrt(acc + eps)."""
    acc = state.setdefault("accumulator", torch.full_like(p, group["initial_accumulator_value"]))
    acc.addcmul_(g, g)
    p.sub_(group["lr"] * g / (acc + group["eps"]).sqrt())


def _adamax(p: torch.Tensor, g: torch.Tensor, state: dict, group: dict, t: int) -> None:
    """Keras' Adamax: m += (g - m)(1 - b1); u = max(b2 u, |g|); p -= lr m / ((1 - b1^t)(u + eps))."""
    b1, b2 = group["betas"]
    m = state.setdefault("m", torch.zeros_like(p))
    u = state.setdefault("u", torch.zeros_like(p))
    m.add_((g - m) * (1 - b1))
    torch.maximum(u * b2, g.abs(), out=u)
    p.sub_(group["lr"] * m / ((1 - b1 ** t) * (u + group["eps"])))


def _rule(rule: Callable) -> Callable:
    return lambda params, lr, **defaults: _KerasRule(params, rule, lr, **defaults)


class Optimizer:
    """A Keras optimizer: called on the parameters (compile's "function of the parameters"), it
    makes the torch optimizer, with Keras' weight decay and gradient clipping hooked to its
    step."""

    TORCH: Any = None  # the torch optimizer class
    DEFAULT_RATE = 0.001
    EXACT_EPSILON = False  # Adam's: torch's epsilon set per step to Keras' placement

    def __init__(self, learning_rate: float = None, weight_decay: Optional[float] = None,
                 clipnorm: Optional[float] = None, clipvalue: Optional[float] = None,
                 global_clipnorm: Optional[float] = None, **torch_args: Any) -> None:
        rate = self.DEFAULT_RATE if learning_rate is None else learning_rate
        if not isinstance(rate, numbers.Real) or isinstance(rate, bool):
            raise TypeError(f"learning_rate must be a number (grukit takes no schedule objects: use "
                            f"callbacks.LearningRateScheduler), got {_checks.describe(rate)}")
        self.learning_rate = _positive("learning_rate", rate)
        self.weight_decay = None if weight_decay is None else _positive("weight_decay", weight_decay, True)
        if clipnorm is not None and global_clipnorm is not None:
            raise ValueError("give clipnorm or global_clipnorm, not both (as Keras asks)")
        self.clipnorm = None if clipnorm is None else _positive("clipnorm", clipnorm)
        self.clipvalue = None if clipvalue is None else _positive("clipvalue", clipvalue)
        self.global_clipnorm = (None if global_clipnorm is None
                                else _positive("global_clipnorm", global_clipnorm))
        self.torch_args = torch_args
        self.config: dict[str, Any] = {"learning_rate": self.learning_rate}
        for key in ("weight_decay", "clipnorm", "clipvalue", "global_clipnorm"):
            if getattr(self, key) is not None:
                self.config[key] = getattr(self, key)

    def __call__(self, params: Any, lr: Optional[float] = None,
                 variables: Optional[list[list[torch.nn.Parameter]]] = None) -> torch.optim.Optimizer:
        """The torch optimizer over ``params``. ``variables``: the parameters grouped as Keras'
        weights (Sequential gives them: a GRU's two torch biases are Keras' one bias, which
        clipnorm clips as one); else each parameter alone."""
        params = list(params)
        opt = self.TORCH(params, lr=self.learning_rate if lr is None else lr, **self.torch_args)
        if self.weight_decay or self.clipnorm or self.clipvalue or self.global_clipnorm or self.EXACT_EPSILON:
            ids = {id(p) for p in params}
            groups = [[p] for p in params] if variables is None else [
                [p for p in v if id(p) in ids] for v in variables]
            opt.register_step_pre_hook(lambda o, args, kwargs: self._before_step(o, [g for g in groups if g]))
        return opt

    def _before_step(self, opt: torch.optim.Optimizer, variables: list[list[torch.nn.Parameter]]) -> None:
        params = [p for group in opt.param_groups for p in group["params"] if p.grad is not None]
        with torch.no_grad():
            if self.clipvalue is not None:
                for p in params:
                    p.grad.clamp_(-self.clipvalue, self.clipvalue)
            if self.clipnorm is not None:  # each Keras weight's gradient on its own
                for variable in variables:
                    torch.nn.utils.clip_grad_norm_([p for p in variable if p.grad is not None], self.clipnorm)
            if self.global_clipnorm is not None:
                torch.nn.utils.clip_grad_norm_(params, self.global_clipnorm)
            if self.EXACT_EPSILON:  # Keras' Adam adds epsilon before the bias correction of v, torch's
                for group in opt.param_groups:  # after: torch's epsilon for the next step, so that they agree
                    steps = [float(opt.state[p]["step"]) for p in group["params"] if "step" in opt.state[p]]
                    t = (max(steps) if steps else 0.0) + 1.0
                    group["eps"] = self.epsilon / (1.0 - group["betas"][1] ** t) ** 0.5
            if self.weight_decay:  # Keras 3: decoupled, before the update
                for group in opt.param_groups:
                    for p in group["params"]:
                        if p.grad is not None:
                            p.mul_(1 - group["lr"] * self.weight_decay)

    def get_config(self) -> dict[str, Any]:
        """Keras' arguments as given (what from_config and Keras' own class take back)."""
        return dict(self.config)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(f'{k}={v!r}' for k, v in self.get_config().items())})"


class SGD(Optimizer):
    TORCH, DEFAULT_RATE = torch.optim.SGD, 0.01

    def __init__(self, learning_rate: float = None, momentum: float = 0.0, nesterov: bool = False,
                 **extras: Any) -> None:
        super().__init__(learning_rate, momentum=_positive("momentum", momentum, True),
                         nesterov=_checks.boolean("nesterov", nesterov), **extras)
        self.config.update(momentum=momentum, nesterov=nesterov)


class Adam(Optimizer):
    TORCH, EXACT_EPSILON = torch.optim.Adam, True

    def __init__(self, learning_rate: float = None, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, amsgrad: bool = False, **extras: Any) -> None:
        super().__init__(learning_rate, betas=(float(beta_1), float(beta_2)),
                         eps=_positive("epsilon", epsilon), amsgrad=_checks.boolean("amsgrad", amsgrad),
                         **extras)
        self.config.update(beta_1=beta_1, beta_2=beta_2, epsilon=epsilon, amsgrad=amsgrad)
        self.epsilon = float(epsilon)


class AdamW(Adam):
    """Adam with Keras' default weight decay of 0.004 (decoupled, as every optimizer's here)."""

    def __init__(self, learning_rate: float = None, weight_decay: float = 0.004, **extras: Any) -> None:
        super().__init__(learning_rate, weight_decay=weight_decay, **extras)


class RMSprop(Optimizer):
    TORCH = staticmethod(_rule(_rmsprop))

    def __init__(self, learning_rate: float = None, rho: float = 0.9, momentum: float = 0.0,
                 epsilon: float = 1e-7, centered: bool = False, **extras: Any) -> None:
        super().__init__(learning_rate, rho=float(rho), momentum=_positive("momentum", momentum, True),
                         eps=_positive("epsilon", epsilon), centered=_checks.boolean("centered", centered),
                         **extras)
        self.config.update(rho=rho, momentum=momentum, epsilon=epsilon, centered=centered)


class Adagrad(Optimizer):
    TORCH = staticmethod(_rule(_adagrad))

    def __init__(self, learning_rate: float = None, initial_accumulator_value: float = 0.1,
                 epsilon: float = 1e-7, **extras: Any) -> None:
        super().__init__(learning_rate, initial_accumulator_value=_positive(
            "initial_accumulator_value", initial_accumulator_value, True), eps=_positive("epsilon", epsilon),
            **extras)
        self.config.update(initial_accumulator_value=initial_accumulator_value, epsilon=epsilon)


class Adamax(Optimizer):
    TORCH = staticmethod(_rule(_adamax))

    def __init__(self, learning_rate: float = None, beta_1: float = 0.9, beta_2: float = 0.999,
                 epsilon: float = 1e-7, **extras: Any) -> None:
        super().__init__(learning_rate, betas=(float(beta_1), float(beta_2)),
                         eps=_positive("epsilon", epsilon), **extras)
        self.config.update(beta_1=beta_1, beta_2=beta_2, epsilon=epsilon)


class Nadam(Adamax):
    """torch's NAdam (its momentum schedule is close to Keras')."""

    TORCH = torch.optim.NAdam


class Adadelta(Optimizer):
    TORCH = torch.optim.Adadelta

    def __init__(self, learning_rate: float = None, rho: float = 0.95, epsilon: float = 1e-7,
                 **extras: Any) -> None:
        super().__init__(learning_rate, rho=float(rho), eps=_positive("epsilon", epsilon), **extras)
        self.config.update(rho=rho, epsilon=epsilon)


CLASSES = {cls.__name__: cls for cls in (SGD, Adam, AdamW, RMSprop, Adagrad, Adamax, Nadam, Adadelta)}
# the arguments of Keras' config that a grukit optimizer takes (the rest are Keras' own: name, use_ema, ...)
ARGUMENTS = {"learning_rate", "weight_decay", "clipnorm", "clipvalue", "global_clipnorm", "momentum",
          "nesterov", "beta_1", "beta_2", "epsilon", "amsgrad", "rho", "centered",
          "initial_accumulator_value"}


def from_keras(optimizer: Any) -> Optional[Callable]:
    """grukit's optimizer for a Keras optimizer object (by its class and config), or None when
    ``optimizer`` is not one."""
    if not type(optimizer).__module__.startswith("keras") or not hasattr(optimizer, "get_config"):
        return None
    name = type(optimizer).__name__
    if name not in CLASSES:
        raise ValueError(f"optimizer: Keras' {name} has no grukit counterpart; known: {sorted(CLASSES)}")
    config = optimizer.get_config()
    unusual = {k: v for k, v in config.items() if k in ("use_ema", "loss_scale_factor",
                                                         "gradient_accumulation_steps") and v}
    if unusual:
        raise ValueError(f"optimizer: Keras' {name} with {unusual} has no grukit counterpart")
    return CLASSES[name](**{k: v for k, v in config.items() if k in ARGUMENTS and v is not None})


def from_config(name: str, config: dict[str, Any]) -> Optimizer:
    """The optimizer ``get_config()`` describes (its class by Keras' name, any case)."""
    found = {k.lower(): cls for k, cls in CLASSES.items()}.get(str(name).lower())
    if found is None:
        raise ValueError(f"optimizer {name!r} is not one of {sorted(CLASSES)}")
    return found(**config)
