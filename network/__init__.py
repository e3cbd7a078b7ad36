"""The 2017 original's network modules, as compatibility entry points.

Each ``network/<name>.py`` keeps the original module name and ``get_symbol`` signature and
is one call into the registry, :func:`igc_mx.networks.get_symbol`, which holds the
architectures and the defaults (an argument left as None takes the network's default).
From the repository root::

    from network import resnet_igc
    symbol = resnet_igc.get_symbol(10, 20, 24, 2)
    # the same as igc_mx.networks.get_symbol('resnet_igc', 10, 20, 24, 2)

New code, the train scripts and the tools use ``igc_mx.networks.get_symbol(name, ...)``
and ``igc_mx.networks.list_networks()`` directly.
"""
NAMES = ('plain', 'plain_igc', 'resnet', 'resnet_igc',
         'resnet_imgnet_d18', 'resnet_igc_imgnet_d18')
