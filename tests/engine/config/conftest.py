"""Every test here starts in a folder that is the top of its own git checkout.

The rcfile search goes up to the nearest folder holding ``.git``; CI keeps
pytest's temporary folders inside this repository's checkout, where a search
that went up would find the repository's own ``.apirc``.  A test that needs no
``.git`` anywhere above makes its folder elsewhere (see
``test_without_git_only_the_current_folder_is_searched``).
"""

from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def _own_git_checkout(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir(exist_ok=True)
