import os

import pytest


def pytest_addoption(parser):
    parser.addoption("--image", required=True, help="a head volume (NIfTI) to extract")
    parser.addoption("--kdbet", required=True, help="the kdbet executable")
    parser.addoption("--output-dir", required=True, help="a folder for the outputs")


@pytest.fixture(scope="session")
def image_file(request):
    return request.config.getoption("--image")


@pytest.fixture(scope="session")
def kdbet_executable(request):
    return request.config.getoption("--kdbet")


@pytest.fixture(scope="session")
def output_dir(request):
    folder = request.config.getoption("--output-dir")
    os.makedirs(folder, exist_ok=True)
    return folder
