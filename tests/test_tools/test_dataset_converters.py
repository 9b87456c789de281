"""tools/dataset_converters/: raw downloads -> our layout -> tools/test.py -> hand-computed mIoU."""
import hashlib
import json
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mmseg.datasets import COCOStuffDataset, PascalContextDataset59
from mmseg.registry import MODELS
from PIL import Image

from catseg_testing import REPO_ROOT, TINY_CONFIG, run_tool as run, tiny_model_config
from raw_downloads import (ADE_OBJECT_NAMES, ADE_SHARED_IDS, CONTEXT_NAMES, write_ade20k_full,
                           write_pascal_context)

pytestmark = pytest.mark.slow  # the converters, tools/test.py and benchmark.sh in subprocesses

CONVERTERS = REPO_ROOT / 'tools' / 'dataset_converters'
BENCHMARKS = REPO_ROOT / 'configs' / 'benchmarks'
IGNORE = 65535


def checksum(names):
    return hashlib.sha256('\n'.join(names).encode()).hexdigest()[:12]


def read_png(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path)).astype(np.int64)


def paper_miou(pairs, num_classes: int) -> float:
    """detectron2's mIoU, by hand: mean IoU over the classes present in the ground truth."""
    intersection, union, present = np.zeros((3, num_classes))
    for pred, label in pairs:
        valid = label != IGNORE
        for k in range(num_classes):
            p, g = (pred == k) & valid, (label == k) & valid
            intersection[k] += (p & g).sum()
            union[k] += (p | g).sum()
            present[k] += g.sum()
    return round(float(np.mean(intersection[present > 0] / union[present > 0])) * 100, 2)


@pytest.fixture(scope='module')
def tiny_checkpoint(tmp_path_factory) -> Path:
    """Random tiny CAT-Seg weights in the runner's checkpoint format."""
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp('ckpt') / 'tiny.pth'
    torch.save({'state_dict': MODELS.build(tiny_model_config()).state_dict()}, path)
    return path


def check_predictions(reported: float, pred_dir: Path, gt_dir: Path, num_classes: int,
                      reduce_zero_label: bool = False):
    """The reported mIoU equals the one computed by hand from the prediction files tools/test.py
    wrote and the prepared label files (mmseg's convention with reduce_zero_label: both hold
    class + 1, and 0 in the labels is ignored)."""
    preds = sorted(pred_dir.glob('*.png'))
    assert [p.name for p in preds] == sorted(p.name for p in gt_dir.glob('*.png'))
    assert {Image.open(p).mode for p in preds} == {'I;16' if num_classes > 256 else 'L'}
    pairs = [(read_png(p), read_png(gt_dir / p.name)) for p in preds]
    if reduce_zero_label:
        pairs = [(pred - 1, np.where(label == 0, IGNORE, label - 1)) for pred, label in pairs]
    assert all(pred.shape == label.shape for pred, label in pairs)
    assert reported == paper_miou(pairs, num_classes)


# A-847 ------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def ade847(tmp_path_factory):
    parent = tmp_path_factory.mktemp('ade')
    root = write_ade20k_full(parent)
    result, log = run([sys.executable, str(CONVERTERS / 'ade20k_847.py'), str(root)], cwd=parent)
    assert result.returncode == 0, log[-3000:]
    return root.parent / 'ADE20K_847', log


def test_ade847_keeps_the_classes_of_both_splits(ade847):
    out, log = ade847
    names = [ADE_OBJECT_NAMES[k - 1] for k in ADE_SHARED_IDS]
    assert names == ['tree, woody plant', 'ship', 'wall']
    assert f'A-847 vocabulary: 3 classes, names checksum {checksum(names)}' in log
    assert 'warning: 3 classes instead of the standard 847' in log
    categories = json.loads((out / 'ade847_categories.json').read_text())
    assert categories == [dict(name=n, id=k) for n, k in zip(names, ADE_SHARED_IDS)]


