"""torch.topk on one thread, the baseline for sqz's CPU top-K encode.

Same size and distribution as sqz_codec_bench's input (normal, sigma 1e-3):
selects the K = ceil(ratio * n) largest magnitudes, as topk:RATIO does.
    python3 perf/codec/torch_topk_bench.py [--elements N] [--ratio R] [--repeats R]
Prints one line per repeat and the median, in ms and GB/s of fp32 input.
"""
import argparse
import math
import statistics
import time

import torch


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--elements", type=int, default=64 << 20)
    ap.add_argument("--ratio", type=float, default=0.01)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(args.elements, generator=g) * 1e-3
    k = math.ceil(args.ratio * args.elements)
    times = []
    for r in range(args.repeats):
        t0 = time.perf_counter()
        _, idx = torch.topk(x.abs(), k, sorted=False)
        times.append(time.perf_counter() - t0)
        print(f"torch.topk n={args.elements} k={k} threads=1 repeat={r}: {times[-1] * 1e3:.1f} ms")
    med = statistics.median(times)
    print(f"torch.topk median: {med * 1e3:.1f} ms, {args.elements * 4 / med / 1e9:.3f} GB/s "
          f"(torch {torch.__version__})")


if __name__ == "__main__":
    main()
