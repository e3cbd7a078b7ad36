"""Every network of the 2017 original, as data plus one generic builder, behind one
registry.

``get_symbol(name, num_classes, depth, primary_partition, secondary_partition, **options)``
builds any registered network and ``list_networks()`` names them; an unknown name is a
ValueError that lists the valid ones. The six built-in networks are rows of the tables
of this module, built by ``build``:

* ``FAMILIES``: block kind (one unit, or two units + shortcut), BatchNorm momentum,
  layer naming and classifier head of each of the six original network files;
* ``DEFAULTS``: what an argument left out becomes, per network;
* ``IMAGENET_SPEC``: blocks per stage of the ImageNet networks, by depth;
* ``WIDEN_RULES``: how an ImageNet IGC network doubles its width per stage
  (double M and keep L, or double L and keep M);
* ``PAPER_ROWS``: the five ImageNet rows of the paper's table, with the flags that
  build them and the authors' published symbol files.

``plan`` walks a network's layout once and lists its layers with their names and
attributes; ``build`` makes the symbol of that list, ``igc_mx.gluon`` its HybridBlocks
(``igc_mx.gluon.get_model`` takes ``get_symbol``'s arguments), so the two cannot differ.

``register_network`` adds a network of your own, optionally with a Gluon builder,
``register_directory`` every module of a directory (the train scripts'
``--network-dir``). ``network/<name>.py`` keep the original entry points, one call each
into ``get_symbol``.

CIFAR-style depths follow the original's integer arithmetic (see ``cifar_blocks``).
``igc_mx.counting`` counts a network's parameters and multiply-adds.
"""
import dataclasses
import functools
import importlib.util
import inspect
import operator
from pathlib import Path

import mxnet as mx

from . import devices
from .blocks import conv_bn, igc_unit


class NetworkError(ValueError):
    """A network name, argument or option that does not fit; the message says which
    value and what would fit."""


# ----------------------------------------------------------------------------- tables

#: blocks per stage of the ImageNet networks, as GluonCV's ``resnet_spec``.
IMAGENET_SPEC = {18: ('basic_block', (2, 2, 2, 2))}
IMAGENET_STRIDES = (1, 2, 2, 2)
CIFAR_STRIDES = (1, 2, 2)

#: ImageNet IGC width doubling. Each rule gives the stem width from (L, M) and the
#: (primary partition L_s, secondary partition M_s) of stage s = 0, 1, 2, 3; every stage
#: is L_s * M_s = L * M * 2**s channels wide.
WIDEN_RULES = {
    # IGC-L4M32, IGC-L16M16: keep L, double M; the stem is as wide as stage 1.
    'secondary': (lambda L, M: L * M, lambda L, M, s: (L, M << s)),
    # IGC-L100M2: keep M, double L; the stem has L channels, so stage 1 opens with
    # a stride-1 projection from L to L*M channels.
    'primary': (lambda L, M: L, lambda L, M, s: (L << s, M)),
}
#: M of the 'primary' rule when ``secondary_partition`` is not given (IGC-L100M2).
PRIMARY_WIDEN_DEFAULT_M = 2


@dataclasses.dataclass(frozen=True)
class Naming:
    """Layer-name suffixes of a block called e.g. ``g2_b1``."""
    units: tuple            # one suffix per unit of the block ('' = the block itself)
    shortcut: str = ''      # projection shortcut (residual blocks)
    bare_conv: bool = False  # plain conv layers named '<unit>' instead of '<unit>_conv'


@dataclasses.dataclass(frozen=True)
class Head:
    pool: str               # name of the average pooling
    kernel: int
    global_pool: bool
    fc: str                 # name of the classifier


@dataclasses.dataclass(frozen=True)
class Family:
    dataset: str            # 'cifar' (32x32, 3 stages) or 'imagenet' (224x224, 4 stages)
    residual: bool
    igc: bool
    bn_momentum: float
    naming: Naming
    head: Head
    # M of a block's first IGC unit (its 1x1 conv's num_group): kout/L_s ('out') or, as
    # the original CIFAR resnet_igc does, kin/L_s ('in'); the other units use kout/L_s.
    first_secondary: str = 'out'


