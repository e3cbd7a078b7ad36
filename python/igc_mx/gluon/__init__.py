"""Gluon API of igc_mx: the IGC layers as HybridBlocks, the networks of the registry by
name, their parameters, and the training recipe's optimizer in a ``gluon.Trainer``.

    from igc_mx import gluon as igc_gluon
    net = igc_gluon.get_model('resnet_igc', 10, 20, 24, 2)   # as networks.get_symbol
    net.hybridize()

``net.export(path)`` (after ``hybridize()`` and one forward call) writes the parameter
names and shapes of ``networks.get_symbol`` with the same arguments, so a Gluon export,
a checkpoint of the train scripts and the published symbol files are one format:
``load_checkpoint`` (or ``get_model(..., pretrained=PATH)``) loads a checkpoint into a
Gluon network, and ``igc-evaluate`` and ``igc-export-onnx`` read a Gluon export as a
checkpoint. docs/gluon.md shows each.
"""
from .layers import BatchNorm, ConvBN, FullyConnected, GroupConv, IGCUnit, Reorder
from .model import Network, ResidualBlock, get_model, list_models
from .params import initialize, load_checkpoint, load_params, set_params
from .training import trainer

__all__ = ['BatchNorm', 'ConvBN', 'FullyConnected', 'GroupConv', 'IGCUnit', 'Network',
           'Reorder', 'ResidualBlock', 'get_model', 'initialize', 'list_models',
           'load_checkpoint', 'load_params', 'set_params', 'trainer']
