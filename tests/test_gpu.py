"""configure_gpu: a no-op without GPUs; with simulated GPUs, the tutorial's GPU step."""

from __future__ import annotations

import pytest
import tensorflow as tf

from lenet_mnist import configure_gpu
from lenet_mnist.errors import GPUAlreadyInitializedError, LenetMnistError


def _gpus(count: int) -> list[tf.config.PhysicalDevice]:
    return [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(count)]


class FakeGPUs:
    """Stands in for TensorFlow's device configuration functions."""

    def __init__(self, count: int, *, started: bool = False) -> None:
        self.physical = _gpus(count)
        self.visible = list(self.physical)
        self.growth: dict[str, bool] = {}
        self.started = started

    def list_physical_devices(
        self, device_type: str | None = None
    ) -> list[tf.config.PhysicalDevice]:
        assert device_type == "GPU"
        return list(self.physical)

    def set_visible_devices(self, devices: object, device_type: str | None = None) -> None:
        if self.started:
            raise RuntimeError("Visible devices cannot be modified after being initialized")
        assert device_type == "GPU"
        self.visible = [devices] if isinstance(devices, tf.config.PhysicalDevice) else list(devices)  # type: ignore[call-overload]

    def set_memory_growth(self, device: tf.config.PhysicalDevice, enable: bool) -> None:
        if self.started:
            raise RuntimeError("Physical devices cannot be modified after being initialized")
        self.growth[device.name] = enable

    def get_visible_devices(self, device_type: str | None = None) -> list[tf.config.PhysicalDevice]:
        assert device_type == "GPU"
        return list(self.visible)


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch):
    def install(count: int, *, started: bool = False) -> FakeGPUs:
        gpus = FakeGPUs(count, started=started)
        monkeypatch.setattr(tf.config, "list_physical_devices", gpus.list_physical_devices)
        monkeypatch.setattr(tf.config, "set_visible_devices", gpus.set_visible_devices)
        monkeypatch.setattr(tf.config, "get_visible_devices", gpus.get_visible_devices)
        monkeypatch.setattr(tf.config.experimental, "set_memory_growth", gpus.set_memory_growth)
        return gpus

    return install


def test_no_gpu_on_this_machine() -> None:
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("this machine has a GPU")
    assert configure_gpu() == []
    assert configure_gpu(3, memory_growth=False) == []


def test_one_gpu_with_memory_growth(fake) -> None:
    gpus = fake(2)
    result = configure_gpu(1)
    assert result == [gpus.physical[1]]
    assert gpus.visible == [gpus.physical[1]]
    assert gpus.growth == {"/physical_device:GPU:1": True}


def test_default_is_the_first_gpu(fake) -> None:
    gpus = fake(3)
    assert configure_gpu() == [gpus.physical[0]]
    assert gpus.growth == {"/physical_device:GPU:0": True}


def test_without_memory_growth(fake) -> None:
    gpus = fake(1)
    assert configure_gpu(0, memory_growth=False) == gpus.physical
    assert gpus.growth == {}


@pytest.mark.parametrize(("count", "index"), [(1, 1), (2, 2), (2, -1), (4, 10)])
def test_index_out_of_range_names_the_count(fake, count: int, index: int) -> None:
    gpus = fake(count)
    with pytest.raises(
        ValueError, match=rf"GPU index out of range: this machine has {count} GPU\(s\), got {index}"
    ):
        configure_gpu(index)
    assert gpus.visible == gpus.physical  # nothing changed
    assert gpus.growth == {}


def test_runtime_already_started(fake) -> None:
    fake(1, started=True)
    with pytest.raises(
        GPUAlreadyInitializedError, match=r"call lenet_mnist\.configure_gpu\(\) first"
    ) as info:
        configure_gpu()
    assert isinstance(info.value, RuntimeError)
    assert isinstance(info.value, LenetMnistError)
    assert isinstance(info.value.__cause__, RuntimeError)
    assert "cannot be modified after being initialized" in str(info.value)


@pytest.mark.parametrize(
    ("args", "kwargs", "message"),
    [
        (("0",), {}, "index must be an int, got str"),
        ((True,), {}, "index must be an int, got bool"),
        ((0.0,), {}, "index must be an int, got float"),
        ((), {"memory_growth": 1}, "memory_growth must be a bool, got int"),
        ((), {"memory_growth": None}, "memory_growth must be a bool, got NoneType"),
    ],
)
def test_type_errors(args: tuple[object, ...], kwargs: dict[str, object], message: str) -> None:
    # Checked before looking for GPUs, so they show on CPU-only machines too.
    with pytest.raises(TypeError, match=message):
        configure_gpu(*args, **kwargs)  # type: ignore[arg-type]