# The original plain nets average over an 8x8 kernel, the whole map of a 32x32 image;
# global pooling computes the same there and also takes 28x28 images (a 7x7 map).
_PLAIN_HEAD = Head('global_pool', 8, True, 'fc_score')
_RESNET_HEAD = Head('pool', 8, True, 'fc')
_IMAGENET_HEAD = Head('global_pool', 7, False, 'fc_score')
_CIFAR_RESIDUAL = Naming(units=('_p2_two1', '_p2_two2'), shortcut='_p0_line')

FAMILIES = {
    'plain': Family('cifar', False, False, 0.99, Naming(units=('',)), _PLAIN_HEAD),
    'plain_igc': Family('cifar', False, True, 0.99, Naming(units=('',)), _PLAIN_HEAD),
    'resnet': Family('cifar', True, False, 0.9, _CIFAR_RESIDUAL, _RESNET_HEAD),
    'resnet_igc': Family('cifar', True, True, 0.9, _CIFAR_RESIDUAL, _RESNET_HEAD,
                         first_secondary='in'),
    'resnet_imgnet_d18': Family('imagenet', True, False, 0.9,
                                Naming(units=('_conv1', '_conv2'), shortcut='_proj',
                                       bare_conv=True), _IMAGENET_HEAD),
    'resnet_igc_imgnet_d18': Family('imagenet', True, True, 0.9,
                                    Naming(units=('_conv1', '_conv2'), shortcut='_proj'),
                                    _IMAGENET_HEAD),
}

DATA_SHAPES = {'cifar': (3, 32, 32), 'imagenet': (3, 224, 224)}

#: The arguments of every network, in this order after its name.
ARGUMENTS = ('num_classes', 'depth', 'primary_partition', 'secondary_partition')

#: What ``get_symbol`` uses for an argument left out (or None): the original files'
#: defaults, except the ImageNet widths, which build rows of the paper's table
#: (ResNet-18 C=64; IGC-L100M2: L=100 with M=None, so M=2 and L doubles per stage).
DEFAULTS = {
    'plain': {'secondary_partition': 1},
    'plain_igc': {},
    'resnet': {'secondary_partition': 1},
    'resnet_igc': {},
    'resnet_imgnet_d18': {'num_classes': 1000, 'depth': 18, 'primary_partition': 64},
    'resnet_igc_imgnet_d18': {'num_classes': 1000, 'depth': 18, 'primary_partition': 100},
}


@dataclasses.dataclass(frozen=True)
class PaperRow:
    label: str
    network: str
    primary_partition: int
    secondary_partition: object   # int or None
    published: str                # relative to shared/reference/original_models
    paper_params_m: float
    paper_flops_g: float


PAPER_ROWS = (
    PaperRow('ResNet-18 C=64', 'resnet_imgnet_d18', 64, None,
             'ResNet18-w64_ImageNet/resnet_d18-symbol.json', 11.151, 1.8),
    PaperRow('ResNet-18 C=69', 'resnet_imgnet_d18', 69, None,
             'ResNet18-w69_ImageNet/resnet_d18_w69-symbol.json', 11.333, 2.1),
    PaperRow('IGC-L4M32', 'resnet_igc_imgnet_d18', 4, 32,
             'IGC-L4M32_ImageNet/resnet_gcwf_noshare_imagenet_d18b4-symbol.json', 11.205, 1.9),
    PaperRow('IGC-L16M16', 'resnet_igc_imgnet_d18', 16, 16,
             'IGC-L16M16_ImageNet/resnet_gcwf_noshare_imagenet_d18b16-symbol.json', 11.329, 2.2),
    PaperRow('IGC-L100M2', 'resnet_igc_imgnet_d18', 100, None,
             'IGC-L100M2_ImageNet/resnet_gcwf_noshare_imagenet_d18b100-symbol.json', 8.61, 1.3),
)

# ----------------------------------------------------------------------------- layout


@dataclasses.dataclass(frozen=True)
class Stage:
    blocks: int
    width: int
    stride: int
    primary_partition: object   # L_s of the stage; None for plain convs


