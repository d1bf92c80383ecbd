"""``optuna-nas worker``: its command line, its dashboard, and real worker processes.

The process tests start ``python -m optuna_nas.cli worker`` with the objectives of
``tests/worker/_objectives.py``: SIGTERM stops two CPU workers and leaves no trial RUNNING
(SQLite, always runs); four workers on PostgreSQL lose nothing when one is killed with
SIGKILL in the middle of a trial (needs ``OPTUNA_NAS_TEST_POSTGRES_URL``: skipped locally
without it, failed in CI).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

from optuna_nas.errors import WorkerError
from optuna_nas.worker import (
    STORAGE_ENV,
    STORAGE_FILE_ENV,
    WorkerConfig,
)
from tests._postgres import postgres_study_name, postgres_url, storage  # noqa: F401
from tests.worker._objectives import SECONDS_ENV

ROOT = Path(__file__).resolve().parents[2]


OBJECTIVES = "tests.worker._objectives"


def test_config_checks() -> None:
    for bad, message in [
        (dict(n_trials=0), "--trials"),
        (dict(direction="up"), "direction"),
        (dict(timeout=-1.0), "--timeout"),
        (dict(max_failures=0), "--max-failures"),
        (dict(study_name=""), "--study-name"),
    ]:
        settings = {"study_name": "s", "objective": "m:f", **bad}
        with pytest.raises(WorkerError, match=message):
            WorkerConfig(**settings).check()  # type: ignore[arg-type]


def test_the_command_line_says_what_is_wrong_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from optuna_nas import cli

    monkeypatch.delenv(STORAGE_ENV, raising=False)
    monkeypatch.delenv(STORAGE_FILE_ENV, raising=False)
    base = ["worker", "--study-name", "s", "--objective", f"{OBJECTIVES}:objective"]
    assert cli.main(base) == 2
    assert "optuna-nas worker: No storage given" in capsys.readouterr().err
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    for extra, message in [
        (["--devices", "tpu"], "Unknown device 'tpu'"),
        (["--objective", "nowhere_xyz:objective"], "No module named 'nowhere_xyz'"),
        (["--pruner", "sha"], "Unknown pruner 'sha'"),
        (["--trials", "0"], "--trials must be at least 1"),
    ]:
        assert cli.main([*base, "--storage", url, *extra]) == 2
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
    # A new study needs a direction; the module's is used, and a conflicting one refused.
    (tmp_path / "nodir.py").write_text("def objective(trial):\n    return 1.0\n")
    args = ["worker", "--storage", url, "--study-name", "new", "--objective",
            f"{tmp_path / 'nodir.py'}:objective", "--trials", "1"]
    assert cli.main(args) == 2
    assert "needs a direction" in capsys.readouterr().err
    assert cli.main([*args, "--direction", "minimize"]) == 0
    assert cli.main([*args, "--direction", "maximize"]) == 2
    assert "is to minimize, not to maximize" in capsys.readouterr().err


def test_the_dashboard_binds_to_localhost(tmp_path: Path) -> None:
    from optuna_nas.dashboard import make_dashboard_server

    url = f"sqlite:///{tmp_path / 'd.db'}"
    optuna.create_study(study_name="shown", storage=url)
    server = make_dashboard_server(url, port=0)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        assert server.server_address[0] == "127.0.0.1"
        address = f"http://127.0.0.1:{server.server_port}/api/studies"
        with urllib.request.urlopen(address, timeout=10) as response:
            studies = json.load(response)["study_summaries"]
        assert [s["study_name"] for s in studies] == ["shown"]
    finally:
        server.shutdown()
        server.server_close()


def _launch(args: list[str], env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "optuna_nas.cli", "worker", *args],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _kill_if_running(launcher: subprocess.Popen[str]) -> None:
    """End a launcher a failed test left running (its workers stop once it is gone)."""
    if launcher.poll() is None:
        launcher.kill()
        launcher.wait()


class _Lines:
    """Collects a process's output lines in a thread, so that the test can poll it."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stdout is not None
        stdout = process.stdout
        self._thread = threading.Thread(
            target=lambda: self.lines.extend(iter(stdout.readline, "")), daemon=True
        )
        self._thread.start()

    def text(self) -> str:
        self._thread.join(timeout=5)
        return "".join(self.lines)


