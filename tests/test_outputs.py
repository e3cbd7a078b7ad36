"""Every tool writes only to a regular file or a new path (igc_mx.atomic.check_target): a
device, a FIFO, a symbolic link, a folder, a path under a file, and any of the tool's own
inputs (by another path, a hard link or a symbolic link too) are refused with one line and
left as they are."""
import os
import stat
import sys
import types
from pathlib import Path

import mxnet as mx
import pytest

from igc_mx import atomic
from igc_mx.tools import evaluate, export_onnx, fuse_symbol, plot_curves, summary

from test_training import TINY_NET, train_model

KINDS = ['fifo', 'symlink', 'folder', 'under-a-file', 'character-device', 'input',
         'input-hardlink', 'input-symlink', 'input-other-path']


def make_target(kind, folder, source):
    """The path to give the tool for ``kind``; ``source`` is the tool's input."""
    path = folder / 'target'
    if kind == 'fifo':
        os.mkfifo(path)
    elif kind == 'symlink':
        (folder / 'victim').write_text('victim')
        os.symlink(folder / 'victim', path)
    elif kind == 'folder':
        path.mkdir()
    elif kind == 'under-a-file':
        path.write_text('a file')
        path = path / 'out'
    elif kind == 'character-device':
        try:   # a null device of our own: never a system one, which a bug would replace
            os.mknod(path, stat.S_IFCHR | 0o666, os.makedev(1, 3))
        except PermissionError:
            pytest.skip('making a character device needs root')
    elif kind == 'input':
        path = source
    elif kind == 'input-hardlink':
        os.link(source, path)
    elif kind == 'input-symlink':
        os.symlink(source, path)
    elif kind == 'input-other-path':
        path = source.parent / '.' / '..' / source.parent.name / source.name
    return path


def snapshot(folder):
    """Every entry under ``folder``: its kind, inode and content (or link target)."""
    seen = {}
    for root, dirs, files in os.walk(folder):
        for name in dirs + files:
            path = os.path.join(root, name)
            st = os.lstat(path)
            content = None
            if stat.S_ISREG(st.st_mode):
                with open(path, 'rb') as f:
                    content = f.read()
            elif stat.S_ISLNK(st.st_mode):
                content = os.readlink(path)
            seen[path] = (stat.S_IFMT(st.st_mode), st.st_ino, content)
    return seen


@pytest.fixture(scope='module')
def model(tmp_path_factory):
    """A checkpoint of the tiny network (random weights) and a training log."""
    folder = tmp_path_factory.mktemp('model')
    namespace = {}
    exec(TINY_NET, namespace)
    symbol = namespace['get_symbol'](10, 1)
    module = mx.mod.Module(symbol, context=mx.cpu())
    module.bind(data_shapes=[('data', (1, 3, 32, 32))], label_shapes=[('softmax_label', (1,))])
    module.init_params(mx.init.Xavier())
    mx.model.save_checkpoint(str(folder / 'tiny'), 1, symbol, *module.get_params())
    (folder / 'run.txt').write_text('Epoch[0] Train-accuracy=0.5\nEpoch[0] '
                                    'Validation-accuracy=0.25\n')
    return folder


def copy(source, folder):
    destination = folder / 'in' / source.name
    destination.parent.mkdir(exist_ok=True)
    destination.write_bytes(source.read_bytes())
    return destination


def call_evaluate(ctx, folder, target):
    params = copy(ctx.model / 'tiny-0001.params', folder)
    copy(ctx.model / 'tiny-symbol.json', folder)
    return params, lambda: evaluate.main(['--prefix', str(params)[:-len('-0001.params')],
                                          '--epoch', '1', '--data-dir', ctx.dataset, '--quiet',
                                          '--json', str(target(params))])


def call_export(ctx, folder, target):
    params = copy(ctx.model / 'tiny-0001.params', folder)
    symbol = copy(ctx.model / 'tiny-symbol.json', folder)
    return params, lambda: export_onnx.main([str(symbol), str(params), '-o', str(target(params)),
                                             '--input-shape', '1,3,32,32'])


def call_fuse(ctx, folder, target):
    symbol = copy(ctx.model / 'tiny-symbol.json', folder)
    return symbol, lambda: fuse_symbol.main([str(symbol), str(target(symbol))])


def call_summary(ctx, folder, target):
    symbol = copy(ctx.model / 'tiny-symbol.json', folder)
    return symbol, lambda: summary.main(['--symbol-file', str(symbol), '--data-shape',
                                         '3,32,32', '--save-json', str(target(symbol))])


def call_plot(ctx, folder, target):
    log = copy(ctx.model / 'run.txt', folder)
    return log, lambda: plot_curves.main([str(log), '-o', str(target(log))])


