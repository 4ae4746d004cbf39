"""Horovod's DistributedOptimizer (horovod/torch/optimizer.py) over libsqz.

Gradients are allreduced in fusion buckets: parameters in reverse
registration order (the order backward produces them, as DDP does), grouped
by dtype and device up to SQZ_FUSION_THRESHOLD bytes (default 64 MiB, like
HOROVOD_FUSION_THRESHOLD, which is read too). A bucket is submitted to the
progress thread as soon as its gradients are ready AND every bucket before
it has been submitted, so every rank submits the same buckets in the same
order whatever order its hooks fire in: no coordinator is needed and no
job can deadlock or mismatch. At synchronize(), buckets still waiting (a
parameter without a gradient on this rank, or accumulation not finished)
are submitted in order with zeros for the missing gradients, as Horovod
does.
"""
import os
import warnings
from contextlib import contextmanager

import torch

from .. import timeline as _timeline
from . import agreement, mpi_ops, optimizer_kind
from .compression import Compression, library_spec, runs_in_python
from .mpi_ops import Average, Adasum, Sum, global_process_set, size, rocm_built
from .reduction import DTYPE_TO_SQZ, pack, reduce_buffer, unpack, wire_dtype

_DEFAULT_FUSION = 64 * 1024 * 1024


def fusion_threshold():
    for var in ("SQZ_FUSION_THRESHOLD", "HOROVOD_FUSION_THRESHOLD"):
        v = os.environ.get(var)
        if v:
            return int(v)
    return _DEFAULT_FUSION


class _Bucket:
    def __init__(self, index, params, names):
        self.index = index
        self.params = params
        self.name = "bucket.%d.%s" % (index, names[0])
        self.numels = [p.numel() for p in params]
        self.count = sum(self.numels)
        self.flat = None  # persistent fused buffer (stable pointer: stable error-feedback key)
        self.handle = None


