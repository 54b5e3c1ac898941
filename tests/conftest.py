"""Shared test fixtures: paths to shipped fixtures and the optional ../shared data."""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")
# Image caches and on-the-fly ONNX exports of the tests stay out of the user's ~/.cache.
os.environ.setdefault("MASKMTL_CACHE_DIR", tempfile.mkdtemp(prefix="maskmtl-tests-cache-"))

TESTS_DIR = Path(__file__).parent
REPO_ROOT = TESTS_DIR.parent
SHARED_DATA = Path(os.environ.get("MASKMTL_SHARED_DATA", REPO_ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def astronaut_path() -> Path:
    """NASA's public-domain astronaut portrait (Eileen Collins), as shipped by scikit-image."""
    return TESTS_DIR / "data" / "astronaut.jpg"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The UTKFace copies in ../shared/data; tests that use it skip when it is absent."""
    if not (SHARED_DATA / "utkface64").is_dir():
        pytest.skip(f"UTKFace data not found at {SHARED_DATA}")
    return SHARED_DATA


class MountPoint(type(Path())):
    """A tmpfs mount point; ``remount("ro")``, ``remount("size=8m")`` change it in place."""

    def remount(self, options: str) -> None:
        subprocess.run(["mount", "-o", f"remount,{options}", str(self)], check=True)


@pytest.fixture()
def tmpfs(tmp_path):
    """``tmpfs(size)`` mounts a fresh tmpfs of ``size`` bytes (a full or read-only disk on
    demand, for root too); skips where mounting is not allowed. Unmounted afterwards."""
    mounted = []

    def mount(size: int, name: str = "disk") -> MountPoint:
        point = MountPoint(tmp_path / name)
        point.mkdir()
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(point)],
                              capture_output=True)
        if done.returncode:
            pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
        mounted.append(point)
        return point

    yield mount
    for point in mounted:
        subprocess.run(["umount", "-l", str(point)], check=False)
