# SPDX-License-Identifier: MIT
"""PEP 517 build backend of the ssmd Python package: setuptools, found offline.

pip builds in an isolated environment and downloads the build requirements
into it; without network that fails, although the interpreter usually has
setuptools and wheel already (Debian: python3-setuptools, python3-wheel).
This wrapper asks for nothing when the interpreter's own site-packages hold
them, adds those folders (after everything else on sys.path) and hands every
hook to setuptools.build_meta; otherwise it asks pip for them as usual."""
import importlib.util
import site
import sys


def _base_site_dirs():
    """site-packages of the interpreter a virtual environment was made from."""
    try:
        return site.getsitepackages([sys.base_prefix])
    except AttributeError:  # old virtualenv's site module
        return []


def _find(names):
    return all(importlib.util.find_spec(n) is not None for n in names)


_NEEDED = ("setuptools", "wheel")
if not _find(_NEEDED):
    for d in _base_site_dirs():
        if d not in sys.path:
            sys.path.append(d)
_OFFLINE_OK = _find(_NEEDED)


def _requires():
    return [] if _OFFLINE_OK else ["setuptools>=61", "wheel"]


def get_requires_for_build_wheel(config_settings=None):
    return _requires()


def get_requires_for_build_sdist(config_settings=None):
    return _requires()


def get_requires_for_build_editable(config_settings=None):
    return _requires()


def _meta():
    from setuptools import build_meta
    return build_meta


def prepare_metadata_for_build_wheel(metadata_directory, config_settings=None):
    return _meta().prepare_metadata_for_build_wheel(metadata_directory, config_settings)


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    return _meta().build_wheel(wheel_directory, config_settings, metadata_directory)


def build_sdist(sdist_directory, config_settings=None):
    return _meta().build_sdist(sdist_directory, config_settings)


def prepare_metadata_for_build_editable(metadata_directory, config_settings=None):
    return _meta().prepare_metadata_for_build_editable(metadata_directory, config_settings)


def build_editable(wheel_directory, config_settings=None, metadata_directory=None):
    return _meta().build_editable(wheel_directory, config_settings, metadata_directory)
