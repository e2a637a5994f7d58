"""What the scoring passes need from a model that was not written for them (torchvision's MobileNetV3, ViT, any
user model), so that every method runs on it or refuses it in one sentence.

- ``scoring_mode``: the mode a scoring pass runs in. Batch statistics when asked (train-mode BN, the methods'
  default, docs/reference/methods.md §0.6), but dropout and stochastic depth always off: a score is a function of
  the weights and the scoring batches, so the same call gives the same mask (the global RNG does not enter it).
- ``double_backward_copy`` and ``double_backward``: for the methods that differentiate a gradient (GraSP's
  Hessian-gradient product, ProsPr's meta-gradient). Torch cannot differentiate the backward of some ops:
  ``aten::hardsigmoid_backward`` (``nn.Hardsigmoid``, MobileNetV3's squeeze-excitation) and the fused attention
  kernels behind ``F.scaled_dot_product_attention`` (``nn.MultiheadAttention``, ViT). The copy swaps such modules
  for compositions of differentiable ops with the same forward (``hardsigmoid(x) = clamp(x + 3, 0, 6) / 6``,
  bit-identical on CPU), and the context runs attention on its math backend (the same function, composed of
  differentiable ops).
- ``unsupported``: when an op the above does not cover still fails (a functional call in a user's forward), the
  torch error becomes ``UnsupportedModelError`` naming the module whose forward uses it and the methods that
  need no double backward.
"""

from __future__ import annotations

import contextlib
import copy
import re
from collections.abc import Callable, Iterator

import torch
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from autos.errors import UnsupportedModelError

# methods that need only first-order gradients (or none), suggested when a double-backward method refuses a model
FIRST_ORDER_METHODS = "snip, synflow or random_erk"
# class names of stochastic-depth modules (torchvision.ops.StochasticDepth, timm's DropPath): random in train mode
_STOCHASTIC_DEPTH = ("StochasticDepth", "DropPath")


def is_stochastic(module: nn.Module) -> bool:
    """Dropout of any kind or stochastic depth: modules that draw from the global RNG in train mode."""
    return isinstance(module, nn.modules.dropout._DropoutNd) or type(module).__name__ in _STOCHASTIC_DEPTH


def scoring_mode(model: nn.Module, train: bool = True) -> nn.Module:
    """``model.train(train)`` with every dropout and stochastic-depth module in eval mode (in place; returns it)."""
    model.train(train)
    for module in model.modules():
        if is_stochastic(module):
            module.eval()
    return model


class DifferentiableHardsigmoid(nn.Module):
    """``nn.Hardsigmoid`` as ``clamp(x + 3, 0, 6) / 6``: the same forward, and a backward torch can differentiate.

    (The gradient at exactly x = -3 or 3 is 1/6 here and 0 in torch's kernel: a set of measure zero.)
    """

    def forward(self, x: Tensor) -> Tensor:
        return torch.clamp(x + 3.0, 0.0, 6.0) / 6.0


# module type -> its double-differentiable replacement (what torch 2.14 cannot differentiate twice; nn.Hardswish,
# ReLU6, GELU, SiLU, norms and pools can: tests/test_model_matrix.py checks them)
_DOUBLE_BACKWARD_SWAPS: dict[type[nn.Module], Callable[[nn.Module], nn.Module]] = {
    nn.Hardsigmoid: lambda module: DifferentiableHardsigmoid(),
}


def swap_modules_(model: nn.Module, swaps: dict[type[nn.Module], Callable[[nn.Module], nn.Module]]) -> list[str]:
    """Replace (in place) every submodule whose exact type is a key of ``swaps``; returns the names replaced."""
    replaced = []
    for parent_name, parent in list(model.named_modules()):
        for child_name, child in list(parent.named_children()):
            make = swaps.get(type(child))
            if make is not None:
                setattr(parent, child_name, make(child))
                replaced.append(f"{parent_name}.{child_name}" if parent_name else child_name)
    return replaced


def double_backward_copy(model: nn.Module) -> nn.Module:
    """A deep copy of ``model`` whose modules without a differentiable backward are swapped (``model`` untouched)."""
    return prepare_double_backward_(copy.deepcopy(model))


def prepare_double_backward_(model: nn.Module) -> nn.Module:
    """``double_backward_copy`` in place, for a model that is already the scoring copy (returns it)."""
    swap_modules_(model, _DOUBLE_BACKWARD_SWAPS)
    return model


