"""docs/layout.md lists the package tree as it is: a moved or added module must be listed."""
import re

from catseg_testing import REPO_ROOT


def test_the_package_tree_in_docs_layout_is_the_tree_on_disk():
    listed = re.findall(r'^(projects/cat_seg/\S+\.py)$',
                        (REPO_ROOT / 'docs' / 'layout.md').read_text(), flags=re.M)
    on_disk = sorted(str(path.relative_to(REPO_ROOT))
                     for path in (REPO_ROOT / 'projects' / 'cat_seg').rglob('*.py'))
    assert listed == on_disk
