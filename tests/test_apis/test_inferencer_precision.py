"""The inferencer's precision option reaches the model's forward pass."""
import numpy as np
import pytest
import torch

from cat_seg.apis import CATSegInferencer
from catseg_testing import TINY_CONFIG


def test_precision_reaches_the_model(tiny_catseg, tmp_path, autocast_requests):
    torch.save(tiny_catseg.state_dict(), tmp_path / 'tiny.pth')
    for precision in ('bf16', 'fp16', None):
        inferencer = CATSegInferencer(str(TINY_CONFIG), str(tmp_path / 'tiny.pth'), mode='whole',
                                      text_cache_dir=None, precision=precision)
        assert inferencer.model.test_settings.precision == (precision or 'fp32')
        assert inferencer(np.zeros((20, 30, 3), np.uint8), ['sky', 'road'])[0] is not None
    assert autocast_requests == ['bf16', 'fp16', 'fp32']   # None: the config's, fp32


def test_an_unknown_precision_names_the_choices(tiny_catseg, tmp_path):
    torch.save(tiny_catseg.state_dict(), tmp_path / 'tiny.pth')
    with pytest.raises(ValueError, match=r"test_cfg.precision='int8' is not one of \['fp32', "
                                         r"'bf16', 'fp16'\]"):
        CATSegInferencer(str(TINY_CONFIG), str(tmp_path / 'tiny.pth'), text_cache_dir=None,
                         precision='int8')
