"""The IGC stages at which the GPU kernels are checked, timed and counted: the
first stage of each of the paper's ImageNet IGC networks at batch 64, and the
three stages of CIFAR resnet_igc L24M2 at batch 128."""
from collections import namedtuple

Stage = namedtuple('Stage', 'label batch channels side L M')

STAGES = [
    Stage('CIFAR L24M2 stage 1', 128, 48, 32, 24, 2),
    Stage('CIFAR L24M2 stage 2', 128, 96, 16, 24, 4),
    Stage('CIFAR L24M2 stage 3', 128, 192, 8, 24, 8),
    Stage('ImageNet L4M32 stage 1', 64, 128, 56, 4, 32),
    Stage('ImageNet L16M16 stage 1', 64, 256, 56, 16, 16),
    Stage('ImageNet L100M2 stage 1', 64, 200, 56, 100, 2),
]
# In every stage: the primary conv is a 3x3 GroupConvolution with L groups
# (stride 1, pad 1, C filters); the fused secondary conv an InterleavedGroupConv
# with L and M (K = C/M channels per group); each Reorder permutes C channels.