class _DistributedOptimizer(torch.optim.Optimizer):
    def __init__(self, params, named_parameters, compression, backward_passes_per_step=1, op=Average,
                 gradient_predivide_factor=1.0, groups=None, sparse_as_dense=False,
                 process_set=global_process_set):
        super(self.__class__, self).__init__(params)
        self._compression = compression

        if named_parameters is not None:
            named_parameters = list(named_parameters)
        else:
            named_parameters = [('allreduce.noname.%s.%s' % (i, j), v)
                                for i, param_group in enumerate(self.param_groups)
                                for j, v in enumerate(param_group['params'])]
        # make sure that named_parameters are tuples
        if any([not isinstance(p, tuple) for p in named_parameters]):
            raise ValueError('named_parameters should be a sequence of '
                             'tuples (name, parameter), usually produced by '
                             'model.named_parameters().')

        dups = _DistributedOptimizer.find_duplicates([k for k, _ in named_parameters])
        if len(dups) > 0:
            raise ValueError('Parameter names in named_parameters must be unique. '
                             'Found duplicates: %s' % ', '.join(dups))

        all_param_ids = {id(v)
                         for param_group in self.param_groups
                         for v in param_group['params']}
        named_param_ids = {id(v) for k, v in named_parameters}
        unnamed_param_ids = all_param_ids - named_param_ids
        if len(unnamed_param_ids):
            raise ValueError('named_parameters was specified, but one or more model '
                             'parameters were not named. Python object ids: '
                             '%s' % ', '.join(str(id) for id in unnamed_param_ids))

        self._parameter_names = {v: k for k, v in sorted(named_parameters, key=lambda kv: kv[0])}
        self.backward_passes_per_step = backward_passes_per_step
        self._allreduce_delay = {v: self.backward_passes_per_step
                                 for _, v in sorted(named_parameters, key=lambda kv: kv[0])}
        self.op = op
        self.gradient_predivide_factor = gradient_predivide_factor
        self.sparse_as_dense = sparse_as_dense
        self.process_set = process_set
        if groups is not None:
            warnings.warn("sqz.torch.DistributedOptimizer: groups are replaced by size-based fusion "
                          "(SQZ_FUSION_THRESHOLD)")

        self._handles = {}
        self._grad_accs = []
        self._requires_update = set()
        self._synchronized = False
        self._should_synchronize = True
        self._buckets = []
        self._bucket_of = {}
        self._ready = set()
        self._next_bucket = 0
        if size() > 1 or os.environ.get('HOROVOD_ELASTIC') == '1':
            self._register_hooks()

    @staticmethod
    def find_duplicates(lst):
        seen = set()
        dups = set()
        for el in lst:
            if el in seen:
                dups.add(el)
            seen.add(el)
        return dups

    def set_backward_passes_per_step(self, passes):
        self.backward_passes_per_step = passes
        for p in self._allreduce_delay:
            self._allreduce_delay[p] = self.backward_passes_per_step

    def _register_hooks(self):
        ordered = []
        for param_group in self.param_groups:
            for p in param_group['params']:
                if p.requires_grad:
                    self._requires_update.add(p)
                    ordered.append(p)
                    p_tmp = p.expand_as(p)
                    grad_acc = p_tmp.grad_fn.next_functions[0][0]
                    grad_acc.register_hook(self._make_hook(p))
                    self._grad_accs.append(grad_acc)
        # Buckets in reverse registration order; a parameter appearing in two
        # groups is reduced once.
        seen = set()
        limit = fusion_threshold()
        current, current_bytes = [], 0
        for p in reversed(ordered):
            if id(p) in seen:
                continue
            seen.add(id(p))
            nbytes = p.numel() * p.element_size()
            if current and (p.dtype != current[0].dtype or p.device != current[0].device
                            or current_bytes + nbytes > limit):
                self._add_bucket(current)
                current, current_bytes = [], 0
            current.append(p)
            current_bytes += nbytes
        if current:
            self._add_bucket(current)

    def _add_bucket(self, params):
        b = _Bucket(len(self._buckets), params, [self._parameter_names.get(p, "") for p in params])
        self._buckets.append(b)
        for p in params:
            self._bucket_of[p] = b

    # ---- reduction ------------------------------------------------------
    def _scales(self):
        if self.op == Average:
            # Split average across pre/postscale factors, as Horovod does.
            return 1.0 / self.gradient_predivide_factor, self.gradient_predivide_factor
        return 1.0, 1.0

    def _submit_bucket(self, b):
        for p in b.params:
            if p.grad is None:
                # Gradient was not computed, but we still need to submit a tensor
                # to allreduce as one of the other ranks may have computed it.
                p.grad = p.data.new(p.size()).zero_()
            elif p.grad.is_sparse:
                if not self.sparse_as_dense:
                    raise NotImplementedError("sqz.torch.DistributedOptimizer: sparse gradients need "
                                              "sparse_as_dense=True")
                p.grad = p.grad.to_dense()
        comm = mpi_ops.comm()
        pre, post = self._scales()
        op = self.op
        compression = self._compression
        spec = library_spec(compression)
        grads = [p.grad for p in b.params]
        for g in grads:
            mpi_ops._check_device(g)
        if wire_dtype(grads[0].dtype) not in DTYPE_TO_SQZ:
            raise TypeError("sqz.torch.DistributedOptimizer: unsupported gradient dtype %s" % grads[0].dtype)
        stream = mpi_ops._stream_of(grads[0])
        desc = agreement.describe("ALLREDUCE", b.name, grads, op, (pre, post))

        if runs_in_python(compression):
            # Horovod's protocol: compress each gradient, reduce what
            # compress returned (fused per dtype), decompress each.
            compressed, ctxs = zip(*[compression.compress(g) for g in grads])
            outputs = [torch.empty_like(t, memory_format=torch.contiguous_format) for t in compressed]
            groups = {}
            for i, t in enumerate(compressed):
                groups.setdefault(wire_dtype(t.dtype), []).append(i)
            fused = [mpi_ops._Fused([compressed[i] for i in idx], [outputs[i] for i in idx], pre)
                     for idx in groups.values()]

            def run():
                with (torch.cuda.stream(stream) if stream is not None else mpi_ops._null()), torch.no_grad():
                    for f in fused:
                        f.run(comm, op, pre, post, None, None, stream)
                    for g, out, ctx in zip(grads, outputs, ctxs):
                        g.copy_(compression.decompress(out, ctx).view_as(g))
                    return mpi_ops._event_after(stream)

            b.handle = mpi_ops._submit_job(run, prefix="allreduce." + b.name, desc=desc)
            return

        single = len(grads) == 1 and grads[0].is_contiguous() and wire_dtype(grads[0].dtype) == grads[0].dtype
        if not single and b.flat is None:
            b.flat = torch.empty(b.count, dtype=wire_dtype(grads[0].dtype), device=grads[0].device)
        flat = grads[0] if single else b.flat
        # The bucket is one logical buffer from step to step: its state
        # carries error feedback whether the spec is the optimizer's or the
        # communicator's policy (SQZ_COMPRESSION, auto).
        state_key = b.name

        def run():
            with (torch.cuda.stream(stream) if stream is not None else mpi_ops._null()), torch.no_grad():
                t0 = _timeline.now()
                if not single:
                    pack(grads, flat)
                t1 = _timeline.now()
                _timeline.phase("fusion.pack", t0, t1, {"bucket": b.name, "tensors": len(grads)})
                reduce_buffer(comm, flat, op, pre, post, spec=spec, state_key=state_key, stream=stream)
                t2 = _timeline.now()
                if not single:
                    unpack(flat, grads)
                _timeline.phase("fusion.unpack", t2, _timeline.now(), {"bucket": b.name})
                info = comm.last_call_info()
                return mpi_ops._event_after(stream) if stream is not None else info

        b.handle = mpi_ops._submit_job(run, prefix="allreduce." + b.name, desc=desc)

    def _submit_ready_buckets(self):
        while self._next_bucket < len(self._buckets):
            b = self._buckets[self._next_bucket]
            if not all(p in self._ready for p in b.params):
                return
            self._submit_bucket(b)
            self._next_bucket += 1

    def _allreduce_grad_async(self, p):
        self._ready.add(p)
        self._submit_ready_buckets()
        b = self._bucket_of[p]
        return b.handle, None

    def _make_hook(self, p):
        def hook(*ignore):
            if p in self._handles and self._handles[p][0] is not None:
                if self._allreduce_delay[p] <= 0:
                    raise AssertionError(
                        "Gradients were computed more than "
                        "backward_passes_per_step times before call "
                        "to step(). Increase backward_passes_per_step to "
                        "accumulate gradients locally.")
            assert not p.grad.requires_grad
            assert self._allreduce_delay[p] > 0
            handle, ctx = None, None
            self._allreduce_delay[p] -= 1
            if self._allreduce_delay[p] == 0:
                handle, ctx = self._allreduce_grad_async(p)
                if handle is None:
                    handle = _PENDING
            self._handles[p] = (handle, ctx)
        return hook

    def synchronize(self):
        if not self._buckets:
            self._synchronized = True
            return
        # Everything not yet submitted goes now, in bucket order (zeros for
        # missing gradients), so all ranks issue the same sequence.
        while self._next_bucket < len(self._buckets):
            self._submit_bucket(self._buckets[self._next_bucket])
            self._next_bucket += 1
        error = None
        for b in self._buckets:
            if b.handle is None:
                continue
            try:
                mpi_ops.synchronize(b.handle)
            except BaseException as e:  # finish waiting for the others first
                error = error or e
            b.handle = None
        for p in self._allreduce_delay:
            self._allreduce_delay[p] = self.backward_passes_per_step
        self._handles.clear()
        self._ready.clear()
        self._next_bucket = 0
        self._synchronized = True
        if error is not None:
            raise error

    @contextmanager
    def skip_synchronize(self):
        """
        A context manager used to specify that optimizer.step() should
        not perform synchronization.

        It's typically used in a following pattern:

        .. code-block:: python

            optimizer.synchronize()
            with optimizer.skip_synchronize():
                optimizer.step()
        """
        self._should_synchronize = False
        try:
            yield
        finally:
            self._should_synchronize = True

    def step(self, closure=None):
        if self._should_synchronize:
            if self._synchronized:
                warnings.warn("optimizer.step() called without "
                              "optimizer.skip_synchronize() context after "
                              "optimizer.synchronize(). This can cause training "
                              "slowdown. You may want to consider using "
                              "optimizer.skip_synchronize() context if you use "
                              "optimizer.synchronize() in your code.")
            self.synchronize()
        self._synchronized = False
        return super(self.__class__, self).step(closure)

    def zero_grad(self, *args, **kwargs):
        if self._handles:
            raise AssertionError("optimizer.zero_grad() was called after loss.backward() "
                                 "but before optimizer.step() or optimizer.synchronize(). "
                                 "This is prohibited as it can cause a race condition.")
        return super(self.__class__, self).zero_grad(*args, **kwargs)


