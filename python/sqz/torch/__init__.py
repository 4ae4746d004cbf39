"""Horovod's PyTorch API over libsqz: `import sqz.torch as hvd` in place of
`import horovod.torch as hvd`. python/README.md lists every Horovod name
and variable as same, different (how) or not provided (the error)."""
from .compression import Compression, Compressor, NoneCompressor, FP16Compressor  # noqa: F401
from .mpi_ops import (  # noqa: F401
    Average, Sum, Adasum, Min, Max, Product,
    HorovodInternalError, ProcessSet, global_process_set, add_process_set, remove_process_set,
    init, shutdown, is_initialized, rank, size, local_rank, local_size, cross_rank, cross_size,
    is_homogeneous, mpi_threads_supported, mpi_enabled, mpi_built, gloo_enabled, gloo_built, nccl_built,
    ddl_built, ccl_built, cuda_built, rocm_built, start_timeline, stop_timeline,
    allreduce, allreduce_, allreduce_async, allreduce_async_,
    grouped_allreduce, grouped_allreduce_, grouped_allreduce_async, grouped_allreduce_async_,
    sparse_allreduce_async,
    allgather, allgather_async, grouped_allgather, grouped_allgather_async,
    broadcast, broadcast_, broadcast_async, broadcast_async_,
    alltoall, alltoall_async, reducescatter, reducescatter_async, grouped_reducescatter,
    grouped_reducescatter_async,
    poll, synchronize, join, barrier, comm, last_call_info, elastic,
)
from .functions import (  # noqa: F401
    broadcast_parameters, broadcast_optimizer_state, broadcast_object, allgather_object,
)
from .optimizer import DistributedOptimizer  # noqa: F401
from .sync_batch_norm import SyncBatchNorm  # noqa: F401