def _wait_for(condition: object, timeout: float, what: str, output: _Lines) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():  # type: ignore[operator]
            return
        time.sleep(0.2)
    pytest.fail(
        f"timed out after {timeout:.0f} s waiting for {what}; the workers said:\n"
        + "".join(output.lines)
    )


def _study_or_none(name: str, rdb: optuna.storages.BaseStorage) -> optuna.Study | None:
    """The study, or ``None`` while the launcher has not created it yet."""
    try:
        return optuna.load_study(study_name=name, storage=rdb)
    except KeyError:
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # An exited process that nobody has reaped yet (a container's PID 1 may not) is dead.
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return True
    return state != "Z"


def test_sigterm_stops_two_cpu_workers_and_leaves_no_trial_running(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    env = {**os.environ, STORAGE_ENV: url}
    launcher = _launch(
        ["--study-name", "stop", "--objective", f"{OBJECTIVES}:slow_objective",
         "--sampler", "random", "--devices", "cpu,cpu", "--heartbeat-interval", "1",
         "--grace-period", "3", "--dashboard-port", "0"],
        env,
    )
    output = _Lines(launcher)
    try:
        rdb = optuna.storages.RDBStorage(url)

        def both_running() -> bool:
            study = _study_or_none("stop", rdb)
            if study is None:
                return False
            running = study.get_trials(states=(TrialState.RUNNING,))
            return len(running) == 2 and all("pid" in t.user_attrs for t in running)

        _wait_for(both_running, 120, "two running trials", output)
        # The study is visible in optuna-dashboard while the workers run.
        line = next(x for x in output.lines if "optuna-dashboard for" in x)
        assert "http://127.0.0.1:" in line and "sqlite" in line
        address = line.split(" at ")[-1].strip().removesuffix("/dashboard")
        with urllib.request.urlopen(f"{address}/api/studies", timeout=10) as response:
            studies = json.load(response)["study_summaries"]
        assert [s["study_name"] for s in studies] == ["stop"]

        study = optuna.load_study(study_name="stop", storage=rdb)
        running = study.get_trials(states=(TrialState.RUNNING,))
        pids = {t.user_attrs["pid"] for t in running}
        started = time.monotonic()
        launcher.send_signal(signal.SIGTERM)
        launcher.wait(timeout=30)
        assert time.monotonic() - started < 30
    finally:
        _kill_if_running(launcher)
    assert launcher.returncode == 128 + signal.SIGTERM
    assert not any(_alive(pid) for pid in pids)
    trials = optuna.load_study(study_name="stop", storage=rdb).get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    # Each interrupted trial is failed and queued again with its params.
    for old in running:
        assert trials[old.number].state == TrialState.FAIL
        again = [t for t in trials if t.system_attrs.get("failed_trial") == old.number]
        assert len(again) == 1 and again[0].state == TrialState.WAITING
        assert again[0].params == old.params
    assert output.text().count("interrupted; failed and queued again") == 2


def test_four_workers_lose_nothing_when_one_is_killed_mid_trial(
    postgres_url: str,  # noqa: F811
    postgres_study_name: str,  # noqa: F811
) -> None:
    n_trials = 24
    env = {**os.environ, STORAGE_ENV: postgres_url, SECONDS_ENV: "0.5"}
    launcher = _launch(
        ["--study-name", postgres_study_name, "--objective", f"{OBJECTIVES}:objective",
         "--devices", "cpu,cpu,cpu,cpu", "--trials", str(n_trials), "--seed", "0",
         "--heartbeat-interval", "1", "--grace-period", "3"],
        env,
    )
    output = _Lines(launcher)
    rdb = storage(postgres_url)
    killed: list[optuna.trial.FrozenTrial] = []
    try:

        def kill_one_mid_trial() -> bool:
            study = _study_or_none(postgres_study_name, rdb)
            if study is None:
                return False
            if len(study.get_trials(states=(TrialState.COMPLETE,))) < 4:
                return False
            for trial in study.get_trials(states=(TrialState.RUNNING,)):
                # In the middle: it has reported a step, and will run for a while yet.
                if "pid" in trial.user_attrs and 1 <= len(trial.intermediate_values) <= 3:
                    os.kill(trial.user_attrs["pid"], signal.SIGKILL)
                    killed.append(trial)
                    return True
            return False

        _wait_for(kill_one_mid_trial, 180, "a trial in the middle of its run", output)
        launcher.wait(timeout=240)
    finally:
        _kill_if_running(launcher)
    text = output.text()
    victim = killed[0]
    assert not _alive(victim.user_attrs["pid"])
    trials = optuna.load_study(study_name=postgres_study_name, storage=rdb).get_trials()
    rdb.engine.dispose()
    # The killed trial ends FAILED ...
    assert trials[victim.number].state == TrialState.FAIL, text
    # ... and is retried once, by another worker, with the same architecture.
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == victim.number]
    assert len(retries) == 1, text
    assert retries[0].state == TrialState.COMPLETE
    assert retries[0].params == victim.params
    assert retries[0].user_attrs["pid"] != victim.user_attrs["pid"]
    # The study reaches its count, and every other trial is COMPLETE or PRUNED.
    done = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    assert len(done) >= n_trials
    assert [t.number for t in trials if t not in done] == [victim.number]
    # No two trials hold the same retry.
    held = Counter(tuple(t.system_attrs.get("retry_history", [])) for t in trials)
    assert all(count == 1 for history, count in held.items() if history)
    # No controller learned a trial twice, or the trial that had no result.
    for trial in done:
        learned = trial.user_attrs["learned"]
        assert len(learned) == len(set(learned)) and victim.number not in learned
    # Every worker process the launcher started took part; the killed one was restarted.
    assert "was killed by SIGKILL" in text and "Restarting it (1 of 3)." in text
    assert len({t.user_attrs["pid"] for t in trials}) >= 4
    assert "[cpu#" in text and "finished" in text


