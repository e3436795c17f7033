import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--kdbet", required=True, help="the kdbet executable")
    parser.addoption("--t1", action="append", required=True, help="a T1w head (NIfTI); give two")
    parser.addoption("--t2", required=True, help="a T2w head (NIfTI)")
    parser.addoption("--output-dir", required=True, help="a folder for the datasets the tests make")


@pytest.fixture(scope="session")
def options(request):
    folder = request.config.getoption("--output-dir")
    os.makedirs(folder, exist_ok=True)
    return {
        "kdbet": request.config.getoption("--kdbet"),
        "t1": request.config.getoption("--t1"),
        "t2": request.config.getoption("--t2"),
        "output_dir": folder,
    }
