"""ResNet-18 (ImageNet), C = primary_partition; secondary_partition is unused."""
from igc_mx import networks


def get_symbol(num_classes=None, depth=None, primary_partition=None, secondary_partition=None,
               device='cpu'):
    return networks.get_symbol('resnet_imgnet_d18', num_classes, depth, primary_partition,
                               secondary_partition, device=device)
