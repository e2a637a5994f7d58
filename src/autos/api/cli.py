"""`autos-prune`: prune a model at initialization with any registered method, from the command line.

    autos-prune --model vgg16_bn --width 16 --scorer data/scorer --data data/prepared/cifar10 \\
                --sparsity 0.95 --out masks.pt                      # AutoS (the default method)
    autos-prune --model my_models:small_cnn --method snip --settings num_batches=2 \\
                --data data/prepared/cifar10 --sparsity 0.9 --out masks.pt

``--model`` is a registered model (sized with ``--width`` and the data's classes and image size) or
``package.module:factory``, a callable taking no argument and returning an ``nn.Module`` (imported with the current
directory first on the path, like ``python -m``; its initialisation is drawn under ``torch.manual_seed(--seed)``).
``--settings`` are the method's settings, as JSON (``'{"num_batches": 2}'``) or ``key=value`` pairs (values read as
JSON when they parse, else as strings), validated as in the pipeline. ``--scorer`` is AutoS's trained scorer and is
required with ``--method autos`` only.

Writes ``<out>`` (``torch.load(out, weights_only=True)`` loads it): ``{"masks": {parameter name: bool mask},
"init_state_dict": the model's weights at initialisation}``, plus ``"state_dict"`` for methods that move weights
(K-starts, Pruning from Scratch, ...: train from it); the masks alone mean nothing for a factory model whose
initialisation you cannot redraw, so the weights travel with them. And a JSON summary beside it (``masks.pt`` ->
``masks.json``: method, settings, achieved and effective sparsity, per-layer density, collapse). A collapsed mask
is also reported on stderr. From Python, the same is ``autos.prune`` (README).

Exit status: 0 done; 2 a bad argument (one line naming the value and its allowed range; nothing written);
1 a missing or corrupt input file (one line naming the file); 3 ``--on-collapse error`` and the mask cut the network.
Both outputs are written atomically.

Data-free methods (magnitude, random, random_erk, synflow) need no ``--data``: give the registered model's
``--num-classes`` and, where the input matters (SynFlow; the path check), ``--input-shape C H W``.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
from torch import nn

from autos.api.collapse import CollapseError
from autos.errors import AutosError, DataError
from autos.files import atomic_write_json, save_torch
from autos.models import MODELS
from autos.registry import UnknownNameError

EXIT_USAGE = 2  # a bad argument: nothing was written
EXIT_DATA = 1  # a missing or corrupt input file (as the stages)
EXIT_COLLAPSE = 3  # --on-collapse error and the mask cut the network
DEFAULT_WIDTH = 64


class UsageError(AutosError):
    """A command-line value outside its allowed range."""


# --------------------------------------------------------------------------- --settings and --model


def parse_settings(values: list[str] | None) -> dict[str, Any]:
    """``--settings`` as a dict: one JSON object, or ``key=value`` pairs (a value is JSON if it parses, else a
    string: ``scope=layerwise`` and ``num_batches=2`` both read naturally)."""
    if not values:
        return {}
    if len(values) == 1 and values[0].lstrip().startswith("{"):
        try:
            parsed = json.loads(values[0])
        except json.JSONDecodeError as exc:
            raise UsageError(f"--settings {values[0]!r}: not valid JSON ({exc})") from None
        if not isinstance(parsed, dict):
            raise UsageError(f"--settings {values[0]!r}: expected a JSON object")
        return parsed
    out: dict[str, Any] = {}
    for item in values:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise UsageError(f"--settings {item!r}: expected key=value (or one JSON object)")
        try:
            out[key] = json.loads(raw)
        except json.JSONDecodeError:
            out[key] = raw
    return out


def is_factory_spec(model: str) -> bool:
    return ":" in model


@contextlib.contextmanager
def _cwd_importable() -> Iterator[None]:
    """The current directory first on ``sys.path`` (as ``python -m`` has it) and no bytecode written, for the
    duration of the import: a bad ``--model`` leaves nothing behind."""
    saved_path, saved_flag = list(sys.path), sys.dont_write_bytecode
    sys.path.insert(0, os.getcwd())
    sys.dont_write_bytecode = True
    try:
        yield
    finally:
        sys.path[:] = saved_path
        sys.dont_write_bytecode = saved_flag


def load_factory(spec: str) -> Callable[[], Any]:
    """``package.module:factory`` -> the callable; UsageError naming the spec and what is wrong with it."""
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr or not all(p.isidentifier() for p in [*module_name.split("."), *attr.split(".")]):
        raise UsageError(f"--model {spec!r}: expected a registered model ({', '.join(MODELS.names())}) or "
                         "package.module:factory")
    with _cwd_importable():
        try:
            obj: Any = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - any failure to import user code is a bad --model
            raise UsageError(f"--model {spec!r}: cannot import {module_name!r} ({type(exc).__name__}: {exc})") from None
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"--model {spec!r}: module {module_name!r} has no attribute {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"--model {spec!r}: {attr!r} is not callable")
    return obj


def build_factory_model(spec: str, factory: Callable[[], Any], seed: int) -> nn.Module:
    """Call the user's factory with its initialisation drawn from ``seed`` (the global RNG restored after)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        try:
            model = factory()
        except Exception as exc:  # noqa: BLE001 - user code: report which factory failed and why
            raise UsageError(f"--model {spec!r}: the factory raised {type(exc).__name__}: {exc}") from None
    if not isinstance(model, nn.Module):
        raise UsageError(f"--model {spec!r}: the factory returned a {type(model).__name__}, expected a torch.nn.Module")
    return model


