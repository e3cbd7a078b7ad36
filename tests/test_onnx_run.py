"""tools/onnx_run.py, the ONNX Runtime side of an export: bad input is one argparse error
line (exit status 2), not a traceback; outputs are saved whole."""
import json
import subprocess

import mxnet as mx
import numpy as np
import pytest

from igc_mx import onnx as igc_onnx

from conftest import REPO_ROOT

# Runs onnx_run.main on each argument list in one interpreter: {exit status, stderr}.
DRIVER = """
import contextlib, io, json, sys
sys.path.insert(0, sys.argv[1])
import onnx_run
sys.argv[0] = 'onnx_run'
results = []
for argv in json.loads(sys.argv[2]):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            status = onnx_run.main(argv)
        except SystemExit as exit_:
            status = exit_.code
    results.append((status, err.getvalue()))
print(json.dumps(results))
"""


@pytest.fixture(scope='module')
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp('onnx_run')
    symbol = mx.sym.Convolution(mx.sym.Variable('data'), kernel=(1, 1), num_filter=2,
                                name='conv')
    params = {'conv_weight': mx.nd.ones((2, 3, 1, 1)), 'conv_bias': mx.nd.zeros((2,))}
    igc_onnx.export(symbol, params, {}, (1, 3, 4, 5), root / 'model.onnx')
    np.save(root / 'images.npy', np.ones((2, 3, 4, 5), np.float32))
    np.save(root / 'wrong.npy', np.ones((2, 3, 8, 8)))
    (root / 'text.onnx').write_text('not a model')
    return root


def test_errors_and_output(files, ort_python):
    cases = [
        (['text.onnx', 'images.npy'], 'onnx_run: error: ONNX Runtime cannot load text.onnx: '),
        (['model.onnx', 'missing.npy'], 'onnx_run: error: cannot read images from missing.npy: '),
        (['model.onnx', 'wrong.npy'], 'onnx_run: error: wrong.npy holds float64 images of '
                                      'shape (2, 3, 8, 8); the model takes (N, 3, 4, 5)'),
        (['model.onnx', 'text.onnx'], 'onnx_run: error: cannot read images from text.onnx: '),
        (['model.onnx', '--benchmark', '1,x'], "onnx_run: error: argument --benchmark: "
                                               "expected positive batch sizes separated by "
                                               "commas, got '1,x'"),
        (['model.onnx', '--benchmark', '1', '--repeat', '0'],
         "onnx_run: error: argument --repeat: expected a positive integer, got '0'"),
        (['model.onnx', 'images.npy', '-o', 'out'], None),
    ]
    proc = subprocess.run([ort_python, '-c', DRIVER, str(REPO_ROOT / 'tools'),
                           json.dumps([argv for argv, _ in cases])],
                          cwd=files, capture_output=True, text=True, timeout=120,
                          env={'PATH': '/usr/bin:/bin', 'OMP_NUM_THREADS': '1'})
    assert proc.returncode == 0, proc.stderr[-3000:]
    for (argv, message), (status, err) in zip(cases, json.loads(proc.stdout), strict=True):
        if message is None:
            assert status == 0, err
            continue
        lines = err.strip().splitlines()
        assert status == 2 and 'Traceback' not in err, (argv, err)
        assert lines[-1].startswith(message), (argv, lines)
    # -o writes the file it is given (numpy's save would add .npy), whole
    np.testing.assert_array_equal(np.load(files / 'out'), np.full((2, 2, 4, 5), 3, np.float32))
