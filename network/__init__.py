"""Entry points with the 2017 original's module names and ``get_symbol`` signatures.

Each module is one call into :func:`igc_mx.networks.get_symbol`; the architectures
themselves are the tables in ``igc_mx.networks``. Scripts at the repository root load
them as ``importlib.import_module('network.' + name)``.
"""
NAMES = ('plain', 'plain_igc', 'resnet', 'resnet_igc',
         'resnet_imgnet_d18', 'resnet_igc_imgnet_d18')
