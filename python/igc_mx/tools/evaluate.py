"""Score a trained model on a record file with its recipe's validation preprocessing.

    python tools/evaluate.py --prefix runs/main/weights/resnet_igc --epoch 6 \\
        --data-dir runs/main/data/rec
    python tools/evaluate.py --symbol IGC-L16M16-symbol.json --params IGC-L16M16.params \\
        --dataset imagenet --rec imagenet_val.rec --json result.json

The images go through the validation iterator that training used for the dataset
(``igc_mx.training.data``, normalization and size from ``igc_mx.training.presets``),
every image counted once (``igc_mx.scoring``). ``--graph`` runs the model with the fast
ops (default) or with the 2017 original's ops; the parameters are the same.
Prints one results row: top-1, top-5, cross-entropy, images, images/s; ``--json``
writes the same values.
"""
import argparse
import json
import math
import os
import sys
import time

import cv2
import mxnet as mx
import numpy as np

from .. import inference, model_files, recordio, scoring
from ..atomic import TargetError, atomic_path, check_target
from ..training import args as targs
from ..training import data, presets, records
from ..training.config import DataConfig
from ..training.fit import contexts

#: the validation record file that train_model.py / train_imagenet.py read by default
#: by the preset's readers (presets.Preset.iterators)
VAL_RECORDS = {'small': 'test.rec', 'imagenet': 'imagenet_val.rec'}
TOP_K = 5


