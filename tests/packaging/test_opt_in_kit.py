"""The testing kit is opt-in: installing matome changes nothing in another project's pytest.

matome once registered its pytest plugin through a ``pytest11`` entry point, so every pytest
run of every project that installed matome got the kit's Hypothesis profile (40 examples,
derandomized, no deadline) and stopped with INTERNALERROR on a ``HYPOTHESIS_PROFILE`` it did
not know.  These tests run pytest on small projects of their own, in subprocesses of the
interpreter matome is installed in.
"""

from __future__ import annotations

import importlib.metadata
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

#: End to end and seconds long: run by CI (``pytest -m 'system and not slow'``), not by a
#: plain ``pytest``.
pytestmark = pytest.mark.system

ROOT = Path(__file__).resolve().parents[2]
PLUGIN = "matome.testing.pytest_plugin"

#: Variables by which Hypothesis detects a CI server (it then loads its own ``ci`` profile).
_CI_VARIABLES = {"CI", "GITHUB_ACTIONS", "GITLAB_CI", "TF_BUILD", "BUILDKITE", "CIRCLECI"}

#: What Hypothesis' own defaults are, asserted inside a project that did not opt in.
HYPOTHESIS_DEFAULTS = """
from datetime import timedelta

from hypothesis import given, settings, strategies as st


def test_hypothesis_keeps_its_own_defaults(request):
    assert settings.default.max_examples == 100
    assert settings.default.derandomize is False
    assert settings.default.deadline == timedelta(milliseconds=200)
    names = [request.config.pluginmanager.get_name(p)
             for p in request.config.pluginmanager.get_plugins()]
    assert not [n for n in names if n and "matome" in n], names


@given(st.integers())
def test_a_property_runs(n):
    assert n == n
"""

#: What the kit's ``ci`` profile sets, asserted inside a project that opted in.
KIT_PROFILE = """
from hypothesis import settings



def test_the_kits_profile_is_loaded(matome_engine, matome_model):
    expected = {"ci": (40, True), "dev": (200, False)}[EXPECTED]
    assert (settings.default.max_examples, settings.default.derandomize) == expected
    assert settings.default.deadline is None
    assert matome_engine.closed_through() is None
    assert matome_model is not None
"""


def _env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _CI_VARIABLES
        and not k.startswith(("PYTEST_", "HYPOTHESIS_"))
        and k != "PYTHONPATH"
    }
    env.update(extra)
    return env


