"""Runs hostile inputs through kdbet extract and the Python module, and
judges each outcome. Usable from pytest (test_hostile_inputs.py) and by hand:

    python3 test/hostile/run_hostile.py --kdbet build/bin/kdbet --work /tmp/hostile [--python-dir build/python]
"""
import argparse
import concurrent.futures
import os
import shutil
import signal
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hostile_nifti  # noqa: E402

TIMEOUT_SECONDS = 60


IMAGE_EXTENSIONS = (".nii.gz", ".mha", ".mhd", ".nrrd", ".nhdr", ".hdr")


def stem_of(path):
    """A variant file's path without its image extension."""
    return next(path[: -len(e)] for e in IMAGE_EXTENSIONS if path.endswith(e))


def write_variants(work):
    """Writes every variant into `work`; (name, expectation, path of the file to read)."""
    files = []
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    for name, expectation, make in hostile_nifti.all_variants():
        safe = "".join(c if c.isalnum() or c in "-=.," else "_" for c in name)
        made = make()
        if isinstance(made, bytes):
            made = {".nii.gz": made}
        for index, (extension, content) in enumerate(made.items()):
            path = os.path.join(work, safe + extension)
            with open(path, "wb") as stream:
                stream.write(content.replace(b"{stem}", safe.encode()))
            if index == 0:
                files.append((name, expectation, path))
    return files


def describe_exit(code):
    if code < 0:
        return f"killed by {signal.Signals(-code).name}"
    return f"exit {code}"


def judge(name, expectation, path, code, stderr, outputs):
    """A list of problems with one outcome (empty: fine)."""
    problems = []
    lines = [line for line in stderr.splitlines() if line.strip()]
    written = [o for o in outputs if os.path.exists(o)]
    leftovers = [f for f in os.listdir(os.path.dirname(outputs[0]))
                 if f.startswith(".") and os.path.basename(stem_of(path)) in f]
    if code is None:
        return [f"hung (over {TIMEOUT_SECONDS} s)"]
    if code < 0 or code > 2:
        return [describe_exit(code)]
    if code == 0:
        if expectation == "refuse":
            problems.append("accepted")
        if not written:
            problems.append("exit 0 without output")
    else:
        if expectation == "accept":
            problems.append(f"refused: {lines[-1] if lines else ''}")
        errors = [line for line in lines if "error" in line.lower()]
        if len(lines) != 1:
            problems.append(f"{len(lines)} lines on stderr: {' | '.join(lines)[:300]}")
        if not any(os.path.basename(path) in line for line in errors):
            problems.append(f"the error does not name the file: {lines[-1][:200] if lines else '(nothing)'}")
        if written:
            problems.append(f"wrote {written}")
    if leftovers:
        problems.append(f"left temporary files {leftovers}")
    return problems


def run_cli(kdbet, name, expectation, path, environment):
    stem = stem_of(path)
    outputs = [stem + "_mask.out.nii.gz", stem + "_brain.out.nii.gz"]
    try:
        result = subprocess.run([kdbet, "extract", "-i", path, "-m", outputs[0], "-o", outputs[1], "-t", "1"],
                                capture_output=True, text=True, timeout=TIMEOUT_SECONDS, env=environment)
        code, stderr = result.returncode, result.stderr
    except subprocess.TimeoutExpired:
        code, stderr = None, ""
    return name, judge(name, expectation, path, code, stderr, outputs)


PYTHON_WORKER = r"""
import os, sys
import kdbet
model = kdbet.Model(threads=1)
for line in sys.stdin:
    path = line.strip()
    print("START " + path, flush=True)
    try:
        array, spacing, origin, direction = kdbet.read_image(path)
        result = model.extract(array, spacing, origin, direction)
        print("OK " + path + " " + str(int(result["mask"].sum())), flush=True)
    except (kdbet.ExtractionError, ValueError) as error:
        print("REFUSED " + path + " " + str(error).replace("\n", " | "), flush=True)
    except Exception as error:
        print("OTHER " + path + " " + type(error).__name__ + ": " + str(error).replace("\n", " | "), flush=True)
"""


def run_python(files, environment):
    """One worker for all files; a crash is charged to the file being read and the worker restarts."""
    outcomes = {}
    pending = list(files)
    while pending:
        process = subprocess.Popen([sys.executable, "-c", PYTHON_WORKER], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environment)
        try:
            stdout, stderr = process.communicate("\n".join(p for _, _, p in pending) + "\n", timeout=600)
        except subprocess.TimeoutExpired:
            process.kill()
            stdout, stderr = process.communicate()
        current = None
        for line in stdout.splitlines():
            kind, _, rest = line.partition(" ")
            path, _, detail = rest.partition(" ")
            if kind == "START":
                current = path
            else:
                outcomes[path] = (kind, detail)
                current = None
        if current is None:
            break
        outcomes[current] = ("CRASH", f"{describe_exit(process.returncode)}: {stderr.strip().splitlines()[-1:]}")
        pending = pending[[p for _, _, p in pending].index(current) + 1:]
    problems = {}
    for name, expectation, path in files:
        kind, detail = outcomes.get(path, ("MISSING", ""))
        found = []
        if kind in ("CRASH", "OTHER", "MISSING"):
            found.append(f"{kind}: {detail}")
        elif kind == "OK" and expectation == "refuse":
            found.append("accepted")
        elif kind == "REFUSED":
            if expectation == "accept":
                found.append(f"refused: {detail}")
            elif os.path.basename(path) not in detail and not detail.startswith("array: the image is constant"):
                # read_image reads what is a valid file; a constant image is refused by extract, for the array.
                found.append(f"the error does not name the file: {detail[:200]}")
        if found:
            problems[name] = found
    return problems


def run_all(kdbet, work, python_dir=None, jobs=2):
    files = write_variants(work)
    environment = dict(os.environ)
    cli = {}
    with concurrent.futures.ThreadPoolExecutor(jobs) as pool:
        for name, problems in pool.map(lambda f: run_cli(kdbet, *f, environment), files):
            if problems:
                cli[name] = problems
    python = None
    if python_dir:
        environment["PYTHONPATH"] = python_dir + os.pathsep + environment.get("PYTHONPATH", "")
        python = run_python(files, environment)
    return files, cli, python


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--kdbet", required=True)
    parser.add_argument("--work", required=True)
    parser.add_argument("--python-dir")
    arguments = parser.parse_args()
    files, cli, python = run_all(arguments.kdbet, arguments.work, arguments.python_dir)
    print(f"{len(files)} variants; kdbet extract: {len(cli)} with problems")
    for name, problems in cli.items():
        print(f"  cli {name}: {'; '.join(problems)}")
    if python is not None:
        print(f"Python module: {len(python)} with problems")
        for name, problems in python.items():
            print(f"  py  {name}: {'; '.join(problems)}")
    return 1 if cli or python else 0


if __name__ == "__main__":
    sys.exit(main())
