"""IGC ResNet-18 (ImageNet).

widen='secondary' keeps L and doubles M per stage (IGC-L4M32, IGC-L16M16);
widen='primary' keeps M and doubles L (IGC-L100M2, M=2 when secondary_partition is
None). widen=None picks 'secondary' if secondary_partition is given, else 'primary'.
fused=False builds the original's Reorder -> 1x1 conv -> Reorder node list (same
parameters as the default fused units); left as None, fused and group_conv follow
device ('cpu' or 'gpu', see igc_mx.devices).
"""
from igc_mx import networks


def get_symbol(num_classes=None, depth=None, primary_partition=None, secondary_partition=None,
               widen=None, fused=None, group_conv=None, device='cpu'):
    return networks.get_symbol('resnet_igc_imgnet_d18', num_classes, depth,
                               primary_partition, secondary_partition, widen=widen,
                               fused=fused, group_conv=group_conv, device=device)
