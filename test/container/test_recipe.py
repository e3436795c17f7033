"""The container recipe (Dockerfile) builds what the README builds.

Images cannot be built where the tests run (no Docker daemon, no registry), so
these tests hold the recipe to the README's path: the same dependency script
as scripts/bootstrap.sh, a Release build, kdbet and the models installed where
kdbet looks for them, kdbet as the entrypoint, a build context without host
build trees. scripts/container/check-recipe.py replays the recipe's steps in a
clean bookworm chroot (root and network; run by hand).
"""

import importlib.util
import os
import shlex

import pytest

REPOSITORY = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def load_checker():
    spec = importlib.util.spec_from_file_location(
        "check_recipe", os.path.join(REPOSITORY, "scripts", "container", "check-recipe.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


checker = load_checker()


def read(relative):
    with open(os.path.join(REPOSITORY, relative), encoding="utf-8") as text:
        return text.read()


@pytest.fixture(scope="module")
def steps():
    return checker.dockerfile_steps(os.path.join(REPOSITORY, "Dockerfile"))


def run_commands(steps):
    """Every command of every RUN step, split at &&."""
    commands = []
    for instruction, argument in steps:
        if instruction == "RUN":
            commands += [shlex.split(part) for part in argument.split("&&")]
    return commands


def test_parser_joins_continuations_and_drops_comments(tmp_path):
    dockerfile = tmp_path / "Dockerfile"
    dockerfile.write_text("# comment\nFROM debian:bookworm\n\nRUN a \\\n  && b\\\n c\nENTRYPOINT [\"kdbet\"]\n")
    assert checker.dockerfile_steps(str(dockerfile)) == [
        ("FROM", "debian:bookworm"), ("RUN", "a && b c"), ("ENTRYPOINT", '["kdbet"]')]
    dockerfile.write_text("FROM debian:bookworm\nRUN a \\\n")
    with pytest.raises(ValueError):
        checker.dockerfile_steps(str(dockerfile))


def test_base_is_bookworm(steps):
    assert steps[0] == ("FROM", "debian:bookworm")


def test_dependencies_come_from_the_readme_script(steps):
    copies = [shlex.split(argument) for instruction, argument in steps if instruction == "COPY"]
    assert ["scripts/install-dependencies.sh", "/tmp/install-dependencies.sh"] in copies
    commands = run_commands(steps)
    assert ["/tmp/install-dependencies.sh"] in commands
    # The README's first command installs through the same script.
    assert "scripts/install-dependencies.sh" in read("scripts/bootstrap.sh").splitlines()
    # Nothing else installs packages behind the script's back.
    assert not any(command[:1] in (["apt-get"], ["apt"], ["pip"], ["pip3"]) for command in commands)


def test_build_is_the_readme_release_build(steps):
    commands = run_commands(steps)
    configure = next(c for c in commands if c[:1] == ["cmake"] and "-S" in c)
    assert "-DCMAKE_BUILD_TYPE=Release" in configure
    assert "cmake -S . -B build -DCMAKE_BUILD_TYPE=Release" in read("scripts/bootstrap.sh")
    source = configure[configure.index("-S") + 1]
    build = configure[configure.index("-B") + 1]
    assert ["COPY", f". {source}"] in [list(step) for step in steps]
    assert any(c[:3] == ["cmake", "--build", build] for c in commands)
    assert ["cmake", "--install", build] in commands
    # The installed tool runs: the image is not finished with a broken kdbet.
    assert ["kdbet", "--version"] in commands


def test_entrypoint_is_the_installed_kdbet(steps):
    entrypoints = [checker.exec_form(a) for i, a in steps if i == "ENTRYPOINT"]
    assert entrypoints == [["kdbet"]]
    assert "install(TARGETS kdbet RUNTIME DESTINATION bin)" in read("apps/CMakeLists.txt")
    # The models go where an installed kdbet looks for its defaults (beside
    # the folder of the library, which test/consumer checks on an install).
    assert "DESTINATION share/KDBrainExtraction/Models" in read("src/CMakeLists.txt")
    assert '"/../share/KDBrainExtraction/Models"' in read("src/itkKDBrainExtractionTorchModel.cxx")


def test_context_has_the_sources_and_models_but_no_build_tree():
    patterns = checker.ignored_patterns(REPOSITORY)
    for host_only in ("build/bin/kdbet", "build-debug/CMakeCache.txt", ".git/HEAD", "python/kdbet/__pycache__/x.pyc"):
        assert checker.is_ignored(os.path.normpath(host_only), patterns), host_only
    for needed in ("CMakeLists.txt", "Data/Models/kdbet_student.kdbm", "Data/Models/kdbet_teacher.kdbm",
                   "apps/kdbet.cxx", "scripts/install-dependencies.sh"):
        assert os.path.exists(os.path.join(REPOSITORY, needed)), needed
        assert not checker.is_ignored(os.path.normpath(needed), patterns), needed


def test_readme_documents_the_container():
    readme = read("README.md")
    assert "docker build -t kdbet ." in readme
    assert "bids /data /out participant" in readme
