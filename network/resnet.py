"""ResNet (CIFAR/SVHN): 3 stages of two-conv residual blocks, C = primary * secondary."""
from igc_mx import networks


def get_symbol(num_classes, depth, primary_partition, secondary_partition=None,
               device='cpu'):
    return networks.get_symbol('resnet', num_classes, depth, primary_partition,
                               secondary_partition, device=device)
