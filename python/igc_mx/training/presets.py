"""The dataset recipes, as data.

Each row holds the values the 2017 original's ``options.py`` (CIFAR-10, CIFAR-100, SVHN)
and ``train_imagenet.py`` (ImageNet) set. ``igc_mx.training.config`` fills every option
the user left unset from the row of the chosen dataset; options given on the command
line always win.
"""
import dataclasses
import math


@dataclasses.dataclass(frozen=True)
class LrSteps:
    """Where the learning rate steps: at ``values`` as fractions of the run's epochs
    (``kind='fractions'``), or every ``values[0]`` epochs (``kind='period'``)."""
    kind: str
    values: tuple

    def epochs(self, num_epochs):
        """The epochs at which the lr is multiplied by lr_factor, in a run of num_epochs."""
        if self.kind == 'fractions':
            return tuple(num_epochs * f for f in self.values)
        return tuple(float(e) for e in range(self.values[0], num_epochs, self.values[0]))


#: the original CIFAR/SVHN rule: steps at 1/2, 3/4 and 7/8 of training
HALF_3_4_7_8 = LrSteps('fractions', (1 / 2, 3 / 4, 7 / 8))


@dataclasses.dataclass(frozen=True)
class Preset:
    """One dataset's recipe."""
    num_classes: int
    num_examples: int
    num_epochs: int
    mean: tuple             # per channel, on the 0-255 scale
    std: tuple
    aug_type: int           # 0 none; small images: 1 pad + crop + mirror, 2 crop + mirror
    min_test_batch: int     # the test batch is at least this (and the train batch)
    data_shape: int         # image side
    lr_steps: LrSteps
    iterators: str          # 'small' (train_model.py) or 'imagenet' (train_imagenet.py)

    @property
    def channels(self):
        return len(self.mean)

    def checkpoint_period(self, num_epochs):
        """Epochs between checkpoints: the original saved every num_epochs/8 epochs."""
        return max(1, math.ceil(num_epochs / 8))


DATASETS = {
    'cifar10': Preset(10, 50000, 400, (125.307, 122.950, 113.865),
                      (62.993, 62.089, 66.705), 1, 400, 32, HALF_3_4_7_8, 'small'),
    'cifar100': Preset(100, 50000, 400, (129.304, 124.070, 112.434),
                       (68.170, 65.392, 70.418), 1, 400, 32, HALF_3_4_7_8, 'small'),
    # train (73,257) + extra (531,131); 26,032 test images.
    'svhn': Preset(10, 604388, 40, (111.609, 113.161, 120.565),
                   (50.498, 51.259, 50.244), 0, 280, 32, HALF_3_4_7_8, 'small'),
    # Grey 28x28 images, one channel; mean/std of the 60,000 training images (0-255
    # scale: igc-make-rec stats). The original has no recipe for them: SVHN's 40 epochs
    # and lr steps (the original's dataset of the nearest size), and the augmentation of
    # the benchmark's strong entries on Fashion-MNIST (random crops of the padded image
    # and horizontal flips); none on MNIST, whose digits a mirror would change.
    'fashion-mnist': Preset(10, 60000, 40, (72.940,), (90.021,), 1, 500, 28, HALF_3_4_7_8,
                            'small'),
    'mnist': Preset(10, 60000, 40, (33.318,), (78.567,), 0, 500, 28, HALF_3_4_7_8, 'small'),
    # Mean/std computed by the authors on training images resized to short side 480.
    'imagenet': Preset(1000, 1281167, 120, (123.370, 112.757, 99.406),
                       (68.998, 66.093, 68.292), 1, 0, 224, LrSteps('period', (30,)),
                       'imagenet'),
}

# The original ImageNet script's --fb-mean alternative (fb.resnet.torch values).
FB_IMAGENET_MEAN = (123.675, 116.280, 103.530)
FB_IMAGENET_STD = (58.395, 57.12, 57.375)


def datasets_for(iterators):
    """The dataset names whose recipe reads its records with ``iterators``."""
    return [name for name, p in DATASETS.items() if p.iterators == iterators]