# --------------------------------------------------------------------------- argument checks


def _model_problems(args: argparse.Namespace) -> list[str]:
    if is_factory_spec(args.model):
        problems = []
        if args.width is not None:
            problems.append(f"--width applies to registered models only, not to --model {args.model}")
        try:
            args.factory = load_factory(args.model)
        except UsageError as exc:
            problems.append(str(exc))
        return problems
    problems = []
    if args.model not in MODELS:
        problems.append(f"--model: unknown model {args.model!r}; allowed: {', '.join(MODELS.names())} "
                        "(or package.module:factory)")
    if args.width is not None and args.width < 1:
        problems.append(f"--width must be a positive integer (>= 1), got {args.width}")
    return problems


def _method_problems(args: argparse.Namespace) -> list[str]:
    from autos.api import method_settings, pruner_class
    from autos.pruners import PRUNERS

    try:
        pruner_class(args.method)
    except ValueError as exc:
        return [f"--method: {exc}"]
    record = PRUNERS.record(args.method)  # what the method reads: the scorer, data
    problems = []
    if record.reads_scorer and args.scorer is None:
        problems.append(f"--scorer is required with --method {args.method} (the train_scorer stage's output, e.g. "
                        "data/scorer)")
    elif not record.reads_scorer and args.scorer is not None:
        problems.append(f"--scorer applies to the methods that read the AutoS scorer, not to {args.method!r}")
    elif args.scorer is not None and not Path(args.scorer).is_dir():
        problems.append(f"--scorer {args.scorer}: no such directory (expected the train_scorer stage's output, "
                        "e.g. data/scorer)")
    if args.gradient_batches is not None and not record.reads_scorer:
        problems.append(f"--gradient-batches applies to the methods that read the AutoS scorer, not to "
                        f"{args.method!r}")
    if args.data is None and record.needs_data:
        problems.append(f"--data is required with --method {args.method} (it reads training images; the "
                        "data-free methods are: " + ", ".join(n for n, r in PRUNERS.records().items()
                                                               if not r.needs_data) + ")")
    if args.data is None and not is_factory_spec(args.model) and args.num_classes is None:
        problems.append(f"--num-classes is required without --data (it sizes the classifier of {args.model!r})")
    try:
        settings = parse_settings(args.settings)
        if args.scope is not None:
            settings.setdefault("scope", args.scope)
        if args.scorer is not None:
            settings["scorer_dir"] = str(Path(args.scorer).resolve())
        args.method_settings = method_settings(args.method, settings)
    except (UsageError, ValueError, TypeError) as exc:
        problems.append(f"--settings: {exc}")
    return problems


