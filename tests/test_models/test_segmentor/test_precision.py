"""test_cfg.precision: which dtype runs where, the fp32 fallback for bf16 on CPUs without bf16
units, and bf16 against fp32 on the release parity fixture."""
import warnings

import pytest
import torch
from mmseg.registry import MODELS
from mmseg.structures import SegDataSample

from cat_seg.models.segmentor import precision
from cat_seg.weights.convert_release import convert_official_state_dict
from catseg_testing import catseg_config_from_fixture, raw_batch

NAMES = ['sky', 'grass', 'road']
# Issue 23: where fp32 has a clear winner, bf16 must pick it too.
CLEAR_TOP2_GAP = 0.05


@pytest.fixture
def fresh_warning(monkeypatch):
    """The fallback warning not yet given in this process."""
    monkeypatch.setattr(precision, '_fallback_warned', False)


@pytest.mark.parametrize('capabilities,expected', [
    ({'architecture': 'x86_64', 'avx512_bw': True, 'avx512_bf16': False}, False),
    ({'architecture': 'x86_64', 'avx512_bf16': True}, True),
    ({'architecture': 'x86_64', 'avx512_bf16': False, 'amx_bf16': True}, True),
    ({'architecture': 'arm64', 'neon': True, 'bf16': True}, True),
    ({'architecture': 'arm64', 'neon': True}, False),
])
def test_bf16_units_as_cpuinfo_reports_them(monkeypatch, capabilities, expected):
    monkeypatch.setattr(torch.cpu, 'get_capabilities', lambda: capabilities)
    assert precision.cpu_has_bf16() is expected


def test_without_cpuinfo_onednn_decides(monkeypatch):
    """Torch before ``torch.cpu.get_capabilities``: oneDNN's check, never taken without oneDNN."""
    monkeypatch.delattr(torch.cpu, 'get_capabilities', raising=False)
    monkeypatch.setattr(torch.backends.mkldnn, 'is_available', lambda: False)
    assert precision.cpu_has_bf16() is False


def test_dtypes_by_device(monkeypatch, fresh_warning):
    monkeypatch.setattr(precision, 'cpu_has_bf16', lambda: False)
    with warnings.catch_warnings():
        warnings.simplefilter('error')        # none of these falls back
        assert precision.autocast_dtype('fp32', 'cpu') is None
        assert precision.autocast_dtype('fp16', 'cpu') is torch.float16
        assert precision.autocast_dtype('bf16', 'cuda') is torch.bfloat16
    monkeypatch.setattr(precision, 'cpu_has_bf16', lambda: True)
    assert precision.autocast_dtype('bf16', 'cpu') is torch.bfloat16


def whole_probs(model, precision_name):
    model.test_cfg = dict(mode='whole', precision=precision_name)
    data = model.data_preprocessor(raw_batch(((64, 80),)), False)
    return model.predict(data['inputs'], data['data_samples'], vocabulary=NAMES)[0].seg_logits.data


@torch.no_grad()
def test_bf16_without_bf16_units_warns_once_and_runs_fp32(tiny_catseg, monkeypatch,
                                                          fresh_warning):
    model = tiny_catseg.eval()
    fp32 = whole_probs(model, 'fp32')
    monkeypatch.setattr(precision, 'cpu_has_bf16', lambda: False)
    with pytest.warns(UserWarning) as caught:
        first, second = whole_probs(model, 'bf16'), whole_probs(model, 'bf16')
    messages = [str(w.message) for w in caught if 'bf16' in str(w.message)]
    assert messages == ["precision='bf16' runs in fp32: this CPU has no bf16 units (AVX512-BF16, "
                        'AMX or Arm BF16), where bf16 would be emulated and slower than fp32']
    assert torch.equal(first, fp32) and torch.equal(second, fp32)

    monkeypatch.setattr(precision, 'cpu_has_bf16', lambda: True)
    assert not torch.equal(whole_probs(model, 'bf16'), fp32)     # with units, bf16 runs


def fixture_case_probs(model, case, window, precision_name):
    """Probabilities (T, H, W) of a parity case's image under ``precision_name``, in the case's
    mode: the fixture's sliding-window protocol (``window``) or the whole image."""
    inputs = case['inputs']
    shape = (inputs['height'], inputs['width'])
    sample = SegDataSample(metainfo=dict(ori_shape=shape, img_shape=shape))
    # mmseg loads BGR; the preprocessor converts back to RGB (bgr_to_rgb=True).
    data = model.data_preprocessor(dict(inputs=[inputs['image'].flip(0)], data_samples=[sample]),
                                   False)
    model.test_cfg = dict(
        mode='slide', crop_size=(window['kernel'], ) * 2, stride=(window['stride'], ) * 2,
        resize_to=tuple(window['out_res']), precision=precision_name,
    ) if inputs['sliding_window'] else dict(mode='whole', precision=precision_name)
    return model.predict(data['inputs'], data['data_samples'],
                         vocabulary=inputs['class_names'])[0].seg_logits.data


@pytest.mark.slow
@torch.no_grad()
def test_bf16_labels_agree_with_fp32_where_fp32_is_clear(parity_fixture, monkeypatch):
    """Every evaluation case of the fixture (no label), in its own mode, on the device's
    execution plan; bf16 runs whatever this CPU has (emulated where it has no bf16 units).
    Slow: each case's full image twice, 300 classes in one of the release fixture's."""
    monkeypatch.setattr(precision, 'cpu_has_bf16', lambda: True)
    model = MODELS.build(catseg_config_from_fixture(parity_fixture.config))
    model.load_state_dict(convert_official_state_dict(parity_fixture.state_dict))
    model.eval()
    window = parity_fixture.config['sliding_window']
    cases = [c for c in parity_fixture.cases.values() if 'label' not in c['inputs']]
    assert cases, f'{parity_fixture.path} has no evaluation case'
    for case in cases:
        fp32 = fixture_case_probs(model, case, window, 'fp32')
        bf16 = fixture_case_probs(model, case, window, 'bf16')
        assert bf16.dtype == torch.float32 and bf16.shape == fp32.shape
        top2 = fp32.topk(2, dim=0).values
        clear = (top2[0] - top2[1]) > CLEAR_TOP2_GAP
        assert torch.equal(bf16.argmax(0)[clear], fp32.argmax(0)[clear])
