"""The committed results file names the code that ran: HEAD, marked dirty when it is not all."""

import subprocess
from pathlib import Path

import pytest

from train_job.run_record import git_commit


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=True)
    return done.stdout.strip()


def test_commit_is_marked_dirty_when_tracked_files_changed(tmp_path, monkeypatch) -> None:
    _git(tmp_path, "init", "-q")
    (tmp_path / "train.py").write_text("lr = 8e-5\n")
    _git(tmp_path, "add", "train.py")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "x")
    head = _git(tmp_path, "rev-parse", "HEAD")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOURCE_COMMIT", raising=False)

    assert git_commit() == head
    (tmp_path / "scratch.txt").write_text("untracked files do not count\n")
    assert git_commit() == head
    (tmp_path / "train.py").write_text("lr = 1e-4\n")
    assert git_commit() == f"{head}-dirty"


def test_no_repository_means_no_commit(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.delenv("SOURCE_COMMIT", raising=False)
    assert git_commit() is None


def test_a_copied_tree_names_the_commit_it_was_told(tmp_path, monkeypatch) -> None:
    """A copied tree (a container image, a lent GPU machine) says SOURCE_COMMIT, even when the
    copy brought a .git along: that one may be stale."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path.parent))
    monkeypatch.setenv("SOURCE_COMMIT", "abc123")
    assert git_commit() == "abc123"
    _git(tmp_path, "init", "-q")
    (tmp_path / "train.py").write_text("lr = 8e-5\n")
    _git(tmp_path, "add", "train.py")
    _git(tmp_path, "-c", "user.name=t", "-c", "user.email=t@example.com", "commit", "-qm", "x")
    assert git_commit() == "abc123"


@pytest.fixture(autouse=True)
def _no_global_git_config(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(tmp_path / "no-gitconfig"))
