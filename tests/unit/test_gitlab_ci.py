"""The GitLab CI equivalent in the research brief (``research/cicd/gitlab-ci.yml``) is our
GitHub Actions workflow translated job for job, not a sketch: each job runs the same steps of
``.ci/run`` as the workflow's job of the same name, on the same server images, with the same
``KGLAB_*`` variables. A step added to the workflow and not to it (or the reverse) fails here."""

from __future__ import annotations

import re
from typing import Any

import yaml

from research.brief.sources import REPO

WORKFLOW = REPO / ".github" / "workflows" / "ci.yml"
GITLAB = REPO / "research" / "cicd" / "gitlab-ci.yml"
CI_RUN = REPO / ".ci" / "run"
#: A step of .ci/run: a make target, or a script of deploy/ run by bash or the venv's python.
STEP = re.compile(
    r"\bmake [a-z][a-z0-9-]*|\bbash deploy/[\w/.-]+\.sh|\.venv/bin/python deploy/[\w/.-]+\.py"
)


def steps(script: str) -> list[str]:
    return STEP.findall(script)


def github_jobs() -> dict[str, Any]:
    return dict(yaml.safe_load(WORKFLOW.read_text())["jobs"])


def gitlab() -> dict[str, Any]:
    return dict(yaml.safe_load(GITLAB.read_text()))


def gitlab_jobs() -> dict[str, Any]:
    reserved = {"workflow", "variables", "default", "stages", "include"}
    return {name: job for name, job in gitlab().items() if name not in reserved}


def gitlab_script(name: str) -> str:
    job = gitlab_jobs()[name]
    before = job.get("before_script", gitlab()["default"]["before_script"])
    return "\n".join([*before, *job["script"]])


def github_script(name: str) -> str:
    return "\n".join(step.get("run", "") for step in github_jobs()[name]["steps"])


def test_each_job_runs_the_workflows_ci_run_steps() -> None:
    ci_run = set(steps(CI_RUN.read_text()))
    assert set(gitlab_jobs()) == set(github_jobs())
    for name in github_jobs():
        github = [s for s in steps(github_script(name)) if s in ci_run]
        ours = [s for s in steps(gitlab_script(name)) if s in ci_run]
        assert github, f"the workflow's {name} job runs no step of .ci/run"
        assert ours == github, name
    # And the check that a skipped test fails the run is in both.
    assert "deploy/ci/no_skips.py" in github_script("test")
    assert "deploy/ci/no_skips.py" in gitlab_script("test")


def test_the_same_servers_and_variables() -> None:
    github = github_jobs()["test"]
    ours = gitlab_jobs()["test"]
    github_images = {service["image"] for service in github["services"].values()}
    our_images = {service["name"] for service in ours["services"]}
    # clamd runs in the job instead (no `docker exec` into a GitLab service): the only image less.
    assert github_images - our_images == {i for i in github_images if i.startswith("clamav/")}
    assert our_images <= github_images
    assert set(ours["variables"]) - {"PYTEST_ADDOPTS"} == set(github["env"])
    [tests] = [step for step in github["steps"] if step.get("run") == "make test"]
    assert tests["env"]["PYTEST_ADDOPTS"] == ours["variables"]["PYTEST_ADDOPTS"]


def test_the_same_versions() -> None:
    github = yaml.safe_load(WORKFLOW.read_text())["env"]
    ours = gitlab()["variables"]
    assert ours["UV_VERSION"] == github["UV_VERSION"]
    assert ours["PYTHON_VERSION"] == github["PYTHON_VERSION"]
    assert gitlab()["default"]["image"] == f"python:{github['PYTHON_VERSION']}-bookworm"
