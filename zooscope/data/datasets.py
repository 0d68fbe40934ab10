"""Datasets with stable integer sample ids and deterministic train / calibration / eval splits.

Sources (``dataset.source`` in params.yaml):

- ``fashion-mnist``: the IDX files of Debian's ``dataset-fashion-mnist`` package (or ``dataset.root``);
  torchvision downloads them only when they are missing and the machine is online.
- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images), for fast tests.
- ``imagefolder:<path>``: one sub-folder per class (e.g. an ImageNet validation split); read from disk per image,
  or, with ``dataset.image_size``, decoded once into memory at that size (what recipe models train on).
- ``torchvision:<Name>``: a torchvision dataset class (CIFAR10, ...), downloaded when online.

Sample ids: for sets with an official train/test split, train image ``i`` has id ``i`` and test image
``j`` has id ``n_train + j``; otherwise the id is the position in the (sorted) listing.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from zooscope.config import DatasetSpec
from zooscope.data.idx import read_idx
from zooscope.data.memo import file_key, files_key, memoised

__all__ = ["Dataset", "load_dataset", "dataset_root", "open_image", "SPLITS", "FASHION_MNIST_CLASSES", "DEBIAN_FASHION_MNIST",
           "FASHION_MNIST_HINT"]

DEBIAN_FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
FASHION_MNIST_CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)
SPLITS = ("train", "calibration", "eval")
#: Where Fashion-MNIST comes from, for every message about a folder that lacks it (the loader's, the inputs stage's).
FASHION_MNIST_HINT = (f"Install Debian's package (apt-get install dataset-fashion-mnist, files land in {DEBIAN_FASHION_MNIST}), "
                      "or set dataset.root (or $ZOOSCOPE_FASHION_MNIST) to a folder holding them")
_IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}


@dataclass(frozen=True)
class Dataset:
    """Images, labels and splits.

    Attributes:
        name: the dataset source string.
        classes: class names, index = label.
        sample_ids: int64 [n], stable ids.
        labels: int64 [n].
        splits: split name -> int64 positions into the arrays (train, calibration, eval, disjoint).
        images: uint8 [n, H, W] (grayscale) or [n, H, W, 3], or None when images live in ``paths``.
        paths: image file per sample when not held in memory.
    """

    name: str
    classes: tuple[str, ...]
    sample_ids: np.ndarray
    labels: np.ndarray
    splits: dict[str, np.ndarray]
    images: np.ndarray | None = None
    paths: tuple[str, ...] | None = field(default=None, repr=False)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        """(channels, height, width) of the in-memory images, what networks built for the dataset consume."""
        if self.images is None:
            raise ValueError(f"{self.name}: models built for the dataset's own image size need an in-memory dataset")
        imgs = self.images
        return (1 if imgs.ndim == 3 else int(imgs.shape[-1])), int(imgs.shape[1]), int(imgs.shape[2])

    def split(self, name: str) -> np.ndarray:
        """Positions (int64) of one split."""
        try:
            return self.splits[name]
        except KeyError:
            raise KeyError(f"unknown split {name!r}; splits: {', '.join(self.splits)}") from None

    def pil(self, pos: int):
        """One image as a PIL image (grayscale 'L' or 'RGB')."""
        from PIL import Image

        if self.paths is not None:  # an image folder's own file, at full size, even when also decoded small
            return open_image(self.paths[pos])
        return Image.fromarray(self.images[pos])  # type: ignore[index]


# --------------------------------------------------------------------------- splits


def _count(size: int | float | None, n: int, *, what: str, default: int) -> int:
    if size is None:
        return default
    k = int(round(size * n)) if isinstance(size, float) else int(size)
    if k > n:
        raise ValueError(f"dataset.{what}: asks for {k} samples but only {n} are available")
    return k


def _split_pool(spec: DatasetSpec, pool: np.ndarray, test: np.ndarray | None) -> dict[str, np.ndarray]:
    """Deterministic splits from a seeded permutation of the pool (and of the test part when given)."""
    rng = np.random.Generator(np.random.PCG64(spec.seed))
    perm = pool[rng.permutation(len(pool))]
    out: dict[str, np.ndarray] = {}
    start = 0
    if test is None:
        n_eval = _count(spec.eval_size, len(pool), what="eval_size", default=int(round(0.25 * len(pool))))
        out["eval"], start = np.sort(perm[:n_eval]), n_eval
    n_cal = _count(spec.calibration_size, len(pool), what="calibration_size", default=0)
    out["calibration"], start = np.sort(perm[start:start + n_cal]), start + n_cal
    n_train = _count(spec.train_size, len(pool), what="train_size", default=len(pool) - start)
    if start + n_train > len(pool):
        raise ValueError(
            f"dataset: train_size {n_train} + calibration_size {n_cal} (+ eval) exceed the {len(pool)} samples available"
        )
    out["train"], start = np.sort(perm[start:start + n_train]), start + n_train
    out["disjoint"] = np.sort(perm[start:start + n_train])  # a training subset disjoint from train and calibration
    if test is not None:
        n_eval = _count(spec.eval_size, len(test), what="eval_size", default=len(test))
        sub = test if n_eval == len(test) else test[rng.permutation(len(test))[:n_eval]]
        out["eval"] = np.sort(sub)
    return {k: out[k].astype(np.int64) for k in (*SPLITS, "disjoint")}


# --------------------------------------------------------------------------- sources


def _fashion_mnist(spec: DatasetSpec) -> Dataset:
    root = dataset_root(spec)

    def find(stem: str) -> Path | None:
        for cand in (root / stem, root / f"{stem}.gz", root / "FashionMNIST" / "raw" / stem):
            if cand.exists():
                return cand
        return None

    stems = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
    files = [find(s) for s in stems]
    if any(f is None for f in files):
        files = _download_fashion_mnist(root, stems)
    # the train and test images as one memoised array, memory-mapped: a stage that reads only labels (probe,
    # predict) no longer reads and copies 55 MB of pixels (0.3 to 0.6 s of each such stage's process)
    images = memoised("fashion-mnist", "|".join(file_key(files[i]) for i in (0, 2)),
                       lambda: np.concatenate([read_idx(files[0]), read_idx(files[2])]))
    ytr, yte = (memoised("idx", file_key(f), lambda f=f: read_idx(f)) for f in (files[1], files[3]))
    labels = np.concatenate([ytr, yte]).astype(np.int64)
    n_train = len(ytr)
    splits = _split_pool(spec, np.arange(n_train), np.arange(n_train, len(images)))
    return Dataset(spec.source, FASHION_MNIST_CLASSES, np.arange(len(images), dtype=np.int64), labels, splits, images)


def _download_fashion_mnist(root: Path, stems: tuple[str, ...]) -> list[Path]:
    hint = f"Fashion-MNIST IDX files not found under {root} (looked for {', '.join(stems)}, optionally .gz). {FASHION_MNIST_HINT}"
    if not root.is_dir():  # never create the folder a user named: a typo in dataset.root must stay visible
        raise FileNotFoundError(f"{hint}; {root} does not exist")
    fresh = not (root / "FashionMNIST").exists()
    try:
        from torchvision.datasets import FashionMNIST

        FashionMNIST(str(root), train=True, download=True)
        FashionMNIST(str(root), train=False, download=True)
    except Exception as err:  # offline, or no write access
        if fresh:  # leave no empty download folders behind
            shutil.rmtree(root / "FashionMNIST", ignore_errors=True)
        raise FileNotFoundError(f"{hint}; the torchvision download failed too ({type(err).__name__}: {err})") from None
    raw = root / "FashionMNIST" / "raw"
    return [raw / s for s in stems]


def _digits(spec: DatasetSpec) -> Dataset:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = np.clip(np.round(bunch.images * (255.0 / 16.0)), 0, 255).astype(np.uint8)
    labels = bunch.target.astype(np.int64)
    splits = _split_pool(spec, np.arange(len(images)), None)
    classes = tuple(str(c) for c in bunch.target_names)
    return Dataset(spec.source, classes, np.arange(len(images), dtype=np.int64), labels, splits, images)


def _imagefolder(spec: DatasetSpec) -> Dataset:
    root = Path(spec.source.partition(":")[2]).expanduser()
    where = f"dataset.source {spec.source!r}"
    if not root.is_dir():
        raise FileNotFoundError(f"{where}: {root} is not a folder (expected one sub-folder per class)")
    classes = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if len(classes) < 2:
        raise ValueError(f"{where}: {root} has {len(classes)} class sub-folder(s) ({', '.join(classes) or 'none'}); "
                         "a classification study needs at least 2, one sub-folder of images per class")
    paths, labels = [], []
    for label, cls in enumerate(classes):
        files = [str(f) for f in sorted((root / cls).rglob("*")) if f.suffix.lower() in _IMAGE_SUFFIXES and f.is_file()]
        if not files:
            raise ValueError(f"{where}: the class folder {root / cls} holds no images ({', '.join(sorted(_IMAGE_SUFFIXES))}); "
                             "add images or remove the folder")
        paths += files
        labels += [label] * len(files)
    n = len(paths)
    splits = _split_pool(spec, np.arange(n), None)
    images = _decoded(paths, spec.image_size) if spec.image_size else None
    return Dataset(spec.source, tuple(classes), np.arange(n, dtype=np.int64), np.asarray(labels, np.int64), splits,
                   images, tuple(paths))


def load_folder_like(dataset: Dataset, folder: str | os.PathLike, *, what: str) -> Dataset:
    """An image folder of ``dataset``'s classes (a sub-folder per class, named as a class or by its index; some
    classes may be missing) as a dataset whose ``eval`` split is every image, labelled as ``dataset`` labels them,
    and held as ``dataset`` holds its images: decoded in memory at its image shape and channels when it has images
    in memory (memoised), the files kept when it reads files. ``what`` names the setting in errors."""
    root = Path(folder).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"{what}: {root} is not a folder (expected one sub-folder per class, named as the "
                                f"classes of {dataset.name} or by their index)")
    index = {name: i for i, name in enumerate(dataset.classes)} | {str(i): i for i in range(dataset.num_classes)}
    folders = sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    unknown = [name for name in folders if name not in index]
    if unknown or not folders:
        raise ValueError(f"{what}: {root}: class folders {', '.join(unknown) or '(none)'} are not classes of "
                         f"{dataset.name}; name them as its classes ({', '.join(dataset.classes[:5])}, ...) or 0 to "
                         f"{dataset.num_classes - 1}")
    paths, labels = [], []
    for name in folders:
        files = [str(f) for f in sorted((root / name).rglob("*")) if f.suffix.lower() in _IMAGE_SUFFIXES and f.is_file()]
        paths += files
        labels += [index[name]] * len(files)
    if not paths:
        raise ValueError(f"{what}: {root} holds no images ({', '.join(sorted(_IMAGE_SUFFIXES))}) in its class folders")
    n = len(paths)
    images = None
    if dataset.images is not None:
        from PIL import Image, ImageOps

        h, w = int(dataset.images.shape[1]), int(dataset.images.shape[2])
        mode = "L" if dataset.images.ndim == 3 else "RGB"

        def decode() -> np.ndarray:
            return np.stack([np.asarray(ImageOps.fit(open_image(p, mode=mode), (w, h), Image.Resampling.BILINEAR))
                             for p in paths])

        images = memoised("images", f"{mode}|{h}x{w}|{files_key(paths)}", decode)
    ids = np.arange(n, dtype=np.int64)
    return Dataset(str(root), dataset.classes, ids, np.asarray(labels, np.int64), {"eval": ids}, images,
                   tuple(paths) if dataset.paths is not None else None)


def open_image(path: str | os.PathLike, *, mode: str = "RGB"):
    """One image file as a PIL image in ``mode``; a damaged or unreadable file is a ``ValueError`` naming it."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            return img.convert(mode)
    except (OSError, UnidentifiedImageError, SyntaxError) as err:  # PIL raises SyntaxError for some damaged headers
        raise ValueError(f"{path}: not a readable image ({err}); replace or remove the file") from None


