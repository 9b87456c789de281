# MMSeg's default runtime plus TensorBoard event files (mmengine's TensorboardVisBackend) beside
# the usual logs, in <work_dir>/<timestamp>/vis_data/ (README, "Training logs"). Use it in a
# config's _base_ list in place of 'mmseg::_base_/default_runtime.py'. Needs the tensorboard
# package: pip install 'cat-seg-mmseg[tensorboard]' (or pip install tensorboard).
_base_ = ['mmseg::_base_/default_runtime.py']
vis_backends = [dict(type='LocalVisBackend'), dict(type='TensorboardVisBackend')]
visualizer = dict(vis_backends=vis_backends)
