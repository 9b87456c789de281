"""Class names, owned here alone: how users write them, the files that hold them, the named
vocabularies of the benchmarks, and how a class is shown.

A class is a name, or synonyms written ``'a; b'`` (a list ``['a', 'b']`` in JSON files and in
the Python API); on the command line and in the web app, classes are separated by ``','``
(``"sky, tree, person; human"``). The official benchmark files write synonyms as ``'a, b'``
inside one name instead; the text encoder's ``synonym_rule`` says how such a name is prompted
(``class_synonyms``, ``prompt_name``).
"""
import json
import warnings
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence, Tuple, Union

from mmseg.registry import DATASETS

from .benchmarks import BENCHMARKS, benchmark_dataset

ClassEntry = Union[str, Tuple[str, ...]]
SYNONYM_SEPARATOR = ';'
CLASS_SEPARATOR = ','
# The official files' synonyms inside one name ("car, automobile"), read by ``synonym_rule``.
OFFICIAL_SYNONYM_SEPARATOR = ', '
SYNONYM_RULES = ('first', 'full', 'average')
VOCABULARY_FILE_SHAPES = ('one name per line, or a JSON list of names ["sky", ...], of synonym '
                          'lists [["person", "human"], ...] or of categories '
                          '[{"name": "sky", ...}, ...]')
JSON_KINDS = {dict: 'a JSON object', str: 'a JSON string', bool: 'a JSON boolean',
              type(None): 'JSON null'}
# Datasets named by vocabulary besides the benchmarks: the training set (COCO-Stuff-171).
TRAINING_DATASETS: Dict[str, dict] = {'coco171': dict(type='COCOStuffDataset')}
VOCABULARY_NAMES: List[str] = [*BENCHMARKS, *TRAINING_DATASETS]


# ----------------------------------------------------------------- what users write
def parse_class(entry: Union[str, Sequence[str]]) -> Union[ClassEntry, Tuple[()]]:
    """A class: ``'name'``, or synonyms written ``'a; b'`` or as a list ``['a', 'b']``; names
    are stripped, empty ones dropped (an empty tuple when none is left)."""
    names = entry.split(SYNONYM_SEPARATOR) if isinstance(entry, str) else entry
    names = tuple(n.strip() for n in names if n.strip())
    return names[0] if len(names) == 1 else names


def unique_classes(entries: Iterable[Union[str, Sequence[str]]]) -> List[ClassEntry]:
    """The classes of ``entries`` (``parse_class``), empty ones dropped, repeats removed with a
    warning.

    Raises:
        ValueError: If no class is left.
    """
    classes = [c for c in map(parse_class, entries) if c]
    if not classes:
        raise ValueError('the vocabulary is empty: give at least one class name')
    unique = list(dict.fromkeys(classes))
    if len(unique) < len(classes):
        warnings.warn(f'duplicate class names removed: {len(classes) - len(unique)} repeats')
    return unique


def parse_vocabulary(text: str) -> List[ClassEntry]:
    """Classes written as on the command line: ``"sky, tree, person; human"``."""
    return unique_classes(text.split(CLASS_SEPARATOR))


def read_vocabulary(vocab: Optional[str] = None, vocab_file: Optional[str] = None,
                    dataset: Optional[str] = None) -> List[ClassEntry]:
    """The classes of a tool's ``--vocab`` text, ``--vocab-file`` or ``--dataset`` name (the
    first given).

    A file line ``'a, b'`` keeps the official benchmark convention: one class, prompted by the
    model's ``synonym_rule``.

    Raises:
        ValueError: An empty vocabulary, or a file of another shape (``read_vocabulary_file``).
        FileNotFoundError: A named vocabulary whose category file is not prepared yet.
    """
    if vocab is not None:
        return parse_vocabulary(vocab)
    if vocab_file is not None:
        return unique_classes(read_vocabulary_file(vocab_file))
    try:
        return unique_classes(named_vocabulary(dataset))
    except FileNotFoundError as error:
        raise FileNotFoundError(f'--dataset {dataset} reads its vocabulary from a file its '
                                'preparation script writes (README, "Datasets"): '
                                f'{error}; or pass the file with --vocab-file') from error


# ----------------------------------------------------------------- files of names
def is_class_entry(entry) -> bool:
    """A name, a list of names, or a category ``{"name": ...}``."""
    return (isinstance(entry, str)
            or isinstance(entry, list) and all(isinstance(n, str) for n in entry)
            or isinstance(entry, dict) and isinstance(entry.get('name'), str))


def read_vocabulary_file(path: str) -> list:
    """The entries of a vocabulary file (``VOCABULARY_FILE_SHAPES``; JSON if named ``.json``
    or starting with ``[`` or ``{``): names or lists of names.

    Raises:
        ValueError: Naming the file, what it holds and the shapes it may have.
    """
    try:
        text = Path(path).read_text(encoding='utf-8')
    except UnicodeDecodeError as error:
        raise ValueError(f'vocabulary file {path!r} is not UTF-8 text ({error}); expected '
                         f'{VOCABULARY_FILE_SHAPES}') from error
    if Path(path).suffix.lower() != '.json' and not text.lstrip().startswith(('[', '{')):
        return text.splitlines()
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f'vocabulary file {path!r} is not valid JSON ({error}); expected '
                         f'{VOCABULARY_FILE_SHAPES}') from error
    if not isinstance(entries, list):
        kind = JSON_KINDS.get(type(entries), 'a JSON number')
        raise ValueError(f'vocabulary file {path!r} holds {kind}, not a list; expected '
                         f'{VOCABULARY_FILE_SHAPES}')
    for index, entry in enumerate(entries):
        if not is_class_entry(entry):
            raise ValueError(f'vocabulary file {path!r}: entry {index} '
                             f'({json.dumps(entry, ensure_ascii=False)[:60]}) is neither a name, '
                             f'a list of names nor a category; expected {VOCABULARY_FILE_SHAPES}')
    return [e['name'] if isinstance(e, dict) else e for e in entries]