def test_ade847_labels_are_16_bit_positions_and_images_are_shrunk_to_512(ade847):
    out, _ = ade847
    assert sorted(p.name for p in (out / 'images' / 'validation').iterdir()) == [
        'ADE_val_00000001.jpg', 'ADE_val_00000002.jpg']
    assert not (out / 'images' / 'training').exists()             # validation only by default
    big = out / 'annotations' / 'validation' / 'ADE_val_00000001.png'
    assert Image.open(big).mode == 'I;16'
    label = read_png(big)
    assert label.shape == (512, 689)                               # 520 x 700, short side 512
    assert Image.open(out / 'images' / 'validation' / 'ADE_val_00000001.jpg').size == (689, 512)
    # Bands of mask values 2, 5, 0 (unlabeled), 280 -> positions 2, 0, ignore, 1.
    assert [label[0, x] for x in (0, 250, 450, 688)] == [2, 0, IGNORE, 1]
    small = read_png(out / 'annotations' / 'validation' / 'ADE_val_00000002.png')
    # 280 -> 1; 299 occurs in validation only: not an A-847 class -> ignore; 5 -> 0.
    assert [small[0, x] for x in (0, 24, 47)] == [1, IGNORE, 0]


def test_ade847_accepts_an_explicit_category_list(tmp_path):
    root = write_ade20k_full(tmp_path)
    categories = tmp_path / 'mine.json'
    categories.write_text(json.dumps([dict(name='boat', id=280), dict(name='unused', id=3000)]))
    result, log = run([sys.executable, str(CONVERTERS / 'ade20k_847.py'), str(root),
                       '--categories', str(categories), '--out', str(tmp_path / 'out')],
                      cwd=tmp_path)
    assert result.returncode == 0, log[-3000:]
    assert f'2 classes, names checksum {checksum(["boat", "unused"])}' in log
    label = read_png(tmp_path / 'out' / 'annotations' / 'validation' / 'ADE_val_00000002.png')
    assert [label[0, x] for x in (0, 24, 47)] == [0, IGNORE, IGNORE]


@pytest.mark.parametrize('content,message', [
    ('[{"name": "a", "id": 1}, {"name": "b", "id": 1}]', 'repeats the ids [1]'),
    ('[{"name": "a"}]', 'entry 0: expected {"name": <non-empty string>, "id": <int>}'),
    ('{"a": 1}', 'must hold a non-empty JSON list'),
    ('[{"name": "a", ', 'is not valid JSON'),
])
def test_ade847_names_a_bad_category_file(tmp_path, content, message):
    root = write_ade20k_full(tmp_path)
    (tmp_path / 'bad.json').write_text(content)
    result, log = run([sys.executable, str(CONVERTERS / 'ade20k_847.py'), str(root),
                       '--categories', str(tmp_path / 'bad.json')], cwd=tmp_path)
    assert result.returncode == 2
    assert "error: category file" in log and message in log and 'Traceback' not in log


def test_ade847_names_a_missing_index_and_a_missing_mask(tmp_path):
    result, log = run([sys.executable, str(CONVERTERS / 'ade20k_847.py'), str(tmp_path)],
                      cwd=tmp_path)
    assert result.returncode == 2
    assert f'error: {tmp_path / "index_ade20k.pkl"} does not exist' in log
    root = write_ade20k_full(tmp_path)
    seg = next(root.rglob('ADE_val_00000002_seg.png'))
    seg.unlink()
    result, log = run([sys.executable, str(CONVERTERS / 'ade20k_847.py'), str(root)],
                      cwd=tmp_path)
    assert result.returncode == 2 and f'error: {seg} does not exist' in log


def test_ade847_prepare_test_miou_chain(ade847, tiny_checkpoint, tmp_path):
    out, _ = ade847
    result, log = run([sys.executable, str(REPO_ROOT / 'tools' / 'test.py'), str(TINY_CONFIG),
                       str(tiny_checkpoint), '--benchmark', str(BENCHMARKS / 'ade847.py'),
                       '--work-dir', str(tmp_path / 'work'), '--out', str(tmp_path / 'pred'),
                       '--cfg-options', f'test_dataloader.dataset.data_root={out}',
                       'test_dataloader.num_workers=0'], cwd=tmp_path)
    assert result.returncode == 0, log[-3000:]
    reported = float(re.search(r'Iter\(test\).*\bmIoU: (\d+\.\d+)', log).group(1))
    check_predictions(reported, tmp_path / 'pred', out / 'annotations' / 'validation', 3)


