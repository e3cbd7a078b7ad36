"""The PyTorch side of the CPU benchmarks (no MXNet here): reads one job as JSON on
stdin, prints the answer as one JSON line. Run by bench/common.run_torch.

Jobs:
  {"kind": "shuffle", "cases": [{"shape", "branch_factor"}], "repeat"}
      channel_shuffle forward+backward, ms per case
  {"kind": "block", "cases": [{"shape", "L", "M"}], "repeat"}
      3x3 conv (L groups) -> channel_shuffle(L) -> 1x1 conv (M groups) ->
      channel_shuffle(M), forward+backward, ms per case
  {"kind": "network", "graph", "arg_shapes", "data_shape", "batch", "num_classes",
   "steps", "repeat"}
      training images/s of the network in `graph` (an MXNet symbol's JSON, unfused),
      rebuilt op by op in PyTorch with the same layers and shapes, in each memory format
  {"kind": "inference", "graph", "arg_shapes", "data_shape", "batches", "repeat",
   "min_time"}
      inference images/s (eval mode, no autograd, softmax output) of that network, one
      value per memory format and batch size
  {"kind": "steps", "graph", "arg_shapes", "states", "steps", "lr", "momentum", "wd"}
      one training step of that network from states MXNet's training passed through: for
      each k of `steps`, `states/<k>.npz` holds, by MXNet's names, the parameters and
      BatchNorm statistics before step k, PyTorch's momentum buffer of parameter p as
      `momentum:p`, and the step's batch as
      `data` and `label`. The step is SGD with Nesterov momentum and weight decay on every
      parameter (MXNet's recipe decays all of them); it writes the parameters after it to
      `states/<k>.torch.npz` and returns the loss of every step
"""
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).resolve().parent))
import common  # noqa: E402  (no MXNet: plain timing and file helpers)

#: PyTorch's two layouts of image tensors on the CPU; which is faster depends on the
#: network (channels_last for these grouped convolutions), so both are timed
MEMORY_FORMATS = {'contiguous': torch.contiguous_format, 'channels_last': torch.channels_last}


def median_ms(fn, repeat, min_time=0.05):
    return common.call_seconds(fn, repeat, min_time) * 1e3


def shuffle_job(job):
    out = []
    for case in job['cases']:
        x = torch.randn(case['shape'], requires_grad=True)
        head = torch.randn(case['shape'])

        def step():
            F.channel_shuffle(x, case['branch_factor']).backward(head)
        out.append(median_ms(step, job['repeat']))
    return out


def block_job(job):
    """ms per case, in PyTorch's faster memory format for the case."""
    out = []
    for case in job['cases']:
        n, c, h, w = case['shape']
        L, M = case['L'], case['M']
        conv1 = nn.Conv2d(c, c, 3, padding=1, groups=L, bias=False)
        conv2 = nn.Conv2d(c, c, 1, groups=M, bias=False)
        times = []
        for memory_format in MEMORY_FORMATS.values():
            conv1.to(memory_format=memory_format)
            conv2.to(memory_format=memory_format)
            x = torch.randn(case['shape']).to(memory_format=memory_format).requires_grad_()
            head = torch.randn(case['shape']).to(memory_format=memory_format)

            def step(x=x, head=head):
                y = F.channel_shuffle(conv1(x), L)
                F.channel_shuffle(conv2(y), M).backward(head)
            times.append(median_ms(step, job['repeat']))
        out.append(min(times))
    return out


def tuple_attr(attrs, key, default):
    text = attrs.get(key)
    if text is None:
        return default
    return tuple(int(v) for v in text.strip('()[] ').split(',') if v.strip())


class GraphNet(nn.Module):
    """An MXNet symbol graph (the ops of igc_mx.networks) as a PyTorch module."""

    def __init__(self, graph, arg_shapes):
        super().__init__()
        self.nodes = graph['nodes']
        self.head = graph['heads'][0][0]
        self.layers = nn.ModuleDict()
        for node in self.nodes:
            a, op, name = node.get('attrs', {}), node['op'], node['name']
            inputs = [self.nodes[e[0]]['name'] for e in node['inputs']]
            if op == 'Convolution':
                out_c, in_per_group, *kernel = arg_shapes[inputs[1]]
                groups = int(a.get('num_group', 1))
                self.layers[name] = nn.Conv2d(
                    in_per_group * groups, out_c, tuple(kernel),
                    stride=tuple_attr(a, 'stride', (1, 1)), padding=tuple_attr(a, 'pad', (0, 0)),
                    groups=groups, bias=a.get('no_bias', 'False') != 'True')
            elif op == 'BatchNorm':
                self.layers[name] = nn.BatchNorm2d(arg_shapes[inputs[1]][0],
                                                   eps=float(a.get('eps', 1e-3)),
                                                   momentum=1 - float(a.get('momentum', 0.9)))
            elif op == 'FullyConnected':
                out_f, in_f = arg_shapes[inputs[1]]
                self.layers[name] = nn.Linear(in_f, out_f)

    def forward(self, x):
        values = {}
        for i, node in enumerate(self.nodes):
            op, a, name = node['op'], node.get('attrs', {}), node['name']
            args = [values.get(e[0]) for e in node['inputs']]
            if op == 'null':
                values[i] = x if name == 'data' else None
            elif op in ('Convolution', 'BatchNorm', 'FullyConnected'):
                values[i] = self.layers[name](args[0])
            elif op == 'Activation':
                values[i] = F.relu(args[0])
            elif op == 'Reorder':
                values[i] = F.channel_shuffle(args[0], int(a['branch_factor']))
            elif op == 'Pooling':
                if a.get('global_pool') == 'True':
                    values[i] = F.adaptive_avg_pool2d(args[0], 1)
                else:
                    pool = F.max_pool2d if a['pool_type'] == 'max' else F.avg_pool2d
                    values[i] = pool(args[0], tuple_attr(a, 'kernel', None),
                                     tuple_attr(a, 'stride', (1, 1)), tuple_attr(a, 'pad', (0, 0)))
            elif op == 'Flatten':
                values[i] = torch.flatten(args[0], 1)
            elif op in ('elemwise_add', '_Plus', '_plus'):
                values[i] = args[0] + args[1]
            elif op == 'SoftmaxOutput':
                values[i] = args[0]          # logits; the loss is cross-entropy
            else:
                raise ValueError(f'op {op} ({name}) is not supported')
        return values[self.head]


