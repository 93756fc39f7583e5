"""The reproduction's grids by name: ``quick`` (the default), ``cnn-quick``, ``cifar10-quick``,
``cifar100-resnet``, ``full`` and ``anact-study``.

Each preset is a ``Grid``, the same kind of object as a grid file read by ``tinynormact sweep``
(``load_grid``): ``tinynormact reproduce --preset quick`` and ``tinynormact sweep quick.toml``
with the same keys run the same runs. ``quick`` is sized for two CPU cores; ``full`` runs more
seeds, epochs, depth, width and activations, for many workers or a GPU. ``cifar10-quick`` trains
a ResNet-20 on a CIFAR-10 subset (CPU) and ``cifar100-resnet``
ResNet-20 and ResNet-50 on CIFAR-100 (GPUs), from the downloaded archives
(``tinynormact data download``). ``anact-study`` compares the readings of the adaptive form
(THEORY E23-E29) in the full preset's deep networks. Their measured and estimated times are in
docs/timings.md.
"""

from __future__ import annotations

from tinynormact.experiments.grid import Grid

__all__ = ["PRESETS"]

PRESETS: dict[str, Grid] = {
    "quick": Grid(
        name="quick",
        description="MNIST-1D (4000 train / 1000 test), MLP of 10 hidden layers and residual MLP of "
        "4 blocks, width 64, 15 epochs of Adam, 3 seeds: 108 runs (measured times: docs/timings.md)",
    ),
    "cnn-quick": Grid(
        name="cnn-quick",
        description="MNIST-1D (4000 train / 1000 test) as one-channel sequences of length 40, the 1-D "
        "residual CNN resnet1d (3 stages of one block x + F(x), 32/64/128 channels, no batch norm), "
        "relu and swish, 15 epochs of Adam, 3 seeds: 18 runs (measured times: docs/timings.md)",
        activations=("relu", "swish"),
        architectures=("resnet1d",),
        widths=(32,),
        depths={"resnet1d": (1,)},
    ),
    # Times below are estimates (no CIFAR archive and no GPU where these presets were written).
    # cifar10-quick: single runs of its size timed on a generated archive (`tinynormact train`,
    # one BLAS thread, user + system time). cifar100-resnet: FLOPs per image
    # (costs.forward_flops: ResNet-20 0.0816 G, ResNet-50 2.596 G; a training image costs 3x, an
    # evaluated one 1x) divided by the CPU rate bench_cifar_step measured (11.7-14.1 and
    # 29.0-31.0 GFLOP per CPU-second at batch 128, one BLAS thread, three runs).
    "cifar10-quick": Grid(
        name="cifar10-quick",
        description="CIFAR-10, a fixed subset (the archive's first 1000 train / 500 test images), "
        "ResNet-20 (batch norm, random crop and flip), relu and swish, 4 epochs of SGD (batch 64, "
        "lr 0.05, momentum 0.9, weight decay 5e-4, cosine), 2 seeds: 12 runs, not yet run on the "
        "real archive (estimated time: docs/timings.md)",
        activations=("relu", "swish"),
        architectures=("resnet20",),
        depths={"resnet20": (20,)},  # recorded only: the name fixes the network
        dataset="cifar10",
        dataset_options={"n_train": 1000, "n_test": 500},
        epochs=4,
        batch_size=64,
        optimizer="sgd",
        lrs=(0.05,),
        weight_decay=5e-4,
        schedule="cosine",
        init="kaiming_normal",
        seeds=(0, 1),
        target_loss=2.0,
    ),
    # The CIFAR recipe of the wide-ResNet paper (Zagoruyko & Komodakis 2016, CIFAR-100: SGD,
    # momentum 0.9, lr 0.1, weight decay 5e-4, batch 128, 200 epochs) with the cosine schedule
    # of Loshchilov & Hutter (2017) in place of its step decay; He et al. (2016) for the
    # networks, their initialization and the crop-and-flip augmentation. An epoch is 50000
    # training and 60000 evaluated images: 17.1 TFLOP for ResNet-20, 545 TFLOP for ResNet-50.
    "cifar100-resnet": Grid(
        name="cifar100-resnet",
        description="CIFAR-100 (50000 train / 10000 test), ResNet-20 and ResNet-50 (3x3 stride-1 "
        "stem for 32x32), batch norm, random crop and flip, 6 activations, 200 epochs of SGD "
        "(batch 128, lr 0.1, momentum 0.9, weight decay 5e-4, cosine), 3 seeds, 108 runs, for "
        "GPUs (estimated time per epoch: docs/timings.md)",
        activations=("relu", "swish", "tanh", "sigmoid", "gelu", "elu"),
        architectures=("resnet20", "resnet50"),
        depths={"resnet20": (20,), "resnet50": (50,)},  # recorded only
        dataset="cifar100",
        epochs=200,
        optimizer="sgd",
        lrs=(0.1,),
        weight_decay=5e-4,
        schedule="cosine",
        init="kaiming_normal",
        target_loss=1.0,
    ),
    "full": Grid(
        name="full",
        description="MNIST-1D (8000 train / 2000 test), MLP of 20 hidden layers and residual MLP of "
        "8 blocks, width 128, 60 epochs of Adam, 5 seeds, 10 activations: 300 runs (measured times: "
        "docs/timings.md), for many workers (--jobs, --scheduler) or a GPU",
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
    # The readings of E16 (THEORY E23-E29) against vanilla and static in the full preset's deep
    # networks and recipe, as issue 21 asked: swish, tanh, relu and gelu, every per-layer reading
    # of item 3, 5 seeds. Cut to fit 2 CPU cores: 15 epochs of the full preset's 60 (depth and
    # width kept). The two readings that change more than the layer's gains have grids of their
    # own at 2 seeds: a lambda per unit (docs/reports/anact-study/per-unit/) and batch norm
    # before the layer (architectures mlp-bn and resmlp-bn: docs/reports/anact-study/batch-norm/).
    "anact-study": Grid(
        name="anact-study",
        description="MNIST-1D (8000 train / 2000 test), MLP of 20 hidden layers and residual MLP "
        "of 8 blocks, width 128, Adam 1e-3, 15 epochs, 5 seeds, swish, tanh, relu and gelu; "
        "vanilla, static and seven readings of the adaptive form (THEORY E23-E29): the raw batch "
        "gains (the old default), the same bounded to [lambda_s/2, 2 lambda_s], with gradients "
        "through lambda, and with the running estimates at momentum 0.99 applied in training; "
        "the Gaussian gains at the batch's q; the gains that fix the output's second moment (the "
        "default), and the same centred: 360 runs. Cut from issue 21's 60 epochs to 15 to fit 2 "
        "CPU cores (docs/timings.md)",
        activations=("swish", "tanh", "relu", "gelu"),
        forms=(
            "vanilla",
            "static",
            "adaptive-batch",
            "adaptive-bound",
            "adaptive-grad",
            "adaptive-running",
            "adaptive-gaussian",
            "adaptive-output",
            "adaptive-output-centred",
        ),
        readings={
            "adaptive-batch": {"estimate": "batch"},
            "adaptive-bound": {"estimate": "batch", "lambda_bound": 2.0},
            "adaptive-grad": {"estimate": "batch", "differentiate_lambda": True},
            "adaptive-running": {"estimate": "batch", "train_statistics": "running", "momentum": 0.99},
            "adaptive-gaussian": {"estimate": "gaussian"},
            "adaptive-output": {"estimate": "output"},
            "adaptive-output-centred": {"estimate": "output", "center": True},
        },
        center=False,  # each reading as measured; adaptive-output-centred sets it
        dataset_options={"num_samples": 10000},
        depths={"mlp": (20,), "resmlp": (8,)},
        widths=(128,),
        epochs=15,
        seeds=(0, 1, 2, 3, 4),
        target_loss=0.5,
        propagation_depth=20,
        propagation_width=128,
        propagation_batch=256,
    ),
}
