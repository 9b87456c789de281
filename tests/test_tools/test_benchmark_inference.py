"""tools/analysis_tools/benchmark_inference.py: the FLOPs it counts, the heavy-op bound, and
its report on the tiny model."""
import importlib.util
import json
import math

import pytest
import torch
import torch.nn.functional as F

from catseg_testing import REPO_ROOT, TINY_CONFIG


def benchmark_module():
    """The benchmark tool imported as a module, to call its functions."""
    spec = importlib.util.spec_from_file_location(
        'catseg_benchmark_inference', REPO_ROOT / 'tools' / 'analysis_tools' /
        'benchmark_inference.py')
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_cpu_attention_counts_the_flops_of_its_two_matrix_products():
    bench = benchmark_module()
    query, key, value = (torch.randn(2, 3, 10, 8) for _ in range(3))
    with bench.flop_counter() as fused:
        F.scaled_dot_product_attention(query, key, value)
    with bench.flop_counter() as explicit:
        (query @ key.transpose(-1, -2)).softmax(-1) @ value
    assert fused.get_total_flops() == explicit.get_total_flops() == 2 * (2 * 2 * 3 * 10 * 10 * 8)

    query.requires_grad_()
    with bench.flop_counter() as training:
        F.scaled_dot_product_attention(query, key, value).sum().backward()
    assert training.get_total_flops() > fused.get_total_flops()


def test_heavy_op_recorder_counts_calls_by_layout_and_replays_them():
    bench = benchmark_module()
    weight, image = torch.randn(8, 16), torch.randn(1, 3, 12, 12)
    conv = torch.randn(4, 3, 3, 3)
    columns = torch.randn(8, 5).t()              # a transposed (non-contiguous) input

    def run():
        for _ in range(3):
            columns @ weight
        F.linear(torch.randn(5, 16), weight)      # another op and layout: counted apart
        F.conv2d(image, conv, padding=1)
        torch.relu(image)                         # not heavy: not recorded

    recorder = bench.HeavyOpRecorder()
    with recorder:
        run()
    counts = sorted(recorder.calls.values())
    assert counts == [1, 1, 3]
    (func, args, _), = [call for call, count in recorder.calls.items() if count == 3]
    assert func == torch.ops.aten.mm.default
    assert args[0] == bench.TensorLayout((5, 8), (1, 5), torch.float32)
    replayed = bench.random_like(args[0])
    assert replayed.shape == (5, 8) and replayed.stride() == (1, 5)

    seconds = bench.heavy_ops_alone_seconds(run)
    assert 0 < seconds < math.inf


def test_report_on_the_tiny_model_in_bf16_with_the_bound(tmp_path, capsys):
    bench = benchmark_module()
    out = tmp_path / 'result.json'
    assert bench.main([str(TINY_CONFIG), '--mode', 'slide', '--num-classes', '5',
                       '--repeats', '1', '--precision', 'bf16', '--op-bound',
                       '--json', str(out)]) == 0
    result = json.loads(out.read_text())
    assert json.loads(capsys.readouterr().out) == result
    assert result['precision'] == 'bf16' and result['gflop'] > 0
    assert math.isclose(result['share_of_peak'],
                        result['achieved_gflops'] / result['matmul_peak_gflops'], abs_tol=2e-3)
    # the heavy calls alone take a fraction of the call (the tiny model is all overhead)
    assert 0 < result['heavy_ops_alone_seconds'] < result['seconds_per_image']
    assert result['share_of_peak_bound'] >= result['share_of_peak']
    assert result['max_abs_prob_deviation'] < 0.05


def test_op_bound_of_another_backend_is_an_error(capsys):
    with pytest.raises(SystemExit) as exit_info:
        benchmark_module().parse_args([str(TINY_CONFIG), '--backend', 'onnxruntime',
                                       '--op-bound'])
    assert exit_info.value.code == 2
    assert 'error: --op-bound replays torch kernels; it needs --backend torch' in (
        capsys.readouterr().err)