def mxnet_names(net):
    """{MXNet parameter name: the PyTorch tensor that holds it} of a GraphNet."""
    names = {}
    for layer, module in net.layers.items():
        if isinstance(module, nn.BatchNorm2d):
            names.update({f'{layer}_gamma': module.weight, f'{layer}_beta': module.bias,
                          f'{layer}_moving_mean': module.running_mean,
                          f'{layer}_moving_var': module.running_var})
        else:
            names[f'{layer}_weight'] = module.weight
            if module.bias is not None:
                names[f'{layer}_bias'] = module.bias
    return names


def steps_job(job):
    net = GraphNet(job['graph'], {k: tuple(v) for k, v in job['arg_shapes'].items()})
    # channels_last: PyTorch's fast layout for these grouped convolutions on the CPU
    net.to(memory_format=torch.channels_last).train()
    tensors = mxnet_names(net)
    opt = torch.optim.SGD(net.parameters(), lr=job['lr'], momentum=job['momentum'],
                          weight_decay=job['wd'], nesterov=True)
    losses = []
    for k in job['steps']:
        with np.load(Path(job['states']) / f'{k}.npz') as state, torch.no_grad():
            for name, tensor in tensors.items():
                tensor.copy_(torch.from_numpy(state[name]))
                if tensor.requires_grad:
                    opt.state[tensor]['momentum_buffer'] = torch.from_numpy(
                        state[f'momentum:{name}']).clone()
            images = torch.from_numpy(state['data']).to(memory_format=torch.channels_last)
            labels = torch.from_numpy(state['label']).long()
        opt.zero_grad(set_to_none=True)
        loss = F.cross_entropy(net(images), labels)
        loss.backward()
        opt.step()
        losses.append(loss.item())
        np.savez(Path(job['states']) / f'{k}.torch.npz',
                 **{name: t.detach().numpy() for name, t in tensors.items()})
    return losses


def network_job(job):
    """{memory format: training images/s}."""
    net = GraphNet(job['graph'], {k: tuple(v) for k, v in job['arg_shapes'].items()})
    net.train()
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.9, weight_decay=1e-4)
    labels = torch.randint(0, job['num_classes'], (job['batch'],))
    result = {}
    for name, memory_format in MEMORY_FORMATS.items():
        net.to(memory_format=memory_format)
        x = torch.randn(job['batch'], *job['data_shape']).to(memory_format=memory_format)

        def steps(x=x):
            for _ in range(job['steps']):
                opt.zero_grad(set_to_none=True)
                F.cross_entropy(net(x), labels).backward()
                opt.step()
        ms = median_ms(steps, job['repeat'], min_time=0)
        result[name] = job['batch'] * job['steps'] / (ms / 1e3)
    return result


def inference_job(job):
    """{memory format: {batch: inference images/s}}."""
    net = GraphNet(job['graph'], {k: tuple(v) for k, v in job['arg_shapes'].items()})
    net.eval()
    result = {}
    for name, memory_format in MEMORY_FORMATS.items():
        net.to(memory_format=memory_format)
        result[name] = {}
        for batch in job['batches']:
            x = torch.randn(batch, *job['data_shape']).to(memory_format=memory_format)

            def forward(x=x):
                with torch.inference_mode():
                    F.softmax(net(x), dim=1)
            ms = median_ms(forward, job['repeat'], job['min_time'])
            result[name][batch] = batch / (ms / 1e3)
    return result


def main():
    job = json.loads(sys.stdin.read())
    torch.manual_seed(0)
    run = {'shuffle': shuffle_job, 'block': block_job, 'network': network_job,
           'inference': inference_job, 'steps': steps_job}[job['kind']]
    print(json.dumps({'torch': torch.__version__, 'threads': torch.get_num_threads(),
                      'result': run(job)}))


if __name__ == '__main__':
    main()