def cifar_blocks(residual, depth):
    """Blocks per stage of the 3-stage CIFAR networks, as the original computed them.

    plain nets: (depth-2)/3 one-conv blocks in every stage, so depth = 3n+2.
    resnets: two-conv blocks split stage by stage, each stage taking
    (remaining layers) // (2 * stages left); depth 20 -> (3, 3, 3), 22 -> (3, 3, 4).
    The original silently built a shallower net for odd depths; we raise instead.
    """
    depth = _as_int('depth', depth)
    if not residual:
        n = (depth - 2) // 3
        blocks = (n, n, n)
        rule = '3n+2 with n >= 1 one-conv blocks per stage: 5, 8, 11, ..., 38, ...'
        built = 3 * n + 2
    else:
        blocks, used = [], 2
        for stages_left in (3, 2, 1):
            n = (depth - used) // (2 * stages_left)
            blocks.append(n)
            used += 2 * n
        blocks = tuple(blocks)
        rule = ('even numbers >= 8 (2 + 2 x two-conv blocks, split over the 3 stages as '
                'the original did: 20 -> (3, 3, 3), 22 -> (3, 3, 4))')
        built = used
    if built != depth or min(blocks) < 1:
        raise NetworkError(f'invalid depth {depth}: valid depths are {rule}')
    return blocks


def imagenet_blocks(depth):
    depth = _as_int('depth', depth)
    if depth not in IMAGENET_SPEC:
        raise NetworkError(f'invalid depth {depth}: valid ImageNet depths are '
                         f'{sorted(IMAGENET_SPEC)}')
    return IMAGENET_SPEC[depth][1]


def resolve_widen(secondary_partition, widen):
    """(widen rule, M) of an ImageNet IGC network.

    ``widen=None`` picks 'secondary' (double M, keep L) when ``secondary_partition`` is
    given and 'primary' (double L, keep M=2) when it is None: the README's
    ``--primary-partition=100`` then builds IGC-L100M2.
    """
    if widen is None:
        widen = 'primary' if secondary_partition is None else 'secondary'
    if widen not in WIDEN_RULES:
        raise NetworkError(f'widen={widen!r}: expected one of {sorted(WIDEN_RULES)}')
    if secondary_partition is None:
        if widen == 'secondary':
            raise NetworkError("widen='secondary' doubles M, so it needs secondary_partition")
        secondary_partition = PRIMARY_WIDEN_DEFAULT_M
    return widen, _as_int('secondary_partition', secondary_partition, positive=True)


def layout(network, depth, primary_partition, secondary_partition=None, widen=None):
    """(family, stem width, stages) of a network; every check happens here. An M left
    as None takes the network's default (DEFAULTS)."""
    if network not in FAMILIES:
        raise NetworkError(f'unknown network {network!r}: expected one of {sorted(FAMILIES)}')
    fam = FAMILIES[network]
    L = _as_int('primary_partition', primary_partition, positive=True)
    if widen is not None and not (fam.dataset == 'imagenet' and fam.igc):
        raise NetworkError(f'{network}: widen only applies to resnet_igc_imgnet_d18')

    if secondary_partition is None:
        secondary_partition = DEFAULTS[network].get('secondary_partition')
    if fam.dataset == 'cifar':
        if secondary_partition is None:
            raise NetworkError(f'{network} needs secondary_partition (M)')
        M = _as_int('secondary_partition', secondary_partition, positive=True)
        blocks = cifar_blocks(fam.residual, depth)
        C = L * M                            # the original: channel = M * L
        stages = tuple(Stage(n, C << s, stride, L if fam.igc else None)
                       for s, (n, stride) in enumerate(zip(blocks, CIFAR_STRIDES, strict=True)))
        return fam, C, stages

    blocks = imagenet_blocks(depth)
    if not fam.igc:
        # resnet_imgnet_d18.py: C = primary_partition; secondary_partition is unused.
        stages = tuple(Stage(n, L << s, stride, None)
                       for s, (n, stride) in enumerate(zip(blocks, IMAGENET_STRIDES, strict=True)))
        return fam, L, stages
    widen, M = resolve_widen(secondary_partition, widen)
    stem_rule, stage_rule = WIDEN_RULES[widen]
    stages = []
    for s, (n, stride) in enumerate(zip(blocks, IMAGENET_STRIDES, strict=True)):
        L_s, M_s = stage_rule(L, M, s)
        stages.append(Stage(n, L_s * M_s, stride, L_s))
    stem = stem_rule(L, M)
    _check_stage_inputs(network, L, M, widen, stem, stages)
    return fam, stem, tuple(stages)


