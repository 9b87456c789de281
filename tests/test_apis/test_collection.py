"""cat_seg.apis.collection and collection_ranks without a model: listing and sharding a
collection, outputs written atomically and read back, and the summary of one process."""
import json
import re
from pathlib import Path, PurePath

import numpy as np
import pytest
from PIL import Image

from cat_seg.apis import collection
from cat_seg.apis.collection import ImageOutputs, list_collection, shard
from cat_seg.apis.collection_ranks import OverallProgress, ShardReport, gather_summary
from cat_seg.apis.inferencer import Segmentation

VOCABULARY = ['sky', ('road', 'street'), 'tree']


def touch_images(root: Path, names) -> None:
    for name in names:
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        Image.new('RGB', (4, 3)).save(root / name)


def result(height: int = 5, width: int = 7, probs: bool = False) -> Segmentation:
    labels = np.arange(height * width).reshape(height, width) % len(VOCABULARY)
    scores = np.full(len(VOCABULARY), 1 / len(VOCABULARY))
    return Segmentation(labels, scores, list(VOCABULARY), 'photo.png',
                        np.ones((len(VOCABULARY), height, width), np.float16) if probs else None)


def test_a_tree_is_mirrored_and_listed_in_sorted_order(tmp_path):
    touch_images(tmp_path / 'photos', ['b/2.png', 'a.jpg', 'b/1.png', 'b/c/0.png'])
    (tmp_path / 'photos' / 'notes.md').write_text('not an image')
    images = list_collection([str(tmp_path / 'photos'), str(tmp_path / 'photos' / 'b' / '2.png'),
                              str(tmp_path / 'missing.png')], tmp_path / 'out')
    assert [image.relative.as_posix() for image in images] == [
        'a.jpg', 'b/1.png', 'b/2.png', 'b/c/0.png', '2.png', 'missing.png']
    assert images[1].path == tmp_path / 'photos' / 'b' / '1.png'


def test_a_file_list_keeps_relative_places(tmp_path):
    touch_images(tmp_path / 'data', ['x/1.png', 'y/2.png', 'y/z/3.png'])
    listing = tmp_path / 'data' / 'list.txt'
    listing.write_text(f'x/1.png\n\n  y  \n{tmp_path / "elsewhere" / "4.png"}\n')
    images = list_collection([str(listing)], tmp_path / 'out')
    assert [(i.path, i.relative) for i in images] == [
        (tmp_path / 'data' / 'x' / '1.png', PurePath('x/1.png')),
        (tmp_path / 'data' / 'y' / '2.png', PurePath('y/2.png')),   # a directory: walked
        (tmp_path / 'data' / 'y' / 'z' / '3.png', PurePath('y/z/3.png')),
        (tmp_path / 'elsewhere' / '4.png', PurePath('4.png'))]     # missing: fails later


@pytest.mark.parametrize('inputs, out, message', [
    (['photos'], 'photos/labels', "--out '.*/photos/labels' is inside the input directory "
     "'.*/photos': a rerun would read the labels as images"),
    (['photos', 'more/a.png'], 'out', "'.*/photos/a.png' and '.*/more/a.png' would write the "
     'same outputs \\(a_labels.png, ...\\)'),
    (['empty'], 'out', "no images found in \\['.*/empty'\\]"),
    (['more/summary.png'], 'out', "'.*/more/summary.png' would write summary.json, the name of "
     "the run's summary in the output directory; move it into a subdirectory or rename it"),
])
def test_unusable_collections_are_refused(tmp_path, inputs, out, message):
    touch_images(tmp_path, ['photos/a.png', 'more/a.png', 'more/summary.png'])
    (tmp_path / 'empty').mkdir()
    with pytest.raises(ValueError, match=message):
        list_collection([str(tmp_path / i) for i in inputs], tmp_path / out)


def test_shards_cover_the_collection_once():
    shards = [list(shard(11, rank, 3)) for rank in range(3)]
    assert shards[1] == [1, 4, 7, 10]
    assert sorted(sum(shards, [])) == list(range(11))


def outputs_for(tmp_path, extras=()):
    image = collection.CollectionImage(tmp_path / 'in' / 'photo.png', PurePath('d/photo.png'))
    return ImageOutputs(tmp_path / 'out', image, VOCABULARY, extras)


