"""The configuration of a training run, resolved once.

``resolve(args)`` turns a train script's parsed command line into a ``TrainConfig``:
the dataset's preset (:mod:`.presets`) fills every option left unset, options that
depend on each other are checked together (``ConfigError`` names them), and the one
fact read from the files, the training-set size from the ``.idx`` beside the records,
is read here. The result is frozen: the data iterators, ``fit``, checkpoints and logs
read it, and nothing changes it afterwards. ``igc-evaluate`` builds the ``DataConfig``
part its own way (``DataConfig.for_validation``).
"""
import dataclasses
import os
import time

from .. import networks
from . import presets
from .records import count_records


class ConfigError(ValueError):
    """Options that do not fit together; the message names them."""


@dataclasses.dataclass(frozen=True)
class NetworkConfig:
    """What ``igc_mx.networks.get_symbol`` builds; unset (None) arguments take the
    network's defaults."""
    name: str
    num_classes: int
    depth: int | None
    primary_partition: int | None
    secondary_partition: int | None
    #: the builder's keyword options as (key, value) pairs: --network-arg, and the device
    #: and dtype of the run for the networks that take them
    options: tuple
    #: the folder of the user's own network modules (--network-dir), or None
    directory: str | None = None

    def build(self):
        """The network's symbol (NetworkError when it cannot be built from these values)."""
        if self.directory:
            networks.register_directory(self.directory)
        return networks.get_symbol(self.name, self.num_classes, self.depth,
                                   self.primary_partition, self.secondary_partition,
                                   **dict(self.options))


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """The record files and how they are read: size, normalization, augmentation."""
    dataset: str
    iterators: str                  # the preset's reader: 'small' or 'imagenet'
    train_rec: str | None           # None when only validating
    val_rec: str
    num_classes: int
    num_examples: int | None        # training images per epoch
    image_shape: tuple              # (channels, height, width) of the network's input
    mean: tuple                     # per channel, 0-255 scale
    std: tuple
    aug_type: int
    threads: int                    # decoding threads per iterator
    batch_size: int
    val_batch_size: int
    #: True when the preset chose the validation batch: it is then capped at each worker's
    #: share of the validation records (``ImageRecordIter`` cannot fill a larger batch)
    val_batch_from_preset: bool

    @classmethod
    def for_validation(cls, dataset, val_rec, batch_size, threads, image_side=None,
                       mean=None, std=None, fb_mean=False):
        """The validation side of ``dataset``'s recipe, for scoring ``val_rec``."""
        preset = presets.DATASETS[dataset]
        mean, std = _normalization(preset, mean, std, fb_mean)
        side = image_side or preset.data_shape
        return cls(dataset=dataset, iterators=preset.iterators, train_rec=None,
                   val_rec=val_rec, num_classes=preset.num_classes, num_examples=None,
                   image_shape=(preset.channels, side, side), mean=mean, std=std,
                   aug_type=0, threads=threads, batch_size=batch_size,
                   val_batch_size=batch_size, val_batch_from_preset=False)


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """Nesterov momentum SGD with a step schedule (in epochs)."""
    lr: float
    lr_factor: float
    lr_steps: tuple
    momentum: float
    wd: float
    dtype: str                      # 'float16': float32 master weights (multi_precision)


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """Devices, length, seeds, logs and checkpoints of the run."""
    gpus: tuple                     # GPU ids; empty for the CPU
    kv_store: str
    num_epochs: int
    max_batches: int | None
    max_val_batches: int | None
    seed: int
    seed_from_clock: bool
    log_dir: str
    log_file: str | None
    exp_name: str | None
    log_iters: int
    model_prefix: str | None
    checkpoint_epochs: int
    load_epoch: int | None
    resume_without_states: bool
    top_k: int                      # a top-k accuracy metric besides top-1 (0: none)

    @property
    def device(self):
        return 'gpu' if self.gpus else 'cpu'


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    network: NetworkConfig
    data: DataConfig
    optim: OptimConfig
    run: RunConfig


def _normalization(preset, mean, std, fb_mean):
    """(mean, std) of the recipe unless given; ``fb_mean`` takes fb.resnet.torch's ImageNet
    values. Each must have one value per channel."""
    if fb_mean:
        default_mean, default_std = presets.FB_IMAGENET_MEAN, presets.FB_IMAGENET_STD
    else:
        default_mean, default_std = preset.mean, preset.std
    mean = tuple(default_mean if mean is None else mean)
    std = tuple(default_std if std is None else std)
    for option, values in (('--mean-rgb', mean), ('--std-rgb', std)):
        if len(values) != preset.channels:
            raise ConfigError(f'{option} has {len(values)} values; the images have '
                              f'{preset.channels} channel(s)')
    return mean, std


