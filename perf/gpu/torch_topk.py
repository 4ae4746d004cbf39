"""torch.topk on |x| for the same size and K as sqz_kernel_bench's topk:0.01,
timed with CUDA events (median), for the comparison in perf/gpu/run.sh."""
import math
import sys

import torch

n = int(sys.argv[1]) if len(sys.argv) > 1 else 64 << 20
reps = int(sys.argv[2]) if len(sys.argv) > 2 else 20
k = max(1, min(n, math.ceil(0.01 * n)))
torch.manual_seed(1)
x = torch.randn(n, device="cuda") * 1e-3
e = torch.zeros(n, device="cuda")


def run():
    # Same work as sqz's top-K encode+EF: y = g + e, select K by |y|, gather.
    y = x + e
    vals, idx = torch.topk(y.abs(), k, sorted=False)
    return y[idx], idx


for _ in range(2):
    run()
times = []
for _ in range(reps):
    a = torch.cuda.Event(enable_timing=True)
    b = torch.cuda.Event(enable_timing=True)
    a.record()
    run()
    b.record()
    torch.cuda.synchronize()
    times.append(a.elapsed_time(b))
times.sort()
print(f"| torch.topk(|g+e|, k={k}) + gather, n={n} | {times[len(times) // 2]:.3f} ms | torch {torch.__version__} |")
