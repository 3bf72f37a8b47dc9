"""Benchmark networks from their option files: parameters, MACs, latency, and PSNR/SSIM with weights.

Usage: python scripts/benchmark.py --opt FILE [FILE ...] [--weights CKPT ...] [--self-ensemble]
[--lr-size H W] [--device cpu|cuda] [--dtype fp32|bf16|fp16] [--channels-last] [--compile]
[--backends torch onnxruntime openvino] [--rounds N] [--json OUT] [--markdown OUT] [--plot OUT.png]

One row per option file. Latency is the median of timed forwards after warm-up (synchronised on GPU),
of the network with weight norm folded (``latency_ms``) and as trained (``latency_unfolded_ms``). A plain
3x3 64->64 convolution at the same size is timed in the same alternating rounds, as the machine's
reference GFLOP/s. ``--backends`` adds ONNX Runtime and OpenVINO (optional extras) on the same folded
network, timed in the same rounds (CPU, fp32), with each one's largest difference from PyTorch's output.

With ``--weights`` (one checkpoint per option file, e.g. ``options/test_wdsr_b_x2.yml``), each network is
scored the way ``test.py`` scores it: ``WDSRModel.validation`` on every validation/test set of the option
file, with its ``val`` metrics, tiling and self-ensemble settings (per-image figures in
``results/benchmark_<name>/metrics_<set>.json``). The markdown then carries the table SR papers print: a
row per network and scale (parameters, GMACs for a 1280x720 output), a column per set (PSNR / SSIM).

Modules: :mod:`.measure` (parameters, MACs, latency, scores), :mod:`.tables` (markdown and plots),
:mod:`.cli` (``wdsr-benchmark``), :mod:`.training` (training-step and loader speed, ``scripts/bench_train.py``).
"""
