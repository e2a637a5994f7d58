"""DVC stage: locate (or download) a dataset, check it, decode once to uint8 arrays + metadata.

Looks in $AUTOS_DATA_DIR first, then ``data.search_dirs`` (relative to the repo root).
Output: data/prepared/<dataset>/.
"""

from __future__ import annotations

from pathlib import Path

from autos.data import prepare_dataset
from autos.errors import ConfigError
from autos.pipeline.context import StageContext


def search_dirs(root: Path, configured: list[str]) -> list[Path]:
    """Configured dirs, relative to the repo root ($AUTOS_DATA_DIR is searched before them by the library)."""
    return [(root / p).resolve() for p in configured]


def run(ctx: StageContext) -> None:
    cfg, args, root = ctx.cfg, ctx.args, ctx.root
    if args.dataset not in cfg.data.datasets:
        raise ConfigError([f"--dataset {args.dataset!r} is not declared under data.datasets "
                           f"(declared: {', '.join(cfg.data.datasets)})"], args.params)
    settings = cfg.data.datasets[args.dataset]
    prepare_dataset(
        args.dataset,
        search_dirs=search_dirs(root, cfg.data.search_dirs),
        out_dir=ctx.paths.prepared / args.dataset,
        download=cfg.data.download,
        download_dir=root / cfg.data.download_dir,
        max_train_per_class=settings.max_train_per_class,
        max_test_per_class=settings.max_test_per_class,
        image_size=settings.image_size,
        max_classes=settings.max_classes,
        seed=cfg.seed,
    )
