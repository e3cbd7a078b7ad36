"""igc-launch's command line: every option that does not fit is one argparse error line
naming the value and what was expected (exit status 2), before anything starts."""
import pytest

from igc_mx.tools import launch


@pytest.fixture
def files(tmp_path, monkeypatch):
    """A working directory with hostfiles, and a PATH of stand-in programs only."""
    bin_dir = tmp_path / 'bin'
    bin_dir.mkdir()
    monkeypatch.setenv('PATH', str(bin_dir))
    monkeypatch.chdir(tmp_path)
    (tmp_path / 'hosts').write_text('node-a\nnode-b:2222 slots=4\n')
    (tmp_path / 'empty').write_text('')
    (tmp_path / 'blank').write_text('\n  \n# only a comment\n')
    (tmp_path / 'badport').write_text('node-a\nnode-b:ssh\n')

    def program(name, text='#!/bin/sh\nexit 0\n'):
        (bin_dir / name).write_text(text)
        (bin_dir / name).chmod(0o755)
        return str(bin_dir / name)
    return program


def usage_error(argv, capsys):
    with pytest.raises(SystemExit) as exit_:
        launch.main(argv)
    assert exit_.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert 'Traceback' not in '\n'.join(err)
    return err[-1].split(' error: ', 1)[1]


@pytest.mark.parametrize('argv,message', [
    (['-n', '0'], "argument -n/--num-workers: expected a positive integer, got '0'"),
    (['-n', '2', '-s', '-1'], "argument -s/--num-servers: expected a positive integer, "
                              "got '-1'"),
    (['-n', '2', '--timeout', '0'], "argument --timeout: expected a positive number of "
                                    "seconds, got '0'"),
    (['-n', '2', '--timeout', 'nan'], "argument --timeout: expected a positive number of "
                                      "seconds, got 'nan'"),
    (['-n', '2', '--stopped-timeout', '-5'], "argument --stopped-timeout: expected a "
                                             "non-negative number of seconds, got '-5'"),
    (['-n', '2', '--env', 'NOVALUE'], "argument --env: expected KEY:VALUE, got 'NOVALUE'"),
    (['-n', '2'], 'no command given'),
    (['-n', '2', '--'], 'no command given'),
    (['-n', '2', ' '], 'the command is empty'),
    (['-n', '2', '--env', 'A=B:1', 'true'],
     "--env 'A=B:1': 'A=B' is not a variable name (letters, digits and _, not starting "
     "with a digit)"),
    (['-n', '2', '--env', 'DMLC_ROLE:server', 'true'],
     "--env 'DMLC_ROLE:server': DMLC_ROLE is set by the launcher"),
    (['-n', '2', '--env', 'DMLC_NODE_HOST:10.0.0.1', 'true'],
     "--env 'DMLC_NODE_HOST:10.0.0.1': DMLC_NODE_HOST is set by the launcher"),
    (['-n', '2', '--hostfile', 'hosts', 'true'],
     '--hostfile applies to --launcher ssh or mpi, not local'),
    (['-n', '2', '--host-ip', '10.0.0.1', 'true'],
     '--host-ip applies to --launcher ssh or mpi or slurm, not local'),
    (['-n', '2', '--launcher', 'mpi', '--sync-dst-dir', '/tmp/x', '-H', 'hosts', 'true'],
     '--sync-dst-dir applies to --launcher ssh, not mpi'),
    (['-n', '2', '--launcher', 'ssh', 'true'], '--launcher ssh needs --hostfile'),
    (['-n', '2', '--launcher', 'ssh', '-H', 'missing', 'true'],
     '--hostfile missing: cannot read it (No such file or directory)'),
    (['-n', '2', '--launcher', 'ssh', '-H', 'empty', 'true'],
     '--hostfile empty lists no host (expected one "host" or "host:port" per line)'),
    (['-n', '2', '--launcher', 'mpi', '-H', 'blank', 'true'],
     '--hostfile blank lists no host (expected one "host" or "host:port" per line)'),
    (['-n', '2', '--launcher', 'ssh', '-H', 'badport', 'true'],
     '--hostfile badport, line 2: \'node-b:ssh\' is not "host", "host:port" or '
     '"host slots=N"'),
    (['-n', '2', '--launcher', 'ssh', '-H', 'hosts', 'true'],
     '--launcher ssh runs ssh, which is not on PATH'),
    (['-n', '2', '--launcher', 'mpi', '-H', 'hosts', 'true'],
     '--launcher mpi runs mpirun, which is not on PATH'),
    (['-n', '2', '--launcher', 'slurm', 'true'],
     '--launcher slurm runs srun, which is not on PATH'),
])
def test_bad_launch_options_are_usage_errors(files, argv, message, capsys):
    assert usage_error(argv, capsys) == message


def test_remote_options_checked_once_the_programs_exist(files, capsys):
    files('ssh')
    assert usage_error(['-n', '1', '--launcher', 'ssh', '-H', 'hosts', '--sync-dst-dir', '/x',
                        'true'], capsys) == '--launcher ssh runs rsync, which is not on PATH'
    files('srun')
    assert usage_error(['-n', '1', '--launcher', 'slurm', '--host-ip', 'not an address',
                        'true'], capsys) == ("--host-ip 'not an address': expected an IP "
                                             'address or a host name')
    mpirun = files('mpirun', '#!/bin/sh\necho "Some MPI 1.0"\n')
    assert usage_error(['-n', '1', '--launcher', 'mpi', '-H', 'hosts', 'true'], capsys) == (
        f"--launcher mpi: {mpirun} is neither Open MPI nor MPICH (its --version says "
        "'Some MPI 1.0')")
