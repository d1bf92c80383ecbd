"""``optuna-nas worker``: its arguments, one worker in-process, and real worker processes.

The process tests start ``python -m optuna_nas.cli worker`` with the objectives of
``tests/_worker_objectives.py``: SIGTERM stops two CPU workers and leaves no trial RUNNING
(SQLite, always runs); four workers on PostgreSQL lose nothing when one is killed with
SIGKILL in the middle of a trial (needs ``OPTUNA_NAS_TEST_POSTGRES_URL``: skipped locally
without it, failed in CI).
"""

from __future__ import annotations

import io
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

from optuna_nas import worker as worker_module
from optuna_nas.errors import ArchitectureError, NasError, WorkerError
from optuna_nas.samplers import ControllerSampler
from optuna_nas.spaces import NasBench201Space
from optuna_nas.worker import (
    STORAGE_ENV,
    STORAGE_FILE_ENV,
    WorkerConfig,
    load_objective,
    make_pruner,
    make_worker_sampler,
    open_storage,
    parse_devices,
    redact_url,
    resolve_storage_url,
    run_worker,
)
from tests._postgres import postgres_study_name, postgres_url, storage  # noqa: F401
from tests._worker_objectives import SECONDS_ENV

ROOT = Path(__file__).resolve().parents[1]
OBJECTIVES = "tests._worker_objectives"


# ---- storage URLs -------------------------------------------------------------------------
def test_the_storage_url_comes_from_the_argument_a_file_or_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    monkeypatch.delenv(STORAGE_FILE_ENV, raising=False)
    with pytest.raises(WorkerError, match="--storage-file"):
        resolve_storage_url()
    monkeypatch.setenv(STORAGE_ENV, "sqlite:///from-env.db")
    assert resolve_storage_url() == "sqlite:///from-env.db"
    file = tmp_path / "url"
    file.write_text("# the study's database\n\n  postgresql://u:secret@db/nas  \n")
    file.chmod(0o600)
    assert resolve_storage_url(storage_file=file) == "postgresql://u:secret@db/nas"
    monkeypatch.setenv(STORAGE_FILE_ENV, str(file))
    assert resolve_storage_url() == "postgresql://u:secret@db/nas"
    assert resolve_storage_url("sqlite:///arg.db") == "sqlite:///arg.db"
    file.chmod(0o644)
    with pytest.warns(UserWarning, match="chmod 600"):
        resolve_storage_url(storage_file=file)
    with pytest.raises(WorkerError, match="holds no URL"):
        (tmp_path / "empty").write_text("# nothing\n")
        resolve_storage_url(storage_file=tmp_path / "empty")
    with pytest.raises(WorkerError, match="Cannot read the storage URL file"):
        resolve_storage_url(storage_file=tmp_path / "missing")


def test_a_printed_url_hides_its_password() -> None:
    shown = redact_url("postgresql+psycopg2://optuna:hunter2@db.example:5432/nas")
    assert "hunter2" not in shown and "db.example" in shown
    assert redact_url("sqlite:///nas.db") == "sqlite:///nas.db"


def test_open_storage_turns_heartbeats_on_and_says_what_is_wrong(tmp_path: Path) -> None:
    rdb = open_storage(f"sqlite:///{tmp_path / 'a.db'}", heartbeat_interval=2, max_retry=1)
    assert rdb.get_heartbeat_interval() == 2
    assert rdb.get_heartbeat_stale_trial_callback() is not None
    rdb.engine.dispose()
    off = open_storage(f"sqlite:///{tmp_path / 'b.db'}", heartbeat_interval=None)
    assert off.get_heartbeat_interval() is None
    off.engine.dispose()
    with pytest.raises(WorkerError, match="Cannot open the storage"):
        open_storage("not a url")
    with pytest.raises(WorkerError, match="Cannot open the storage"):
        open_storage("nosuchdialect://x/y")
    with pytest.raises(WorkerError, match="must exceed heartbeat_interval"):
        open_storage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=10, grace_period=5)
    with pytest.raises(WorkerError, match="at least 1 s"):
        open_storage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=0)


def test_an_unreachable_server_gets_a_sentence_without_its_password() -> None:
    with pytest.raises(WorkerError, match="Cannot open the storage") as caught:
        open_storage("postgresql+psycopg2://u:hunter2@127.0.0.1:9/nas")
    assert "hunter2" not in str(caught.value)


