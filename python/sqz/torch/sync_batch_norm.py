"""hvd.SyncBatchNorm: batch normalization whose batch statistics are those
of the whole global batch (every rank's samples), as Horovod's.

The forward pass sums each channel's values, squares and the sample count
over all ranks with one differentiable allreduce (Sum); autograd then
allreduces the gradients of those sums in the backward pass, so input
gradients match batch norm over the concatenated batch. Parameter
gradients stay local, as any layer's do (DistributedOptimizer averages
them). In eval mode, or with one rank, it is plain batch norm.
"""
import torch
import torch.nn.functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from .mpi_ops import Sum, allreduce, size


class SyncBatchNorm(_BatchNorm):
    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True, track_running_stats=True):
        super().__init__(num_features, eps, momentum, affine, track_running_stats)

    def _check_input_dim(self, input):
        if input.dim() < 2:
            raise ValueError("expected at least 2D input (got {}D input)".format(input.dim()))

    def _momentum(self):
        if self.momentum is not None:
            return self.momentum
        # momentum=None: a cumulative moving average, as torch's batch norm.
        return 1.0 / float(self.num_batches_tracked)

    def forward(self, input):
        self._check_input_dim(input)
        if self.training and self.track_running_stats and self.num_batches_tracked is not None:
            self.num_batches_tracked.add_(1)
        if not self.training or size() == 1:
            use_batch = self.training or not self.track_running_stats
            return F.batch_norm(input, self.running_mean if not use_batch or self.track_running_stats else None,
                                self.running_var if not use_batch or self.track_running_stats else None,
                                self.weight, self.bias, use_batch, self._momentum() if self.training else 0.0,
                                self.eps)
        channels = input.shape[1]
        dims = [0] + list(range(2, input.dim()))
        x = input.float()
        count = torch.tensor([float(x.numel() // channels)], dtype=torch.float32)
        stats = torch.cat([x.sum(dims), (x * x).sum(dims), count])
        stats = allreduce(stats, op=Sum, name="sync_batch_norm.stats")  # the same name on every rank
        total = stats[-1]
        mean = stats[:channels] / total
        var = stats[channels:2 * channels] / total - mean * mean
        if self.track_running_stats:
            with torch.no_grad():
                m = self._momentum()
                unbiased = var * (total / torch.clamp(total - 1, min=1))
                self.running_mean.mul_(1 - m).add_(mean.to(self.running_mean.dtype), alpha=m)
                self.running_var.mul_(1 - m).add_(unbiased.to(self.running_var.dtype), alpha=m)
        shape = [1, channels] + [1] * (input.dim() - 2)
        y = (x - mean.view(shape)) * torch.rsqrt(var.view(shape) + self.eps)
        if self.affine:
            y = y * self.weight.view(shape) + self.bias.view(shape)
        return y.to(input.dtype)