def _check_stage_inputs(network, L, M, widen, stem, stages):
    """The first block of a stage splits the previous stage's channels into the stage's
    L groups (its primary conv and its projection shortcut): they must divide."""
    kin = stem
    for s, stage in enumerate(stages, start=1):
        if kin % stage.primary_partition:
            hint = (" (widen='primary' doubles L per stage, so M must be even)"
                    if widen == 'primary' else '')
            raise NetworkError(
                f'{network} with L={L}, M={M}, widen={widen!r}: stage {s} splits its {kin} '
                f'input channels into L={stage.primary_partition} groups, which does not divide '
                f'them{hint}')
        kin = stage.width


# ----------------------------------------------------------------------------- plan
# The walk over a layout, written once: ``plan`` lists every layer of a network with its
# name and attributes, ``build`` makes a symbol of it and ``igc_mx.gluon`` HybridBlocks.


@dataclasses.dataclass(frozen=True)
class Layer:
    """What every convolution layer of a plan has: its name and geometry."""
    name: str
    in_channels: int
    num_filter: int
    kernel: tuple
    stride: tuple
    pad: tuple


@dataclasses.dataclass(frozen=True)
class ConvBNLayer(Layer):
    """Convolution (no bias) -> BatchNorm -> optional ReLU (``blocks.conv_bn``)."""
    num_group: int = 1
    relu: bool = True
    momentum: float = 0.9
    bare_conv: bool = False     # the convolution called '<name>', not '<name>_conv'


@dataclasses.dataclass(frozen=True)
class IGCLayer(Layer):
    """One IGC unit (``blocks.igc_unit``); ``fused``, ``group_conv`` and ``device`` as
    given to ``build``, resolved per unit by ``blocks.unit_ops``."""
    primary_partition: int
    secondary_partition: int
    relu: bool
    momentum: float
    fused: object
    group_conv: object
    device: str


@dataclasses.dataclass(frozen=True)
class BlockPlan:
    """Units in sequence; a residual block adds its shortcut (the identity when None)
    to their output and ends in the ReLU '<name>_relu'."""
    name: str
    units: tuple                # ConvBNLayer or IGCLayer
    residual: bool
    shortcut: object = None     # ConvBNLayer: a projection


@dataclasses.dataclass(frozen=True)
class HeadPlan:
    """Average pooling -> Flatten -> FullyConnected (with bias)."""
    pool: str
    kernel: int
    global_pool: bool
    flatten: str
    fc: str
    in_features: int
    num_classes: int


@dataclasses.dataclass(frozen=True)
class NetworkPlan:
    """Every layer of a network, in order, with the names of the layers without
    parameters."""
    input_cast: object          # name of the Cast to float16 after the input, or None
    stem: ConvBNLayer
    stem_pool: object           # name of the 3x3/2 max pooling after the stem, or None
    blocks: tuple               # BlockPlan
    head: HeadPlan
    output_cast: object         # name of the Cast of the scores to float32, or None
    output: str                 # name of the SoftmaxOutput of the symbol


