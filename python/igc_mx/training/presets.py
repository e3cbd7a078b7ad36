"""The 2017 recipes, as data.

Each dataset row holds the values the original ``options.py`` (CIFAR-10,
CIFAR-100, SVHN) and ``train_imagenet.py`` (ImageNet) set. ``apply`` fills
every option the user left unset (``None``) from the row; options given on the
command line always win.
"""
import math
from collections import namedtuple

Preset = namedtuple('Preset', [
    'num_classes', 'num_examples', 'num_epochs', 'mean_rgb', 'std_rgb',
    'aug_type', 'min_test_batch', 'data_shape', 'lr_steps'])

# lr_steps: fractions of num_epochs (CIFAR/SVHN) or a period in epochs (ImageNet).
HALF_3_4_7_8 = ('fractions', (1 / 2, 3 / 4, 7 / 8))

DATASETS = {
    'cifar10': Preset(10, 50000, 400, (125.307, 122.950, 113.865),
                      (62.993, 62.089, 66.705), 1, 400, 32, HALF_3_4_7_8),
    'cifar100': Preset(100, 50000, 400, (129.304, 124.070, 112.434),
                       (68.170, 65.392, 70.418), 1, 400, 32, HALF_3_4_7_8),
    # train (73,257) + extra (531,131); 26,032 test images.
    'svhn': Preset(10, 604388, 40, (111.609, 113.161, 120.565),
                   (50.498, 51.259, 50.244), 0, 280, 32, HALF_3_4_7_8),
    # Mean/std computed by the authors on training images resized to short side 480.
    'imagenet': Preset(1000, 1281167, 120, (123.370, 112.757, 99.406),
                       (68.998, 66.093, 68.292), 1, 0, 224, ('period', 30)),
}

# The original ImageNet script's --fb-mean alternative (fb.resnet.torch values).
FB_IMAGENET_MEAN = (123.675, 116.280, 103.530)
FB_IMAGENET_STD = (58.395, 57.12, 57.375)


def default_lr_steps(preset, num_epochs):
    """Epochs at which the lr is multiplied by lr_factor, for a run of num_epochs."""
    kind, value = preset.lr_steps
    if kind == 'fractions':
        return [num_epochs * f for f in value]
    return list(range(value, num_epochs, value))


def apply(args, dataset):
    """Fill unset options of ``args`` from the dataset's preset, in place."""
    p = DATASETS[dataset]
    fb = getattr(args, 'fb_mean', False)
    fill = {
        'num_classes': p.num_classes,
        'num_examples': p.num_examples,
        'num_epochs': p.num_epochs,
        'mean_rgb': list(FB_IMAGENET_MEAN if fb else p.mean_rgb),
        'std_rgb': list(FB_IMAGENET_STD if fb else p.std_rgb),
        'aug_type': p.aug_type,
        'data_shape': p.data_shape,
    }
    for key, value in fill.items():
        if getattr(args, key, None) is None:
            setattr(args, key, value)
    if getattr(args, 'test_batch_size', None) is None:
        # The original: the test batch is at least the train batch.
        args.test_batch_size = max(p.min_test_batch, args.batch_size)
    if getattr(args, 'lr_steps', None) is None:
        args.lr_steps = default_lr_steps(p, args.num_epochs)
    if getattr(args, 'checkpoint_epochs', None) is None:
        # The original saved every num_epochs/8 epochs (every 50 of 400).
        args.checkpoint_epochs = max(1, int(math.ceil(args.num_epochs / 8)))
    args.dataset = dataset
    return args