def test_written_outputs_read_back_as_their_pixel_counts(tmp_path):
    outputs = outputs_for(tmp_path, extras=('probs', 'overlay'))
    counts = outputs.write(result(probs=True), Path('photo.png'), Image.new('RGB', (7, 5)))
    assert counts.tolist() == [12, 12, 11]
    np.testing.assert_array_equal(outputs.read_back(), counts)
    assert sorted(p.name for p in (tmp_path / 'out' / 'd').iterdir()) == [
        'photo.json', 'photo_labels.png', 'photo_overlay.png', 'photo_probs.npz']
    # Without the optional outputs they are not needed; with others they are.
    assert outputs_for(tmp_path).read_back() is not None
    (tmp_path / 'out' / 'd' / 'photo_probs.npz').unlink()
    assert outputs_for(tmp_path, extras=('probs',)).read_back() is None


def damage(path: Path, how: str) -> None:
    if how == 'truncate':
        path.write_bytes(path.read_bytes()[:len(path.read_bytes()) // 2])
    elif how == 'delete':
        path.unlink()
    else:
        path.write_text(how)


@pytest.mark.parametrize('name, how', [
    ('photo_labels.png', 'truncate'), ('photo_labels.png', 'delete'),
    ('photo.json', 'truncate'), ('photo.json', '[]'), ('photo_probs.npz', 'truncate'),
    ('photo_overlay.png', 'truncate'),
])
def test_a_damaged_output_means_not_done(tmp_path, name, how):
    outputs = outputs_for(tmp_path, extras=('probs', 'overlay'))
    outputs.write(result(probs=True), Path('photo.png'), Image.new('RGB', (7, 5)))
    damage(tmp_path / 'out' / 'd' / name, how)
    assert outputs.read_back() is None


def test_outputs_of_another_vocabulary_or_size_are_not_done(tmp_path):
    outputs = outputs_for(tmp_path)
    outputs.write(result(), Path('photo.png'))
    image = collection.CollectionImage(Path('photo.png'), PurePath('d/photo.png'))
    assert ImageOutputs(tmp_path / 'out', image, ['sky', 'road', 'tree'], ()).read_back() is None
    summary = tmp_path / 'out' / 'd' / 'photo.json'
    summary.write_text(json.dumps(dict(json.loads(summary.read_text()), height=6)))
    assert outputs.read_back() is None


def test_an_interrupted_write_leaves_no_final_summary_and_is_redone(tmp_path, monkeypatch):
    """A write stopped after the labels are renamed (a kill between two renames): the image is
    not done; the next write replaces its temporary files and leaves none."""
    outputs = outputs_for(tmp_path)
    renamed = []

    def stop_at_the_summary(temporary, final):
        if final.suffix == '.json':
            raise KeyboardInterrupt
        renamed.append(final.name)
        temporary.replace(final)

    monkeypatch.setattr(collection, 'durable_replace', stop_at_the_summary)
    with pytest.raises(KeyboardInterrupt):
        outputs.write(result(), Path('photo.png'))
    assert renamed == ['photo_labels.png'] and outputs.read_back() is None
    monkeypatch.undo()
    outputs.write(result(), Path('photo.png'))
    assert outputs.read_back() is not None
    assert sorted(p.name for p in (tmp_path / 'out' / 'd').iterdir()) == [
        'photo.json', 'photo_labels.png']


def test_one_process_summary_and_progress(capsys):
    report = ShardReport(len(VOCABULARY))
    report.add(np.array([3, 0, 1]), before=True)
    report.add(np.array([1, 0, 3]), before=False)
    report.failures += [(5, 'b.png', 'empty file (0 bytes)'), (2, 'a.png', 'no such file')]
    progress = OverallProgress(total=4, done=1, pending=3)
    assert progress.steps == 3
    for processed in (1, 1, 0):
        progress.step(processed)
    progress.close()
    assert re.search(r'3/4', capsys.readouterr().err)
    summary = gather_summary(report, 4, VOCABULARY)
    assert summary == dict(
        images=4, complete=2, done_before=1, segmented=1,
        failed=[dict(image='a.png', reason='no such file'),
                dict(image='b.png', reason='empty file (0 bytes)')],
        vocabulary=['sky', ['road', 'street'], 'tree'],
        pixels=[dict(name='sky', pixels=4, share=0.5),
                dict(name='road; street', pixels=0, share=0.0),
                dict(name='tree', pixels=4, share=0.5)])
