#!/usr/bin/env python
"""Score a trained model on a record file: top-1, top-5, cross-entropy, images/s.

    python tools/evaluate.py --prefix PREFIX --epoch N --data-dir DIR [--graph original]
    python tools/evaluate.py --symbol S-symbol.json --params P.params --dataset imagenet \\
        --rec val.rec --json result.json

The logic is igc_mx.tools.evaluate (``python tools/evaluate.py --help`` lists every option).
"""
import sys

from igc_mx.tools.evaluate import main

if __name__ == '__main__':
    sys.exit(main())
