"""Export a trained model to ONNX (standard ONNX ops only, any batch size).

    python tools/export_onnx.py SYMBOL.json PARAMS.params -o OUT.onnx --input-shape 1,3,32,32
    python tools/export_onnx.py --prefix PREFIX --epoch N -o OUT.onnx --input-shape 1,3,224,224

The model runs in ONNX Runtime alone (no MXNet, no igc_mx); see docs/after_training.md.
The logic is ``igc_mx.onnx``.
"""
import argparse

import mxnet as mx

from .. import model_files
from .. import onnx as igc_onnx
from ..atomic import TargetError, check_target


def input_shape(text):
    shape = model_files.sizes(text)
    if shape is None or len(shape) != 4:
        raise argparse.ArgumentTypeError(f'{text!r}: expected four positive sizes N,C,H,W, '
                                         'e.g. 1,3,224,224')
    return shape


def build_parser():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0],
                                     formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    model_files.add_model_args(parser, positional=True)
    parser.add_argument('-o', '--output', required=True, help='ONNX file to write (atomically)')
    parser.add_argument('--input-shape', type=input_shape, required=True,
                        help='N,C,H,W of the input; N is only an example: the exported '
                             'batch dimension is dynamic')
    parser.add_argument('--permutation', choices=igc_onnx.PERMUTATIONS,
                        default=igc_onnx.DEFAULT_PERMUTATION,
                        help='how channel permutations (Reorder) are written: Reshape + '
                             'Transpose, or a 1x1 Conv with a permutation matrix')
    parser.add_argument('--logits', action='store_true',
                        help='output the class scores before the softmax')
    return parser


def run(argv=None):
    """The command's work; returns what it computed (main returns the exit status)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        symbol_path, params_path, _ = model_files.files_from_args(parser, args)
        # the writer (igc_mx.onnx, through igc_mx.atomic) checks the kind of file again
        check_target(args.output, (symbol_path, params_path), '-o')
        symbol, arg_params, aux_params = model_files.load(symbol_path, params_path,
                                                          args.input_shape)
        model = igc_onnx.export(symbol, arg_params, aux_params, args.input_shape, args.output,
                                permutation=args.permutation, logits=args.logits)
    except (model_files.ModelFileError, igc_onnx.ExportError, ValueError, RuntimeError,
            mx.base.MXNetError, TargetError) as err:
        parser.exit(2, f'{parser.prog}: error: {model_files.error_line(err)}\n')
    except OSError as err:   # the output's folder is read-only or full
        parser.exit(1, f'{parser.prog}: error: cannot write -o {args.output}: '
                       f'{err.strerror or err}\n')
    print(f'{args.output}: {igc_onnx.describe(model)}')
    return model


def main(argv=None):
    run(argv)
    return 0
