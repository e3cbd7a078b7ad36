"""Import ``<network-dir>/<name>.py`` and call its ``get_symbol``."""
import importlib.util
import os


def load_symbol(args, script_dir):
    """``get_symbol(num_classes, depth, primary_partition=, secondary_partition=,
    **network_args)`` of module ``args.network`` in ``args.network_dir``."""
    net_dir = args.network_dir or os.path.join(script_dir, 'network')
    path = os.path.join(net_dir, args.network + '.py')
    if not os.path.isfile(path):
        raise FileNotFoundError('network %r not found: no file %s' % (args.network, path))
    spec = importlib.util.spec_from_file_location('igc_network_' + args.network, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    kwargs = dict(args.network_arg or [])
    # A partition left unset takes the module's own default (e.g. ResNet-18 C=64).
    if args.primary_partition is not None:
        kwargs['primary_partition'] = args.primary_partition
    kwargs['secondary_partition'] = args.secondary_partition
    return module.get_symbol(args.num_classes, args.depth, **kwargs)
