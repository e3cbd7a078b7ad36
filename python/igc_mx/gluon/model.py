"""The networks of the registry as Gluon HybridBlocks.

``Network`` makes the blocks of a ``networks.plan``, the layer list from which
``networks.build`` makes the symbol: the same layers, names and attributes, so that
``net.export`` writes the parameters of ``networks.get_symbol`` (names and shapes) and
the same layers. ``get_model`` is ``get_symbol``'s counterpart, by name through the
registry.
"""
import os
import tempfile

from mxnet.gluon import HybridBlock, nn

from .. import networks
from ..atomic import atomic_path
from . import params as gparams
from .layers import ConvBN, FullyConnected, IGCUnit, NamedOp, exact_names


def _layer(spec, prefix):
    """The block of a ConvBNLayer or IGCLayer of a plan."""
    if isinstance(spec, networks.IGCLayer):
        return IGCUnit(spec.num_filter, spec.kernel, spec.stride, spec.pad,
                       spec.primary_partition, spec.secondary_partition, relu=spec.relu,
                       momentum=spec.momentum, fused=spec.fused, group_conv=spec.group_conv,
                       device=spec.device, in_channels=spec.in_channels, prefix=prefix)
    return ConvBN(spec.num_filter, spec.kernel, spec.stride, spec.pad, spec.num_group,
                  relu=spec.relu, momentum=spec.momentum, bare_conv=spec.bare_conv,
                  in_channels=spec.in_channels, prefix=prefix)


class ResidualBlock(HybridBlock):
    """A residual BlockPlan: ``body`` (its units), the projection ``shortcut`` (None: the
    identity), their sum and the ReLU ``'<name>_relu'``."""

    def __init__(self, block_plan, **kwargs):
        super().__init__(prefix=block_plan.name + '_', **kwargs)
        start = len(block_plan.name) + 1      # unit names extend the block's: 'g1_b1_conv1'
        with self.name_scope():
            self.body = nn.HybridSequential(prefix='')
            with self.body.name_scope():
                for unit in block_plan.units:
                    self.body.add(_layer(unit, unit.name[start:] + '_'))
            shortcut = block_plan.shortcut
            self.shortcut = None if shortcut is None else _layer(shortcut,
                                                                 shortcut.name[start:] + '_')

    def hybrid_forward(self, F, x):
        out = self.body(x)
        shortcut = x if self.shortcut is None else self.shortcut(x)
        with exact_names():
            out = F.elemwise_add(shortcut, out, name=self.name + '_plus')
            return F.Activation(out, act_type='relu', name=self.name + '_relu')


class Network(HybridBlock):
    """The HybridBlock of a ``networks.NetworkPlan``: ``features`` (the input cast, the
    stem, the blocks, the pooling and flatten) and ``output`` (the classifier and the
    output cast). It computes the class scores: the symbol's layers without its
    SoftmaxOutput; train it with a loss such as ``gluon.loss.SoftmaxCrossEntropyLoss``.
    ``plan`` is the plan it was built from."""

    def __init__(self, network_plan, prefix='', params=None):
        super().__init__(prefix=prefix, params=params)
        self.plan = p = network_plan
        with self.name_scope():
            self.features = nn.HybridSequential(prefix='')
            self.output = nn.HybridSequential(prefix='')
        with self.features.name_scope():
            if p.input_cast:
                self.features.add(NamedOp('Cast', p.input_cast, dtype='float16'))
            self.features.add(_layer(p.stem, p.stem.name + '_'))
            if p.stem_pool:
                self.features.add(NamedOp('Pooling', p.stem_pool, kernel=(3, 3), stride=(2, 2),
                                          pad=(1, 1), pool_type='max'))
            for block in p.blocks:
                if block.residual:
                    self.features.add(ResidualBlock(block))
                else:
                    self.features.add(*(_layer(unit, unit.name + '_') for unit in block.units))
            head = p.head
            self.features.add(NamedOp('Pooling', head.pool, kernel=(head.kernel, head.kernel),
                                      stride=(1, 1), pool_type='avg',
                                      global_pool=head.global_pool),
                              NamedOp('Flatten', head.flatten))
        with self.output.name_scope():
            self.output.add(FullyConnected(head.num_classes, head.in_features,
                                           prefix=head.fc + '_'))
            if p.output_cast:
                self.output.add(NamedOp('Cast', p.output_cast, dtype='float32'))
        if p.input_cast:
            self.cast('float16')        # BatchNorm keeps float32

    def hybrid_forward(self, F, x):
        return self.output(self.features(x))

    def export(self, path, epoch=0, remove_amp_cast=True):
        """``HybridBlock.export``: ``path-symbol.json`` and ``path-NNNN.params`` (``arg:`` and
        ``aux:`` names, as a checkpoint), each file written atomically, the parameters
        last. Needs ``hybridize()`` and one forward call first."""
        directory, base = os.path.split(os.path.abspath(os.fspath(path)))
        os.makedirs(directory, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory) as tmp:
            super().export(os.path.join(tmp, base), epoch, remove_amp_cast)
            for name in (f'{base}-symbol.json', f'{base}-{epoch:04d}.params'):
                with atomic_path(os.path.join(directory, name)) as final:
                    os.replace(os.path.join(tmp, name), final)


def build(network, **arguments):
    """The Gluon builder of the built-in networks: ``Network`` of
    ``networks.plan(network, **arguments)`` (the arguments of ``networks.build``)."""
    return Network(networks.plan(network, **arguments))


def list_models():
    """The names ``get_model`` accepts: the registered networks with a Gluon builder."""
    return [name for name in networks.list_networks()
            if networks.registered(name).gluon_builder is not None]


def get_model(name, num_classes=None, depth=None, primary_partition=None,
              secondary_partition=None, pretrained=False, ctx=None, **options):
    """The Gluon network ``name`` (see ``list_models``), with the arguments, defaults and
    options of ``networks.get_symbol``; its ``export`` has the symbol's parameters.

    ``pretrained=False`` initializes the parameters as the training recipe does
    (``params.initialize``); the path of a ``.params`` file (a checkpoint of
    train_model.py, or a Gluon export) loads them from it (``params.load_params``).
    ``ctx``: the context(s) of the parameters (default: the current context)."""
    valid = list_models()
    if name not in valid:
        if name in networks.list_networks():
            raise networks.NetworkError(
                f'network {name!r} has no Gluon builder (register_network(..., '
                f"gluon_builder=...)); Gluon networks: {', '.join(valid)}")
        raise networks.NetworkError(f"unknown network {name!r}: valid names are "
                                    f"{', '.join(valid)}")
    arguments = networks.builder_arguments(name, num_classes, depth, primary_partition,
                                           secondary_partition, **options)
    net = networks.registered(name).gluon_builder(**arguments)
    if pretrained is False:
        gparams.initialize(net, ctx)
    elif isinstance(pretrained, (str, os.PathLike)):
        gparams.load_params(net, pretrained, ctx)
    else:
        raise networks.NetworkError(f'pretrained={pretrained!r}: expected False or the path '
                                    'of a .params file (igc_mx has no model store)')
    return net