def _project(tmp_path: Path, tests: str, conftest: str | None = None) -> Path:
    """Another project: its own rootdir (an empty ``pytest.ini``), one test module."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (tmp_path / "test_project.py").write_text(textwrap.dedent(tests), encoding="utf-8")
    if conftest is not None:
        (tmp_path / "conftest.py").write_text(textwrap.dedent(conftest), encoding="utf-8")
    return tmp_path


def _pytest(project: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project,
        env=_env(**env),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def _explain(run: subprocess.CompletedProcess[str]) -> str:
    return f"exit {run.returncode}\n{run.stdout}\n{run.stderr}"


def test_installing_matome_leaves_another_projects_pytest_and_hypothesis_settings_alone(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path, HYPOTHESIS_DEFAULTS)
    run = _pytest(project)
    assert run.returncode == 0, _explain(run)
    assert "2 passed" in run.stdout, _explain(run)


def test_another_project_may_use_a_hypothesis_profile_variable_matome_does_not_know(
    tmp_path: Path,
) -> None:
    """``HYPOTHESIS_PROFILE`` means nothing to a project that did not ask for the kit (it used
    to stop every pytest run with INTERNALERROR)."""
    project = _project(tmp_path, HYPOTHESIS_DEFAULTS)
    run = _pytest(project, HYPOTHESIS_PROFILE="my-own-profile")
    assert run.returncode == 0, _explain(run)
    assert "INTERNALERROR" not in run.stdout + run.stderr


@pytest.mark.parametrize("profile", ["ci", "dev"])
def test_a_project_that_opts_in_in_its_conftest_gets_the_kits_profiles_and_fixtures(
    tmp_path: Path, profile: str
) -> None:
    project = _project(
        tmp_path,
        KIT_PROFILE.replace("EXPECTED", repr(profile)),
        conftest=f"pytest_plugins = [{PLUGIN!r}]\n",
    )
    env = {} if profile == "ci" else {"HYPOTHESIS_PROFILE": profile}  # ci is the default
    run = _pytest(project, **env)
    assert run.returncode == 0, _explain(run)
    assert "1 passed" in run.stdout, _explain(run)


def test_a_project_that_opts_in_on_the_command_line_gets_the_kits_profile(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path, KIT_PROFILE.replace("EXPECTED", "'ci'"))
    run = _pytest(project, "-p", PLUGIN)
    assert run.returncode == 0, _explain(run)


def test_hypothesis_own_profile_option_names_a_kit_profile_and_wins(tmp_path: Path) -> None:
    project = _project(
        tmp_path,
        KIT_PROFILE.replace("EXPECTED", "'dev'"),
        conftest=f"pytest_plugins = [{PLUGIN!r}]\n",
    )
    run = _pytest(project, "--hypothesis-profile=dev", HYPOTHESIS_PROFILE="ci")
    assert run.returncode == 0, _explain(run)


def test_an_unknown_hypothesis_profile_with_the_kit_loaded_is_a_usage_error(
    tmp_path: Path,
) -> None:
    project = _project(tmp_path, HYPOTHESIS_DEFAULTS, conftest=f"pytest_plugins = [{PLUGIN!r}]\n")
    run = _pytest(project, HYPOTHESIS_PROFILE="nope")
    output = run.stdout + run.stderr
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, _explain(run)
    assert "INTERNALERROR" not in output
    assert "HYPOTHESIS_PROFILE='nope' is not a registered Hypothesis profile" in output
    assert "ci, dev, deep" in output


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=ROOT.parent,  # not the source tree: the installed package
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_importing_matome_imports_neither_hypothesis_nor_pytest() -> None:
    run = _python(
        """
        import sys
        import matome, matome.cli, matome.interchange, matome.engine, matome.errors
        loaded = sorted({m.split(".")[0] for m in sys.modules} & {"hypothesis", "pytest"})
        assert not loaded, loaded
        """
    )
    assert run.returncode == 0, _explain(run)


def test_matome_works_without_hypothesis_and_the_kit_says_how_to_install_it() -> None:
    run = _python(
        """
        import sys
        sys.modules["hypothesis"] = None  # as if it were not installed: importing it fails
        import matome
        from matome import Engine
        engine = Engine.open(":memory:", hash_iterations=1)
        engine.register_provider(at="2024-01-04T09:00+09:00", provider="A", name="A Co.",
                                 contact="0120-000-111", goods="information")
        engine.close()
        for module in ("matome.testing", "matome.testing.strategies"):
            try:
                __import__(module)
            except ImportError as e:
                assert "pip install 'matome[testing]'" in str(e), e
            else:
                raise AssertionError(f"{module} imported without Hypothesis")
        """
    )
    assert run.returncode == 0, _explain(run)


def test_the_project_declares_hypothesis_an_extra_and_no_pytest_entry_point() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    assert not any(d.startswith("hypothesis") for d in project["dependencies"])
    extras = project["optional-dependencies"]
    assert any(d.startswith("hypothesis") for d in extras["testing"])
    assert any(d.startswith("hypothesis") or "testing" in d for d in extras["test"])
    assert "pytest11" not in project.get("entry-points", {})


def test_the_installed_matome_has_no_pytest_entry_point_and_hypothesis_only_as_an_extra() -> None:
    """The installed metadata, as pip sees it (reinstall after changing pyproject.toml)."""
    dist = importlib.metadata.distribution("matome")
    assert not [ep for ep in dist.entry_points if ep.group == "pytest11"]
    for requirement in dist.requires or []:
        if requirement.startswith("hypothesis"):
            assert "extra ==" in requirement, requirement


def test_loading_an_unknown_profile_names_the_known_ones_and_changes_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from hypothesis import settings

    from matome.testing import profiles

    def current() -> tuple[object, ...]:
        d = settings.default
        assert d is not None
        return (d.max_examples, d.derandomize, d.deadline, d.stateful_step_count)

    before = current()
    monkeypatch.setenv("HYPOTHESIS_PROFILE", "nope")
    with pytest.raises(profiles.UnknownProfile, match=r"'nope'.*ci, dev, deep"):
        profiles.load()
    assert current() == before
    settings.register_profile("matome-probe", max_examples=1)  # Hypothesis still works