def test_workers_stop_when_their_launcher_is_killed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    env = {**os.environ, STORAGE_ENV: url, SECONDS_ENV: "0.5"}
    launcher = _launch(
        ["--study-name", "orphans", "--objective", f"{OBJECTIVES}:objective",
         "--sampler", "random", "--devices", "cpu", "--direction", "maximize"],
        env,
    )
    output = _Lines(launcher)
    rdb = optuna.storages.RDBStorage(url)
    try:

        def a_trial_ran() -> bool:
            study = _study_or_none("orphans", rdb)
            if study is None:
                return False
            return bool(study.get_trials(states=(TrialState.COMPLETE,)))

        _wait_for(a_trial_ran, 120, "a finished trial", output)
        launcher.kill()  # the launcher only: its worker runs in a session of its own
        launcher.wait()
        study = optuna.load_study(study_name="orphans", storage=rdb)
        pid = study.trials[0].user_attrs["pid"]
        _wait_for(lambda: not _alive(pid), 30, "the orphaned worker to stop", output)
    finally:
        _kill_if_running(launcher)
    trials = optuna.load_study(study_name="orphans", storage=rdb).get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert "its launcher has exited" in output.text()


def test_a_killed_worker_is_restarted_up_to_max_restarts(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'study.db'}"
    env = {**os.environ, STORAGE_ENV: url, SECONDS_ENV: "0.5"}
    launcher = _launch(
        ["--study-name", "restarts", "--objective", f"{OBJECTIVES}:objective",
         "--sampler", "random", "--devices", "cpu", "--direction", "maximize",
         "--max-restarts", "1", "--heartbeat-interval", "1", "--grace-period", "3"],
        env,
    )
    output = _Lines(launcher)
    rdb = optuna.storages.RDBStorage(url)
    killed: list[int] = []
    try:

        def kill_a_new_worker() -> bool:
            study = _study_or_none("restarts", rdb)
            if study is None:
                return False
            for trial in study.get_trials(states=(TrialState.RUNNING,)):
                pid = trial.user_attrs.get("pid")
                if pid is not None and pid not in killed:
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return True
            return False

        _wait_for(kill_a_new_worker, 120, "the first worker's trial", output)
        _wait_for(kill_a_new_worker, 120, "the restarted worker's trial", output)
        launcher.wait(timeout=60)
    finally:
        _kill_if_running(launcher)
    text = output.text()
    assert "Restarting it (1 of 1)." in text
    assert "Not restarted: it was restarted 1 times already." in text
    # With no worker left, the launcher ends, and says something went wrong.
    assert launcher.returncode == 1
