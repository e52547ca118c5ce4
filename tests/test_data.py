"""load_mnist and friends: normalization, search order, verification, downloads, real data.

Synthetic datasets go through the real code path: a DatasetSpec with the synthetic files'
hashes is registered in ``data.DATASETS`` (monkeypatched) and loaded by name.
"""

from __future__ import annotations

import gzip
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from _fakes import dataset_spec, file_bytes, serve, tiny_arrays, write_dataset
from lenet_mnist.data import (
    DATASETS,
    MnistData,
    cache_dir,
    class_names,
    data_locations,
    download_mnist,
    load_mnist,
)
from lenet_mnist.data.download import mirrors_from_env
from lenet_mnist.data.idx import encode_idx, read_file_bytes, sha256_hex
from lenet_mnist.errors import ChecksumError, DataNotFoundError, DownloadError, IdxFormatError

# The published hashes of MNIST's decompressed files (shared/data/README.md), written out
# here independently of the library's table.
MNIST_SHA256 = {
    "train-images-idx3-ubyte": "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    "train-labels-idx1-ubyte": "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    "t10k-images-idx3-ubyte": "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    "t10k-labels-idx1-ubyte": "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
}
TEST_LABEL_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]
TRAIN_LABEL_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture
def tiny() -> dict[str, np.ndarray]:
    return tiny_arrays(n_train=12, n_test=6)


@pytest.fixture
def tiny_spec(tiny: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch):
    spec = dataset_spec(tiny)
    monkeypatch.setitem(DATASETS, spec.name, spec)
    monkeypatch.delenv(spec.env_var, raising=False)
    return spec


# --- normalization invariants (property-based, through load_mnist) ---------------------


@st.composite
def raw_datasets(draw: st.DrawFn) -> dict[str, np.ndarray]:
    side = draw(st.sampled_from([28, 5]))
    n_train, n_test = draw(st.integers(1, 3)), draw(st.integers(1, 3))

    def images(n: int) -> np.ndarray:
        return draw(hnp.arrays(np.uint8, (n, side, side)))

    def labels(n: int) -> np.ndarray:
        return draw(hnp.arrays(np.uint8, (n,), elements=st.integers(0, 9)))

    return {
        "train_images": images(n_train),
        "train_labels": labels(n_train),
        "test_images": images(n_test),
        "test_labels": labels(n_test),
    }


@given(raw_datasets(), st.booleans())
@settings(max_examples=40, deadline=None)
def test_normalization_invariants(raw: dict[str, np.ndarray], compress: bool) -> None:
    spec = dataset_spec(raw, name="hypo")
    with tempfile.TemporaryDirectory() as tmp, pytest.MonkeyPatch.context() as mp:
        mp.setitem(DATASETS, spec.name, spec)
        directory = write_dataset(Path(tmp), raw, compress=compress)
        results = {
            (normalize, channels): load_mnist(
                directory, normalize=normalize, channels=channels, download=False, dataset="hypo"
            )
            for normalize in (True, False)
            for channels in (True, False)
        }
    for (normalize, channels), loaded in results.items():
        assert isinstance(loaded, MnistData)
        for split in ("train", "test"):
            source = raw[f"{split}_images"]
            images = getattr(loaded, f"{split}_images")
            labels = getattr(loaded, f"{split}_labels")
            np.testing.assert_array_equal(labels, raw[f"{split}_labels"])
            assert labels.dtype == np.uint8
            expected_shape = (*source.shape, 1) if channels else source.shape
            assert images.shape == expected_shape
            flat = images[..., 0] if channels else images
            if normalize:
                assert images.dtype == np.float32
                assert images.min() >= 0.0
                assert images.max() <= 1.0
                np.testing.assert_array_equal(flat, source.astype(np.float32) / np.float32(255))
                # Dividing by 255 is invertible: the bytes can be recovered exactly.
                np.testing.assert_array_equal(np.round(flat * 255).astype(np.uint8), source)
            else:
                assert images.dtype == np.uint8
                assert flat.tobytes() == source.tobytes()
                assert images.tobytes() == encode_idx(source)[4 + 4 * source.ndim :]


def test_normalize_extremes(tiny_spec, tiny: dict[str, np.ndarray], tmp_path: Path) -> None:
    tiny["train_images"][0] = 0
    tiny["train_images"][1] = 255
    spec = dataset_spec(tiny)
    DATASETS[spec.name] = spec  # restored by tiny_spec's monkeypatch
    loaded = load_mnist(write_dataset(tmp_path, tiny), download=False, dataset="tiny")
    assert loaded.train_images[0].max() == 0.0
    assert loaded.train_images[1].min() == 1.0


