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
        # Horovod names it after type(obj), which differs where non-root
        # ranks pass None; the name is in each call's header, so one name.
        name = "broadcast_object"
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
        name = "allgather_object"  # not type(obj): ranks may hold different types
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


def _initialize_state(optimizer, model):
    """Horovod's start for an optimizer without state: every parameter that
    requires a gradient gets a zero one (sparse for SparseAdam, and for SGD
    on the model's sparse embeddings), and the wrapped optimizer takes one
    step, which creates its state (and applies weight decay, as Horovod's
    does). A DistributedOptimizer steps without reducing anything."""
    sparse = set()
    if model is not None:
        for m in model.modules():
            if isinstance(m, torch.nn.modules.sparse.Embedding) and m.sparse:
                sparse.update(id(p) for p in m.parameters())
    for group in optimizer.param_groups:
        for p in group['params']:
            if p.requires_grad:
                p.grad = p.data.new(p.size()).zero_()
                if isinstance(optimizer, torch.optim.SparseAdam) or (
                        isinstance(optimizer, torch.optim.SGD) and id(p) in sparse):
                    p.grad = p.grad.to_sparse()
    from .optimizer import _DistributedOptimizer
    if optimizer.__module__ == _DistributedOptimizer.__module__:
        super(optimizer.__class__, optimizer).step()
    else:
        optimizer.step()


def broadcast_optimizer_state(optimizer, root_rank, model=None, process_set=global_process_set):
    """Broadcasts an optimizer state from root rank to all other processes:
    tensor state (in place, bitwise), scalar state and the param groups'
    hyperparameters (lr, momentum, betas, ...), which keep their Python types.

    As Horovod's: an optimizer with no state yet first gets it from one step
    with zero gradients (_initialize_state). Root decides: when root has no
    state, every rank without state takes that step; when root has state, a
    rank without it receives root's and takes no step (Horovod 0.28.1 hangs
    there). `model` marks sparse embeddings, as in Horovod."""
    _check_process_set(process_set)
    if isinstance(optimizer, torch.optim.LBFGS):
        raise ValueError('cannot broadcast torch.optim.LBFGS state')
    is_root = rank() == root_rank

    # Root's layout: param_groups as they are, state with tensors replaced
    # by (shape, dtype) placeholders, in a fixed order.
    layout = None
    if is_root:
        initialized = len(optimizer.state_dict()['state']) == 0
        if initialized:
            _initialize_state(optimizer, model)
        state_dict = optimizer.state_dict()
        state = {}
        for pid, pstate in state_dict['state'].items():
            state[pid] = {k: (_TensorSpec(v) if torch.is_tensor(v) else v) for k, v in pstate.items()}
        layout = {'param_groups': state_dict['param_groups'], 'state': state, 'initialized': initialized}
    layout = broadcast_object(layout, root_rank, name='sqz.optimizer_state.layout', process_set=process_set)
    if not is_root and layout['initialized'] and len(optimizer.state_dict()['state']) == 0:
        _initialize_state(optimizer, model)
    state_dict = optimizer.state_dict()

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