def _network_options(args, device):
    """--network-arg pairs, plus the run's device and dtype for the networks that take
    them (an explicit --network-arg wins)."""
    options = dict(args.network_arg or [])
    if args.network_dir:
        networks.register_directory(args.network_dir)
    accepted = networks.registered(args.network).options
    if accepted is None or 'device' in accepted:
        options.setdefault('device', device)
    if args.dtype != 'float32':
        if options.get('dtype', args.dtype) != args.dtype:
            raise ConfigError(f"--network-arg dtype={options['dtype']} contradicts --dtype "
                              f'{args.dtype}')
        options['dtype'] = args.dtype
    elif options.get('dtype', 'float32') != 'float32' and device == 'cpu':
        raise ConfigError(f"--network-arg dtype={options['dtype']} needs --gpus: the CPU "
                          'kernels compute in float32 and float64')
    return tuple(sorted(options.items()))


def _check(args, num_epochs, gpus):
    if args.load_epoch is not None and args.load_epoch >= num_epochs:
        raise ConfigError(f'--load-epoch {args.load_epoch} leaves nothing to train: '
                          f'--num-epochs is {num_epochs}')
    if args.dtype == 'float16' and not gpus:
        raise ConfigError('--dtype float16 needs --gpus: the CPU kernels compute in float32 '
                          'and float64')
    if args.kv_store == 'nccl' and not gpus:
        raise ConfigError('--kv-store nccl needs --gpus')


def check_gpus_visible(gpus):
    """ConfigError unless MXNet sees every GPU id of ``gpus``."""
    if not gpus:
        return
    import mxnet as mx
    available = mx.context.num_gpus()
    if max(gpus) >= available:
        hint = '' if available else ' (a CUDA build of MXNet is needed: see the README)'
        ids = ','.join(map(str, gpus))
        raise ConfigError(f'--gpus {ids}: this machine has {available} GPU(s) visible to '
                          f'MXNet{hint}')


def resolve(args, top_k=0):
    """The ``TrainConfig`` of the train scripts' parsed arguments (see ``args``)."""
    preset = presets.DATASETS[args.dataset]
    data_dir = args.data_dir or os.path.join('data', args.dataset)
    train_rec = os.path.join(data_dir, args.train_dataset)
    num_epochs = args.num_epochs or preset.num_epochs
    gpus = args.gpus
    _check(args, num_epochs, gpus)
    mean, std = _normalization(preset, args.mean_rgb, args.std_rgb, args.fb_mean)
    side = args.data_shape or preset.data_shape
    num_classes = args.num_classes or preset.num_classes
    seed_from_clock = args.rand_seed is None
    device = 'gpu' if gpus else 'cpu'
    return TrainConfig(
        network=NetworkConfig(
            name=args.network, num_classes=num_classes, depth=args.depth,
            primary_partition=args.primary_partition,
            secondary_partition=args.secondary_partition,
            options=_network_options(args, device), directory=args.network_dir),
        data=DataConfig(
            dataset=args.dataset, iterators=preset.iterators, train_rec=train_rec,
            val_rec=os.path.join(data_dir, args.val_dataset), num_classes=num_classes,
            num_examples=(args.num_examples or count_records(train_rec)
                          or preset.num_examples),
            image_shape=(preset.channels, side, side), mean=mean, std=std,
            aug_type=preset.aug_type if args.aug_type is None else args.aug_type,
            threads=args.data_nthreads, batch_size=args.batch_size,
            # the original: the test batch is at least the train batch
            val_batch_size=args.test_batch_size or max(preset.min_test_batch,
                                                       args.batch_size),
            val_batch_from_preset=args.test_batch_size is None),
        optim=OptimConfig(
            lr=args.lr, lr_factor=args.lr_factor,
            lr_steps=tuple(preset.lr_steps.epochs(num_epochs) if args.lr_steps is None
                           else args.lr_steps),
            momentum=args.mom, wd=args.wd, dtype=args.dtype),
        run=RunConfig(
            gpus=gpus, kv_store=args.kv_store, num_epochs=num_epochs,
            max_batches=args.max_batches, max_val_batches=args.max_val_batches,
            # a different start for every run without --rand-seed, as the original
            seed=int(time.time()) if seed_from_clock else args.rand_seed,
            seed_from_clock=seed_from_clock, log_dir=args.log_dir, log_file=args.log_file,
            exp_name=args.exp_name, log_iters=args.log_iters, model_prefix=args.model_prefix,
            checkpoint_epochs=(args.checkpoint_epochs
                               or preset.checkpoint_period(num_epochs)),
            load_epoch=args.load_epoch, resume_without_states=args.resume_without_states,
            top_k=top_k))
