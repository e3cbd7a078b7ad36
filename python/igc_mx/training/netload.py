"""The network named by a train script's arguments, built through the registry."""
from .. import networks


def load_symbol(args):
    """``igc_mx.networks.get_symbol(args.network, num_classes, depth, primary_partition,
    secondary_partition, **network_args)``, after registering the modules of
    ``args.network_dir`` when it is given. Unset values take the network's defaults
    (e.g. ResNet-18 C=64)."""
    if args.network_dir:
        networks.register_directory(args.network_dir)
    return networks.get_symbol(args.network, args.num_classes, args.depth,
                               args.primary_partition, args.secondary_partition,
                               **dict(args.network_arg or []))