def test_a_stock_benchmark_config_reports_the_hand_computed_miou(ade847, tiny_checkpoint,
                                                                 tmp_path):
    """configs/benchmarks/catseg_vitb_ade847.py as stock tooling reads it: its data, metric and
    sliding protocol, with only the model swapped for the tiny one (for speed)."""
    out, _ = ade847
    model = {k: v for k, v in tiny_model_config().items() if k != 'test_cfg'}
    config = tmp_path / 'tiny_ade847.py'
    config.write_text(f"_base_ = [{str(BENCHMARKS / 'catseg_vitb_ade847.py')!r}]\n"
                      f"model = dict(_delete_=True, test_cfg={{{{_base_.sliding_test_cfg}}}}, "
                      f"**{model!r})\n")
    result, log = run([sys.executable, str(REPO_ROOT / 'tools' / 'test.py'), str(config),
                       str(tiny_checkpoint), '--work-dir', str(tmp_path / 'work'),
                       '--out', str(tmp_path / 'pred'),
                       '--cfg-options', f'test_dataloader.dataset.data_root={out}',
                       'test_dataloader.num_workers=0'], cwd=tmp_path)
    assert result.returncode == 0, log[-3000:]
    assert "'mode': 'slide'" in log or "mode='slide'" in log
    reported = float(re.search(r'Iter\(test\).*\bmIoU: (\d+\.\d+)', log).group(1))
    check_predictions(reported, tmp_path / 'pred', out / 'annotations' / 'validation', 3)


# PASCAL-Context ---------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def context(tmp_path_factory):
    parent = tmp_path_factory.mktemp('context')
    voc = write_pascal_context(parent)
    result, log = run([sys.executable, str(CONVERTERS / 'pascal_context.py'), str(voc)],
                      cwd=parent)
    assert result.returncode == 0, log[-3000:]
    return voc, log


def test_pc459_reads_labels_txt_and_converts_the_mat_files(context):
    voc, log = context
    names = [CONTEXT_NAMES[k] for k in sorted(CONTEXT_NAMES)]
    assert f'PC-459 vocabulary: 300 classes, names checksum {checksum(names)}' in log
    assert 'warning: val: 1 images have no .mat file and were skipped' in log
    assert (voc / 'ImageSets' / 'SegmentationContext459' / 'val.txt').read_text().split() == [
        '2008_000001', '2008_000002']
    label = read_png(voc / 'SegmentationClassContext459' / '2008_000001.png')
    assert Image.open(voc / 'SegmentationClassContext459' / '2008_000001.png').mode == 'I;16'
    assert label.shape == (36, 48)
    assert [label[0, x] for x in (0, 24, 47)] == [100, 146, 298]   # label id k -> k - 1
    categories = json.loads((voc / 'pc459_categories.json').read_text())
    assert categories[146] == dict(name='sky', id=147)


def test_pc59_keeps_mmseg_classes_by_name_in_mmseg_layout(context):
    voc, log = context
    names = list(PascalContextDataset59.METAINFO['classes'])
    assert f'PC-59 vocabulary: 59 classes, names checksum {checksum(names)}' in log
    assert (voc / 'ImageSets' / 'SegmentationContext' / 'val.txt').read_text().split() == [
        '2008_000001', '2008_000002']
    label = read_png(voc / 'SegmentationClassContext' / '2008_000001.png')
    assert Image.open(voc / 'SegmentationClassContext' / '2008_000001.png').mode == 'L'
    # aeroplane (id 101) -> 1, sky (147) -> 47, 'zebra crossing' (not PC-59) -> 0, background.
    assert [label[0, x] for x in (0, 24, 47)] == [1, names.index('sky') + 1, 0]


def test_pascal_context_names_a_malformed_or_foreign_labels_txt(tmp_path):
    voc = write_pascal_context(tmp_path)
    (voc / 'labels.txt').write_text('1: accordion\naeroplane\n')
    result, log = run([sys.executable, str(CONVERTERS / 'pascal_context.py'), str(voc)],
                      cwd=tmp_path)
    assert result.returncode == 2
    assert f"error: {voc / 'labels.txt'}, line 2: expected \"<id>: <name>\", got 'aeroplane'" \
        in log
    (voc / 'labels.txt').write_text('1: accordion\n2: aeroplane\n')
    result, log = run([sys.executable, str(CONVERTERS / 'pascal_context.py'), str(voc),
                       '--benchmarks', 'pc59'], cwd=tmp_path)
    assert result.returncode == 2 and "error: labels.txt lacks the PC-59 classes ['bag'," in log