def training_argv(dataset, net_dir, folder):
    return ['--network', 'tiny', '--network-dir', str(net_dir), '--data-dir', dataset,
            '--num-epochs', '1', '--max-batches', '1', '--max-val-batches', '1',
            '--data-nthreads', '1', '--rand-seed', '1', '--model-prefix', str(folder / 'run' / 'm')]


def call_train_log(ctx, folder, target):
    """--log-file; the training records are the input."""
    rec = copy(Path(ctx.dataset) / 'train.rec', folder)
    return rec, lambda: train_model.main(training_argv(ctx.dataset, ctx.net_dir, folder) + [
        '--train-dataset', str(rec), '--log-file', str(target(rec))])


TOOLS = {
    'igc-evaluate --json': (call_evaluate, 2),
    'igc-export-onnx -o': (call_export, 2),
    'igc-fuse-symbol': (call_fuse, 1),
    'igc-summary --save-json': (call_summary, 2),
    'igc-plot-curves -o': (call_plot, 1),
    'train --log-file': (call_train_log, 2),
}


def exit_status(call):
    try:
        status = call()
    except SystemExit as exit_:
        status = exit_.code
    if isinstance(status, str):   # sys.exit(message): printed, status 1
        print(status, file=sys.stderr)
        status = 1
    return status


@pytest.mark.parametrize('kind', KINDS)
@pytest.mark.parametrize('tool', sorted(TOOLS))
def test_a_tool_writes_only_a_regular_file_or_a_new_path(tool, kind, model, dataset, net_dir,
                                                         tmp_path, capsys):
    make_call, status = TOOLS[tool]
    made = {}

    def target(source):
        if 'path' not in made:
            made['path'] = make_target(kind, tmp_path, source)
        return made['path']
    ctx = types.SimpleNamespace(model=model, dataset=dataset, net_dir=net_dir)
    source, call = make_call(ctx, tmp_path, target)
    target(source)
    before = snapshot(tmp_path)
    assert exit_status(call) == status
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    last = err.strip().splitlines()[-1]
    assert 'error: ' in last and str(made['path']) in last, last
    assert snapshot(tmp_path) == before     # nothing written, nothing replaced


@pytest.mark.parametrize('kind', ['fifo', 'symlink', 'folder', 'character-device'])
def test_training_refuses_a_checkpoint_file_that_is_not_a_regular_file(kind, dataset, net_dir,
                                                                      tmp_path, capsys):
    prefix = tmp_path / 'm'
    made = make_target(kind, tmp_path, None)
    os.rename(made, str(prefix) + '-0001.params')
    before = snapshot(tmp_path)
    with pytest.raises(SystemExit) as exit_:
        train_model.main(training_argv(dataset, net_dir, tmp_path)[:-1] + [str(prefix)])
    assert exit_.value.code == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert ': error: checkpoint file ' in last and \
        f'{prefix}-0001.params' in last, last
    assert snapshot(tmp_path) == before


@pytest.mark.parametrize('kind', ['fifo', 'symlink', 'folder', 'under-a-file',
                                  'character-device'])
def test_atomic_path_replaces_only_a_regular_file(kind, tmp_path):
    target = make_target(kind, tmp_path, None)
    before = snapshot(tmp_path)
    with pytest.raises(atomic.TargetError, match=f'^output {target} (is|lies under) '), \
            atomic.atomic_path(target) as tmp, open(tmp, 'w') as f:
        f.write('new')
    assert snapshot(tmp_path) == before
    with pytest.raises(atomic.TargetError), atomic.atomic_paths(tmp_path / 'new', target):
        pass
    assert snapshot(tmp_path) == before


def test_atomic_path_refuses_its_inputs_through_any_path(tmp_path):
    source = tmp_path / 'in.params'
    source.write_text('weights')
    os.link(source, tmp_path / 'hard')
    for alias in (source, tmp_path / 'hard', tmp_path / '.' / 'in.params'):
        with pytest.raises(atomic.TargetError, match='is one of the inputs'), \
                atomic.atomic_path(alias, inputs=[source]):
            pass
    assert source.read_text() == 'weights'
    # without inputs, a regular file is fine
    with atomic.atomic_path(tmp_path / 'hard') as tmp, open(tmp, 'w') as f:
        f.write('new')
    assert (tmp_path / 'hard').read_text() == 'new' and source.read_text() == 'weights'


def test_summary_names_a_symbol_file_it_cannot_read_and_a_bad_image_shape(model, tmp_path,
                                                                         capsys):
    for argv, expected in [
            (['--symbol-file', str(tmp_path / 'none.json')],
             f'error: symbol file {tmp_path}/none.json does not exist'),
            (['--symbol-file', str(model / 'tiny-symbol.json'), '--data-shape', '3,x'],
             "error: argument --data-shape: expected three positive sizes C,H,W such as "
             "3,224,224, got '3,x'")]:
        with pytest.raises(SystemExit) as exit_:
            summary.main(argv)
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and 'Traceback' not in err
        assert err.strip().splitlines()[-1].endswith(expected), err
