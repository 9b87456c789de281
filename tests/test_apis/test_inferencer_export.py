"""The API's exports: class probabilities (return_probs), dense CLIP features, their files, and
the disk text cache read once per vocabulary."""
import numpy as np
import pytest
from mmengine.config import Config
from PIL import Image

from cat_seg.apis import CATSegInferencer
from cat_seg.apis import text_cache as text_cache_module
from catseg_testing import (REPO_ROOT, TINY_CONFIG, assert_labels_score_best,
                            catseg_config_from_fixture)

VOCABULARY = ['sky', ['person', 'human'], 'flag', 'tree', 'road']


@pytest.fixture
def fixture_inferencer(parity_fixture, tmp_path):
    """Builds an inferencer of the parity fixture's model and official-layout weights."""
    config = tmp_path / 'fixture_model.py'
    Config(dict(model=catseg_config_from_fixture(parity_fixture.config))).dump(str(config))
    return lambda mode: CATSegInferencer(str(config), str(parity_fixture.path / 'state_dict.pt'),
                                         mode=mode, text_cache_dir=None)


@pytest.fixture
def photo():
    """A real photo at a size that is not square: (45, 60, 3)."""
    return np.asarray(Image.open(REPO_ROOT / 'demo' / 'astronaut.jpg').convert('RGB')
                      .resize((60, 45)))


@pytest.mark.parametrize('mode', ['whole', 'slide'])
def test_probabilities_on_request(fixture_inferencer, photo, mode):
    inferencer = fixture_inferencer(mode)
    plain, = inferencer(photo, VOCABULARY)
    assert plain.probs is None and plain.features is None
    result, = inferencer(photo, VOCABULARY, return_probs=True)
    assert result.probs.shape == (5, 45, 60) and result.probs.dtype == np.float16
    # The labels are the argmax of float32 probabilities and float16 rounding is monotonic, so
    # at every pixel, for any weights, the labelled class has the largest stored probability.
    assert_labels_score_best(result.probs, result.label_map, tolerance=0)
    ranked = np.sort(result.probs, axis=0)
    assert (ranked[-1] > ranked[-2]).any(), 'the probabilities tie at every pixel'
    np.testing.assert_array_equal(result.label_map, plain.label_map)
    np.testing.assert_allclose(result.class_scores, plain.class_scores, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(result.probs.astype(np.float32).mean((1, 2)), plain.class_scores,
                               atol=1e-3)
    again, = inferencer(photo, VOCABULARY)   # the model is back to its default
    assert again.probs is None


def test_features_of_every_view(tiny_checkpoint, photo, tmp_path):
    """Tiny CLIP: 32 output channels, a 4x4 grid at 64 px; slide: 96 px, windows of 64 at stride
    32 (2 x 2) and the global view."""
    whole = CATSegInferencer(str(TINY_CONFIG), tiny_checkpoint, mode='whole', text_cache_dir=None)
    assert whole.features(photo).shape == (1, 32, 4, 4)
    slide = CATSegInferencer(str(TINY_CONFIG), tiny_checkpoint, mode='slide', text_cache_dir=None)
    features = slide.features(photo)
    assert features.shape == (5, 32, 4, 4) and features.dtype == np.float32
    # The global view is the whole image at the CLIP resolution: whole mode's view, unpadded.
    assert not np.allclose(features[0], features[-1])
    result, = slide(photo, VOCABULARY, out_dir=str(tmp_path), with_features=True)
    np.testing.assert_array_equal(result.features, features)
    np.testing.assert_array_equal(np.load(tmp_path / 'array_0_features.npz')['features'],
                                  features)
    assert not (tmp_path / 'array_0_probs.npz').exists()


def test_features_refuse_what_is_not_one_image(tiny_checkpoint, tmp_path):
    inferencer = CATSegInferencer(str(TINY_CONFIG), tiny_checkpoint, mode='whole',
                                  text_cache_dir=None)
    for name in ('a.png', 'b.png'):
        Image.new('RGB', (8, 8)).save(tmp_path / name)
    with pytest.raises(ValueError, match=r'features\(\) takes one image .* with 2 images'):
        inferencer.features(tmp_path)
    with pytest.raises(ValueError, match=r'failed: array_0: expected an RGB uint8 array'):
        inferencer.features(np.zeros((4, 4), np.uint8))


def test_probability_file_holds_the_vocabulary(tiny_checkpoint, photo, tmp_path):
    inferencer = CATSegInferencer(str(TINY_CONFIG), tiny_checkpoint, mode='whole',
                                  text_cache_dir=None)
    result, = inferencer([photo], VOCABULARY, out_dir=str(tmp_path), return_probs=True)
    stored = np.load(tmp_path / 'array_0_probs.npz')
    assert list(stored['vocabulary']) == ['sky', 'person; human', 'flag', 'tree', 'road']
    np.testing.assert_array_equal(stored['probs'], result.probs)


def test_disk_text_cache_is_read_once_per_vocabulary(tiny_checkpoint, photo, tmp_path,
                                                     monkeypatch):
    cache = str(tmp_path / 'cache')
    CATSegInferencer(str(TINY_CONFIG), tiny_checkpoint, mode='whole',
                     text_cache_dir=cache)([photo], VOCABULARY)          # writes the file
    reads = []
    loader = text_cache_module.load_embeddings
    monkeypatch.setattr(text_cache_module, 'load_embeddings',
                        lambda path, device: reads.append(path) or loader(path, device))
    inferencer = CATSegInferencer(str(TINY_CONFIG), tiny_checkpoint, mode='whole',
                                  text_cache_dir=cache)
    results = inferencer([photo, photo[:20], photo[:, :30]], VOCABULARY)
    assert [r.label_map.shape for r in results] == [(45, 60), (20, 60), (45, 30)]
    assert reads == [inferencer.text_cache.file(VOCABULARY)]
    inferencer([photo], VOCABULARY)
    inferencer([photo], ['sky'])                     # another vocabulary: computed and stored
    assert len(reads) == 1
    assert inferencer.model.text_encoder.num_prompts_encoded == 1
