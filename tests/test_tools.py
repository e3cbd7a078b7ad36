"""The command-line tools as installed: the console scripts of pyproject.toml, each the
main(argv) of an igc_mx.tools module, run in-process; and the tools/*.py entry points
of a checkout. Each tool's own behaviour is tested in the files named after it."""
import inspect
import json
import re
import runpy
import sys
import tomllib
from importlib import import_module
from pathlib import Path

import mxnet as mx
import pytest

from igc_mx import networks
from igc_mx.datasets import synthetic_cifar
from igc_mx.tools import (
    fuse_symbol,
    launch,
    make_rec,
    plot_curves,
    summary,
)

REPO = Path(__file__).resolve().parents[1]


def console_scripts():
    with open(REPO / 'pyproject.toml', 'rb') as f:
        return tomllib.load(f)['project']['scripts']


#: the one table of commands: pyproject.toml's console scripts -> their modules
COMMANDS = {command: import_module(target.split(':')[0])
            for command, target in console_scripts().items()}


def test_console_scripts_are_the_main_functions_of_the_tool_modules():
    for command, target in console_scripts().items():
        module_name, function = target.split(':')
        assert module_name.startswith('igc_mx.tools.') and function == 'main', command
        main = COMMANDS[command].main
        assert list(inspect.signature(main).parameters) == ['argv'], command


def test_the_readme_lists_every_command_and_its_checkout_script():
    readme = (REPO / 'README.md').read_text()
    table = readme[readme.index('## Tools'):].split('\n## ')[0]
    rows = re.findall(r'^\| `(igc-[a-z-]+)` \| `([a-z_]+\.py)` \|', table, re.M)
    assert sorted(command for command, _ in rows) == sorted(console_scripts())
    for command, script in rows:
        entry = (REPO / 'tools' / script).read_text()
        module = COMMANDS[command].__name__
        assert f'from {module} import main' in entry, (command, script)


@pytest.mark.parametrize('command', sorted(COMMANDS))
def test_every_command_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_:
        COMMANDS[command].main(['--help'])
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith('usage: ')


def test_make_rec_then_verify(tmp_path, capsys):
    archive = synthetic_cifar.write_archive(str(tmp_path / 'c.tar.gz'), 20, 10, seed=1)
    out = tmp_path / 'rec'
    assert make_rec.main(['cifar10', archive, str(out), '--workers', '1', '--quiet']) == 0
    assert make_rec.main(['verify', str(out), '--workers', '1']) == 0
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['command'].startswith(f'igc-make-rec cifar10 {archive} {out}')
    assert make_rec.main(['verify', str(tmp_path / 'none')]) == 1
    assert 'make_rec: error:' in capsys.readouterr().err


def test_summary_fuse_symbol_and_plot_curves(tmp_path, capsys):
    assert summary.main(['--network', 'resnet', '--depth', '20', '--primary-partition', '16',
                         '--save-json', str(tmp_path / 'r-symbol.json')]) == 0
    assert 'total: 0.2725M parameters' in capsys.readouterr().out
    unfused = tmp_path / 'u-symbol.json'
    networks.get_symbol('resnet_igc', 10, 8, 4, 2, fused=False).save(str(unfused))
    assert fuse_symbol.main([str(unfused), str(tmp_path / 'f-symbol.json')]) == 0
    assert '6 IGC unit(s) fused' in capsys.readouterr().out
    fused = mx.sym.load(str(tmp_path / 'f-symbol.json'))
    assert fused.list_arguments() == mx.sym.load(str(unfused)).list_arguments()
    log = tmp_path / 'train.log'
    log.write_text('x Epoch[0] Train-accuracy=0.25\nx Epoch[0] Validation-accuracy=0.5\n')
    assert plot_curves.main([str(log), '-o', str(tmp_path / 'c.png')]) == 0
    assert (tmp_path / 'c.png').read_bytes()[:4] == b'\x89PNG'
    with pytest.raises(SystemExit, match='error: no "Epoch'):
        plot_curves.main([str(tmp_path / 'r-symbol.json'), '-o', str(tmp_path / 'd.png')])


def test_launch_runs_every_role(tmp_path):
    roles = tmp_path / 'roles'
    roles.mkdir()
    code = (f'import os, pathlib; pathlib.Path({str(roles)!r}, os.environ["DMLC_ROLE"] + '
            'os.environ["DMLC_TASK_ID"]).touch()')
    assert launch.main(['-n', '2', '-s', '1', '--timeout', '60', sys.executable, '-c',
                        code]) == 0
    assert sorted(p.name for p in roles.iterdir()) == ['scheduler0', 'server0', 'worker0',
                                                      'worker1']


@pytest.mark.parametrize('script', sorted(p.name for p in (REPO / 'tools').glob('*.py')))
def test_checkout_entry_points_run_the_package_tools(script, monkeypatch, capsys):
    monkeypatch.setattr(sys, 'argv', [script, '--help'])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(REPO / 'tools' / script), run_name='__main__')
    assert exit_.value.code == 0
    assert capsys.readouterr().out.startswith('usage: ' + script)
