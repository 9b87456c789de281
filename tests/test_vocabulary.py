"""cat_seg.vocabulary: the class syntax, files of names, named and dataset vocabularies, labels."""
import json

import pytest
from mmseg.datasets import BaseSegDataset

from cat_seg.benchmarks import BENCHMARKS
from cat_seg.datasets import PascalVOC20Dataset, save_categories
from cat_seg.vocabulary import (class_label, dataset_vocabulary, json_vocabulary,
                                load_class_names, named_vocabulary, parse_class,
                                parse_vocabulary, read_vocabulary, read_vocabulary_file,
                                unique_classes)


def test_vocabulary_prefers_an_explicit_prediction_vocabulary():
    dataset = BaseSegDataset(metainfo=dict(classes=('a', 'b'), vocabulary=('a', 'b', 'c')),
                             lazy_init=True)
    assert dataset_vocabulary(dataset) == ['a', 'b', 'c']
    assert dataset_vocabulary(BaseSegDataset(metainfo=dict(classes=('x',)),
                                             lazy_init=True)) == ['x']


def test_dataset_without_class_names_is_an_error():
    class Nameless:
        metainfo = {}

    with pytest.raises(ValueError, match='Nameless has no metainfo "classes" or "vocabulary"'):
        dataset_vocabulary(Nameless())


def test_a_dataset_class_gives_its_fixed_classes():
    assert dataset_vocabulary(PascalVOC20Dataset)[:2] == ['aeroplane', 'bicycle']


def test_named_vocabularies_come_from_the_benchmark_datasets():
    """One place per fact: PAS-20 without VOC's background (the dataset's METAINFO), PAS-20b's
    59 names, the benchmark list of tools/benchmark.py and tools/demo.py."""
    assert list(BENCHMARKS) == ['ade847', 'pc459', 'ade150', 'pc59', 'voc20', 'voc20b']
    voc20 = named_vocabulary('voc20')
    assert len(voc20) == 20 and 'background' not in voc20
    assert named_vocabulary('voc20b')[:20] == voc20 and len(named_vocabulary('voc20b')) == 59
    assert len(named_vocabulary('ade150')) == 150 and len(named_vocabulary('coco171')) == 171
    with pytest.raises(ValueError, match=r"dataset 'ade21k' is not one of \['ade847', "):
        named_vocabulary('ade21k')


def test_a_category_file_vocabulary_is_read_from_the_prepared_data(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match="category file 'data/VOCdevkit/VOC2010/"
                                                "pc459_categories.json' does not exist"):
        named_vocabulary('pc459')
    (tmp_path / 'data' / 'VOCdevkit' / 'VOC2010').mkdir(parents=True)
    save_categories([dict(name='accordion', id=1), dict(name='sky', id=2)],
                    tmp_path / 'data' / 'VOCdevkit' / 'VOC2010' / 'pc459_categories.json')
    assert named_vocabulary('pc459') == ['accordion', 'sky']


@pytest.mark.parametrize('content,message', [
    ('{"sky": 1}', 'holds a JSON object, not a list'),
    ('"sky"', 'holds a JSON string, not a list'),
    ('["sky", 3]', r'entry 1 \(3\) is neither a name, a list of names nor a category'),
    ('[["sky", ["blue"]]]', r'entry 0 \(\["sky", \["blue"\]\]\) is neither'),
    ('[{"id": 3}]', r'entry 0 \(\{"id": 3\}\) is neither'),
    ('[{"name": 3}]', 'entry 0'),
    ('["sky",', 'is not valid JSON'),
    (b'\xff\xfe\x00sky', 'is not UTF-8 text'),
])
def test_malformed_vocabulary_files_name_the_file_and_the_shapes(tmp_path, content, message):
    path = tmp_path / 'vocab.json'
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    with pytest.raises(ValueError, match=rf"^vocabulary file '{path}'.*{message}.*expected one "
                                         r'name per line, or a JSON list of names \["sky", '
                                         r'\.\.\.\], of synonym lists .* or of categories'):
        read_vocabulary_file(str(path))


