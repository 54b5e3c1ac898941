"""The BLAS thread cap (maskmtl_cli/blas.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest


def test_cap_taken_before_numpy_is_imported_still_caps_openblas():
    pytest.importorskip("threadpoolctl")
    probe = ("from maskmtl_cli.blas import limit_blas_threads\n"
             "with limit_blas_threads(1):\n"
             "    import numpy, threadpoolctl\n"
             "    blas = [i for i in threadpoolctl.threadpool_info() if i['user_api'] == 'blas']\n"
             "    print(len(blas), max(i['num_threads'] for i in blas))\n")
    found = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                           check=True).stdout.split()
    assert found[0] != "0" and found[1] == "1"