def test_pascal_context_prepare_benchmark_sh_miou_chain(context, tiny_checkpoint, tmp_path):
    """tools/benchmark.sh from a directory with MMSeg's data/ layout: PC-459 and PC-59 evaluated
    and checked by hand, PAS-20 requested without data, the rest not requested."""
    voc, _ = context
    (tmp_path / 'data' / 'VOCdevkit').mkdir(parents=True)
    (tmp_path / 'data' / 'VOCdevkit' / 'VOC2010').symlink_to(voc)
    bench = tmp_path / 'bench'
    result, log = run(['bash', str(REPO_ROOT / 'tools' / 'benchmark.sh'), str(TINY_CONFIG),
                       str(tiny_checkpoint), '--benchmarks', 'pc459', 'pc59', 'voc20',
                       '--work-dir', str(bench), '--save-predictions',
                       '--cfg-options', 'test_dataloader.num_workers=0'], cwd=tmp_path, timeout=600)
    assert result.returncode == 1, log[-3000:]
    assert f"error: PAS-20: no data at {tmp_path / 'data/VOCdevkit/VOC2012'}" in log
    miou = {name: json.loads((bench / name / 'metrics.json').read_text())['mIoU']
            for name in ('pc459', 'pc59')}
    check_predictions(miou['pc459'], bench / 'pc459' / 'predictions',
                      voc / 'SegmentationClassContext459', 300)
    check_predictions(miou['pc59'], bench / 'pc59' / 'predictions',
                      voc / 'SegmentationClassContext', 59, reduce_zero_label=True)
    table = (bench / 'benchmarks.md').read_text()
    assert table in log
    assert ('| model | A-847 | PC-459 | A-150 | PC-59 | PAS-20 | PAS-20b |\n|---|---|---|---|---|---|---|\n'
            f'| catseg_tiny_synthetic | - | {miou["pc459"]:.1f} | - | {miou["pc59"]:.1f} | no data | - |'
            ) in table


# COCO-Stuff ------------------------------------------------------------------------------------

def test_coco_stuff_maps_category_ids_to_mmseg_train_ids(tmp_path):
    root = tmp_path / 'coco_stuff164k'
    # Raw values are category id - 1: 0 person, 11 (id 12, unused by COCO), 91 (id 92, the first
    # stuff class, 'banner'), 181 (id 182, the last, 'wood'), 255 unlabeled.
    raw = np.array([[0, 11, 91, 181, 255]], dtype=np.uint8)
    for split in ('train2017', 'val2017'):
        (root / 'annotations' / split).mkdir(parents=True)
        (root / 'images' / split).mkdir(parents=True)
        Image.fromarray(raw).save(root / 'annotations' / split / '000000000139.png')
        Image.fromarray(np.zeros((1, 5, 3), np.uint8)).save(
            root / 'images' / split / '000000000139.jpg')
    result, log = run([sys.executable, str(CONVERTERS / 'coco_stuff164k.py'), str(root)],
                      cwd=tmp_path)
    assert result.returncode == 0, log[-3000:]
    label = read_png(root / 'annotations' / 'val2017' / '000000000139_labelTrainIds.png')
    classes = COCOStuffDataset.METAINFO['classes']
    assert label.tolist() == [[0, 255, 80, 170, 255]]
    assert (classes[0], classes[80], classes[170]) == ('person', 'banner', 'wood')
    dataset = COCOStuffDataset(data_root=str(root), data_prefix=dict(
        img_path='images/val2017', seg_map_path='annotations/val2017'), lazy_init=False)
    assert len(dataset) == 1 and dataset[0]['seg_map_path'].endswith('_labelTrainIds.png')
    result, log = run([sys.executable, str(CONVERTERS / 'coco_stuff164k.py'), str(tmp_path)],
                      cwd=tmp_path)
    assert result.returncode == 2 and 'annotations/train2017 does not exist' in log