_PENDING = object()  # ready, waiting for an earlier bucket to be submitted


def DistributedOptimizer(optimizer, named_parameters=None,
                         compression=Compression.none,
                         backward_passes_per_step=1,
                         op=Average,
                         gradient_predivide_factor=1.0,
                         num_groups=0, groups=None,
                         sparse_as_dense=False,
                         process_set=global_process_set):
    """
    An optimizer that wraps another torch.optim.Optimizer, using an allreduce to
    combine gradient values before applying gradients to model weights.

    Allreduce operations are executed after each gradient is computed by ``loss.backward()``
    in parallel with each other, fused into buckets of up to SQZ_FUSION_THRESHOLD bytes.
    The ``step()`` method ensures that all allreduce operations are finished before
    applying gradients to the model.

    Arguments follow Horovod: ``compression`` picks the libsqz codec
    (``Compression.none``, ``.fp16``, ``.bf16``, ``.q8``..``.q1``, ``.topk(r)``,
    ``.randk(r)``, ``.auto``), run inside the library with error feedback per bucket.
    """
    mpi_ops._check_process_set(process_set)
    if gradient_predivide_factor != 1.0:
        if rocm_built():
            raise ValueError('gradient_predivide_factor not supported yet with ROCm')
        if op != Average:
            raise ValueError('gradient_predivide_factor not supported with op != Average')
    if op == Adasum:
        raise NotImplementedError("sqz.torch does not implement Adasum")
    if num_groups != 0 and groups is None:
        groups = num_groups
    # auto's gain model depends on the optimizer's kind and momentum
    # (src/tuner/README.md): tell the communicator, so users need not.
    optimizer_kind.apply(mpi_ops._comm(), optimizer)
    cls = type(optimizer.__class__.__name__, (optimizer.__class__,),
               dict(_DistributedOptimizer.__dict__))
    return cls(optimizer.param_groups, named_parameters, compression, backward_passes_per_step, op,
               gradient_predivide_factor, groups, sparse_as_dense, process_set)


__all__ = ['DistributedOptimizer', 'Sum', 'Average']
