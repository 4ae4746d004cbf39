"""Horovod's torch helper functions (horovod/torch/functions.py)."""
import io
import pickle

import torch

from .mpi_ops import (broadcast_, broadcast_async_, allgather, global_process_set, rank, synchronize, size,
                      _check_process_set)

try:  # Horovod pickles with cloudpickle (lambdas, local classes); plain pickle otherwise
    import cloudpickle as _pickler
except ImportError:  # pragma: no cover
    _pickler = pickle


def broadcast_parameters(params, root_rank, process_set=global_process_set):
    """Broadcasts the parameters from root rank to all other processes.
    Typical usage is to broadcast the ``model.state_dict()``,
    ``model.named_parameters()``, or ``model.parameters()``."""
    _check_process_set(process_set)
    if isinstance(params, dict):
        params = sorted(params.items())
    elif isinstance(params, list):
        # support both named_parameters() and regular parameters()
        params = [p if isinstance(p, tuple) else (None, p) for p in params]
    else:
        raise ValueError('invalid params of type: %s' % type(params))

    handles = []
    for name, p in params:
        handles.append(broadcast_async_(p.data if isinstance(p, torch.nn.Parameter) else p, root_rank, name,
                                        process_set=process_set))
    for handle in handles:
        synchronize(handle)


def broadcast_object(obj, root_rank=0, name=None, process_set=global_process_set):
    """Serializes and broadcasts an object from root rank to all other
    processes. Returns the object on every rank."""
    _check_process_set(process_set)
    if name is None:
        name = type(obj).__name__
    if rank() == root_rank:
        b = io.BytesIO()
        _pickler.dump(obj, b)
        t = torch.ByteTensor(bytearray(b.getvalue()))
        sz = torch.LongTensor([t.shape[0]])
        broadcast_(sz, root_rank, name + '.sz', process_set)
    else:
        sz = torch.LongTensor([0])
        broadcast_(sz, root_rank, name + '.sz', process_set)
        t = torch.ByteTensor(sz.tolist()[0])
    broadcast_(t, root_rank, name + '.t', process_set)
    if rank() != root_rank:
        obj = pickle.loads(t.numpy().tobytes())
    return obj


def allgather_object(obj, name=None, process_set=global_process_set):
    """Serializes and allgathers an object from all other processes; returns
    the list of every rank's object, in rank order."""
    _check_process_set(process_set)
    if name is None:
        name = type(obj).__name__
    b = io.BytesIO()
    _pickler.dump(obj, b)
    t = torch.ByteTensor(bytearray(b.getvalue()))
    sz = torch.LongTensor([t.shape[0]])
    sizes = allgather(sz, name=name + '.sz', process_set=process_set).tolist()
    gathered = allgather(t, name=name + '.t', process_set=process_set).numpy()
    out, start = [], 0
    for n in sizes:
        out.append(pickle.loads(gathered[start:start + n].tobytes()))
        start += n
    return out


def broadcast_optimizer_state(optimizer, root_rank, process_set=global_process_set):
    """Broadcasts an optimizer state from root rank to all other processes:
    tensor state (in place, bitwise), scalar state and the param groups'
    hyperparameters (lr, momentum, betas, ...), which keep their Python types.

    Horovod reaches the same end by running a zero-gradient step() to
    create missing state and sending scalars as float tensors; sqz sends
    root's state layout once (broadcast_object), so ranks whose optimizer
    has no state yet receive root's, and no step() is taken."""
    _check_process_set(process_set)
    if isinstance(optimizer, torch.optim.LBFGS):
        raise ValueError('cannot broadcast torch.optim.LBFGS state')
    state_dict = optimizer.state_dict()
    is_root = rank() == root_rank

    # Root's layout: param_groups as they are, state with tensors replaced
    # by (shape, dtype) placeholders, in a fixed order.
    layout = None
    if is_root:
        state = {}
        for pid, pstate in state_dict['state'].items():
            state[pid] = {k: (_TensorSpec(v) if torch.is_tensor(v) else v) for k, v in pstate.items()}
        layout = {'param_groups': state_dict['param_groups'], 'state': state}
    layout = broadcast_object(layout, root_rank, name='sqz.optimizer_state.layout', process_set=process_set)

    if len(layout['param_groups']) != len(state_dict['param_groups']) or any(
            len(a['params']) != len(b['params'])
            for a, b in zip(layout['param_groups'], state_dict['param_groups'])):
        raise ValueError('broadcast_optimizer_state: rank %d has a different optimizer layout than root rank %d '
                         '(parameter groups differ)' % (rank(), root_rank))

    # Tensors: in place where this rank already has a matching tensor (the
    # optimizer's own state tensors), else into fresh ones.
    new_state = {}
    handles = []
    for pid in sorted(layout['state']):
        pstate = layout['state'][pid]
        mine = state_dict['state'].get(pid, {})
        out = {}
        for k in sorted(pstate, key=str):
            v = pstate[k]
            if isinstance(v, _TensorSpec):
                t = mine.get(k)
                if not (torch.is_tensor(t) and tuple(t.shape) == v.shape and t.dtype == v.dtype
                        and t.is_contiguous()):
                    device = t.device if torch.is_tensor(t) else _device_of(optimizer)
                    t = torch.empty(v.shape, dtype=v.dtype, device=device if v.device != 'cpu' else 'cpu')
                handles.append(broadcast_async_(t, root_rank, 'sqz.optimizer_state.%s.%s' % (pid, k),
                                                process_set=process_set))
                out[k] = t
            else:
                out[k] = v
        new_state[pid] = out
    for h in handles:
        synchronize(h)

    # Keep this rank's param ids (they map to its own parameters).
    groups = []
    for mine_g, root_g in zip(state_dict['param_groups'], layout['param_groups']):
        g = dict(root_g)
        g['params'] = mine_g['params']
        groups.append(g)
    id_map = {}
    for mine_g, root_g in zip(state_dict['param_groups'], layout['param_groups']):
        id_map.update(zip(root_g['params'], mine_g['params']))
    optimizer.load_state_dict({'state': {id_map[pid]: s for pid, s in new_state.items()},
                               'param_groups': groups})


class _TensorSpec:
    def __init__(self, t):
        self.shape = tuple(t.shape)
        self.dtype = t.dtype
        self.device = 'cuda' if t.is_cuda else 'cpu'


def _device_of(optimizer):
    for g in optimizer.param_groups:
        for p in g['params']:
            return p.device
    return torch.device('cpu')


__all__ = ['broadcast_parameters', 'broadcast_object', 'allgather_object', 'broadcast_optimizer_state', 'size']