def check_args(args: argparse.Namespace) -> None:
    """Every argument checked before any data is loaded or anything written; UsageError names each bad value and
    its allowed range, all on one line."""
    problems = _model_problems(args) + _method_problems(args)
    if not 0.0 < args.sparsity < 1.0:  # also rejects nan
        problems.append(f"--sparsity must be in (0, 1) (the fraction of weights removed), got {args.sparsity}")
    if args.gradient_batches is not None and args.gradient_batches < 1:
        problems.append(f"--gradient-batches must be a positive integer (>= 1) or omitted, got {args.gradient_batches}")
    if args.data is not None and not Path(args.data).is_dir():
        problems.append(f"--data {args.data}: no such directory (expected a prepared dataset, data/prepared/<name>)")
    if args.data is not None and (args.num_classes is not None or args.input_shape is not None):
        problems.append("--num-classes and --input-shape apply without --data only (the data say both)")
    if args.input_shape is not None and any(s < 1 for s in args.input_shape):
        problems.append(f"--input-shape must be three positive sizes C H W, got {' '.join(map(str, args.input_shape))}")
    if args.device == "cuda" and not torch.cuda.is_available():
        problems.append("--device cuda: no CUDA device is available; allowed here: auto, cpu")
    out = Path(args.out)
    if out.is_dir():
        problems.append(f"--out {args.out}: is a directory, expected a .pt file path")
    elif out.suffix == ".json":
        problems.append(f"--out {args.out}: must not end in .json (the summary is written to <out>.json beside it)")
    if problems:
        raise UsageError("; ".join(problems))


# --------------------------------------------------------------------------- pruning and the outputs


def write_outputs(checkpoint: dict[str, Any], summary: dict[str, Any], out: Path) -> None:
    """Checkpoint and summary each written atomically (temp + rename): a kill never leaves a torn or partial file."""
    save_torch(checkpoint, out)
    atomic_write_json(out.with_suffix(".json"), summary)


def _model(args: argparse.Namespace, num_classes: int, input_size: int) -> nn.Module:
    if is_factory_spec(args.model):
        return build_factory_model(args.model, args.factory, args.seed)
    from autos.models import build_model

    width = DEFAULT_WIDTH if args.width is None else args.width
    return build_model(args.model, num_classes=num_classes, width=width, input_size=input_size, seed=args.seed)


