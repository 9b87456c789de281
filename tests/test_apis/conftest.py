"""Fixtures of the API tests."""
import pytest
import torch


@pytest.fixture
def tiny_checkpoint(tiny_catseg, tmp_path) -> str:
    """The tiny CAT-Seg's random weights (seeded) saved as a checkpoint file."""
    path = tmp_path / 'tiny.pth'
    torch.save(tiny_catseg.state_dict(), path)
    return str(path)
