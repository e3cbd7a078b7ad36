"""Which op each IGC layer runs on each device, when the builders are left to choose
(``fused=None``, ``group_conv=None``: their defaults).

CPU: the fast ops. Every IGC unit's Reorder -> 1x1 conv -> Reorder is one
InterleavedGroupConv, and primary convolutions of up to
``blocks.AUTO_GROUP_CONV_MAX_PER_GROUP`` filters per group are GroupConvolution
(``group_conv='auto'``; measured on whole networks: docs/group_conv.md).

GPU: a fast op only at the layer shapes where ``scripts/gpu_check.sh`` measured it
faster on a GPU than MXNet's own graph for that layer (cuDNN ``Convolution`` for a
primary convolution; Reorder -> cuDNN 1x1 ``Convolution`` -> Reorder for the
secondary one), i.e. a ratio above 1 in the "fused unit vs ..." and
"GroupConvolution vs cuDNN" columns of its results (gpu_check.md). Those shapes are
the two sets below. Both are empty: no GPU has run the check yet, so a symbol built
for the GPU is the original graph. Parameter names and shapes are the same either
way, so checkpoints move between CPU and GPU runs.
"""

DEVICES = ('cpu', 'gpu')

#: (channels C, primary_partition L, secondary_partition M) of the IGC units whose
#: InterleavedGroupConv measured faster than the original unit on a GPU
GPU_FUSED_UNITS = frozenset()
#: (channels C, num_group) of the primary convolutions where GroupConvolution
#: measured faster than cuDNN's Convolution on a GPU
GPU_GROUP_CONVS = frozenset()


def check_device(device):
    if device not in DEVICES:
        raise ValueError(f'device={device!r}: expected one of {DEVICES}')
    return device


def fused(device, channels, primary_partition, secondary_partition):
    """Whether an IGC unit's secondary convolution is one InterleavedGroupConv node."""
    if check_device(device) == 'cpu':
        return True
    return (channels, primary_partition, secondary_partition) in GPU_FUSED_UNITS


def group_conv(device, channels, num_group):
    """``group_conv`` for ``blocks.primary_conv_op``: 'auto' on the CPU; on the GPU,
    True only for a measured shape."""
    if check_device(device) == 'cpu':
        return 'auto'
    return (channels, num_group) in GPU_GROUP_CONVS
