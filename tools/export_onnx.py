#!/usr/bin/env python
"""Export a trained model to ONNX: standard ONNX ops only, dynamic batch dimension.

    python tools/export_onnx.py SYMBOL.json PARAMS.params -o OUT.onnx --input-shape 1,3,32,32
    python tools/export_onnx.py --prefix PREFIX --epoch N -o OUT.onnx --input-shape 1,3,224,224

The logic is igc_mx.tools.export_onnx and igc_mx.onnx (``--help`` lists every option).
"""
import sys

from igc_mx.tools.export_onnx import main

if __name__ == '__main__':
    sys.exit(main())