def test_vocabulary_file_shapes(tmp_path):
    shapes = {'lines.txt': 'sky\nperson, human\n', 'names.json': '["sky", "person"]',
              'synonyms.json': '[["sky"], ["person", "human"]]',
              'categories.json': '[{"name": "sky", "id": 1}, {"name": "person"}]'}
    for name, text in shapes.items():
        (tmp_path / name).write_text(text)
    assert read_vocabulary_file(str(tmp_path / 'lines.txt')) == ['sky', 'person, human']
    assert read_vocabulary_file(str(tmp_path / 'names.json')) == ['sky', 'person']
    assert read_vocabulary_file(str(tmp_path / 'synonyms.json')) == [['sky'], ['person', 'human']]
    assert read_vocabulary_file(str(tmp_path / 'categories.json')) == ['sky', 'person']


@pytest.mark.parametrize('text, error, message', [
    (None, FileNotFoundError, r"class names file '.*names.txt' does not exist"),
    ('\n \n', ValueError, r'names.txt\' is empty'),
    ('sky\n\nroad\n', ValueError, r'line 2 is blank; line k names label id k - 1'),
    ('sky\nroad\nsky\n', ValueError, r"repeats \['sky'\]"),
])
def test_bad_class_names_files_are_named(tmp_path, text, error, message):
    if text is not None:
        (tmp_path / 'names.txt').write_text(text)
    with pytest.raises(error, match=message):
        load_class_names(tmp_path / 'names.txt')


def test_classes_are_separated_by_commas_and_synonyms_by_semicolons():
    expected = ['sky', ('person', 'human'), 'flag']
    assert parse_vocabulary(' sky ,person; human ;, flag;') == expected
    assert parse_class(['person', ' human ', '']) == ('person', 'human')
    assert parse_class(' ; ') == ()
    # The same class written twice, with other spacing, counts once.
    with pytest.warns(UserWarning, match='duplicate class names removed: 2 repeats'):
        assert parse_vocabulary('sky, a;b, sky , a ; b') == ['sky', ('a', 'b')]


@pytest.mark.parametrize('text', ['', ' , ', ' ; , ;'])
def test_a_vocabulary_without_names_is_an_error(text):
    with pytest.raises(ValueError, match='^the vocabulary is empty: give at least one class name'):
        parse_vocabulary(text)


def test_every_source_gives_the_same_classes(tmp_path, monkeypatch):
    """--vocab text, a --vocab-file (JSON synonym lists or 'a; b' lines) and a named dataset."""
    expected = ['sky', ('person', 'human')]
    (tmp_path / 'names.json').write_text(json.dumps(['sky', ['person', 'human'], 'sky']))
    (tmp_path / 'names.txt').write_text('sky\nperson; human\n\n')
    assert read_vocabulary(vocab='sky, person; human') == expected
    with pytest.warns(UserWarning, match='1 repeats'):
        assert read_vocabulary(vocab_file=str(tmp_path / 'names.json')) == expected
    assert read_vocabulary(vocab_file=str(tmp_path / 'names.txt')) == expected
    assert read_vocabulary(dataset='voc20') == named_vocabulary('voc20')
    monkeypatch.chdir(tmp_path)
    with pytest.raises(FileNotFoundError, match=r'^--dataset ade847 reads its vocabulary from a '
                       r"file its preparation script writes .*: category file '.*' does not "
                       r'exist .*; or pass the file with --vocab-file'):
        read_vocabulary(dataset='ade847')


def test_labels_show_synonyms_as_users_write_them():
    vocabulary = parse_vocabulary('sky, person; human')
    assert [class_label(c) for c in vocabulary] == ['sky', 'person; human']
    assert parse_vocabulary(', '.join(map(class_label, vocabulary))) == vocabulary
    assert json_vocabulary(vocabulary) == ['sky', ['person', 'human']]
    assert unique_classes(json_vocabulary(vocabulary)) == vocabulary   # read back as a file
