"""Everything about the package is in setup.cfg; this file only ships ``configs/`` inside it.

A regular (non-editable) install puts the configs under ``cat_seg/.mim/configs``, as MMSeg's
wheel ships ``mmseg/.mim/configs``, so another project can inherit them after ``pip install .``
(``python -m cat_seg.configs`` prints the directory). setuptools' package data cannot name files
outside the package directory, hence the copy at ``build_py`` time. An editable install reads
the checkout's ``configs/`` instead.
"""
import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

CONFIGS = Path(__file__).resolve().parent / 'configs'


class BuildPyWithConfigs(build_py):
    """``build_py`` that also copies ``configs/`` to ``cat_seg/.mim/configs`` in the build."""

    def run(self):
        super().run()
        if self.editable_mode:
            return
        target = Path(self.build_lib) / 'cat_seg' / '.mim' / 'configs'
        shutil.rmtree(target, ignore_errors=True)
        shutil.copytree(CONFIGS, target, ignore=shutil.ignore_patterns('__pycache__', '*.pyc'))


setup(cmdclass={'build_py': BuildPyWithConfigs})
