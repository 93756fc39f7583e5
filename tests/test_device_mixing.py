"""Two devices in one program: the rules of docs/guide/gpu.md, checked with NumPy ("cpu") and the
strict CuPy-like test device ("strict") standing in for a GPU.

- NumPy arrays and Python numbers given to an operation join the tensor's device;
- two tensors on different devices in one operation raise one DeviceError naming both;
- checkpoints hold host arrays: they load onto the device of the model they are loaded into;
- resuming a run on another device is refused, naming the saved and the current device.
"""

from __future__ import annotations

import numpy as np
import pytest

import tinynormact as tn
from tinynormact import backend, nn, optim
from tinynormact.train import TrainConfig, train, using_device
from tinynormact.train.checkpoint import load_checkpoint, save_checkpoint
from tinynormact.train.config import ConfigError


def test_numpy_arrays_and_numbers_join_the_tensors_device() -> None:
    x = tn.Tensor(np.ones((2, 3)), device="strict")
    out = (x * np.arange(3.0) + 1.0) @ np.ones((3, 1))
    assert out.device == "strict"
    np.testing.assert_array_equal(out.numpy(), [[6.0], [6.0]])  # 1 + 2 + 3


@pytest.mark.parametrize(("current", "target"), [("cpu", "strict"), ("strict", "cpu")])
def test_to_moves_a_tensor_to_the_device_asked_for_not_the_current_one(current: str, target: str) -> None:
    with using_device(current):
        x = tn.Tensor([1.0, 2.0], device=current, requires_grad=True)
        moved = x.to(target)
    assert moved.device == target and backend.device_of(moved.data) == target
    assert moved.requires_grad
    np.testing.assert_array_equal(moved.numpy(), [1.0, 2.0])


@pytest.mark.parametrize("first", ["cpu", "strict"])
def test_tensors_of_two_devices_in_one_operation_raise_naming_both(first: str) -> None:
    second = "strict" if first == "cpu" else "cpu"
    a, b = tn.Tensor(np.ones(3), device=first), tn.Tensor(np.ones(3), device=second)
    for operation in (lambda: a + b, lambda: a * b, lambda: b - a, lambda: tn.ops.stack([a, b])):
        with pytest.raises(backend.DeviceError, match=r"different devices, (cpu and strict|strict and cpu)"):
            operation()


def test_a_model_on_one_device_refuses_input_on_the_other() -> None:
    with using_device("strict"):
        model = nn.Linear(3, 2)
    with pytest.raises(backend.DeviceError, match="cpu.*strict|strict.*cpu") as caught:
        model(tn.Tensor(np.ones((4, 3)), device="cpu"))
    assert ".to(" in str(caught.value)


@pytest.mark.parametrize(("saved_on", "loaded_on"), [("strict", "cpu"), ("cpu", "strict")])
def test_a_checkpoint_loads_onto_the_model_s_device(tmp_path, saved_on: str, loaded_on: str) -> None:
    def model_and_optimizer(device: str, seed: int) -> tuple[nn.Module, optim.Optimizer]:
        with using_device(device):
            model = nn.MLP([3, 5, 2], activation="tanh", rng=seed)
            return model, optim.SGD(model.parameters(), lr=0.1, momentum=0.9)

    model, opt = model_and_optimizer(saved_on, seed=1)
    with using_device(saved_on):
        loss = (model(tn.Tensor(np.ones((4, 3)))) ** 2).mean()
        loss.backward()
        opt.step()  # a momentum buffer to save
    save_checkpoint(tmp_path / "c.npz", model, opt, {"step": 1})
    target, target_opt = model_and_optimizer(loaded_on, seed=2)
    progress, _ = load_checkpoint(tmp_path / "c.npz", target, target_opt)
    assert progress == {"step": 1}
    saved, loaded = model.state_dict(), target.state_dict()
    for name in saved:
        np.testing.assert_array_equal(loaded[name], saved[name], err_msg=name)
    assert {p.device for p in target.parameters()} == {loaded_on}
    assert {backend.device_of(v) for s in target_opt.state for v in s.values() if hasattr(v, "shape")} == {
        loaded_on
    }


def test_resuming_on_another_device_is_refused_naming_both(tmp_path) -> None:
    config = TrainConfig(dataset="spirals", dataset_options={"n_train": 80, "n_test": 40}, depth=1, width=4,
                         epochs=1, batch_size=40, device="strict")  # fmt: skip
    train(config, out_dir=tmp_path)
    with pytest.raises(ConfigError, match="device: the run has 'strict', now 'cpu'"):
        train(config.replace(epochs=2, device="cpu"), out_dir=tmp_path, resume=True)
