"""ResNet-18 (ImageNet), C = primary_partition; secondary_partition is unused."""
from igc_mx import networks


def get_symbol(num_classes=1000, depth=18, primary_partition=64, secondary_partition=None):
    return networks.get_symbol('resnet_imgnet_d18', num_classes, depth, primary_partition,
                               secondary_partition)
