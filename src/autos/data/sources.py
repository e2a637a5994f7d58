"""Where a dataset's raw files come from: ``$AUTOS_DATA_DIR``, the configured search folders (an official archive
or its extracted folder, or a known subset's archive), or a download of the official archive (md5-checked).
Nothing here decodes data; ``autos.data.prepared`` does that once the source is found."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from autos.data._registry import DATASETS, DatasetSpec
from autos.data.archive import download as download_file
from autos.errors import DataError

log = logging.getLogger(__name__)

DATA_DIR_ENV = "AUTOS_DATA_DIR"


def _candidate_names(spec: DatasetSpec) -> list[str]:
    return [spec.folder_name, *spec.archive_names]


def locate_source(dataset_name: str, search_dirs: list[Path]) -> Path | None:
    """First extracted folder or archive of the dataset found in ``search_dirs`` (in order), else None."""
    spec = DATASETS.get(dataset_name)
    for directory in search_dirs:
        for name in _candidate_names(spec):
            path = Path(directory) / name
            if path.is_dir() if name == spec.folder_name else path.is_file():
                log.info("%s: using %s", dataset_name, path)
                return path
    return None


@dataclass(frozen=True)
class Source:
    """Where the raw data was found: ``kind`` is folder, archive or download (then ``url`` is set)."""

    path: Path
    kind: str
    url: str | None = None


def _search_dirs(search_dirs: list[Path], download_dir: Path | None) -> list[Path]:
    """$AUTOS_DATA_DIR (a deliberate per-user choice) first, then the configured dirs, then download_dir."""
    dirs = [Path(os.environ[DATA_DIR_ENV])] if os.environ.get(DATA_DIR_ENV) else []
    dirs += [Path(d) for d in search_dirs]
    if download_dir is not None:
        dirs.append(Path(download_dir))
    return list(dict.fromkeys(dirs))  # drop duplicates, keep order


def obtain_source(
    dataset_name: str,
    *,
    search_dirs: list[Path],
    download: bool,
    download_dir: Path | None,
    url: str | None = None,
    md5: str | None = None,
) -> Source:
    """Locate the raw data, downloading the official archive if allowed; else explain how to provide it.

    With ``url`` overridden the official md5 no longer applies; ``md5`` (if given) is checked instead.
    """
    spec = DATASETS.get(dataset_name)
    dirs = _search_dirs(search_dirs, download_dir)
    found = locate_source(dataset_name, dirs)
    if found is not None:
        return Source(found, "folder" if found.is_dir() else "archive")
    failure = ""
    if download and download_dir is None:
        failure = "\nDownload was enabled but no download_dir was given."
    elif download and download_dir is not None:
        source_url = url or spec.url
        expected = md5 if url else spec.md5
        try:
            path = download_file(source_url, Path(download_dir) / spec.archive_names[0], expected)
            return Source(path, "download", source_url)
        except DataError as exc:
            failure = f"\nDownload was enabled but failed: {exc}"
    looked = ", ".join(f"{spec.folder_name}/" if n == spec.folder_name else n for n in _candidate_names(spec))
    where = ", ".join(f"{d}" + ("" if d.is_dir() else " (missing)") for d in dirs) or "(no folders given)"
    raise DataError(
        f"no {dataset_name} data found: looked for {looked} in {where}.{failure}\n"
        f"To provide it: put the archive or the extracted folder into one of those folders, "
        f"or set the {DATA_DIR_ENV} environment variable to a folder that holds it, "
        + (f"or check the network and retry (fetches {url or spec.url})." if download
           else f"or enable download (fetches {url or spec.url}).")
    )