def plan(network, num_classes, depth, primary_partition, secondary_partition=None,
         widen=None, fused=None, group_conv=None, device='cpu', dtype='float32'):
    """NetworkPlan of ``network`` (a key of FAMILIES): the arguments of ``build``, every
    check done here."""
    num_classes = _as_int('num_classes', num_classes, positive=True)
    devices.check_device(device)
    if dtype not in ('float32', 'float16'):
        raise NetworkError(f"dtype={dtype!r}: expected 'float32' or 'float16'")
    fam, stem_width, stages = layout(network, depth, primary_partition,
                                     secondary_partition, widen)
    in_channels = DATA_SHAPES[fam.dataset][0]
    if fam.dataset == 'cifar':
        stem = ConvBNLayer('g0', in_channels, stem_width, (3, 3), (1, 1), (1, 1),
                           momentum=fam.bn_momentum)
    else:
        stem = ConvBNLayer('g0', in_channels, stem_width, (7, 7), (2, 2), (3, 3),
                           momentum=fam.bn_momentum, bare_conv=fam.naming.bare_conv)
    unit_options = {'fused': fused, 'group_conv': group_conv, 'device': device}
    blocks, kin = [], stem_width
    for s, stage in enumerate(stages, start=1):
        for b in range(stage.blocks):
            blocks.append(_block_plan(f'g{s}_b{b + 1}', fam, kin, stage,
                                      stage.stride if b == 0 else 1, unit_options))
            kin = stage.width
    head = fam.head
    float16 = dtype == 'float16'
    return NetworkPlan(
        input_cast='data_float16' if float16 else None, stem=stem,
        stem_pool='g0_pool' if fam.dataset == 'imagenet' else None, blocks=tuple(blocks),
        head=HeadPlan(head.pool, head.kernel, head.global_pool, 'flatten', head.fc, kin,
                      num_classes),
        output_cast=head.fc + '_float32' if float16 else None, output='softmax')


