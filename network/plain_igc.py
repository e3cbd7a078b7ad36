"""Plain network of IGC units (CIFAR/SVHN): L fixed, M doubled per stage."""
from igc_mx import networks


def get_symbol(num_classes, depth, primary_partition, secondary_partition, fused=None,
               group_conv=None, device='cpu'):
    return networks.get_symbol('plain_igc', num_classes, depth, primary_partition,
                               secondary_partition, fused=fused, group_conv=group_conv,
                               device=device)
