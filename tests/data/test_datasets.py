"""zooscope.data.datasets: split invariants on digits, hand-written IDX files for Fashion-MNIST, PNG image folders."""

import gzip
import itertools
import re
import socket
import struct
import sys
import types

import numpy as np
from PIL import Image
import pytest

from tests.datafiles import write_fashion_mnist
from zooscope.config import DatasetSpec
from zooscope.data.datasets import FASHION_MNIST_CLASSES, SPLITS, load_dataset, load_folder_like

N_DIGITS = 1797
ALL_SPLITS = (*SPLITS, "disjoint")


@pytest.fixture(autouse=True)
def _no_network(monkeypatch):
    """Any attempt to open a connection fails the test instead of reaching the network."""

    def refuse(*args, **kwargs):
        raise AssertionError("test tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def _assert_pairwise_disjoint(ds):
    for a, b in itertools.combinations(ALL_SPLITS, 2):
        assert not set(ds.split(a).tolist()) & set(ds.split(b).tolist()), (a, b)


# --------------------------------------------------------------------------- digits


def test_digits_images_labels_and_ids_match_sklearn():
    from sklearn.datasets import load_digits

    ds = load_dataset(DatasetSpec(source="digits"))
    bunch = load_digits()
    assert ds.classes == tuple(str(c) for c in range(10))
    np.testing.assert_array_equal(ds.sample_ids, np.arange(N_DIGITS))
    np.testing.assert_array_equal(ds.labels, bunch.target)
    assert ds.images.dtype == np.uint8 and ds.images.shape == (N_DIGITS, 8, 8)
    # sklearn's pixels are 0..16; scaled to 0..255 (16 -> 255, 0 -> 0, monotone)
    k = 123
    for value in range(17):
        mask = bunch.images[k] == value
        assert (ds.images[k][mask] == round(value * 255 / 16)).all()


def test_digits_splits_deterministic_disjoint_and_sized_int():
    spec = DatasetSpec(source="digits", seed=3, train_size=500, calibration_size=200, eval_size=300)
    a, b = load_dataset(spec), load_dataset(spec)
    for name in ALL_SPLITS:
        np.testing.assert_array_equal(a.split(name), b.split(name))
        assert a.split(name).dtype == np.int64
        assert (np.diff(a.split(name)) > 0).all()  # sorted, no repeats
        assert a.split(name).min() >= 0 and a.split(name).max() < N_DIGITS
    assert [len(a.split(s)) for s in ALL_SPLITS] == [500, 200, 300, 500]
    _assert_pairwise_disjoint(a)
    np.testing.assert_array_equal(a.sample_ids, b.sample_ids)


def test_digits_splits_sized_by_fractions():
    ds = load_dataset(DatasetSpec(source="digits", seed=0, calibration_size=0.1, eval_size=0.25))
    n_eval = round(0.25 * N_DIGITS)  # 449.25 -> 449
    n_cal = round(0.1 * N_DIGITS)  # 179.7 -> 180
    assert (n_eval, n_cal) == (449, 180)
    assert len(ds.split("eval")) == n_eval
    assert len(ds.split("calibration")) == n_cal
    # train defaults to every remaining sample, which leaves nothing for the disjoint subset
    assert len(ds.split("train")) == N_DIGITS - n_eval - n_cal
    assert len(ds.split("disjoint")) == 0
    _assert_pairwise_disjoint(ds)
    union = np.concatenate([ds.split(s) for s in SPLITS])
    np.testing.assert_array_equal(np.sort(union), np.arange(N_DIGITS))


def test_digits_train_fraction_and_short_disjoint():
    ds = load_dataset(DatasetSpec(source="digits", train_size=0.5, calibration_size=100, eval_size=200))
    n_train = round(0.5 * N_DIGITS)  # 898.5 -> 898 (banker's rounding)
    assert len(ds.split("train")) == n_train
    # the disjoint subset gets what is left after eval, calibration and train
    assert len(ds.split("disjoint")) == min(n_train, N_DIGITS - 200 - 100 - n_train)
    _assert_pairwise_disjoint(ds)


def test_digits_another_seed_changes_splits():
    a = load_dataset(DatasetSpec(source="digits", seed=0, train_size=400, calibration_size=100, eval_size=300))
    b = load_dataset(DatasetSpec(source="digits", seed=1, train_size=400, calibration_size=100, eval_size=300))
    for name in ALL_SPLITS:
        assert len(a.split(name)) == len(b.split(name))
        assert not np.array_equal(a.split(name), b.split(name)), name
    np.testing.assert_array_equal(a.sample_ids, b.sample_ids)  # ids do not depend on the split seed
    np.testing.assert_array_equal(a.labels, b.labels)


def test_digits_train_size_leaves_eval_and_calibration_alone():
    small = load_dataset(DatasetSpec(source="digits", train_size=200, calibration_size=150, eval_size=300))
    large = load_dataset(DatasetSpec(source="digits", train_size=600, calibration_size=150, eval_size=300))
    np.testing.assert_array_equal(small.split("eval"), large.split("eval"))
    np.testing.assert_array_equal(small.split("calibration"), large.split("calibration"))


def test_digits_too_many_samples_is_an_error():
    with pytest.raises(ValueError, match="train_size"):
        load_dataset(DatasetSpec(source="digits", train_size=1500, calibration_size=200, eval_size=300))
    with pytest.raises(ValueError, match="eval_size"):
        load_dataset(DatasetSpec(source="digits", eval_size=5000))


def test_unknown_split_lists_splits():
    ds = load_dataset(DatasetSpec(source="digits"))
    with pytest.raises(KeyError, match="calibration"):
        ds.split("test")


# --------------------------------------------------------------------------- fashion-mnist from IDX files


def test_fashion_mnist_from_root_folder(tmp_path):
    images, labels = write_fashion_mnist(tmp_path / "fm")
    ds = load_dataset(DatasetSpec(source="fashion-mnist", root=str(tmp_path / "fm"), seed=0,
                                  train_size=8, calibration_size=4))
    assert ds.classes == FASHION_MNIST_CLASSES and ds.num_classes == 10
    np.testing.assert_array_equal(ds.sample_ids, np.arange(26))
    np.testing.assert_array_equal(ds.images, images)
    np.testing.assert_array_equal(ds.labels, labels)
    # eval is exactly the test part: test image j has id n_train + j
    np.testing.assert_array_equal(ds.split("eval"), np.arange(20, 26))
    for j in range(6):
        np.testing.assert_array_equal(ds.images[20 + j], images[20 + j])
    assert len(ds.split("train")) == 8 and len(ds.split("calibration")) == 4 and len(ds.split("disjoint")) == 8
    for name in ("train", "calibration", "disjoint"):
        assert ds.split(name).max() < 20
    _assert_pairwise_disjoint(ds)
    assert ds.pil(21).mode == "L"
    np.testing.assert_array_equal(np.asarray(ds.pil(21)), images[21])


def test_fashion_mnist_eval_subset_of_test(tmp_path):
    write_fashion_mnist(tmp_path / "fm")
    spec = DatasetSpec(source="fashion-mnist", root=str(tmp_path / "fm"), train_size=5, calibration_size=5,
                       eval_size=3)
    a, b = load_dataset(spec), load_dataset(spec)
    ev = a.split("eval")
    assert len(ev) == 3 and ev.min() >= 20 and ev.max() < 26
    np.testing.assert_array_equal(ev, b.split("eval"))


def test_fashion_mnist_uncompressed_torchvision_layout_and_env(tmp_path, monkeypatch):
    images, _ = write_fashion_mnist(tmp_path / "dl" / "FashionMNIST" / "raw", compress=False)
    monkeypatch.setenv("ZOOSCOPE_FASHION_MNIST", str(tmp_path / "dl"))
    ds = load_dataset(DatasetSpec(source="fashion-mnist", train_size=5, calibration_size=2))
    np.testing.assert_array_equal(ds.images, images)


def test_fashion_mnist_missing_folder_explains_the_fix(tmp_path, monkeypatch):
    calls = []

    class OfflineFashionMNIST:
        def __init__(self, root, *args, **kwargs):
            calls.append(root)
            raise RuntimeError("offline (test double)")

    # stand-ins for torchvision (importing the real one takes seconds): its download always fails here
    fake_datasets = types.ModuleType("torchvision.datasets")
    fake_datasets.FashionMNIST = OfflineFashionMNIST
    fake_torchvision = types.ModuleType("torchvision")
    fake_torchvision.datasets = fake_datasets
    monkeypatch.setitem(sys.modules, "torchvision", fake_torchvision)
    monkeypatch.setitem(sys.modules, "torchvision.datasets", fake_datasets)
    missing = tmp_path / "no-such-folder"
    with pytest.raises(FileNotFoundError) as err:
        load_dataset(DatasetSpec(source="fashion-mnist", root=str(missing)))
    msg = str(err.value)
    assert "dataset-fashion-mnist" in msg and "dataset.root" in msg and f"{missing} does not exist" in msg
    assert calls == [] and not missing.exists()  # a mistyped root is never created (nor downloaded into)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(FileNotFoundError, match="offline \\(test double\\)"):
        load_dataset(DatasetSpec(source="fashion-mnist", root=str(empty)))
    assert calls == [str(empty)] and list(empty.iterdir()) == []  # the failed download leaves nothing behind


# --------------------------------------------------------------------------- image folders


def test_imagefolder_classes_labels_and_rgb(tmp_path):
    from PIL import Image

    root = tmp_path / "imgs"
    counts = {"zebra": 2, "ant": 3, "bee": 4}  # created out of order
    written = {}
    rng = np.random.default_rng(0)
    for cls, count in counts.items():
        (root / cls).mkdir(parents=True)
        for i in range(count):
            if i % 2:
                arr = rng.integers(0, 256, (5, 6, 3), dtype=np.uint8)
                Image.fromarray(arr, "RGB").save(root / cls / f"img{i}.png")
            else:
                gray = rng.integers(0, 256, (5, 6), dtype=np.uint8)
                Image.fromarray(gray, "L").save(root / cls / f"img{i}.png")
                arr = np.repeat(gray[:, :, None], 3, axis=2)
            written[(cls, f"img{i}.png")] = arr
    (root / "ant" / "notes.txt").write_text("not an image")
    (root / ".hidden").mkdir()
    Image.fromarray(np.zeros((2, 2), np.uint8)).save(root / ".hidden" / "x.png")

    ds = load_dataset(DatasetSpec(source=f"imagefolder:{root}", calibration_size=1, eval_size=2))
    assert ds.classes == ("ant", "bee", "zebra")
    expected = [(c, f"img{i}.png") for c in ("ant", "bee", "zebra") for i in range(counts[c])]
    assert len(ds.paths) == len(expected) == 9
    assert ds.images is None
    np.testing.assert_array_equal(ds.sample_ids, np.arange(9))
    for pos, (cls, name) in enumerate(expected):
        assert ds.paths[pos].endswith(f"{cls}/{name}")
        assert ds.classes[ds.labels[pos]] == cls
        img = ds.pil(pos)
        assert img.mode == "RGB" and img.size == (6, 5)
        np.testing.assert_array_equal(np.asarray(img), written[(cls, name)])
    assert len(ds.split("eval")) == 2 and len(ds.split("calibration")) == 1 and len(ds.split("train")) == 6
    _assert_pairwise_disjoint(ds)


def test_imagefolder_missing_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a folder"):
        load_dataset(DatasetSpec(source=f"imagefolder:{tmp_path / 'nothing'}"))


def test_imagefolder_decoded_at_image_size_crops_the_centre_and_keeps_the_files(tmp_path, monkeypatch):
    """With dataset.image_size the folder is decoded once into RGB squares: a one-colour image stays that colour, an
    8x4 image whose left half is black and right half white keeps its centre 4x4 (2 black, 2 white columns); the
    files stay what pretrained models read, and a second load comes from the cache."""
    from PIL import Image

    monkeypatch.setenv("ZOOSCOPE_CACHE", str(tmp_path / "cache"))
    root = tmp_path / "imgs"
    (root / "flat").mkdir(parents=True)
    (root / "split").mkdir()
    Image.new("RGB", (7, 3), (10, 200, 30)).save(root / "flat" / "a.png")
    Image.new("L", (5, 5), 99).save(root / "flat" / "b.png")
    halves = np.zeros((8, 16), np.uint8)
    halves[:, 8:] = 255
    Image.fromarray(halves, "L").save(root / "split" / "c.png")
    spec = DatasetSpec(source=f"imagefolder:{root}", calibration_size=1, eval_size=1, image_size=8)
    ds = load_dataset(spec)
    assert ds.images.shape == (3, 8, 8, 3) and ds.images.dtype == np.uint8 and ds.image_shape == (3, 8, 8)
    assert (ds.images[0] == [10, 200, 30]).all() and (ds.images[1] == 99).all()
    np.testing.assert_array_equal(ds.images[2][:, :, 0], np.tile([0] * 4 + [255] * 4, (8, 1)))
    assert ds.pil(2).size == (16, 8)  # the file itself, for models with their own preprocessing
    assert len(list((tmp_path / "cache" / "images").glob("*.npy"))) == 1  # one memo (and its build lock)
    np.testing.assert_array_equal(load_dataset(spec).images, ds.images)


@pytest.mark.parametrize(("make", "expected"), [
    (lambda root: (root / "only").mkdir(parents=True), "has 1 class sub-folder(s) (only)"),
    (lambda root: root.mkdir(), "has 0 class sub-folder(s) (none)"),
    (lambda root: ((root / "a").mkdir(parents=True), (root / "b").mkdir()), "holds no images"),
])
def test_imagefolder_without_two_classes_of_images_is_refused(tmp_path, make, expected):
    root = tmp_path / "imgs"
    make(root)
    if (root / "a").exists():
        (root / "a" / "x.png").write_bytes(_png())
    with pytest.raises(ValueError, match=re.escape(expected)):
        load_dataset(DatasetSpec(source=f"imagefolder:{root}"))


def _png() -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.new("RGB", (3, 3)).save(buf, format="PNG")
    return buf.getvalue()


def test_a_folder_of_other_classes_is_refused_in_one_line(tmp_path, digits):
    (tmp_path / "cat").mkdir()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "cat" / "a.png")
    with pytest.raises(ValueError, match=r"shift.folders.x: .*: class folders cat are not classes of digits"):
        load_folder_like(digits, tmp_path, what="shift.folders.x")
    with pytest.raises(FileNotFoundError, match="is not a folder"):
        load_folder_like(digits, tmp_path / "missing", what="shift.folders.x")


def test_a_folder_is_decoded_as_the_dataset_holds_its_images(tmp_path, digits):
    for label, pos in ((3, 0), (7, 1)):
        (tmp_path / str(label)).mkdir()
        Image.fromarray(np.full((16, 16), 10 * label, np.uint8)).save(tmp_path / str(label) / f"{pos}.png")
    got = load_folder_like(digits, tmp_path, what="shift.folders.x")
    assert got.labels.tolist() == [3, 7] and got.images.shape == (2, 8, 8) and got.images.dtype == np.uint8
    assert got.images[0].tolist() == np.full((8, 8), 30).tolist() and got.paths is None