def _block_plan(name, fam, kin, stage, stride, unit_options):
    """One block: its units in sequence, plus (residual) shortcut and ReLU."""
    units, channels = [], kin
    last = len(fam.naming.units) - 1
    for i, suffix in enumerate(fam.naming.units):
        relu = not (fam.residual and i == last)      # a residual branch ends in BN
        s = stride if i == 0 else 1
        unit = name + suffix
        if stage.primary_partition is None:
            units.append(ConvBNLayer(unit, channels, stage.width, (3, 3), (s, s), (1, 1),
                                     relu=relu, momentum=fam.bn_momentum,
                                     bare_conv=fam.naming.bare_conv))
        else:
            L_s = stage.primary_partition
            source = kin if (i == 0 and fam.first_secondary == 'in') else stage.width
            units.append(IGCLayer(unit, channels, stage.width, (3, 3), (s, s), (1, 1),
                                  L_s, source // L_s, relu, fam.bn_momentum, **unit_options))
        channels = stage.width
    shortcut = None
    if fam.residual and kin != stage.width:
        proj = name + fam.naming.shortcut
        shortcut = ConvBNLayer(proj, kin, stage.width, (1, 1), (stride, stride), (0, 0),
                               num_group=stage.primary_partition or 1, relu=False,
                               momentum=fam.bn_momentum, bare_conv=fam.naming.bare_conv)
    return BlockPlan(name, tuple(units), fam.residual, shortcut)


# ----------------------------------------------------------------------------- symbols


def build(network, num_classes, depth, primary_partition, secondary_partition=None,
          widen=None, fused=None, group_conv=None, device='cpu', dtype='float32'):
    """Symbol of ``network`` (a key of FAMILIES), ending in SoftmaxOutput 'softmax'.
    Every argument is explicit here; ``get_symbol`` fills the defaults.

    ``fused`` picks the IGC units' form (see ``blocks.igc_unit``): one
    InterleavedGroupConv node, or the original's Reorder -> conv -> Reorder.
    ``group_conv`` selects the op of the IGC primary convolutions (False, True or
    'auto'; see ``blocks.uses_group_convolution``). Left as None, both follow ``device``
    ('cpu' or 'gpu', see ``igc_mx.devices``). ``dtype='float16'`` casts the data to
    float16 after the input and the scores back to float32 before the softmax
    (BatchNorm keeps float32 parameters and statistics, as MXNet does). Names and
    parameters never change."""
    return plan_symbol(plan(network, num_classes, depth, primary_partition,
                            secondary_partition, widen, fused, group_conv, device, dtype))


def plan_symbol(network_plan):
    """The symbol of a NetworkPlan."""
    p = network_plan
    data = mx.sym.Variable('data')
    if p.input_cast:
        data = mx.sym.Cast(data, dtype='float16', name=p.input_cast)
    data = _layer_symbol(data, p.stem)
    if p.stem_pool:
        data = mx.sym.Pooling(data=data, name=p.stem_pool, kernel=(3, 3), stride=(2, 2),
                              pad=(1, 1), pool_type='max')
    for block in p.blocks:
        data = _block_symbol(data, block)
    head = p.head
    data = mx.sym.Pooling(data=data, name=head.pool, kernel=(head.kernel, head.kernel),
                          stride=(1, 1), pool_type='avg', global_pool=head.global_pool)
    data = mx.sym.Flatten(data=data, name=head.flatten)
    data = mx.sym.FullyConnected(data=data, name=head.fc, num_hidden=head.num_classes)
    if p.output_cast:
        data = mx.sym.Cast(data, dtype='float32', name=p.output_cast)
    return mx.sym.SoftmaxOutput(data=data, name=p.output)


def _layer_symbol(data, layer):
    if isinstance(layer, IGCLayer):
        return igc_unit(data, layer.name, layer.num_filter, layer.kernel, layer.stride,
                        layer.pad, primary_partition=layer.primary_partition,
                        secondary_partition=layer.secondary_partition, relu=layer.relu,
                        momentum=layer.momentum, fused=layer.fused,
                        group_conv=layer.group_conv, device=layer.device)
    return conv_bn(data, layer.name, layer.num_filter, layer.kernel, layer.stride, layer.pad,
                   num_group=layer.num_group, relu=layer.relu, momentum=layer.momentum,
                   conv_name=layer.name if layer.bare_conv else None)


def _block_symbol(data, block):
    out = data
    for unit in block.units:
        out = _layer_symbol(out, unit)
    if not block.residual:
        return out
    shortcut = data if block.shortcut is None else _layer_symbol(data, block.shortcut)
    return mx.sym.Activation(data=shortcut + out, name=block.name + '_relu', act_type='relu')


def _as_int(what, value, positive=False):
    if isinstance(value, bool):
        raise NetworkError(f'{what}={value!r} must be an integer')
    try:
        value = operator.index(value)
    except TypeError:
        raise NetworkError(f'{what}={value!r} must be an integer') from None
    if positive and value < 1:
        raise NetworkError(f'{what}={value} must be a positive integer')
    return value


# ----------------------------------------------------------------------------- registry


@dataclasses.dataclass(frozen=True)
class Registered:
    """A registered network: ``builder(num_classes=..., depth=..., primary_partition=...,
    secondary_partition=..., **options)`` returns its symbol, ``gluon_builder`` (same
    arguments; None when it has none) its HybridBlock for ``igc_mx.gluon.get_model``."""
    builder: object
    defaults: dict      # values for arguments left out
    required: tuple     # arguments without a default
    options: object     # names of the other keyword arguments, or None when any is taken
    source: str         # 'igc_mx' for the built-in networks, else the module's file
    gluon_builder: object = None


_REGISTRY = {}


def register_network(name, builder, defaults=None, source=None, gluon_builder=None):
    """Register ``builder`` as network ``name``, and ``gluon_builder`` (optional) as its
    Gluon network.

    ``defaults`` maps arguments of ARGUMENTS to the values used when a caller leaves
    them out; by default they are the builder's own parameter defaults. Both builders
    are called with the same arguments and options; the options accepted are those of
    ``builder``. A name is registered once; registering it again from the same source
    replaces it (a module loaded again), from another source is a ValueError."""
    if not isinstance(name, str) or not name.isidentifier():
        raise NetworkError(f'network name {name!r} must be a Python identifier')
    source = source or getattr(builder, '__module__', None) or repr(builder)
    if name in _REGISTRY and _REGISTRY[name].source != source:
        raise NetworkError(f'network {name!r} is already registered from '
                         f'{_REGISTRY[name].source}; {source} cannot take its name')
    if gluon_builder is not None and not callable(gluon_builder):
        raise NetworkError(f'network {name!r}: gluon_builder={gluon_builder!r} is not '
                           'callable')
    params = inspect.signature(builder).parameters
    if defaults is None:
        defaults = {a: params[a].default for a in ARGUMENTS
                    if a in params and params[a].default is not inspect.Parameter.empty
                    and params[a].default is not None}
    required = tuple(a for a in ARGUMENTS if a not in defaults and a in params
                     and params[a].default is inspect.Parameter.empty)
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
    options = None if takes_any else tuple(p for p in params if p not in ARGUMENTS)
    _REGISTRY[name] = Registered(builder, dict(defaults), required, options, source,
                                 gluon_builder)
    return builder


def list_networks():
    """The names ``get_symbol`` accepts, sorted."""
    return sorted(_REGISTRY)


def registered(name):
    """The registry entry of ``name``; an unknown name is a ValueError listing the valid ones."""
    try:
        return _REGISTRY[name]
    except (KeyError, TypeError):
        raise NetworkError(f'unknown network {name!r}: valid names are '
                         f"{', '.join(list_networks())}") from None


def resolve_arguments(name, num_classes=None, depth=None, primary_partition=None,
                      secondary_partition=None):
    """{argument: value} of network ``name``, the defaults filled in for the ones left
    out (None); a required argument left out is a ValueError."""
    entry = registered(name)
    given = dict(zip(ARGUMENTS, (num_classes, depth, primary_partition, secondary_partition),
                     strict=True))
    values = {a: entry.defaults.get(a) if v is None else v for a, v in given.items()}
    missing = [a for a in entry.required if values[a] is None]
    if missing:
        raise NetworkError(f"{name} needs {' and '.join(missing)} (it has no default)")
    return values


def builder_arguments(name, num_classes=None, depth=None, primary_partition=None,
                      secondary_partition=None, **options):
    """The keyword arguments of network ``name``'s builders: the arguments, defaults
    filled in (``resolve_arguments``), and the options, checked against the builder's."""
    entry = registered(name)
    values = resolve_arguments(name, num_classes, depth, primary_partition,
                               secondary_partition)
    if entry.options is not None:
        unknown = sorted(set(options) - set(entry.options))
        if unknown:
            raise NetworkError(f"{name} takes no option {', '.join(map(repr, unknown))}; "
                             f"its options are {', '.join(entry.options) or 'none'}")
    return {**{a: v for a, v in values.items() if v is not None}, **options}


def get_symbol(name, num_classes=None, depth=None, primary_partition=None,
               secondary_partition=None, **options):
    """Symbol of the registered network ``name`` (see ``list_networks``).

    Arguments left out or None take the network's defaults (``DEFAULTS`` for the
    built-in ones). ``options`` go to the builder; the built-in networks take
    ``widen`` (resnet_igc_imgnet_d18), ``fused`` and ``group_conv`` (the IGC ones),
    ``device`` and ``dtype``: see ``build``. ``igc_mx.gluon.get_model`` takes the same
    arguments."""
    return registered(name).builder(**builder_arguments(
        name, num_classes, depth, primary_partition, secondary_partition, **options))


def _gluon_build(network, **arguments):
    # igc_mx.gluon builds its blocks from ``plan`` of this module, so it is imported
    # when a Gluon network is first asked for, not here.
    from .gluon.model import build as gluon_build
    return gluon_build(network, **arguments)


for _name in FAMILIES:
    register_network(_name, functools.partial(build, _name), DEFAULTS[_name], source='igc_mx',
                     gluon_builder=functools.partial(_gluon_build, _name))


def register_directory(directory):
    """Register every ``<name>.py`` of ``directory`` that defines ``get_symbol`` as
    network ``<name>``; returns the names. Modules whose name starts with ``_`` are
    left out. The train scripts' ``--network-dir``."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f'network directory {directory} does not exist')
    names = []
    for path in sorted(directory.glob('*.py')):
        if path.stem.startswith('_'):
            continue
        spec = importlib.util.spec_from_file_location(f'igc_mx_user_network_{path.stem}',
                                                      path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        if callable(getattr(module, 'get_symbol', None)):
            register_network(path.stem, module.get_symbol, source=str(path.resolve()))
            names.append(path.stem)
    return names