def _decoded(paths: list[str], size: int) -> np.ndarray:
    """The images decoded to uint8 RGB [n, size, size, 3] (centre crop to a square, then resize), memoised under
    ``$ZOOSCOPE_CACHE`` by the files' paths, sizes and modification times."""
    from PIL import Image, ImageOps

    def decode() -> np.ndarray:
        from tqdm.auto import tqdm

        out = np.empty((len(paths), size, size, 3), np.uint8)
        for i, path in enumerate(tqdm(paths, desc=f"decode images at {size}px", unit="img", mininterval=1.0,
                                      disable=len(paths) < 2000)):
            out[i] = np.asarray(ImageOps.fit(open_image(path), (size, size), Image.Resampling.BILINEAR))
        return out

    return memoised("images", f"{size}|{files_key(paths)}", decode)


def _torchvision(spec: DatasetSpec) -> Dataset:
    import torchvision.datasets as tvd

    name = spec.source.partition(":")[2]
    cls = getattr(tvd, name, None)
    if cls is None:
        raise ValueError(f"dataset.source {spec.source!r}: torchvision.datasets has no {name!r}")
    root = spec.root or os.path.expanduser("~/.cache/zooscope/datasets")
    parts = [cls(root, train=flag, download=True) for flag in (True, False)]
    images = np.concatenate([np.asarray(p.data) for p in parts])
    if images.dtype != np.uint8:
        images = images.astype(np.uint8)
    labels = np.concatenate([np.asarray(p.targets) for p in parts]).astype(np.int64)
    n_train = len(parts[0].data)
    splits = _split_pool(spec, np.arange(n_train), np.arange(n_train, len(images)))
    return Dataset(spec.source, tuple(parts[0].classes), np.arange(len(images), dtype=np.int64), labels, splits, images)


_LOADERS = {"fashion-mnist": _fashion_mnist, "digits": _digits, "imagefolder": _imagefolder, "torchvision": _torchvision}


def dataset_root(spec: DatasetSpec) -> Path | None:
    """The local folder the dataset is read from (what the study's stages must depend on), or None when it comes
    with a package (digits) or has no folder yet (a torchvision set not downloaded)."""
    kind, _, target = spec.source.partition(":")
    if kind == "fashion-mnist":
        return Path(spec.root) if spec.root else Path(os.environ.get("ZOOSCOPE_FASHION_MNIST", DEBIAN_FASHION_MNIST))
    if kind == "imagefolder":
        return Path(target).expanduser()
    if kind == "torchvision" and spec.root:
        return Path(spec.root)
    return None


def load_dataset(spec: DatasetSpec) -> Dataset:
    """Load the dataset a study declares, with its deterministic splits."""
    kind = spec.source.partition(":")[0]
    try:
        loader = _LOADERS[kind]
    except KeyError:
        raise ValueError(f"unknown dataset source {spec.source!r}; allowed: {', '.join(_LOADERS)}") from None
    return loader(spec)