# --- argument checks -------------------------------------------------------------------


@pytest.mark.parametrize("flag", ["normalize", "channels", "download"])
def test_flags_must_be_bool(flag: str) -> None:
    with pytest.raises(TypeError, match=rf"{flag} must be a bool, got int"):
        load_mnist(**{flag: 1})  # type: ignore[arg-type]


def test_unknown_dataset() -> None:
    with pytest.raises(
        ValueError, match=r"unknown dataset; choose one of \['fashion', 'mnist'\], got 'kmnist'"
    ):
        load_mnist(dataset="kmnist")
    with pytest.raises(TypeError, match="dataset must be a str, got int"):
        cache_dir(3)  # type: ignore[arg-type]


def test_class_names() -> None:
    assert class_names() == tuple("0123456789")
    assert class_names("fashion")[0] == "T-shirt/top"
    assert len(class_names("fashion")) == 10


def test_mnist_data_field_order() -> None:
    assert MnistData._fields == ("train_images", "train_labels", "test_images", "test_labels")


# --- where the data comes from ---------------------------------------------------------


def test_cache_dir_sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LENET_MNIST_CACHE", str(tmp_path / "c"))
    assert cache_dir() == tmp_path / "c" / "mnist"
    assert cache_dir("fashion") == tmp_path / "c" / "fashion"
    monkeypatch.delenv("LENET_MNIST_CACHE")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "x"))
    assert cache_dir() == tmp_path / "x" / "lenet-mnist" / "mnist"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert cache_dir() == tmp_path / "home" / ".cache" / "lenet-mnist" / "mnist"
    monkeypatch.setenv("LENET_MNIST_CACHE", "~/mine")
    assert cache_dir() == tmp_path / "home" / "mine" / "mnist"


