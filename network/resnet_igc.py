"""ResNet of IGC units (CIFAR/SVHN). As in the original, secondary_partition only sets
the width C = L * M; inside blocks the 1x1 convs use kin/L and kout/L groups."""
from igc_mx import networks


def get_symbol(num_classes, depth, primary_partition, secondary_partition, fused=None,
               group_conv=None, device='cpu'):
    return networks.get_symbol('resnet_igc', num_classes, depth, primary_partition,
                               secondary_partition, fused=fused, group_conv=group_conv,
                               device=device)
