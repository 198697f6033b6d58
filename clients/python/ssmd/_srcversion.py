# SPDX-License-Identifier: MIT
"""The project version, read from the top meson.build: the one place it is
written.  Used by setup.py (to generate ssmd/_version.py in the built
package) and by ssmd/__init__.py when the package runs from a checkout
(no generated _version.py).  Pure; no third-party imports."""
import os
import re

_PROJECT_RE = re.compile(r"project\s*\(\s*'ssmd'[^)]*?\bversion\s*:\s*'([^']+)'", re.S)


def meson_project_version(meson_build=None):
    """The version string of project('ssmd', ..., version: 'X') in meson_build
    (a path; default: the checkout's top meson.build, two folders above this
    package).  Raises FileNotFoundError when the file is absent and
    ValueError when it has no literal project version."""
    if meson_build is None:
        here = os.path.dirname(os.path.abspath(__file__))
        meson_build = os.path.join(here, "..", "..", "..", "meson.build")
    with open(meson_build, encoding="utf-8") as f:
        m = _PROJECT_RE.search(f.read())
    if not m:
        raise ValueError(f"{meson_build}: no project('ssmd', ..., version: '...') found")
    return m.group(1)
