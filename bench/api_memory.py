"""Peak memory of AutoS on a large user model (torchvision VGG-11-bn, 10 classes, 32x32 inputs: 128.8 M prunable
weights, one Linear of 102.8 M): features and scores built for every layer at once (the code before the layer-by-
layer streaming) vs ``autos.prune`` (one layer's features at a time, rows scored in chunks).

Each mode runs in its own process; the figure is the process's peak resident set (``ru_maxrss``). A tiny MLP scorer
stands in for a trained one (its cost per row is what matters, not its quality).

    .venv/bin/python bench/api_memory.py                      # the streaming API, this tree
    PYTHONPATH=<old tree>/src .venv/bin/python bench/api_memory.py --mode all-layers   # the old code path

Writes bench/results/api_memory_<mode>.json.
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import torch
import torchvision
from common import save

N_IMAGES = 64


def scorer_dir(root: Path) -> Path:
    from autos.scorer import build_scorer, save_scorer

    torch.manual_seed(0)
    net, settings = build_scorer("mlp", {"hidden": [16]})
    net.prepare(torch.randn(256, len(settings.inputs)))
    save_scorer(root / "scorer", net.eval(), "mlp", settings, {"source": "bench"})
    return root / "scorer"


def run(mode: str) -> dict:
    torch.manual_seed(0)
    model = torchvision.models.vgg11_bn(num_classes=10)
    x, y = torch.randn(N_IMAGES, 3, 32, 32), torch.randint(0, 10, (N_IMAGES,))
    with tempfile.TemporaryDirectory() as tmp:
        directory = scorer_dir(Path(tmp))
        start = time.perf_counter()
        if mode == "stream":
            import autos

            masks = autos.prune(model, "autos", 0.9, data=(x, y), settings={"scorer_dir": str(directory)})
            kept = sum(int(m.sum()) for m in masks.values())
        else:  # what autos-prune and the AutoS method did before: every layer's features, then every score
            from autos.config import FeaturesConfig
            from autos.features import weight_features
            from autos.masking import select_mask
            from autos.scorer import load_scorer, required_extra, score_layers

            class Pair:  # the ImageData the old code needed (uint8 images + normalisation)
                train_x = (x.clamp(-2, 2) * 60 + 128).to(torch.uint8)
                train_y = y
                test_x, test_y = train_x, y
                mean, std = (0.5, 0.5, 0.5), (0.25, 0.25, 0.25)

            net, _, settings, _ = load_scorer(directory)
            _, features = weight_features(model, Pair(), FeaturesConfig(gradient_batch_size=N_IMAGES),
                                          device=torch.device("cpu"), seed=0, extra=required_extra(settings))
            masks = select_mask(score_layers(net, settings, features), 0.1)
            kept = sum(int(m.sum()) for m in masks.values())
        seconds = time.perf_counter() - start
    total = sum(p.numel() for n, p in model.named_parameters() if p.dim() > 1)
    return {"mode": mode, "prunable_weights": total, "kept": kept, "seconds": round(seconds, 1),
            "peak_rss_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--mode", choices=["stream", "all-layers"], default="stream")
    args = p.parse_args()
    save(f"api_memory_{args.mode}", run(args.mode))


if __name__ == "__main__":
    main()
