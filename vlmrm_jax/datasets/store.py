"""The on-disk format of captioned-frame datasets, written atomically and checked on load.

A dataset directory holds::

    manifest.json          format, version, env, frame count, image shape, seed, source settings, per-concept
                           positive counts, and the SHA-256 of every array file
    captions.json          the CaptionSet (concepts, phrasings, paper prompts, baseline)
    labels.npy             bool [N, C]
    states.npy             float32 [N, S]
    modes.npy              int32 [N]
    images-00000.npy ...   uint8 [n, H, W, 3] shards, in order

The directory is assembled under a temporary name next to the target and renamed into place when complete, so an
interrupted generation never leaves a directory that looks like a dataset. :func:`load_dataset` turns every way a
directory can be wrong (missing, empty, no manifest, bad JSON, missing or truncated arrays, checksum or shape
mismatches) into one :class:`~vlmrm_jax.errors.DatasetError` line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from vlmrm_jax.atomic import atomic_directory
from vlmrm_jax.datasets.base import CaptionSource, FrameBatch
from vlmrm_jax.datasets.captions import CaptionSet
from vlmrm_jax.errors import DatasetError, VlmrmError

FORMAT = "vlmrm-jax captioned frames"
VERSION = 1
MANIFEST_FILE = "manifest.json"
CAPTIONS_FILE = "captions.json"
ARRAY_FILES = ("labels.npy", "states.npy", "modes.npy")


@dataclasses.dataclass
class CaptionedFrames:
    """A loaded dataset.

    Attributes:
        images: uint8 [N, H, W, 3].
        labels: bool [N, C], columns in ``captions.concepts`` order.
        states: float32 [N, S] (columns named by ``manifest["state_names"]``).
        modes: int32 [N], sampling mode of each frame (``manifest["modes"]`` names them).
        captions: the caption vocabulary.
        manifest: the parsed ``manifest.json``.
    """

    images: np.ndarray
    labels: np.ndarray
    states: np.ndarray
    modes: np.ndarray
    captions: CaptionSet
    manifest: dict

    def __len__(self) -> int:
        return int(self.images.shape[0])

    @property
    def env(self) -> str:
        """The environment the frames come from."""
        return str(self.manifest["env"])

    def positive_counts(self) -> dict[str, int]:
        """Concept key -> number of frames where it holds."""
        return {key: int(n) for key, n in zip(self.captions.keys, self.labels.sum(axis=0))}


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _regenerate_hint(env: str | None, path: Path) -> str:
    return f"regenerate it with: python -m experiments.make_vlm_dataset --env {env or 'ENV'} --out {path} --overwrite"


def write_dataset(out: str | Path, source: CaptionSource, batches: Iterable[FrameBatch], *, seed: int,
                  overwrite: bool = False, extra: dict | None = None) -> Path:
    """Writes frames into a dataset directory, atomically.

    Args:
        out: the dataset directory to create.
        source: the source that produced ``batches`` (its env, captions, state names, modes and config are saved).
        batches: the frames, e.g. ``source.generate(num_frames, seed)``; each batch becomes one image shard.
        seed: the seed the frames were generated with (saved in the manifest).
        overwrite: replace an existing non-empty ``out``.
        extra: further JSON-serialisable manifest fields (e.g. the generating command).

    Returns:
        ``out`` as a Path.

    Raises:
        DatasetError: if ``out`` exists, is not empty and ``overwrite`` is False; if ``out`` is a file; if no frames
            were produced.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise DatasetError(f"dataset path {out} is a file; choose a directory")
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise DatasetError(f"dataset directory {out} is not empty; pass --overwrite to replace it or choose another")
    with atomic_directory(out) as tmp:
        shards, labels, states, modes = [], [], [], []
        for batch in batches:
            n = int(batch.images.shape[0])
            if n == 0:
                continue
            name = f"images-{len(shards):05d}.npy"
            np.save(tmp / name, np.ascontiguousarray(batch.images, np.uint8))
            shards.append({"file": name, "count": n})
            labels.append(np.asarray(batch.labels, bool))
            states.append(np.asarray(batch.states, np.float32))
            modes.append(np.asarray(batch.modes, np.int32))
        if not shards:
            raise DatasetError(f"no frames were generated for {out}; ask for at least one frame (--num-frames)")
        labels, states, modes = np.concatenate(labels), np.concatenate(states), np.concatenate(modes)
        for name, array in zip(ARRAY_FILES, (labels, states, modes)):
            np.save(tmp / name, array)
        (tmp / CAPTIONS_FILE).write_text(json.dumps(source.captions.to_json(), indent=2))
        first = np.load(tmp / shards[0]["file"], mmap_mode="r")
        manifest = {
            "format": FORMAT, "version": VERSION, "env": source.env, "num_frames": int(labels.shape[0]),
            "image_shape": list(first.shape[1:]), "seed": int(seed), "source_config": source.config,
            "state_names": list(source.state_names), "modes": list(source.modes),
            "mode_counts": {m: int((modes == i).sum()) for i, m in enumerate(source.modes)},
            "positive_counts": {k: int(n) for k, n in zip(source.captions.keys, labels.sum(axis=0))},
            "shards": shards, "sha256": {f: _sha256(tmp / f) for f in
                                         [*ARRAY_FILES, CAPTIONS_FILE, *(s["file"] for s in shards)]},
            **(extra or {}),
        }
        (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
    return out


def _load_array(path: Path, env: str, root: Path) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DatasetError(f"dataset {root} is corrupt: {path.name} is missing; {_regenerate_hint(env, root)}") from None
    except (ValueError, OSError, EOFError) as e:
        raise DatasetError(f"dataset {root} is corrupt: {path.name} is unreadable ({str(e).splitlines()[0][:120]}); "
                           f"{_regenerate_hint(env, root)}") from None


def load_dataset(path: str | Path, *, verify: bool = True) -> CaptionedFrames:
    """Loads a dataset directory written by :func:`write_dataset`.

    Args:
        path: the dataset directory.
        verify: check every file's SHA-256 against the manifest (about 0.3 s per 100 MB).

    Returns:
        The frames, labels, states, modes, caption vocabulary and manifest.

    Raises:
        DatasetError: one line naming the directory and the problem (missing, empty, not a dataset, corrupt manifest,
            missing/unreadable/altered array files, inconsistent shapes) and how to regenerate it.
    """
    root = Path(path)
    if not root.exists():
        raise DatasetError(f"no dataset at {root}; generate one with: python -m experiments.make_vlm_dataset "
                           f"--env ENV --out {root}")
    if not root.is_dir():
        raise DatasetError(f"dataset path {root} is a file, not a dataset directory; pass the directory that "
                           f"holds {MANIFEST_FILE}")
    if not any(root.iterdir()):
        raise DatasetError(f"dataset directory {root} is empty; generate one with: python -m "
                           f"experiments.make_vlm_dataset --env ENV --out {root} --overwrite")
    try:
        manifest = json.loads((root / MANIFEST_FILE).read_text())
    except FileNotFoundError:
        raise DatasetError(f"{root} has no {MANIFEST_FILE}, so it is not a dataset (or its writing was interrupted); "
                           f"{_regenerate_hint(None, root)}") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DatasetError(f"dataset {root} is corrupt: {MANIFEST_FILE} is not valid JSON ({e}); "
                           f"{_regenerate_hint(None, root)}") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise DatasetError(f"{root / MANIFEST_FILE} is not a captioned-frame dataset manifest (format "
                           f"{manifest.get('format') if isinstance(manifest, dict) else None!r}); "
                           f"{_regenerate_hint(None, root)}")
    env = manifest.get("env")
    if manifest.get("version") != VERSION:
        raise DatasetError(f"dataset {root} has format version {manifest.get('version')!r}, this library reads "
                           f"version {VERSION}; {_regenerate_hint(env, root)}")
    try:
        shards, checksums, num_frames = manifest["shards"], manifest["sha256"], int(manifest["num_frames"])
        image_shape = tuple(manifest["image_shape"])
    except (KeyError, TypeError, ValueError) as e:
        raise DatasetError(f"dataset {root} is corrupt: {MANIFEST_FILE} lacks field {e}; "
                           f"{_regenerate_hint(env, root)}") from None
    if num_frames <= 0 or not shards:
        raise DatasetError(f"dataset {root} holds no frames; {_regenerate_hint(env, root)}")
    if verify:
        for name, expected in checksums.items():
            if not (root / name).is_file():
                raise DatasetError(f"dataset {root} is corrupt: {name} is missing; {_regenerate_hint(env, root)}")
            if _sha256(root / name) != expected:
                raise DatasetError(f"dataset {root} is corrupt: {name} does not match its checksum in "
                                   f"{MANIFEST_FILE}; {_regenerate_hint(env, root)}")
    try:
        captions = CaptionSet.from_json(json.loads((root / CAPTIONS_FILE).read_text()))
    except FileNotFoundError:
        raise DatasetError(f"dataset {root} is corrupt: {CAPTIONS_FILE} is missing; "
                           f"{_regenerate_hint(env, root)}") from None
    except (json.JSONDecodeError, VlmrmError) as e:
        raise DatasetError(f"dataset {root} is corrupt: {CAPTIONS_FILE} is invalid ({e}); "
                           f"{_regenerate_hint(env, root)}") from None
    labels, states, modes = (_load_array(root / name, env, root) for name in ARRAY_FILES)
    images = [_load_array(root / s["file"], env, root) for s in shards]
    for shard, array in zip(shards, images):
        if array.dtype != np.uint8 or array.shape != (shard["count"], *image_shape):
            raise DatasetError(f"dataset {root} is corrupt: {shard['file']} holds {array.dtype} "
                               f"{tuple(array.shape)}, the manifest says uint8 {(shard['count'], *image_shape)}; "
                               f"{_regenerate_hint(env, root)}")
    images = np.concatenate(images) if len(images) > 1 else images[0]
    expected = {"labels.npy": (labels, (num_frames, len(captions.concepts))),
                "states.npy": (states, (num_frames, len(manifest.get("state_names", [])))),
                "modes.npy": (modes, (num_frames,)), "images": (images, (num_frames, *image_shape))}
    for name, (array, shape) in expected.items():
        if array.shape != shape:
            raise DatasetError(f"dataset {root} is corrupt: {name} has shape {tuple(array.shape)}, expected {shape}; "
                               f"{_regenerate_hint(env, root)}")
    return CaptionedFrames(images=images, labels=labels.astype(bool), states=states.astype(np.float32),
                           modes=modes.astype(np.int32), captions=captions, manifest=manifest)
