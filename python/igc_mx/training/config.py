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
import json
import os
import time
import traceback

from .. import networks
from . import presets
from .records import count_records

#: what MXNet's parameter-server kvstores read from the environment that igc-launch (or
#: another dmlc launcher) gives each process
DIST_ENVIRONMENT = ('DMLC_ROLE', 'DMLC_PS_ROOT_URI', 'DMLC_PS_ROOT_PORT', 'DMLC_NUM_SERVER',
                    'DMLC_NUM_WORKER')


class ConfigError(ValueError):
    """Options that do not fit together; the message names them."""


def _failure(err):
    """``err`` as one line: its type and the first line of its message."""
    text = str(err).strip().splitlines()
    return f'{type(err).__name__}: {text[0]}' if text else type(err).__name__


def register_user_networks(directory):
    """``networks.register_directory(directory)``; a module that fails to import is a
    ConfigError naming it and the error."""
    if not os.path.isdir(directory):
        return networks.register_directory(directory)   # its error names the folder
    try:
        return networks.register_directory(directory)
    except networks.NetworkError:
        raise
    except Exception as err:  # noqa: BLE001 - any error of the user's module
        raise ConfigError(f'--network-dir {directory}: {_user_file(err, directory)} cannot be '
                          f'imported: {_failure(err)}') from None


def registered_network(name, directory=None):
    """``networks.registered(name)``, after registering ``directory``'s modules (--network-dir)
    when given; when the name is unknown but ``directory`` holds ``<name>.py``, the error
    says that this module defines no ``get_symbol``."""
    if directory:
        register_user_networks(directory)
    try:
        return networks.registered(name)
    except networks.NetworkError:
        module = os.path.join(directory, f'{name}.py') if directory else None
        if module and os.path.isfile(module):
            raise ConfigError(f'--network {name}: {module} defines no get_symbol(num_classes, '
                              'depth, primary_partition, secondary_partition)') from None
        raise


def _user_file(err, directory):
    """The file of ``directory`` in which ``err`` arose (the last such frame)."""
    if isinstance(err, SyntaxError) and err.filename:
        return err.filename
    inside = [frame.filename for frame in traceback.extract_tb(err.__traceback__)
              if os.path.abspath(frame.filename).startswith(os.path.abspath(directory) + os.sep)]
    return inside[-1] if inside else 'a module'


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
        """The network's symbol (NetworkError when it cannot be built from these values,
        ConfigError when a --network-dir module fails to build it)."""
        entry = registered_network(self.name, self.directory)
        try:
            return networks.get_symbol(self.name, self.num_classes, self.depth,
                                       self.primary_partition, self.secondary_partition,
                                       **dict(self.options))
        except networks.NetworkError:
            raise
        except Exception as err:  # noqa: BLE001 - a --network-dir builder's own error
            if entry.source == 'igc_mx':
                raise
            raise ConfigError(f'--network {self.name}: get_symbol of {entry.source} failed: '
                              f'{_failure(err)}') from None


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
    accepted = registered_network(args.network, args.network_dir).options
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
    if args.kv_store.startswith('dist'):
        _check_dist_environment(args.kv_store)


def _check_dist_environment(kv_store):
    """ConfigError unless the environment holds what a process of a distributed job is
    given by its launcher: without it, MXNet's kvstore aborts or waits for a scheduler
    that does not exist."""
    missing = [name for name in DIST_ENVIRONMENT if not os.environ.get(name)]
    if missing:
        raise ConfigError(f"--kv-store {kv_store} runs inside a distributed job, and "
                          f"{', '.join(missing)} {'is' if len(missing) == 1 else 'are'} not "
                          'set: start the command with igc-launch (e.g. igc-launch -n 2 -s 1 '
                          '--launcher local python train_model.py ...), or use --kv-store '
                          'device on one machine')


def check_network(config, symbol):
    """ConfigError unless ``symbol``, the network ``config.network`` built, is a symbol that
    training can use: one SoftmaxOutput head with the label ``softmax_label``, and
    ``config.network.num_classes`` scores for an image of ``config.data.image_shape``."""
    import mxnet as mx

    from ..model_files import error_line, infer_shape
    net = config.network
    where = f'--network {net.name}'
    if not isinstance(symbol, mx.sym.Symbol):
        raise ConfigError(f'{where}: get_symbol returned {type(symbol).__name__} '
                          f'{_short(symbol)}, expected an mx.sym.Symbol')
    graph = json.loads(symbol.tojson())
    heads = [graph['nodes'][head[0]]['op'] for head in graph['heads']]
    if heads != ['SoftmaxOutput'] or 'softmax_label' not in symbol.list_arguments():
        raise ConfigError(f"{where}: the network ends in {' and '.join(heads)}; training "
                          "expects one SoftmaxOutput named 'softmax' (label softmax_label), "
                          "e.g. mx.sym.SoftmaxOutput(scores, name='softmax')")
    shape = (1, *config.data.image_shape)
    try:
        _, outputs, _ = infer_shape(symbol, data=shape)
    except mx.base.MXNetError as err:
        raise ConfigError(f'{where} does not take images of shape {shape}: '
                          f'{error_line(err)}') from None
    if outputs is None:
        raise ConfigError(f'{where}: the shape of its output cannot be inferred from the '
                          f'images alone ({shape}); give its other inputs shapes')
    if tuple(outputs[0]) != (1, net.num_classes):
        raise ConfigError(f'{where} outputs {tuple(outputs[0])} for an image of '
                          f'shape {shape}; the dataset has {net.num_classes} classes, so '
                          f'(1, {net.num_classes}) was expected (does get_symbol use its '
                          'num_classes argument?)')


def _short(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + '...'


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
