import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def pytest_addoption(parser):
    parser.addoption("--kdbet", required=True, help="the kdbet executable")
    parser.addoption("--python-dir", default="", help="the built Python module's folder (build/python)")
    parser.addoption("--output-dir", required=True, help="where the hostile files and outputs go")


@pytest.fixture(scope="session")
def kdbet(request):
    return request.config.getoption("--kdbet")


@pytest.fixture(scope="session")
def python_dir(request):
    return request.config.getoption("--python-dir")


@pytest.fixture(scope="session")
def work_dir(request):
    folder = request.config.getoption("--output-dir")
    os.makedirs(folder, exist_ok=True)
    return folder