# ---- objectives, samplers, pruners, devices -----------------------------------------------
def test_load_objective_reads_the_module_settings() -> None:
    objective = load_objective(f"{OBJECTIVES}:objective")
    assert isinstance(objective.space, NasBench201Space)
    assert objective.direction == "maximize"
    assert not objective.takes_device
    sampler = make_worker_sampler(objective, None, 3)
    assert isinstance(sampler, ControllerSampler)
    assert isinstance(make_worker_sampler(objective, "random", 3), optuna.samplers.RandomSampler)
    assert isinstance(make_worker_sampler(objective, "controller", 3), ControllerSampler)
    assert make_pruner(objective, None) is None
    assert isinstance(make_pruner(objective, "asha"), optuna.pruners.SuccessiveHalvingPruner)
    assert isinstance(make_pruner(objective, "none"), optuna.pruners.NopPruner)


def test_load_objective_from_a_file_with_a_device_parameter(tmp_path: Path) -> None:
    file = tmp_path / "search.py"
    file.write_text(
        "import optuna\n"
        "pruner = optuna.pruners.MedianPruner\n"
        "def objective(trial, device):\n"
        "    return 1.0\n"
    )
    objective = load_objective(f"{file}:objective")
    assert objective.takes_device
    assert isinstance(make_pruner(objective, None), optuna.pruners.MedianPruner)


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_colon", "not of the form module:function"),
        ("tests._worker_objectives:", "not of the form module:function"),
        ("no_such_module_xyz:objective", "No module named 'no_such_module_xyz'"),
        ("tests._worker_objectives:missing", "defines no 'missing'; its functions are"),
        ("tests._worker_objectives:direction", "is a str, not a function"),
        ("/no/such/file.py:objective", "does not exist"),
    ],
)
def test_load_objective_errors_are_sentences(spec: str, message: str) -> None:
    with pytest.raises(WorkerError, match=message):
        load_objective(spec)


def test_a_module_that_fails_to_import_is_named_with_its_line(tmp_path: Path) -> None:
    (tmp_path / "broken.py").write_text("x = 1\nraise RuntimeError('no GPU here')\n")
    with pytest.raises(WorkerError, match=r"RuntimeError: no GPU here \(at .*broken.py:2\)"):
        load_objective(f"{tmp_path / 'broken.py'}:objective")
    (tmp_path / "needs.py").write_text("import not_installed_pkg_xyz\n")
    with pytest.raises(WorkerError, match="imports 'not_installed_pkg_xyz'"):
        load_objective(f"{tmp_path / 'needs.py'}:objective")


def test_bad_module_settings_and_names(tmp_path: Path) -> None:
    (tmp_path / "odd.py").write_text(
        "space = 'nasbench201'\ndef objective(trial):\n    return 1.0\n"
    )
    with pytest.raises(WorkerError, match="defines `space` as a str"):
        load_objective(f"{tmp_path / 'odd.py'}:objective")
    (tmp_path / "plain.py").write_text(
        "sampler = 3\npruner = 'median'\ndef objective(trial):\n    return 1.0\n"
    )
    plain = load_objective(f"{tmp_path / 'plain.py'}:objective")
    with pytest.raises(WorkerError, match="needs|searches an architecture space"):
        make_worker_sampler(plain, "controller", 0)
    with pytest.raises(WorkerError, match="Unknown sampler 'cmaes-nas'"):
        make_worker_sampler(plain, "cmaes-nas", 0)
    with pytest.raises(WorkerError, match="gives a int"):
        make_worker_sampler(plain, None, 0)
    with pytest.raises(WorkerError, match="gives a str"):
        make_pruner(plain, None)
    with pytest.raises(WorkerError, match="Unknown pruner 'sha'"):
        make_pruner(plain, "sha")


def test_devices() -> None:
    assert parse_devices("cpu,cpu") == ["cpu", "cpu"]
    assert parse_devices(["cpu"]) == ["cpu"]
    with pytest.raises(WorkerError, match="Unknown device 'gpu0'"):
        parse_devices("cpu,gpu0")
    with pytest.raises(WorkerError, match="No device"):
        parse_devices([])
    import torch

    if torch.cuda.device_count() < 8:
        with pytest.raises(WorkerError, match="visible GPU"):
            parse_devices("cuda:7")


def test_each_gpu_worker_sees_only_its_own_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    env = worker_module._child_env("cuda:1", 1, 0)
    assert env["CUDA_VISIBLE_DEVICES"] == "1" and env["OPTUNA_NAS_DEVICE"] == "cuda:0"
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "4,5")
    assert worker_module._child_env("cuda:1", 1, 0)["CUDA_VISIBLE_DEVICES"] == "5"
    cpu = worker_module._child_env("cpu", 0, 2)
    assert cpu["CUDA_VISIBLE_DEVICES"] == "" and cpu["OPTUNA_NAS_DEVICE"] == "cpu"


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


# ---- the command line ---------------------------------------------------------------------
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


