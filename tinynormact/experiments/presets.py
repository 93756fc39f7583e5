"""The reproduction's grids by name: ``quick`` (the default) and ``full``.

Each preset is a ``Grid``, the same kind of object as a grid file read by ``tinynormact sweep``
(``load_grid``): ``tinynormact reproduce --preset quick`` and ``tinynormact sweep quick.toml``
with the same keys run the same runs. ``quick`` finishes in about a minute on two CPU cores;
``full`` runs more seeds, epochs, depth, width and activations, for many workers or a GPU.
"""

from __future__ import annotations

from tinynormact.experiments.grid import Grid

__all__ = ["PRESETS"]

PRESETS: dict[str, Grid] = {
    "quick": Grid(
        name="quick",
        description="MNIST-1D (4000 train / 1000 test), MLP of 10 hidden layers and residual MLP of "
        "4 blocks, width 64, 15 epochs of Adam, 3 seeds: about 1 minute on 2 CPU cores (52 s measured)",
    ),
    "cnn-quick": Grid(
        name="cnn-quick",
        description="MNIST-1D (4000 train / 1000 test) as one-channel sequences of length 40, the 1-D "
        "residual CNN resnet1d (3 stages of one block x + F(x), 32/64/128 channels, no batch norm), "
        "relu and swish, 15 epochs of Adam, 3 seeds: 400 CPU-seconds in all, so about 3.5 minutes "
        "with --jobs 2 on 2 idle CPU cores (estimated from the CPU time of a run on a shared machine)",
        activations=("relu", "swish"),
        architectures=("resnet1d",),
        widths=(32,),
        depths={"resnet1d": (1,)},
    ),
    "full": Grid(
        name="full",
        description="MNIST-1D (8000 train / 2000 test), MLP of 20 hidden layers and residual MLP of "
        "8 blocks, width 128, 60 epochs of Adam, 5 seeds, 10 activations: about 3 CPU-hours "
        "(an estimate from 1- and 2-epoch runs of 18 of its 300 runs, benchmarks/estimate_sweep.py; "
        "--jobs or --scheduler spreads them over workers), or a GPU",
        activations=(
            "relu",
            "tanh",
            "sigmoid",
            "swish",
            "gelu",
            "elu",
            "selu",
            "mish",
            "softplus",
            "softsign",
        ),
        dataset_options={"num_samples": 10000},
        depths={"mlp": (20,), "resmlp": (8,)},
        widths=(128,),
        epochs=60,
        seeds=(0, 1, 2, 3, 4),
        target_loss=0.5,
        propagation_depth=50,
        propagation_width=512,
        propagation_batch=512,
    ),
}