def prune_from_args(args: argparse.Namespace) -> dict[str, Any]:
    """Check, load, prune, write; returns the summary written next to the checkpoint."""
    from autos.api import LayerCollapseWarning, prune
    from autos.config import FeaturesConfig
    from autos.data.prepared import load_prepared
    from autos.device import resolve_device
    from autos.masking import mask_summary

    check_args(args)
    if args.scorer is not None:  # the small file first: a corrupt scorer fails before the data are read
        from autos.scorer import load_scorer

        load_scorer(args.scorer)
    data = load_prepared(Path(args.data)) if args.data is not None else None
    shape = tuple(args.input_shape or (3, 32, 32)) if data is None else tuple(int(s) for s in data.train_x.shape[1:])
    model = _model(args, data.num_classes if data is not None else args.num_classes, shape[-1])
    init_state = {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", LayerCollapseWarning)
        result = prune(model, args.method, args.sparsity, data, settings=args.method_settings, seed=args.seed,
                       device=resolve_device(args.device), include_classifier=not args.dense_classifier,
                       features=FeaturesConfig(gradient_max_batches=args.gradient_batches),
                       input_shape=shape if data is None else None, on_collapse=args.on_collapse)
    for warning in caught:  # ours as one line on stderr, any other as Python would have shown it
        if issubclass(warning.category, LayerCollapseWarning):
            print(f"autos-prune: warning: {warning.message}", file=sys.stderr)
        else:
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
    checkpoint: dict[str, Any] = {"masks": dict(result), "init_state_dict": init_state}
    if result.state_dict is not None:
        checkpoint["state_dict"] = {k: v.detach().cpu() for k, v in result.state_dict.items()}
    summary = {
        **asdict(mask_summary(result.masks)),  # density, sparsity, kept, total, layer_density, min_layer_density, ...
        "model": args.model, "width": None if is_factory_spec(args.model) else (args.width or DEFAULT_WIDTH),
        "seed": args.seed, "method": result.method, "settings": result.settings,
        "requested_sparsity": result.requested_sparsity, "effective_sparsity": result.effective_sparsity,
        "collapsed": result.collapsed, "collapsed_layers": result.collapsed_layers, "cut_layer": result.cut_layer,
        "repair_layer_floor": result.repair_layer_floor,
        "train_from": "init_state_dict" if result.state_dict is None else "state_dict",
    }
    write_outputs(checkpoint, summary, Path(args.out))
    return summary


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # type: ignore[override]
        """One line (argparse prints the whole usage first), same exit status as our own argument checks."""
        self.exit(EXIT_USAGE, f"{self.prog}: {message} (see --help)\n")


def parser() -> argparse.ArgumentParser:
    from autos.pruners import PRUNERS

    p = _Parser(prog="autos-prune", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True,
                   help=f"registered model ({', '.join(MODELS.names())}) or package.module:factory")
    p.add_argument("--width", type=int, default=None, help=f"registered models: width (default {DEFAULT_WIDTH})")
    p.add_argument("--method", default="autos", help=f"pruning method (default: autos): {', '.join(PRUNERS.names())}")
    p.add_argument("--plugin", action="append", default=[], metavar="MODULE",
                   help="a module of your own to import first (it registers methods), e.g. my_package.my_methods")
    p.add_argument("--settings", nargs="+", default=None, metavar="SETTING",
                   help="the method's settings: one JSON object or key=value pairs")
    p.add_argument("--scorer", default=None, help="--method autos: the scorer directory (train_scorer's output)")
    p.add_argument("--data", default=None, help="a prepared dataset directory (data/prepared/<name>); required by "
                   "the methods that read images")
    p.add_argument("--num-classes", type=int, default=None, help="without --data: the registered model's classes")
    p.add_argument("--input-shape", type=int, nargs=3, default=None, metavar=("C", "H", "W"),
                   help="without --data: the input the model takes (default 3 32 32)")
    p.add_argument("--on-collapse", choices=["repair", "warn", "error"], default="repair",
                   help="a mask that cuts the network: repair it with a per-layer floor (default), warn, or fail")
    p.add_argument("--sparsity", type=float, required=True, help="fraction of prunable weights removed, in (0, 1)")
    p.add_argument("--scope", choices=["global", "layerwise"], default=None,
                   help="score methods: rank globally or per layer (same as --settings scope=...)")
    p.add_argument("--seed", type=int, default=0, help="model initialisation and data order")
    p.add_argument("--gradient-batches", type=int, default=None,
                   help="--method autos: cap the g0 pass (default: the scorer's features config)")
    p.add_argument("--dense-classifier", action="store_true", help="do not prune the final Linear layer")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    p.add_argument("--out", required=True, help="output .pt (masks and weights); a .json summary lands beside it")
    return p


def load_cli_plugins(argv: list[str] | None) -> None:
    """``--plugin module`` (repeatable): import a user's module that registers methods, before the full parser
    (whose --method help lists every method) is built; the current directory first on the path, like ``python -m``."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--plugin", action="append", default=[])
    known, _ = pre.parse_known_args(argv)
    if not known.plugin:
        return
    from autos.study import load_plugins

    with _cwd_importable():
        load_plugins(known.plugin, "--plugin")


def main(argv: list[str] | None = None) -> int:
    try:
        load_cli_plugins(argv)
    except AutosError as exc:
        print(f"autos-prune: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args = parser().parse_args(argv)
    try:
        summary = prune_from_args(args)
    except DataError as exc:
        print(f"autos-prune: {exc}", file=sys.stderr)
        return EXIT_DATA
    except CollapseError as exc:  # --on-collapse error: nothing written
        print(f"autos-prune: {exc}", file=sys.stderr)
        return EXIT_COLLAPSE
    except (AutosError, UnknownNameError) as exc:
        print(f"autos-prune: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(json.dumps({k: summary[k] for k in ("method", "sparsity", "effective_sparsity", "collapsed",
                                              "min_layer_density")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
