"""Plain network (CIFAR/SVHN): 3 stages of Conv-BN-ReLU, C = primary * secondary."""
from igc_mx import networks


def get_symbol(num_classes, depth, primary_partition, secondary_partition=None,
               device='cpu'):
    return networks.get_symbol('plain', num_classes, depth, primary_partition,
                               secondary_partition, device=device)
