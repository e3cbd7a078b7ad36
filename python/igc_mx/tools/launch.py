"""Start a distributed MXNet job: N workers, S servers and one scheduler.

    igc-launch -n 2 -s 1 [--launcher local] [--timeout 600] \\
        python train_model.py --kv-store dist_sync ...

(also ``python tools/launch.py`` in a checkout)

Every process runs the same command; ``DMLC_ROLE`` tells it what it is. Servers
and the scheduler do their job while ``import mxnet`` runs and exit when the
workers finish.

Launchers:
  local  all processes on this machine over 127.0.0.1 (run here, not through
         dmlc_tracker, so that a failing worker stops the job and --timeout
         bounds it);
  ssh    one process per line of --hostfile (``host[:port]``), by ssh;
  mpi    mpirun (Open MPI or MPICH) over --hostfile;
  slurm  srun inside an allocation.
ssh, mpi and slurm go through ``dmlc_tracker``, the tracker that ships in the
mxnet wheel, made to work on Python >= 3.9 (it calls ``Thread.isAlive``).
"""
import argparse
import logging
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time


def free_port(host='127.0.0.1'):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def _kill_group(proc):
    if proc.poll() is None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    proc.wait()


def launch_local(command, num_workers, num_servers, timeout=None, extra_env=None,
                 grace=60):
    """Run the job on this machine; returns the exit status (0 when every worker
    succeeded, 124 on timeout)."""
    port = free_port()
    base = dict(os.environ)
    base.update(extra_env or {})
    base.update({'DMLC_PS_ROOT_URI': '127.0.0.1', 'DMLC_PS_ROOT_PORT': str(port),
                 'DMLC_NUM_SERVER': str(num_servers), 'DMLC_NUM_WORKER': str(num_workers),
                 'DMLC_NODE_HOST': '127.0.0.1', 'DMLC_JOB_CLUSTER': 'local'})
    # One argument is a shell command line; several are quoted one by one.
    cmd = command[0] if len(command) == 1 else shlex.join(command)

    def start(role, task_id):
        env = dict(base, DMLC_ROLE=role, DMLC_TASK_ID=str(task_id))
        return subprocess.Popen(cmd, shell=True, executable='/bin/bash', env=env,
                                start_new_session=True)

    helpers = [start('scheduler', 0)] + [start('server', i) for i in range(num_servers)]
    workers = [start('worker', i) for i in range(num_workers)]
    deadline = None if timeout is None else time.time() + timeout
    status = 0
    try:
        pending = list(workers)
        while pending:
            for p in list(pending):
                rc = p.poll()
                if rc is not None:
                    pending.remove(p)
                    if rc != 0:
                        logging.error('worker (pid %d) exited with %d; stopping the job',
                                      p.pid, rc)
                        return rc
            if any(h.poll() not in (None, 0) for h in helpers):
                logging.error('a server or the scheduler failed; stopping the job')
                return 1
            if deadline is not None and time.time() > deadline:
                logging.error('timed out after %ss; stopping the job', timeout)
                return 124
            time.sleep(0.2)
        # Servers and the scheduler leave once every worker has finalized.
        end = time.time() + grace
        while any(h.poll() is None for h in helpers) and time.time() < end:
            time.sleep(0.2)
        if any(h.poll() is None for h in helpers):
            logging.warning('servers still running %ds after the workers ended; killed', grace)
        return status
    finally:
        for p in workers + helpers:
            _kill_group(p)


def launch_tracker(opts):
    """ssh, mpi or slurm through the wheel's dmlc_tracker."""
    if not hasattr(threading.Thread, 'isAlive'):  # removed in Python 3.9
        threading.Thread.isAlive = threading.Thread.is_alive
    from dmlc_tracker import opts as dmlc_opts
    from dmlc_tracker import tracker
    args = ['--cluster', opts.launcher, '--num-workers', str(opts.num_workers),
            '--num-servers', str(opts.num_servers)]
    if opts.hostfile:
        args += ['--host-file', opts.hostfile]
    if opts.sync_dst_dir:
        args += ['--sync-dst-dir', opts.sync_dst_dir]
    if opts.host_ip:
        args += ['--host-ip', opts.host_ip]
        guess = tracker.get_host_ip
        tracker.get_host_ip = lambda host_ip=None: guess(opts.host_ip)
    command = list(opts.command)
    if opts.env:  # KEY:VALUE pairs, set on the remote side
        command = ['env'] + [kv.replace(':', '=', 1) for kv in opts.env] + command
    dopts = dmlc_opts.get_opts(args + ['--'] + command)
    if opts.launcher == 'ssh':
        from dmlc_tracker import ssh as backend
    elif opts.launcher == 'mpi':
        from dmlc_tracker import mpi as backend
    else:
        from dmlc_tracker import slurm as backend
    backend.submit(dopts)
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        description='launch a distributed MXNet job (parameter-server kvstore)',
        formatter_class=argparse.RawDescriptionHelpFormatter, epilog=__doc__)
    parser.add_argument('-n', '--num-workers', type=int, required=True)
    parser.add_argument('-s', '--num-servers', type=int,
                        help='number of servers (default: the number of workers)')
    parser.add_argument('--launcher', choices=['local', 'ssh', 'mpi', 'slurm'], default='local')
    parser.add_argument('-H', '--hostfile', help='hosts for ssh and mpi, one per line')
    parser.add_argument('--sync-dst-dir', help='ssh: rsync the current directory there first')
    parser.add_argument('--host-ip', help='address of this machine as seen by the nodes')
    parser.add_argument('--env', action='append', default=[],
                        help='KEY:VALUE set on every process (repeatable)')
    parser.add_argument('--timeout', type=float,
                        help='local: stop the whole job after this many seconds (exit 124)')
    parser.add_argument('command', nargs=argparse.REMAINDER,
                        help='the command every process runs')
    opts = parser.parse_args(argv)
    if opts.command and opts.command[0] == '--':
        opts.command = opts.command[1:]
    if not opts.command:
        parser.error('no command given')
    if opts.num_servers is None:
        opts.num_servers = opts.num_workers
    if opts.launcher in ('ssh', 'mpi') and not opts.hostfile:
        parser.error('--launcher %s needs --hostfile' % opts.launcher)
    logging.basicConfig(format='%(asctime)s launch %(levelname)s %(message)s',
                        level=logging.INFO)
    if opts.launcher == 'local':
        extra = dict(kv.split(':', 1) for kv in opts.env)
        return launch_local(opts.command, opts.num_workers, opts.num_servers,
                            opts.timeout, extra)
    return launch_tracker(opts)


if __name__ == '__main__':
    sys.exit(main())
