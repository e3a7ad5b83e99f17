"""Packages outside course_lib's light core, imported lazily with an error that names the extra.

The core (pyproject.toml `dependencies`) is what a learner installs; the extras are `[chapters]`
(what the chapter notebooks import beyond the core), `[book]`, `[grade]` and `[test]`.
"""

from __future__ import annotations

import importlib
import pathlib
from types import ModuleType


def require(module: str, extra: str, purpose: str = "") -> ModuleType:
    """Import `module`; if it is missing, raise ModuleNotFoundError saying which extra installs it."""
    try:
        return importlib.import_module(module)
    except ModuleNotFoundError as error:
        if error.name != module.split(".")[0]:
            raise  # the package is there but something it imports is not: report that as it is
        why = f" ({purpose})" if purpose else ""
        raise ModuleNotFoundError(
            f"{module} is not installed{why}: it comes with course_lib's [{extra}] extra. Install it with "
            f"`pip install 'course_lib[{extra}]'` (in a clone of the course: `pip install -e '.[{extra}]'`, "
            "or a `make` target, see the README).",
            name=module,
        ) from error


def extra_requirements(extra: str) -> list[str]:
    """course_lib's `[extra]` requirements: from pyproject.toml in a clone (where the installed
    metadata of an editable install can lag behind it), else from the installed metadata."""
    from importlib import metadata

    pyproject = pathlib.Path(__file__).resolve().parents[1] / "pyproject.toml"
    if pyproject.is_file():
        import tomllib

        project = tomllib.loads(pyproject.read_text(encoding="utf-8")).get("project", {})
        if project.get("name") == "course_lib":
            return list(project.get("optional-dependencies", {}).get(extra, []))
    found = []
    for requirement in metadata.requires("course_lib") or []:
        spec, _, marker = requirement.partition(";")
        if marker.replace("'", '"').split() == ["extra", "==", f'"{extra}"']:
            found.append(spec.strip())
    return found


def missing_requirements(extra: str) -> list[str]:
    """The requirements of course_lib's `[extra]` that are not installed (as pip takes them)."""
    from importlib import metadata

    missing = []
    for spec in extra_requirements(extra):
        name = spec.strip().split("[")[0]
        if name.replace("-", "_") == "course_lib":
            continue  # an extra made of other extras (book = chapters + ...): not expanded here
        for sign in "<>=!~ (":
            name = name.split(sign)[0]
        try:
            metadata.version(name)
        except metadata.PackageNotFoundError:
            missing.append(spec.strip())
    return missing


def install_missing(extra: str = "chapters") -> list[str]:
    """Install what `[extra]` needs and this environment lacks, saying so; returns what it installed.

    The chapters' install cell calls it where course_lib is already installed (a clone, Binder),
    so that a venv made without `[chapters]` gets pandas, bertviz, ... instead of failing later.
    """
    import subprocess
    import sys

    missing = missing_requirements(extra)
    if not missing:
        print(f"course_lib and its [{extra}] packages are installed.")
        return []
    print(f"installing what course_lib[{extra}] needs and this environment lacks: {', '.join(missing)}", flush=True)
    command = [sys.executable, "-m", "pip", "install", "--progress-bar", "off", *missing]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as pip:
        for line in pip.stdout:  # pip's own lines, so a long download shows progress
            print(line, end="", flush=True)
    if pip.returncode:
        raise RuntimeError(f"`{' '.join(command)}` failed (exit status {pip.returncode}); its output is above")
    importlib.invalidate_caches()
    print(f"installed: {', '.join(missing)}")
    return missing
