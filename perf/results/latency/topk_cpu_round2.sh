#!/bin/bash
# new codec bench, torch.topk, base codec bench; in one quiet run
cd /work/wt/i19
date -u
F='^(memcpy|encode/topk:0.01|encode\+ef/topk:0.01)/real_time$'
echo "== new (issue-19 $(git rev-parse --short HEAD) + working tree)"
build/perf/codec/sqz_codec_bench --elements=67108864 --benchmark_filter="$F" --benchmark_repetitions=3 --benchmark_min_time=0.5
echo "== torch"
/usr/bin/python3 perf/codec/torch_topk_bench.py --elements 67108864 --ratio 0.01 --repeats 3
echo "== base (main 148d9bc)"
/tmp/i19-base/build/perf/codec/sqz_codec_bench --elements=67108864 --benchmark_filter="$F" --benchmark_repetitions=3 --benchmark_min_time=0.5
date -u