# ---- one worker, in this process ----------------------------------------------------------
def _sqlite_study(tmp_path: Path, name: str = "s") -> optuna.Study:
    rdb = open_storage(f"sqlite:///{tmp_path / 'study.db'}", heartbeat_interval=1,
                       grace_period=2)
    return optuna.create_study(
        study_name=name, storage=rdb, direction="maximize",
        sampler=optuna.samplers.RandomSampler(seed=0),
    )


def test_run_worker_reaches_the_count_and_reports_progress(tmp_path: Path) -> None:
    study = _sqlite_study(tmp_path)
    space = NasBench201Space()
    out = io.StringIO()

    def objective(trial: optuna.Trial, device: object) -> float:
        assert str(device) == "cpu"
        arch = space.suggest(trial)
        return float(sum(op == "nor_conv_3x3" for _, op in arch.values))

    report = run_worker(study, objective, n_trials=5, device="cpu", label="w", out=out,
                        handle_signals=False)
    assert report.complete == 5 and report.ok
    assert len(study.get_trials(states=(TrialState.COMPLETE,))) == 5
    lines = out.getvalue().splitlines()
    assert len(lines) == 5 and lines[-1].startswith("[w] trial 4 complete, value ")
    assert "study: 5/5 finished, best" in lines[-1]
    # A second run finds the count reached and runs nothing.
    assert run_worker(study, objective, n_trials=5, handle_signals=False, out=out).complete == 0


def test_a_broken_objective_fails_trials_then_the_worker_gives_up(tmp_path: Path) -> None:
    study = _sqlite_study(tmp_path)
    out = io.StringIO()

    def objective(trial: optuna.Trial) -> float:
        NasBench201Space().parse("|nor_conv_9x9~0|")
        return 1.0

    report = run_worker(study, objective, n_trials=10, max_failures=3, out=out,
                        handle_signals=False)
    assert report.failed == 3 and not report.ok and "gave up" in report.reason
    # A package error is a sentence, not a traceback.
    assert "failed: ArchitectureError:" in out.getvalue()
    assert "Traceback" not in out.getvalue()
    assert [t.state for t in study.trials] == [TrialState.FAIL] * 3

    def buggy(trial: optuna.Trial) -> float:
        return [][1]  # type: ignore[no-any-return]

    out = io.StringIO()
    run_worker(study, buggy, n_trials=10, max_failures=1, out=out, handle_signals=False)
    # A bug in the user's code keeps its traceback: that is the useful sentence.
    assert "Traceback" in out.getvalue() and "IndexError" in out.getvalue()


# The tests make a "dead" trial with study.ask(); Optuna warns that heartbeats are meant
# for optimize(), which is what the worker then uses.
_ASK_WITH_HEARTBEAT = "ignore:Heartbeat of storage is supposed to be used with Study.optimize"


