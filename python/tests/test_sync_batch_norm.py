"""hvd.SyncBatchNorm against torch's BatchNorm on the concatenated global
batch: outputs, input gradients, summed parameter gradients and running
statistics (run under mpirun, every rank holding its slice)."""
import torch

import sqz.torch as hvd


def global_batch(n_per_rank, size):
    g = torch.Generator().manual_seed(7)
    return torch.randn(n_per_rank * size, 3, 5, 4, generator=g) * 2.0 + 0.5


def test_sync_batch_norm_matches_batch_norm_on_the_global_batch():
    hvd.init()
    r, n = hvd.rank(), hvd.size()
    per = 4
    full = global_batch(per, n)
    weight_grad_probe = torch.randn(full.shape, generator=torch.Generator().manual_seed(3))

    ref = torch.nn.BatchNorm2d(3)
    with torch.no_grad():
        ref.weight.copy_(torch.tensor([1.5, 0.5, -1.0]))
        ref.bias.copy_(torch.tensor([0.1, -0.2, 0.3]))
    sync = hvd.SyncBatchNorm(3)
    sync.load_state_dict(ref.state_dict())

    x_ref = full.clone().requires_grad_(True)
    y_ref = ref(x_ref)
    (y_ref * weight_grad_probe).sum().backward()

    mine = slice(r * per, (r + 1) * per)
    x = full[mine].clone().requires_grad_(True)
    y = sync(x)
    (y * weight_grad_probe[mine]).sum().backward()

    assert torch.allclose(y, y_ref[mine], atol=1e-5, rtol=1e-4)
    assert torch.allclose(x.grad, x_ref.grad[mine], atol=1e-5, rtol=1e-4)
    # Parameter gradients are local; their sum over ranks is the global one.
    wsum = hvd.allreduce(sync.weight.grad, op=hvd.Sum, name="sbn.w")
    bsum = hvd.allreduce(sync.bias.grad, op=hvd.Sum, name="sbn.b")
    assert torch.allclose(wsum, ref.weight.grad, atol=1e-4, rtol=1e-4)
    assert torch.allclose(bsum, ref.bias.grad, atol=1e-4, rtol=1e-4)
    assert torch.allclose(sync.running_mean, ref.running_mean, atol=1e-6)
    assert torch.allclose(sync.running_var, ref.running_var, atol=1e-5)
    # Eval mode normalizes with the running statistics, like batch norm.
    sync.eval()
    ref.eval()
    assert torch.allclose(sync(full[mine]), ref(full[mine]), atol=1e-5)