def load_class_names(path: Union[str, Path]) -> List[str]:
    """A dataset's class names from a text file, one per line in label-id order (blank lines at
    the end are ignored; anywhere else they would shift the ids, so they are an error)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f'class names file {str(path)!r} does not exist; write one class '
                                'name per line, line 1 naming label id 0')
    names = [line.strip() for line in path.read_text(encoding='utf-8').splitlines()]
    while names and not names[-1]:
        names.pop()
    if not names:
        raise ValueError(f'class names file {str(path)!r} is empty; write one class name per '
                         'line, line 1 naming label id 0')
    if '' in names:
        raise ValueError(f'class names file {str(path)!r}: line {names.index("") + 1} is blank; '
                         'line k names label id k - 1, so every line up to the last needs a name')
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise ValueError(f'class names file {str(path)!r} repeats {repeated[:5]}: two label ids '
                         'with one name cannot be told apart by the model')
    return names


# ----------------------------------------------------------------- datasets
def dataset_vocabulary(dataset) -> List[str]:
    """Names a model should predict over for ``dataset`` (a dataset, or a dataset class whose
    ``METAINFO`` fixes its classes).

    A dataset whose predicted names differ from its label classes (PAS-20b predicts over 59 names
    and folds them to 21 classes) puts them in ``metainfo['vocabulary']``; otherwise the label
    classes are the vocabulary.
    """
    metainfo = dataset.METAINFO if isinstance(dataset, type) else dataset.metainfo
    vocabulary = metainfo.get('vocabulary') or metainfo.get('classes')
    if not vocabulary:
        name = dataset.__name__ if isinstance(dataset, type) else type(dataset).__name__
        raise ValueError(f'{name} has no metainfo "classes" or "vocabulary"; '
                         'an open-vocabulary model needs class names to predict over')
    return list(vocabulary)


def named_vocabulary(name: str) -> List[str]:
    """The names a model predicts over on dataset ``name`` (``VOCABULARY_NAMES``), as
    ``CATSegVocabularyHook`` gives them: the dataset's metainfo, e.g. PAS-20 without VOC's
    background, PAS-20b's 59-name vocabulary, A-847's category file.

    Raises:
        ValueError: If ``name`` is unknown.
        FileNotFoundError: A-847 or PC-459 before its preparation script wrote the category file.
    """
    if name not in VOCABULARY_NAMES:
        raise ValueError(f'dataset {name!r} is not one of {VOCABULARY_NAMES}')
    dataset = TRAINING_DATASETS.get(name) or benchmark_dataset(name)
    # No images are read (lazy_init, no pipeline); mmseg's VOC and Context classes still refuse
    # to be built without their image folders, so the class table is read where it is fixed.
    dataset_type = DATASETS.get(dataset['type'])
    if dataset_type.METAINFO.get('classes'):
        return dataset_vocabulary(dataset_type)
    return dataset_vocabulary(DATASETS.build(dict(dataset, pipeline=[], lazy_init=True)))


# ----------------------------------------------------------------- the official 'a, b' names
def class_synonyms(name: str, synonym_rule: str) -> Tuple[str, ...]:
    """The names a class written as one string is prompted with.

    'average' (paper v1, official cat_seg_predictor.py at ceaaad8): a name written "a, b" is the
    class of the synonyms ("a", "b"), whose embeddings are averaged per template; 'first' and
    'full' keep the string whole and leave it to :func:`prompt_name`.
    """
    if synonym_rule == 'average':
        return tuple(name.split(OFFICIAL_SYNONYM_SEPARATOR))
    return (name, )


def prompt_name(name: str, synonym_rule: str) -> str:
    """The text put into the templates for a class name.

    'first' (official release): a name written "a, b" is prompted as its first synonym "a"; any
    other name is used exactly as given (a trailing space stays; the tokenizer normalises
    whitespace). 'full' and 'average' (already split by :func:`class_synonyms`): the name as given.
    """
    return name.split(OFFICIAL_SYNONYM_SEPARATOR)[0] if synonym_rule == 'first' else name


# ----------------------------------------------------------------- how a class is shown
def class_label(entry: Union[str, Sequence[str]]) -> str:
    """Display name of a class: the name, or its synonyms joined by '; ' (as users write them)."""
    return entry if isinstance(entry, str) else f'{SYNONYM_SEPARATOR} '.join(entry)


def json_vocabulary(vocabulary: Sequence[Union[str, Sequence[str]]]) -> list:
    """The vocabulary as JSON data: names as strings, synonyms as lists (a vocabulary file)."""
    return [c if isinstance(c, str) else list(c) for c in vocabulary]
