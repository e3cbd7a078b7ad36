"""igc_mx: Interleaved Group Convolutions (Zhang et al., ICCV 2017) on MXNet 1.9.1.

Importing the package loads the compiled operator library once, which makes
``mx.nd.Reorder`` and ``mx.sym.Reorder`` available (the original's operator, same
name and parameters, so its symbol files load unchanged), and
``InterleavedGroupConv``, the fused Reorder -> 1x1 group conv -> Reorder
(docs/fused.md; ``igc_mx.rewrite`` puts it into saved symbols).
"""
from ._library import build_info, ensure_loaded

ensure_loaded()

from .blocks import conv_bn, igc_unit  # noqa: E402  (needs the ops loaded)

__all__ = ['build_info', 'conv_bn', 'igc_unit']
__version__ = '0.1.0'