@contextlib.contextmanager
def double_backward(
    method: str, model: nn.Module, probe: Callable[[nn.Module], object] | None = None
) -> Iterator[None]:
    """Run the body with attention on the math backend; a torch error saying that the derivative of an op's
    backward is not implemented becomes ``UnsupportedModelError`` naming the module (found with ``probe``, a
    function that runs ``model`` forward on a small batch, when given)."""
    with sdpa_kernel(SDPBackend.MATH):
        try:
            yield
        except RuntimeError as exc:
            op = _missing_derivative(exc)
            if op is None:
                raise
            raise unsupported(method, model, op, probe) from exc


def _missing_derivative(exc: BaseException) -> str | None:
    """The op of 'derivative for aten::xxx_backward is not implemented', else None."""
    found = re.search(r"derivative for (\S+) is not implemented", str(exc))
    return found.group(1) if found else None


def unsupported(method: str, model: nn.Module, op: str, probe: Callable[[nn.Module], object] | None) -> Exception:
    """The refusal: which module's forward uses ``op`` (when ``probe`` can find it) and what to use instead."""
    where = culprit(model, probe) if probe is not None else None
    module = f"module {where[0]!r} ({where[1]})" if where else f"a module of {type(model).__name__}"
    return UnsupportedModelError(
        f"{method} needs gradients of gradients (double backward), and torch cannot differentiate the backward of "
        f"{op} used by {module}; use a method that needs first-order gradients only ({FIRST_ORDER_METHODS}), or "
        "replace that op in the model by differentiable ones"
    )


def culprit(model: nn.Module, probe: Callable[[nn.Module], object]) -> tuple[str, str] | None:
    """(name, type) of the smallest module whose own forward cannot be differentiated twice, replaying the inputs
    it received in ``probe(model)``; None when no single module fails alone."""
    inputs: dict[str, tuple[tuple, dict]] = {}

    def record(name: str) -> Callable:
        def hook(module: nn.Module, args: tuple, kwargs: dict) -> None:
            inputs.setdefault(name, (args, kwargs))
        return hook

    handles = [m.register_forward_pre_hook(record(n), with_kwargs=True) for n, m in model.named_modules() if n]
    try:
        with torch.no_grad(), sdpa_kernel(SDPBackend.MATH):
            probe(model)
    finally:
        for handle in handles:
            handle.remove()
    sizes = {name: sum(1 for _ in model.get_submodule(name).modules()) for name in inputs}
    tried: set[type] = set()
    for name in sorted(inputs, key=lambda n: sizes[n]):
        module = model.get_submodule(name)
        if type(module) in tried:
            continue
        tried.add(type(module))
        if not _twice_differentiable(module, *inputs[name]):
            return name, type(module).__name__
    return None


def _twice_differentiable(module: nn.Module, args: tuple, kwargs: dict) -> bool:
    """Whether ``module(*args, **kwargs)`` can be differentiated twice w.r.t. its floating inputs and parameters."""
    fresh = [a.detach().requires_grad_() if isinstance(a, Tensor) and a.is_floating_point() else a for a in args]
    leaves = [a for a in fresh if isinstance(a, Tensor) and a.requires_grad]
    leaves += [p for p in module.parameters() if p.requires_grad]
    try:
        with torch.enable_grad(), sdpa_kernel(SDPBackend.MATH):
            # clones: a module may work in place on its input (ReLU(inplace=True)), which a leaf does not allow
            out = module(*[a.clone() if isinstance(a, Tensor) and a.requires_grad else a for a in fresh], **kwargs)
            outs = [t for t in (out if isinstance(out, (tuple, list)) else [out])
                    if isinstance(t, Tensor) and t.requires_grad]
            if not outs or not leaves:
                return True
            loss = torch.stack([t.float().pow(2).sum() for t in outs]).sum()
            grads = torch.autograd.grad(loss, leaves, create_graph=True, allow_unused=True)
            second = [g.pow(2).sum() for g in grads if g is not None and g.requires_grad]
            if second:
                torch.autograd.grad(torch.stack(second).sum(), leaves, allow_unused=True)
    except RuntimeError as exc:
        return _missing_derivative(exc) is None  # another failure (shapes) says nothing about this module
    return True


def forward_probe(x: Tensor) -> Callable[[nn.Module], object]:
    """A ``probe`` for ``culprit``: the model's forward on the first two images of ``x`` (two: train-mode BN)."""
    return lambda model: model(x[:2])
