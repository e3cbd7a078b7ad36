"""The network named by a train script's arguments, built through the registry."""
from .. import networks


def device_of(args):
    """'gpu' when the script trains on GPUs (--gpus), else 'cpu'."""
    return 'gpu' if (getattr(args, 'gpus', '') or '').strip() else 'cpu'


def load_symbol(args):
    """``igc_mx.networks.get_symbol(args.network, num_classes, depth, primary_partition,
    secondary_partition, device=..., **network_args)``, after registering the modules
    of ``args.network_dir`` when it is given. Unset values take the network's
    defaults (e.g. ResNet-18 C=64); the device (from --gpus) picks the ops of the
    IGC layers (igc_mx.devices) for the networks that take it, unless
    --network-arg fused=/group_conv= say otherwise."""
    if args.network_dir:
        networks.register_directory(args.network_dir)
    options = dict(args.network_arg or [])
    accepted = networks.registered(args.network).options
    if accepted is None or 'device' in accepted:
        options.setdefault('device', device_of(args))
    return networks.get_symbol(args.network, args.num_classes, args.depth,
                               args.primary_partition, args.secondary_partition, **options)
