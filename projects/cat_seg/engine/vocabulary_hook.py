"""Give the open-vocabulary model the class names of the dataset it is trained or evaluated on."""
from typing import Optional, Sequence

from mmengine.hooks import Hook
from mmengine.model import is_model_wrapper
from mmseg.registry import HOOKS

from ..vocabulary import dataset_vocabulary


@HOOKS.register_module()
class CATSegVocabularyHook(Hook):
    """Set ``model.train_vocabulary`` and ``model.vocabulary`` from the runner's datasets.

    The training vocabulary is set before training; the evaluation vocabulary before each
    validation or test run, from that loop's dataset.

    Args:
        vocabulary (Sequence[str], optional): Names to use for evaluation instead of the
            dataset's. Defaults to None.
    """

    priority = 'VERY_HIGH'

    def __init__(self, vocabulary: Optional[Sequence[str]] = None):
        self.vocabulary = list(vocabulary) if vocabulary is not None else None

    @staticmethod
    def _model(runner):
        return runner.model.module if is_model_wrapper(runner.model) else runner.model

    def before_train(self, runner) -> None:
        self._model(runner).train_vocabulary = dataset_vocabulary(runner.train_dataloader.dataset)

    def before_val(self, runner) -> None:
        self._set_eval_vocabulary(runner, runner.val_dataloader.dataset)

    def before_test(self, runner) -> None:
        self._set_eval_vocabulary(runner, runner.test_dataloader.dataset)

    def _set_eval_vocabulary(self, runner, dataset) -> None:
        self._model(runner).vocabulary = self.vocabulary or dataset_vocabulary(dataset)
