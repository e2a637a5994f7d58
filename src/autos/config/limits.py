"""The bounds on params values, each with the reason it is where it is (hardware, a library or the method, never
taste), the constrained types built from them, the strict base model, and checks several sections share."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field
from pydantic_core import PydanticCustomError

MAX_BATCH_SIZE = 65536  # images per step: far beyond any GPU's memory for these models, so surely a typo
MAX_SCORER_BATCH_SIZE = 2**22  # rows of the feature table per step (a row is a few floats)
MAX_SEED = 2**32 - 1  # numpy's legacy seeding (and many libraries) accept [0, 2**32)
# SGD learning rate. The linear scaling rule (Goyal et al. 2017: 0.1 per 256 images) gives 3.2 at batch 8192, the
# largest batch it is reported to work for without layer-wise rates; these BN nets diverge (NaN loss in the first
# epoch) well below 10, so a larger value is a typo (1e12 for 1e-2), not a recipe.
MAX_LR = 10.0
# Epochs of one training run (and of one IRP round). Published CIFAR / Tiny ImageNet pruning recipes train 160-250
# epochs; 10,000 is 40x that, about a week of one GPU for one ResNet-18 cell on CIFAR-10. More is a typo.
MAX_EPOCHS = 10_000
# Channel width of the first stage (64 in the paper). Weights grow as width^2: VGG-16-bn has 14.8 M weights at 64,
# 3.8 G at 1024, i.e. 45 GB of fp32 weights, gradients and momentum (12 bytes each), about what one 80 GB GPU holds
# with activations; 2048 needs 182 GB for those alone, more than any single GPU (H200: 141 GB).
MAX_WIDTH = 1024
# MLflow's SQL store keeps experiment names in a VARCHAR(256) column (mlflow/store/tracking/dbmodels/models.py): a
# longer name is truncated or refused by the server mid-stage.
MAX_EXPERIMENT_NAME = 256
# Target and dataset names become folder and file names (data/prepared/<dataset>, data/transfer/<target>, DVC stage
# names prepare_data@<dataset>, transfer@<target>): only identifier-like names, so no '..', '/', space or dot.
PATH_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")

PositiveInt = Annotated[int, Field(gt=0)]
UnitOpen = Annotated[float, Field(gt=0, lt=1)]
Sparsity = Annotated[
    float, Field(gt=0, lt=1, description="fraction of prunable weights removed; must be in (0, 1)")
]
BatchSize = Annotated[int, Field(ge=1, le=MAX_BATCH_SIZE)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]  # np.random.default_rng refuses negative seeds mid-stage
Epochs = Annotated[int, Field(ge=1, le=MAX_EPOCHS)]
LearningRate = Annotated[float, Field(gt=0, le=MAX_LR)]


def problems_error(problems: list[str]) -> PydanticCustomError:
    """One error carrying several problems, each a dotted path relative to where it is raised plus a message;
    ``autos.config.errors.format_errors`` expands it into one line per problem."""
    return PydanticCustomError("nested_problems", "{summary}", {"summary": "; ".join(problems), "problems": problems})


def check_path_names(kind: str, names: Any) -> None:
    """Refuse names that are used as folder names but could leave the folder (``../x``) or break a DVC stage name."""
    bad = [name for name in names if not PATH_NAME.fullmatch(name)]
    if bad:
        raise ValueError(f"{kind} name(s) {', '.join(map(repr, bad))} are not safe as folder names (data/.../<name>); "
                         f"allowed: letters, digits and '_', not starting with a digit ({PATH_NAME.pattern})")


PARQUET_MAGIC = b"PAR1"  # a Parquet file starts and ends with it


def parquet_problem(path: str, root: Path) -> str | None:
    """Why ``path`` (relative to ``root``) is not a Parquet file, or None; reads 8 bytes, no Parquet reader."""
    full = root / path
    allowed = ("allowed: an existing labelled feature table (Parquet), e.g. another study's "
               "data/features/<source>/source.parquet")
    if not full.exists():
        return f"{full} does not exist (paths are relative to the study root {root}); {allowed}"
    if not full.is_file():
        return f"{full} is not a file; {allowed}"
    try:
        with open(full, "rb") as fh:
            head = fh.read(len(PARQUET_MAGIC))
            fh.seek(0, os.SEEK_END)
            size = fh.tell()
            fh.seek(max(size - len(PARQUET_MAGIC), 0))
            tail = fh.read(len(PARQUET_MAGIC))
    except OSError as exc:
        return f"{full} cannot be read ({exc.strerror or exc}); {allowed}"
    if size < 2 * len(PARQUET_MAGIC) or head != PARQUET_MAGIC or tail != PARQUET_MAGIC:
        return f"{full} is not a Parquet file (it does not start and end with {PARQUET_MAGIC.decode()}); {allowed}"
    return None



class Strict(BaseModel):
    # strict: no coercion, so a YAML boolean or quoted number where a number belongs is an error rather than 1
    # or 3 (ints are still accepted for floats); allow_inf_nan=False: a NaN/inf lr would only show up as a
    # diverged run hours later.
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)