def test_data_locations_order(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LENET_MNIST_DATA", str(tmp_path / "env"))
    assert data_locations(tmp_path / "arg") == [
        ("data_dir", tmp_path / "arg"),
        ("LENET_MNIST_DATA", tmp_path / "env"),
        ("cache", cache_dir()),
    ]
    monkeypatch.delenv("LENET_MNIST_DATA")
    assert data_locations() == [("cache", cache_dir())]
    monkeypatch.setenv("LENET_MNIST_FASHION_DATA", str(tmp_path / "f"))
    assert data_locations(dataset="fashion") == [
        ("LENET_MNIST_FASHION_DATA", tmp_path / "f"),
        ("system", Path("/usr/share/datasets/fashion-mnist")),
        ("cache", cache_dir("fashion")),
    ]


def _corrupt(directory: Path, name: str) -> Path:
    """Replace one file of a dataset directory by valid IDX with the wrong content."""
    path = directory / name
    path.write_bytes(gzip.compress(encode_idx(np.zeros(3, np.uint8))))
    return path


def test_search_order(
    tiny_spec, tiny: dict[str, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # data_dir and the cache hold good copies, the env directory a corrupt one: reading it
    # fails loudly (a supplied file is never skipped), which shows when it is consulted.
    arg_dir = write_dataset(tmp_path / "arg", tiny)
    env_dir = write_dataset(tmp_path / "env", tiny)
    bad = _corrupt(env_dir, "t10k-labels-idx1-ubyte.gz")
    write_dataset(cache_dir("tiny"), tiny)
    monkeypatch.setenv(tiny_spec.env_var, str(env_dir))

    # 1. data_dir wins over the environment variable.
    loaded = load_mnist(arg_dir, download=False, dataset="tiny")
    np.testing.assert_array_equal(loaded.test_labels, tiny["test_labels"])
    # 2. without data_dir, the environment variable wins over the cache.
    with pytest.raises(ChecksumError, match=rf"^{bad}: content hash mismatch"):
        load_mnist(download=False, dataset="tiny")
    # 3. a directory missing a file is passed over.
    bad.unlink()
    loaded = load_mnist(download=False, dataset="tiny")
    np.testing.assert_array_equal(loaded.test_labels, tiny["test_labels"])
    # 4. An explicit data_dir is the only place looked: one that does not exist, or
    # lacks a file, is an error naming it, even with good data elsewhere (the cache).
    monkeypatch.delenv(tiny_spec.env_var)
    with pytest.raises(
        DataNotFoundError, match=r"^the tiny data directory does not exist, got '.*nowhere'$"
    ):
        load_mnist(tmp_path / "nowhere", download=True, dataset="tiny")
    (arg_dir / "t10k-images-idx3-ubyte.gz").unlink()
    with pytest.raises(
        DataNotFoundError,
        match=r"^the tiny data directory lacks t10k-images-idx3-ubyte\[\.gz\], got '.*arg'$",
    ):
        load_mnist(arg_dir, download=True, dataset="tiny")
    file = tmp_path / "a-file"
    file.write_text("x")
    with pytest.raises(DataNotFoundError, match=r"^the tiny data directory is not a directory"):
        load_mnist(file, dataset="tiny")


def test_plain_and_mixed_files(tiny_spec, tiny: dict[str, np.ndarray], tmp_path: Path) -> None:
    directory = write_dataset(tmp_path, tiny, compress=False)
    (directory / "train-images-idx3-ubyte").unlink()
    (directory / "train-images-idx3-ubyte.gz").write_bytes(
        gzip.compress(encode_idx(tiny["train_images"]))
    )
    loaded = load_mnist(directory, normalize=False, download=False, dataset="tiny")
    np.testing.assert_array_equal(loaded.train_images[..., 0], tiny["train_images"])


def test_gz_is_preferred_over_plain(tiny_spec, tiny: dict[str, np.ndarray], tmp_path: Path) -> None:
    directory = write_dataset(tmp_path, tiny)
    (directory / "t10k-labels-idx1-ubyte").write_bytes(b"not read")
    loaded = load_mnist(directory, download=False, dataset="tiny")
    np.testing.assert_array_equal(loaded.test_labels, tiny["test_labels"])


def test_not_found_lists_every_place(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    env_dir = tmp_path / "env"
    env_dir.mkdir()
    monkeypatch.setenv("LENET_MNIST_DATA", str(env_dir))
    with pytest.raises(DataNotFoundError) as info:
        load_mnist(download=False)
    message = str(info.value)
    assert "mnist data not found, and downloading is off" in message
    for place in (f"LENET_MNIST_DATA: {env_dir}", f"cache: {cache_dir()}"):
        assert place in message
    assert message.index("LENET_MNIST_DATA:") < message.index("cache:")
    for name in MNIST_SHA256:
        assert f"{name}[.gz]" in message
    assert isinstance(info.value, FileNotFoundError)


def test_not_found_lists_system_dirs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = dataset_spec(tiny_arrays(2, 2))
    spec = type(spec)(**{**spec.__dict__, "system_dirs": (tmp_path / "sys",)})
    monkeypatch.setitem(DATASETS, spec.name, spec)
    with pytest.raises(DataNotFoundError, match=rf"system: {tmp_path / 'sys'}; cache: "):
        load_mnist(download=False, dataset="tiny")


def test_system_dir_is_used(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tiny = tiny_arrays(4, 2)
    spec = dataset_spec(tiny)
    spec = type(spec)(**{**spec.__dict__, "system_dirs": (write_dataset(tmp_path / "sys", tiny),)})
    monkeypatch.setitem(DATASETS, spec.name, spec)
    assert (
        load_mnist(download=False, dataset="tiny").test_labels.tolist()
        == tiny["test_labels"].tolist()
    )


def test_supplied_corrupt_file_is_an_error_and_kept(
    tiny_spec, tiny: dict[str, np.ndarray], tmp_path: Path
) -> None:
    directory = write_dataset(tmp_path, tiny)
    bad = _corrupt(directory, "train-labels-idx1-ubyte.gz")
    expected = tiny_spec.files["train_labels"].sha256
    with pytest.raises(
        ChecksumError, match=rf"{bad}: content hash mismatch: expected sha256 {expected}"
    ):
        load_mnist(directory, dataset="tiny")
    assert bad.exists()


def test_supplied_truncated_gzip(tiny_spec, tiny: dict[str, np.ndarray], tmp_path: Path) -> None:
    directory = write_dataset(tmp_path, tiny)
    path = directory / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(IdxFormatError, match=rf"{path}: corrupt or truncated gzip data"):
        load_mnist(directory, download=False, dataset="tiny")


def test_shape_guard_on_a_mistaken_spec(
    tiny: dict[str, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    spec = dataset_spec(tiny)
    files = dict(spec.files)
    files["test_labels"] = type(files["test_labels"])(
        files["test_labels"].name, files["test_labels"].sha256, (99,)
    )
    spec = type(spec)(**{**spec.__dict__, "files": files})
    monkeypatch.setitem(DATASETS, spec.name, spec)
    with pytest.raises(
        IdxFormatError, match=r"expected uint8 data of shape \(99,\), got uint8 of shape \(6,\)"
    ):
        load_mnist(write_dataset(tmp_path, tiny), download=False, dataset="tiny")


def test_corrupt_cache_file_is_deleted(tiny_spec, tiny: dict[str, np.ndarray]) -> None:
    cache = write_dataset(cache_dir("tiny"), tiny)
    bad = _corrupt(cache, "t10k-images-idx3-ubyte.gz")
    with pytest.raises(DataNotFoundError, match="downloading is off"):
        load_mnist(download=False, dataset="tiny")
    assert not bad.exists()
    assert (cache / "train-images-idx3-ubyte.gz").exists()


# --- downloads from a loopback server --------------------------------------------------


def _cache_listing(spec_name: str) -> list[str]:
    directory = cache_dir(spec_name)
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


def test_download_on_first_use(
    tiny_spec, tiny: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    good = file_bytes(tiny)
    corrupt = {name: gzip.compress(b"\x00\x00\x08\x01\x00\x00\x00\x01\x07") for name in good}
    routes = {f"good/{n}": b for n, b in good.items()} | {f"bad/{n}": b for n, b in corrupt.items()}
    with serve(routes) as server:
        monkeypatch.setenv(
            "LENET_MNIST_MIRRORS",
            f"{server.url('missing')} {server.url('bad')} {server.url('good')}",
        )
        loaded = load_mnist(dataset="tiny")
    np.testing.assert_array_equal(loaded.train_labels, tiny["train_labels"])
    assert _cache_listing("tiny") == sorted(good)
    # Each file: 404, then wrong content, then the good copy.
    assert len(server.requests) == 12
    # Now cached: no server needed.
    assert (
        load_mnist(download=False, dataset="tiny").test_labels.tolist()
        == tiny["test_labels"].tolist()
    )


def test_corrupt_download_leaves_nothing(tiny_spec, tiny: dict[str, np.ndarray]) -> None:
    wrong = {f"m/{name}": body[:-30] for name, body in file_bytes(tiny).items()}
    wrong["m/train-images-idx3-ubyte.gz"] = b"<html>not found</html>"
    with serve(wrong) as server:
        mirror = server.url("m")
        with pytest.raises(DownloadError) as info:
            download_mnist(dataset="tiny", mirrors=[mirror, server.url("other")])
    message = str(info.value)
    assert "could not download a verified copy of train-images-idx3-ubyte.gz" in message
    assert f"{mirror}train-images-idx3-ubyte.gz: " in message
    assert f"{server.url('other')}train-images-idx3-ubyte.gz: HTTP 404" in message
    assert isinstance(info.value, OSError)
    assert _cache_listing("tiny") == []


def test_corrupt_cache_is_downloaded_again(
    tiny_spec, tiny: dict[str, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = write_dataset(cache_dir("tiny"), tiny)
    _corrupt(cache, "train-labels-idx1-ubyte.gz")
    routes = {f"m/{n}": b for n, b in file_bytes(tiny).items()}
    with serve(routes) as server:
        monkeypatch.setenv("LENET_MNIST_MIRRORS", server.url("m"))
        loaded = load_mnist(dataset="tiny")
    assert server.requests == ["m/train-labels-idx1-ubyte.gz"]
    np.testing.assert_array_equal(loaded.train_labels, tiny["train_labels"])


def test_download_mnist_keeps_valid_files_and_cleans_stale_partials(
    tiny_spec, tiny: dict[str, np.ndarray], tmp_path: Path
) -> None:
    target = write_dataset(tmp_path / "d", tiny, compress=False)
    (target / "t10k-images-idx3-ubyte").write_bytes(b"garbage")
    stale = target / ".lenet-mnist-x-old.part"
    fresh = target / ".lenet-mnist-x-new.part"
    stale.write_bytes(b"")
    fresh.write_bytes(b"")
    old = time.time() - 2 * 3600
    os.utime(stale, (old, old))
    routes = {f"m/{n}": b for n, b in file_bytes(tiny).items()}
    with serve(routes) as server:
        assert download_mnist(target, dataset="tiny", mirrors=(server.url("m"),)) == target
    assert server.requests == ["m/t10k-images-idx3-ubyte.gz"]
    assert not (target / "t10k-images-idx3-ubyte").exists()
    assert (target / "t10k-images-idx3-ubyte.gz").exists()
    assert not stale.exists()
    assert fresh.exists()  # may belong to a download still running


def test_file_url_mirror(tiny_spec, tiny: dict[str, np.ndarray], tmp_path: Path) -> None:
    mirror = write_dataset(tmp_path / "mirror", tiny)
    (mirror / "t10k-images-idx3-ubyte.gz").unlink()  # the first mirror lacks one file
    complete = write_dataset(tmp_path / "complete", tiny)
    target = download_mnist(
        tmp_path / "out", dataset="tiny", mirrors=(mirror.as_uri() + "/", complete.as_uri() + "/")
    )
    assert sorted(p.name for p in target.iterdir()) == sorted(file_bytes(tiny))
    loaded = load_mnist(target, normalize=False, download=False, dataset="tiny")
    np.testing.assert_array_equal(loaded.test_images[..., 0], tiny["test_images"])


def test_download_mnist_arguments(tiny_spec) -> None:
    with pytest.raises(ValueError, match="timeout must be positive, got 0"):
        download_mnist(dataset="tiny", timeout=0)
    with pytest.raises(DownloadError, match="no mirrors configured"):
        download_mnist(dataset="tiny", mirrors=())
    with pytest.raises(
        DownloadError, match=r"ftp://x/train-images-idx3-ubyte.gz: unsupported URL scheme"
    ):
        download_mnist(dataset="tiny", mirrors=("ftp://x/",))
    assert _cache_listing("tiny") == []


def test_mirrors_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = DATASETS["mnist"]
    monkeypatch.setenv("LENET_MNIST_MIRRORS", " http://a/x  http://b/ ")
    assert mirrors_from_env(spec) == ("http://a/x/", "http://b/")
    monkeypatch.delenv("LENET_MNIST_MIRRORS")
    assert mirrors_from_env(spec) == spec.mirrors


# --- the real MNIST files (LENET_MNIST_DATA) -------------------------------------------


def test_library_hashes_match_the_published_ones() -> None:
    assert {f.name: f.sha256 for f in DATASETS["mnist"].files.values()} == MNIST_SHA256


@pytest.mark.slow
def test_real_file_hashes(real_data_dir: Path) -> None:
    for name, digest in MNIST_SHA256.items():
        assert sha256_hex(read_file_bytes(real_data_dir / f"{name}.gz")) == digest


@pytest.mark.slow
def test_real_data_shapes_and_labels(real_data: MnistData) -> None:
    train_images, train_labels, test_images, test_labels = real_data
    assert train_images.shape == (60000, 28, 28, 1)
    assert test_images.shape == (10000, 28, 28, 1)
    assert train_images.dtype == test_images.dtype == np.float32
    assert train_labels.shape == (60000,)
    assert test_labels.shape == (10000,)
    assert train_labels.dtype == test_labels.dtype == np.uint8
    assert np.bincount(test_labels, minlength=10).tolist() == TEST_LABEL_COUNTS
    assert np.bincount(train_labels, minlength=10).tolist() == TRAIN_LABEL_COUNTS
    assert float(test_images.min()) == 0.0
    assert float(test_images.max()) == 1.0


@pytest.mark.slow
def test_real_data_raw_bytes(real_data_dir: Path) -> None:
    raw = load_mnist(real_data_dir, normalize=False, channels=False, download=False)
    assert raw.test_images.shape == (10000, 28, 28)
    assert raw.test_images.dtype == np.uint8
    content = read_file_bytes(real_data_dir / "t10k-images-idx3-ubyte.gz")
    assert raw.test_images.tobytes() == content[16:]


@pytest.mark.slow
def test_real_download_from_loopback(real_data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The real .gz files served over HTTP: the first mirror serves wrong bytes (a
    # re-compressed truncated copy), the second the right files.
    routes: dict[str, bytes] = {}
    for name in MNIST_SHA256:
        body = (real_data_dir / f"{name}.gz").read_bytes()
        routes[f"good/{name}.gz"] = body
        routes[f"bad/{name}.gz"] = gzip.compress(
            read_file_bytes(real_data_dir / f"{name}.gz")[:-1], compresslevel=1
        )
    monkeypatch.delenv("LENET_MNIST_DATA", raising=False)
    with serve(routes) as server:
        with pytest.raises(DownloadError, match="content hash mismatch"):
            download_mnist(mirrors=(server.url("bad"),))
        assert _cache_listing("mnist") == []
        monkeypatch.setenv("LENET_MNIST_MIRRORS", f"{server.url('bad')} {server.url('good')}")
        loaded = load_mnist(normalize=False)
    assert _cache_listing("mnist") == sorted(f"{name}.gz" for name in MNIST_SHA256)
    for name in MNIST_SHA256:
        assert (cache_dir() / f"{name}.gz").read_bytes() == routes[f"good/{name}.gz"]
    assert np.bincount(loaded.test_labels, minlength=10).tolist() == TEST_LABEL_COUNTS
