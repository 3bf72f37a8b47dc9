"""The training benchmark times basicsr's loop body and counts what a step reads back (scripts/bench_train.py)."""

from basicsr.archs import build_network

from wdsr_basicsr.benchmark.training import step_timings
from wdsr_basicsr.models.wdsr_model import WDSRModel

TINY = {'type': 'WDSR_B', 'num_feat': 8, 'num_block': 1, 'upscale': 2}


def test_the_benchmark_counts_the_value_reads_of_each_step(monkeypatch):
    """Eager on the CPU: one read per parameter tensor (the fused Adam's step counts, read in its kernel); the
    captured step: none. Every figure is a measurement (positive), per iteration."""
    monkeypatch.setattr(WDSRModel, 'compile_backend', 'aot_eager')  # traced, not code-generated: fast
    eager, captured = step_timings(
        TINY, device='cpu', bf16=False, channels_last=False, modes=('eager', 'captured'), iters=2, batch=2, gt_size=24
    )
    assert eager['syncs'] == len(list(build_network(dict(TINY)).parameters()))
    assert captured['syncs'] == 0
    for timed in (eager, captured):
        assert timed['seconds'] > 0 and timed['first_s'] > 0 and timed['kernels'] > 0 and timed['kernel_ms'] > 0