def build_parser():
    parser = argparse.ArgumentParser(
        description=__doc__.split('\n\n')[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    model_files.add_model_args(parser)
    parser.add_argument('--graph', choices=model_files.GRAPHS, default='default',
                        help="run the ops the builders choose for the device ('default': the "
                             "fast ops on the CPU, see igc_mx.devices) or the original's "
                             "Reorder, 1x1 Convolution and Convolution ('original'); same "
                             "parameters")
    parser.add_argument('--no-optimize', action='store_true',
                        help='run the graph as it is, without folding BatchNorm and ReLU '
                             'into the convolutions (igc_mx.inference.optimize)')
    g = parser.add_argument_group('Data', "the dataset's validation recipe")
    g.add_argument('--dataset', choices=sorted(presets.DATASETS), default='cifar10',
                   help='dataset preset: normalization, image size and validation iterator')
    g.add_argument('--data-dir', help='directory of the record files (default data/<dataset>)')
    g.add_argument('--val-dataset', help='record file in --data-dir (default: the one the '
                                         'train script reads, test.rec or imagenet_val.rec)')
    g.add_argument('--rec', help='record file to score (instead of --data-dir/--val-dataset)')
    g.add_argument('--data-shape', type=targs.positive_int, help='image side (preset)')
    g.add_argument('--mean-rgb', type=targs.numbers, help='mean per channel, r,g,b (preset)')
    g.add_argument('--std-rgb', type=targs.positive_numbers,
                   help='std per channel, r,g,b (preset)')
    g.add_argument('--fb-mean', action='store_true',
                   help="ImageNet: fb.resnet.torch's mean/std, as train_imagenet.py --fb-mean")
    g.add_argument('--data-nthreads', type=targs.positive_int, default=4, help='decoding threads')
    r = parser.add_argument_group('Run')
    r.add_argument('--batch-size', type=targs.positive_int, default=100,
                   help='images per batch (at most the number of records)')
    r.add_argument('--gpus', type=targs.gpu_ids, default=(),
                   help='GPU ids, e.g. 0,1; empty: the CPU')
    r.add_argument('--max-batches', type=targs.positive_int, help='score only the first N batches')
    r.add_argument('--json', help='write the results to this JSON file (atomically)')
    r.add_argument('--quiet', action='store_true', help='no progress bar')
    return parser


def record_file(args):
    if args.rec:
        return args.rec
    data_dir = args.data_dir or os.path.join('data', args.dataset)
    default = VAL_RECORDS[presets.DATASETS[args.dataset].iterators]
    return os.path.join(data_dir, args.val_dataset or default)


def data_config(args):
    """The validation side of the dataset's recipe over the record file ``args`` name, once
    the file is checked and its images fit the recipe's size (``check_image_size``); the
    batch is at most the number of records."""
    rec = records.check_rec(record_file(args), args.dataset)
    count = records.count_records(rec)
    batch = min(args.batch_size, count) if count else args.batch_size
    config = DataConfig.for_validation(args.dataset, rec, batch, args.data_nthreads,
                                       args.data_shape, args.mean_rgb, args.std_rgb,
                                       args.fb_mean)
    if args.data_shape is None:
        check_image_size(config)
    return config


def check_image_size(config):
    """ValueError when the recipe reads each record's own image (CIFAR, SVHN) and the first
    image of ``config.val_rec`` is not of the preset's size: MXNet would crop or pad it
    without a word. ``--data-shape`` states the size instead."""
    if config.iterators != 'small':
        return
    first = recordio.scan_records(config.val_rec)[0]
    image = recordio.unpack_image_record(recordio.read_record(config.val_rec, first))[3]
    height, width = cv2.imdecode(np.frombuffer(image, np.uint8), cv2.IMREAD_UNCHANGED).shape[:2]
    side = config.image_shape[1]
    if (height, width) != (side, side):
        raise ValueError(f'record file {config.val_rec} holds {width}x{height} images; the '
                         f'{config.dataset} preset reads {side}x{side} images: pass '
                         f'--data-shape {height if height == width else "SIDE"} to score '
                         'the records at another size')


def check_labels(rec, num_classes):
    """ValueError naming the first record of ``rec`` whose label is not a class of a model
    with ``num_classes`` outputs (an integer in 0..num_classes-1)."""
    try:
        recordio.scan_records(rec, num_classes)
    except recordio.RecordIOError as err:
        if not err.problem.startswith('label '):
            raise ValueError(f'record file {rec}: {err}') from None
        label = err.problem.split()[1]
        raise ValueError(f'record file {rec}: label {label} at byte {err.offset} (record '
                         f'{err.record}) is not a class of the model: it has {num_classes} '
                         f'classes, 0..{num_classes - 1}') from None


def inputs_of(symbol_path, params_path, rec):
    """The files a run reads, which --json must not name."""
    return (symbol_path, params_path, rec, os.path.splitext(rec)[0] + '.idx')


def with_softmax_head(symbol):
    """Symbols that end in class scores get the SoftmaxOutput that training uses."""
    if json.loads(symbol.tojson())['nodes'][-1]['op'] == 'SoftmaxOutput':
        return symbol
    return mx.sym.SoftmaxOutput(symbol, name='softmax')


def metrics(num_classes):
    return mx.metric.CompositeEvalMetric([
        mx.metric.create('acc'),
        mx.metric.create('top_k_accuracy', top_k=max(2, min(TOP_K, num_classes))),
        mx.metric.create('ce')])


def evaluate(symbol, arg_params, aux_params, val_iter, contexts=None, max_batches=None,
             progress=None):
    """Score ``symbol`` on ``val_iter``; returns {top1, top5 (fractions), cross_entropy,
    num_images, images_per_s}. Padding in the last batch is not counted.
    ``progress`` is called after each batch with the number of images done."""
    symbol = with_softmax_head(symbol)
    labels = [n for n in symbol.list_arguments() if n.endswith('_label')]
    mod = scoring.Module(symbol, label_names=labels, context=contexts or [mx.cpu()])
    (data_desc,) = val_iter.provide_data
    batch = data_desc.shape[0]
    mod.bind(data_shapes=[('data', data_desc.shape)],
             label_shapes=[(labels[0], (batch,))], for_training=False)
    mod.set_params(arg_params, aux_params, allow_missing=False, allow_extra=True)
    _, out_shapes, _ = model_files.infer_shape(symbol, data=data_desc.shape)
    metric = metrics(out_shapes[0][-1])
    count = [0]

    def counted(param):
        batch_images = batch - param.locals['batch'].pad
        count[0] += batch_images
        if progress:
            progress(batch_images)

    start = time.perf_counter()
    values = dict(mod.score(val_iter, metric, num_batch=max_batches,
                            batch_end_callback=counted))
    seconds = time.perf_counter() - start
    top_k = [v for k, v in values.items() if k.startswith('top_k_accuracy')]
    return {'top1': values['accuracy'], 'top5': top_k[0],
            'cross_entropy': values['cross-entropy'], 'num_images': count[0],
            'images_per_s': count[0] / seconds if seconds > 0 else float('nan')}


def results_row(label, graph, result):
    return (f"model={label} graph={graph} optimized={'yes' if result['optimized'] else 'no'} "
            f"images={result['num_images']} "
            f"top1={100 * result['top1']:.3f}% top5={100 * result['top5']:.3f}% "
            f"cross_entropy={result['cross_entropy']:.4f} "
            f"images_per_s={result['images_per_s']:.1f}")


def run(argv=None):
    """The command's work; returns what it computed (main returns the exit status)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        symbol_path, params_path, label = model_files.files_from_args(parser, args)
        rec = record_file(args)
        if args.json:
            check_target(args.json, inputs_of(symbol_path, params_path, rec), '--json')
        config = data_config(args)
        batch, count = config.val_batch_size, records.count_records(rec)
        shape = (batch, *config.image_shape)
        device = 'gpu' if args.gpus else 'cpu'
        symbol, arg_params, aux_params = model_files.load(
            symbol_path, params_path, shape, args.graph, device)
        check_labels(rec, model_files.infer_shape(symbol, data=shape)[1][0][-1])
        if not args.no_optimize:
            symbol, arg_params, aux_params = inference.optimize(
                symbol, arg_params, aux_params, shape, device)
        val_iter = data.validation_iter(config)
        total = count and math.ceil(count / batch)
        if total and args.max_batches:
            total = min(total, args.max_batches)
        result = _run(symbol, arg_params, aux_params, val_iter, contexts(args.gpus),
                      args.max_batches, total, args.quiet)
        if not result['num_images']:
            raise ValueError(f'no images read from {rec}')
        result = {'model': label, 'symbol': symbol_path, 'params': params_path,
                  'graph': args.graph, 'optimized': not args.no_optimize,
                  'dataset': args.dataset, 'rec': rec, 'batch_size': batch, **result}
        print(results_row(label, args.graph, result))
        if args.json:
            write_json(args.json, result, inputs_of(symbol_path, params_path, rec))
    except (model_files.ModelFileError, records.RecordFileError, ValueError, RuntimeError,
            mx.base.MXNetError, TargetError) as err:
        # MXNet's bind errors are RuntimeErrors whose last line says what went wrong
        parser.exit(2, f'{parser.prog}: error: {model_files.error_line(err)}\n')
    except OSError as err:   # the --json file: its folder is read-only or full
        parser.exit(1, f'{parser.prog}: error: cannot write --json {args.json}: '
                       f'{err.strerror or err}\n')
    return result


def write_json(path, result, inputs):
    with atomic_path(path, inputs, '--json') as tmp, open(tmp, 'w') as f:
        json.dump(result, f, indent=1)
        f.write('\n')


def main(argv=None):
    run(argv)
    return 0


def _run(symbol, arg_params, aux_params, val_iter, contexts, max_batches, total, quiet):
    from tqdm import tqdm
    with tqdm(total=total, unit='batch', disable=True if quiet else None,
              file=sys.stderr, leave=False) as bar:
        return evaluate(symbol, arg_params, aux_params, val_iter, contexts, max_batches,
                        progress=lambda images: bar.update(1))