def test_a_storage_error_pauses_the_worker_instead_of_killing_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    study = _sqlite_study(tmp_path)
    real = study.optimize
    calls = []

    def flaky(*args: object, **kwargs: object) -> None:
        calls.append(1)
        if len(calls) == 2:
            raise optuna.exceptions.StorageInternalError("database is locked")
        real(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(study, "optimize", flaky)
    monkeypatch.setattr(worker_module, "_STORAGE_ATTEMPTS", 1)
    out = io.StringIO()
    report = run_worker(study, lambda t: 1.0, n_trials=3, out=out, handle_signals=False)
    assert report.complete == 3 and report.ok
    assert "storage error (database is locked); trying again in 2 s" in out.getvalue()

    def broken(*args: object, **kwargs: object) -> None:
        raise optuna.exceptions.StorageInternalError("server closed the connection")

    monkeypatch.setattr(study, "optimize", broken)
    report = run_worker(study, lambda t: 1.0, n_trials=5, out=out, handle_signals=False)
    assert not report.ok and "the storage failed 1 times in a row" in report.reason


@pytest.mark.filterwarnings(_ASK_WITH_HEARTBEAT)
def test_a_stale_trial_is_retried_once_with_the_same_params(tmp_path: Path) -> None:
    study = _sqlite_study(tmp_path)
    space = NasBench201Space()
    # A trial left RUNNING by a worker that died: it has a heartbeat, then none.
    dead = study.ask()
    arch = space.suggest(dead)
    study._storage.record_heartbeat(dead._trial_id)  # type: ignore[attr-defined]
    time.sleep(3.2)
    seen: list[str] = []

    def objective(trial: optuna.Trial) -> float:
        seen.append(str(space.suggest(trial)))
        return 1.0

    report = run_worker(study, objective, n_trials=3, handle_signals=False, out=io.StringIO())
    assert report.complete == 3
    trials = study.get_trials()
    assert trials[0].state == TrialState.FAIL
    retries = [t for t in trials if t.system_attrs.get("failed_trial") == dead.number]
    assert len(retries) == 1 and retries[0].state == TrialState.COMPLETE
    assert space.from_params(retries[0].params) == arch and seen[0] == str(arch)


@pytest.mark.filterwarnings(_ASK_WITH_HEARTBEAT)
def test_controller_learns_a_retried_trial_once_and_the_failed_one_never(
    tmp_path: Path,
) -> None:
    space = NasBench201Space()
    sampler = ControllerSampler(space, seed=0)
    rdb = open_storage(f"sqlite:///{tmp_path / 'c.db'}", heartbeat_interval=1, grace_period=2)
    study = optuna.create_study(storage=rdb, direction="maximize", sampler=sampler)
    study.optimize(lambda t: float(len(str(space.suggest(t)))), n_trials=3)
    dead = study.ask()
    space.suggest(dead)
    study._storage.record_heartbeat(dead._trial_id)  # type: ignore[attr-defined]
    time.sleep(3.2)

    def objective(trial: optuna.Trial) -> float:
        return float(len(str(space.suggest(trial))))

    run_worker(study, objective, n_trials=8, handle_signals=False, out=io.StringIO())
    sampler._learn(study)
    learned = [s.number for s in sampler._samples]
    assert len(learned) == len(set(learned)) == 8
    assert dead.number not in learned
    retry = next(t for t in study.trials if t.system_attrs.get("failed_trial") == dead.number)
    assert retry.number in learned


def test_an_architecture_error_from_the_sampler_is_a_sentence(tmp_path: Path) -> None:
    # A study resumed with another search space: the controller names the problem.
    study = _sqlite_study(tmp_path)
    study.enqueue_trial({"arch/1<-0": "conv_9x9"}, skip_if_exists=False)
    study.add_trial(
        optuna.trial.create_trial(
            params={"arch/x": "a"},
            distributions={"arch/x": optuna.distributions.CategoricalDistribution(["a"])},
            value=1.0,
        )
    )
    space = NasBench201Space()
    study.sampler = ControllerSampler(space, seed=0)
    out = io.StringIO()

    def objective(trial: optuna.Trial) -> float:
        return float(len(str(space.suggest(trial))))

    report = run_worker(study, objective, n_trials=3, max_failures=2, out=out,
                        handle_signals=False)
    assert not report.ok
    assert "different search space" in out.getvalue()
    assert issubclass(ArchitectureError, NasError)


def test_the_example_objective_trains_in_a_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPTUNA_NAS_EXAMPLE_EPOCHS", "1")
    objective = load_objective(f"{ROOT / 'examples' / 'worker_objective.py'}:objective")
    assert objective.takes_device and objective.direction == "maximize"
    rdb = open_storage(f"sqlite:///{tmp_path / 'example.db'}", heartbeat_interval=5)
    study = optuna.create_study(
        storage=rdb, direction="maximize", sampler=make_worker_sampler(objective, None, 0),
        pruner=make_pruner(objective, None),
    )
    report = run_worker(study, objective, n_trials=2, device="cpu", handle_signals=False,
                        out=io.StringIO())
    assert report.complete == 2
    for trial in study.trials:
        assert trial.user_attrs["device"] == "cpu" and trial.user_attrs["seconds_per_epoch"] > 0
        assert 0.0 <= trial.value <= 1.0  # type: ignore[operator]


# ---- worker processes ---------------------------------------------------------------------
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
            try:
                study = optuna.load_study(study_name="stop", storage=rdb)
            except KeyError:
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
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
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
            try:
                study = optuna.load_study(study_name=postgres_study_name, storage=rdb)
            except KeyError:
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
        if launcher.poll() is None:
            os.killpg(launcher.pid, signal.SIGKILL)
            launcher.wait()
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
    # Every worker process the launcher started took part.
    assert len({t.user_attrs["pid"] for t in trials}) == 4
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
            try:
                study = optuna.load_study(study_name="orphans", storage=rdb)
            except KeyError:
                return False
            return bool(study.get_trials(states=(TrialState.COMPLETE,)))

        _wait_for(a_trial_ran, 120, "a finished trial", output)
        launcher.kill()  # the launcher only: its worker runs in a session of its own
        launcher.wait()
        study = optuna.load_study(study_name="orphans", storage=rdb)
        pid = study.trials[0].user_attrs["pid"]
        _wait_for(lambda: not _alive(pid), 30, "the orphaned worker to stop", output)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait()
    trials = optuna.load_study(study_name="orphans", storage=rdb).get_trials()
    assert not [t for t in trials if t.state == TrialState.RUNNING]
    assert "its launcher has exited" in output.text()
