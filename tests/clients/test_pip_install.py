#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""The Python client as a package: `python3 -m venv --system-site-packages`
and `pip install clients/python` work offline; the installed package imports
from outside the checkout and its __version__ equals the meson project
version (the one source: the top-level meson.build); the example runs from
any directory, installed or from the tree.
Usage: test_pip_install.py SOURCE_ROOT MESON_PROJECT_VERSION"""
import os
import shutil
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from harness import PY, check, finish, run, tmpdir  # noqa: E402

ROOT, WANT = sys.argv[1], sys.argv[2]
T = tmpdir()
# pip builds in the source folder (build/, *.egg-info): a copy keeps the
# checkout clean and lets two test runs go at once.  Same relative layout, so
# setup.py finds ../../meson.build as in the checkout.
src = os.path.join(T, "src")
os.makedirs(os.path.join(src, "clients"))
shutil.copy(os.path.join(ROOT, "meson.build"), src)
shutil.copytree(os.path.join(ROOT, "clients", "python"), os.path.join(src, "clients", "python"),
                ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__", "_version.py"))
env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
env["PIP_NO_INPUT"] = "1"

venv = os.path.join(T, "v")
r = run([PY, "-m", "venv", "--system-site-packages", venv], timeout=120, env=env)
check(r.returncode == 0, f"venv: exit 0 ({r.stderr.strip()[-300:]!r})")
vpy = os.path.join(venv, "bin", "python")
r = run([os.path.join(venv, "bin", "pip"), "install", os.path.join(src, "clients", "python")],
        timeout=300, env=env, cwd=T)
print(f"pip install: exit {r.returncode}, {r.elapsed:.1f} s: "
      f"{(r.stdout.strip().splitlines() or [''])[-1]}")
check(r.returncode == 0, f"pip install ./clients/python: exit 0 ({r.stderr.strip()[-600:]!r})")

elsewhere = os.path.join(T, "elsewhere")
os.makedirs(elsewhere)
r = run([vpy, "-c", "import ssmd, ssmd.protocol; print(ssmd.__version__); print(ssmd.__file__); "
         "print(hasattr(ssmd, 'Subscriber'))"], env=env, cwd=elsewhere)
out = r.stdout.split()
got, where, full = (out + ["", "", ""])[:3]
print(f"installed: ssmd.__version__ {got!r}, meson project version {WANT!r}, from {where}, "
      f"socket classes {full}")
check(r.returncode == 0 and got == WANT, "installed __version__ equals the meson project version")
check(where.startswith(venv) and not where.startswith(ROOT), "imported from the venv, not the checkout")
check(full == "True", "the socket classes import (pyzmq, numpy from the system)")

# the checkout's own copy (no generated _version.py) reads the same source
r = run([PY, "-c", "import ssmd; print(ssmd.__version__)"], env=dict(env, PYTHONPATH=os.path.join(ROOT, "clients", "python")),
        cwd=elsewhere)
print(f"from the tree: ssmd.__version__ {r.stdout.strip()!r}")
check(r.returncode == 0 and r.stdout.strip() == WANT, "tree __version__ equals the meson project version")

# the example: executable, and runs from another directory installed or not
ex = os.path.join(ROOT, "clients", "python", "examples", "live_spectrogram.py")
check(os.access(ex, os.X_OK) and open(ex).readline().strip() == "#!/usr/bin/env python3",
      "example: executable with #!/usr/bin/env python3")
for label, py in (("installed", vpy), ("from the tree", PY)):
    r = run([py, ex, "--help"], env=env, cwd=elsewhere)
    check(r.returncode == 0 and "--stream" in r.stdout, f"example --help {label}, run from another directory")
finish("test_pip_install")
