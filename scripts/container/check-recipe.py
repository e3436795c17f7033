#!/usr/bin/env python3
"""Runs the Dockerfile's steps in a clean Debian bookworm chroot.

For machines where images cannot be built (no Docker daemon, no registry):
debootstrap makes a minimal bookworm root, each COPY is done from the build
context (the repository less what .dockerignore excludes) and each RUN through
/bin/sh -c inside the chroot, in the Dockerfile's order; then the entrypoint
runs on a real head (``kdbet extract``) and the installed tool must write a
mask. Needs root, debootstrap (installed if missing) and Debian's archive.

    scripts/container/check-recipe.py [--root /tmp/kdbet-recipe-root] [--sample head.nii.gz]

The parser (``dockerfile_steps``) is also what test/container checks the
recipe with on every build.
"""

import argparse
import fnmatch
import json
import os
import shlex
import shutil
import subprocess
import sys
import time

REPOSITORY = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))


def dockerfile_steps(path):
    """(instruction, argument) pairs, continuation lines joined, comments dropped."""
    steps = []
    pending = ""
    with open(path, encoding="utf-8") as dockerfile:
        for raw in dockerfile:
            line = raw.rstrip("\n")
            if not pending and (not line.strip() or line.lstrip().startswith("#")):
                continue
            if line.endswith("\\"):
                pending += line[:-1] + " "
                continue
            line = pending + line
            pending = ""
            instruction, _, argument = line.strip().partition(" ")
            steps.append((instruction.upper(), " ".join(argument.split())))
    if pending:
        raise ValueError(f"{path}: the last instruction ends in a line continuation")
    return steps


def exec_form(argument):
    """The list of an exec-form instruction (ENTRYPOINT ["kdbet"]), or None for shell form."""
    if argument.startswith("["):
        return json.loads(argument)
    return None


def ignored_patterns(context):
    path = os.path.join(context, ".dockerignore")
    if not os.path.exists(path):
        return []
    with open(path, encoding="utf-8") as ignore:
        return [line.strip() for line in ignore if line.strip() and not line.startswith("#")]


def is_ignored(relative, patterns):
    parts = relative.split(os.sep)
    for pattern in patterns:
        if pattern.startswith("**/"):
            if any(fnmatch.fnmatch(part, pattern[3:]) for part in parts):
                return True
        elif fnmatch.fnmatch(parts[0], pattern) or fnmatch.fnmatch(relative, pattern):
            return True
    return False


def copy_from_context(context, source, destination):
    patterns = ignored_patterns(context)
    source_path = os.path.normpath(os.path.join(context, source))
    if os.path.isfile(source_path):
        os.makedirs(os.path.dirname(destination), exist_ok=True)
        shutil.copy2(source_path, destination)
        return
    for directory, folders, files in os.walk(source_path):
        relative_directory = os.path.relpath(directory, context)
        folders[:] = [f for f in folders if not is_ignored(os.path.normpath(os.path.join(relative_directory, f)), patterns)]
        for name in files:
            relative = os.path.normpath(os.path.join(relative_directory, name))
            if is_ignored(relative, patterns):
                continue
            target = os.path.join(destination, os.path.relpath(os.path.join(directory, name), source_path))
            os.makedirs(os.path.dirname(target), exist_ok=True)
            shutil.copy2(os.path.join(directory, name), target, follow_symlinks=False)


def run(command, **kwargs):
    print("+", " ".join(shlex.quote(c) for c in command), flush=True)
    subprocess.run(command, check=True, **kwargs)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", default="/tmp/kdbet-recipe-root", help="chroot folder (emptied first)")
    parser.add_argument("--mirror", default="http://deb.debian.org/debian")
    parser.add_argument("--sample", help="a head to skull-strip with the installed kdbet")
    arguments = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit(f"{sys.argv[0]}: needs root (debootstrap, chroot)")

    steps = dockerfile_steps(os.path.join(REPOSITORY, "Dockerfile"))
    base = next(argument for instruction, argument in steps if instruction == "FROM")
    if base != "debian:bookworm":
        sys.exit(f"Dockerfile: FROM {base}; this check makes only debian:bookworm roots")
    if shutil.which("debootstrap") is None:
        run(["apt-get", "install", "-y", "-qq", "--no-install-recommends", "debootstrap"])

    root = arguments.root
    shutil.rmtree(root, ignore_errors=True)
    started = time.monotonic()
    run(["debootstrap", "--variant=minbase", "bookworm", root, arguments.mirror])
    shutil.copy2("/etc/resolv.conf", os.path.join(root, "etc", "resolv.conf"))
    run(["mount", "-t", "proc", "proc", os.path.join(root, "proc")])
    environment = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root"}
    workdir = "/"
    timings = []
    try:
        for instruction, argument in steps:
            step_started = time.monotonic()
            if instruction == "COPY":
                source, destination = shlex.split(argument)
                copy_from_context(REPOSITORY, source, root + destination)
            elif instruction == "RUN":
                run(["chroot", root, "/bin/sh", "-c", f"cd {shlex.quote(workdir)} && {argument}"], env=environment)
            elif instruction == "WORKDIR":
                workdir = argument
                os.makedirs(root + workdir, exist_ok=True)
            elif instruction == "ENV":
                name, _, value = argument.partition("=")
                environment[name] = value
            elif instruction in ("FROM", "ENTRYPOINT", "CMD", "LABEL"):
                pass
            else:
                sys.exit(f"Dockerfile: {instruction} is not something this check can replay")
            timings.append((instruction, time.monotonic() - step_started))

        entrypoint = next(exec_form(a) for i, a in steps if i == "ENTRYPOINT")
        command = next(exec_form(a) for i, a in steps if i == "CMD")
        run(["chroot", root] + entrypoint + command, env=environment, stdout=subprocess.DEVNULL)
        if arguments.sample:
            shutil.copy2(arguments.sample, os.path.join(root + workdir, "head.nii.gz"))
            run(["chroot", root, "/bin/sh", "-c",
                 f"cd {workdir} && {' '.join(entrypoint)} extract -i head.nii.gz -m head_mask.nii.gz"], env=environment)
            if not os.path.getsize(os.path.join(root + workdir, "head_mask.nii.gz")):
                sys.exit("the installed kdbet wrote an empty mask")
    finally:
        subprocess.run(["umount", os.path.join(root, "proc")], check=False)
    for instruction, seconds in timings:
        print(f"{instruction:8s} {seconds:7.1f} s")
    print(f"PASS: the Dockerfile's steps built and installed kdbet in a clean bookworm root "
          f"in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
