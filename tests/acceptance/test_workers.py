"""Celery and RQ workers measured exactly, as sections, with contexts through the queue.

The shop example (``examples/workers``): a Flask API whose views hand their
work to a Celery worker and an RQ worker over a real redis-server, all four
started by the example's rcfile.  Each run's combined data is compared line
for line with the same requests replayed in one process (Celery eager, RQ
synchronous) for the API's and the workers' modules.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from coverage import CoverageData

from tests import workers
from tests.support import (
    assert_no_leftovers,
    lines_differ,
    measured_lines,
    python_env,
    run_servercov,
    running_serve,
    serve_state,
    servercov_lines,
    stop_serve,
    stray_data_files,
    wait_for_file,
)

pytestmark = pytest.mark.timeout(300)

CELERY = "{python} -m celery -A shop.tasks worker --loglevel INFO --pool "
POOLS = {
    "prefork -c 2 (the example as it is)": None,
    "prefork -c 2 --max-tasks-per-child 1": CELERY + "prefork -c 2 --max-tasks-per-child 1",
    "threads -c 4": CELERY + "threads -c 4",
    "gevent -c 4, [run] concurrency = gevent, thread": CELERY + "gevent -c 4",
}


def assert_exact(project: Path, tmp_path: Path, paths: list[str]) -> None:
    measured = measured_lines(project / ".coverage", project / "shop")
    with workers.running_redis(tmp_path) as redis:
        truth = workers.replay(project, redis, paths)
    assert {"api.py", "tasks.py", "jobs.py"} <= set(truth)
    assert lines_differ(measured, truth) == []


def stops(output: str) -> list[str]:
    return [line.split(" stopped by ")[0] for line in servercov_lines(output)
            if " stopped by " in line]


STOP_ORDER = ["servercov: server", "servercov: section rq", "servercov: section celery",
              "servercov: section redis"]


@pytest.mark.parametrize("pool", POOLS)
def test_the_api_and_both_workers_are_measured_exactly(tmp_path, pool):
    project = workers.shop_project(tmp_path)
    if POOLS[pool]:
        workers.set_celery(project, POOLS[pool])
    run = workers.run_tests(project)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "Ran 4 tests" in run.stderr and "lost data" not in run.stderr
    assert stops(run.stderr) == STOP_ORDER, run.stderr
    assert "shop/tasks.py" in run.stdout  # the example's terminal report
    if POOLS[pool] is None:  # the example exactly as its README runs it
        assert workers.README_COMMAND in (workers.EXAMPLE / "README.md").read_text()
    assert_exact(project, tmp_path, workers.all_paths())
    assert stray_data_files(project) == []
    assert_no_leftovers(tmp_path)


# Lines that only one test's job runs: (module, first line of the code, its test).
ONLY_ONE_TEST = [
    ("tasks.py", "return quantity * 9", "test_prices"),
    ("tasks.py", 'raise ValueError("a negative refund")', "test_refunds"),
    ("jobs.py", 'return f"A-{order}"', None),  # no test invoices above 100
    ("jobs.py", 'return f"I-{order}"', "test_invoice"),
    ("jobs.py", 'return f"express {order}"', "test_shipping"),
]


@pytest.mark.parametrize("pool", ["prefork -c 2", "threads -c 4"])
def test_contexts_follow_each_job_through_the_queue(tmp_path, pool):
    project = workers.shop_project(tmp_path)
    workers.set_celery(project, CELERY + pool, contexts=True)
    run = workers.run_tests(project)
    assert run.returncode == 0, run.stdout + run.stderr
    data = CoverageData(str(project / ".coverage"))
    data.read()
    for module, code, test in ONLY_ONE_TEST:
        path = project / "shop" / module
        number = next(n for n, line in enumerate(path.read_text().splitlines(), 1)
                      if line.strip() == code)
        found = data.contexts_by_lineno(str(path)).get(number, [])
        expected = [f"tests.test_shop.ShopTest.{test}"] if test else []
        assert found == expected, (module, code)
    assert_exact(project, tmp_path, workers.all_paths())
    assert_no_leftovers(tmp_path)


KILL_A_CHILD = '''
import os, signal
from nose2_servercov import ServerTestCase

def children_of_celery():
    """The pool's children: celery processes whose parent is a celery process."""
    def command(pid):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and b"celery" in command(entry):
                with open(f"/proc/{entry}/stat") as f:
                    parent = f.read().rsplit(")", 1)[1].split()[1]
                if b"celery" in command(parent) and os.path.samefile(
                        f"/proc/{entry}/cwd", os.getcwd()):
                    found.append(int(entry))
        except OSError:
            pass
    return found

class Kill(ServerTestCase):
    def test_kill_the_child_that_ran_a_task(self):
        self.assertEqual(self.get("/price/3").json(), {"price": 30})
        (child,) = children_of_celery()
        open("killed", "w").write(str(child))
        os.kill(child, signal.SIGKILL)
'''


def test_a_worker_child_killed_is_named_with_its_section_and_fails_the_run(tmp_path):
    project = workers.shop_project(tmp_path)
    workers.set_celery(project, CELERY + "prefork -c 1")
    (project / "tests" / "test_kill.py").write_text(KILL_A_CHILD)
    run = workers.run_tests(project, "test_kill")
    assert run.returncode == 1, run.stdout + run.stderr
    killed = (project / "killed").read_text()
    lost = [line for line in servercov_lines(run.stderr) if line.startswith("servercov: lost")]
    assert lost and lost[0].startswith(f"servercov: lost data: [servercov:celery] pid {killed} "), \
        run.stderr
    assert len(lost) == 1, lost
    assert stops(run.stderr) == STOP_ORDER, run.stderr
    assert_no_leftovers(tmp_path)


WAIT = '''
import pathlib, time
from nose2_servercov import ServerTestCase

class Wait(ServerTestCase):
    def test_work_then_wait(self):
        self.assertEqual(self.get("/price/12").json(), {"price": 108})
        self.assertEqual(self.get("/invoice/7").json(), {"invoice": "I-7"})
        pathlib.Path("waiting").write_text("")
        time.sleep(120)  # the functional test interrupts the run here
'''


def test_ctrl_c_in_the_middle_stops_everything_in_order_and_keeps_the_data(tmp_path):
    project = workers.shop_project(tmp_path)
    (project / "tests" / "test_wait.py").write_text(WAIT)
    runner = subprocess.Popen(
        [sys.executable, "-m", "nose2", "-s", "tests", "--with-servercov", "--servercov-rcfile",
         ".apirc", "test_wait"], cwd=project, env=python_env(), stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    try:
        wait_for_file(project / "waiting", process=runner, timeout=120)
        runner.send_signal(signal.SIGINT)
        output, _ = runner.communicate(timeout=120)
    finally:
        if runner.poll() is None:
            runner.kill()
            runner.wait(30)
    assert runner.returncode != 0
    assert stops(output) == STOP_ORDER, output
    assert "lost data" not in output, output
    assert_exact(project, tmp_path, ["/health", "/price/12", "/invoice/7"])
    assert_no_leftovers(tmp_path)


NAP = '''

@app.task
def nap(seconds):
    import time
    time.sleep(seconds)
    return "rested"
'''
ENQUEUE_AND_LEAVE = '''
import os, unittest

class Leave(unittest.TestCase):
    def test_enqueue_a_long_task_and_leave(self):
        os.environ["SHOP_REDIS_URL"] = f"redis://127.0.0.1:{os.environ['SERVERCOV_PORT_REDIS']}/0"
        from shop import tasks
        tasks.nap.delay(2)
        tasks.app.close()
'''


def test_a_task_running_at_the_stop_finishes_in_celerys_warm_shutdown(tmp_path):
    """The stop's TERM reaches the whole group: the prefork child leaves it to its parent."""
    project = workers.shop_project(tmp_path)
    with open(project / "shop" / "tasks.py", "a") as tasks:
        tasks.write(NAP)
    (project / "tests" / "test_leave.py").write_text(ENQUEUE_AND_LEAVE)
    run = workers.run_tests(project, "test_leave")
    assert run.returncode == 0, run.stdout + run.stderr
    # The task's last line ran: the child was not ended halfway through its sleep.
    last = len((project / "shop" / "tasks.py").read_text().splitlines())
    assert last in measured_lines(project / ".coverage", project / "shop")["tasks.py"]
    assert "lost data" not in run.stderr
    assert_no_leftovers(tmp_path)


NAP_AND_SAY = '''

@app.task
def nap(seconds):
    import pathlib, time
    pathlib.Path("napping").write_text("")
    time.sleep(seconds)
    return "rested"
'''
REVOKE = KILL_A_CHILD.split("class Kill")[0] + '''
import pathlib, time

class Revoke(ServerTestCase):
    def test_revoke_a_running_task(self):
        os.environ["SHOP_REDIS_URL"] = f"redis://127.0.0.1:{os.environ['SERVERCOV_PORT_REDIS']}/0"
        from shop import tasks
        result = tasks.nap.delay(3)
        deadline = time.monotonic() + 60
        while not pathlib.Path("napping").exists():
            assert time.monotonic() < deadline, "the task did not start"
            time.sleep(0.02)
        (child,) = children_of_celery()
        tasks.app.control.revoke(result.id, terminate=True)
        while child in children_of_celery():  # billiard ends it and forks another
            assert time.monotonic() < deadline, "the revoked task's child did not end"
            time.sleep(0.02)
        tasks.app.close()
'''


def test_a_revoke_with_terminate_still_ends_the_task_at_once(tmp_path):
    """Only the run's stop is left to the parent: billiard's own TERM ends a child at once."""
    project = workers.shop_project(tmp_path)
    workers.set_celery(project, CELERY + "prefork -c 1")
    with open(project / "shop" / "tasks.py", "a") as tasks:
        tasks.write(NAP_AND_SAY)
    (project / "tests" / "test_revoke.py").write_text(REVOKE)
    run = workers.run_tests(project, "test_revoke")
    assert run.returncode == 0, run.stdout + run.stderr
    last = len((project / "shop" / "tasks.py").read_text().splitlines())
    measured = measured_lines(project / ".coverage", project / "shop")["tasks.py"]
    assert last - 1 in measured and last not in measured  # slept, never returned
    assert "lost data" not in run.stderr
    assert_no_leftovers(tmp_path)


def test_a_snapshot_holds_what_the_workers_ran_so_far_exactly(tmp_path):
    project = workers.shop_project(tmp_path)
    with running_serve(project) as serve:
        url = serve_state(project, serve)["url"]
        for path in ("/price/12", "/invoice/7"):
            with urllib.request.urlopen(url + path, timeout=60) as answer:
                assert answer.status == 200
        snapshot = run_servercov(project, "snapshot")
        assert snapshot.returncode == 0, snapshot.stderr
        # The Celery children live on (their dumps); the RQ horse has ended (its data file).
        assert_exact(project, tmp_path, ["/health", "/price/12", "/invoice/7"])
        stop_serve(project, serve)
    log = (project / "serve.log").read_text()
    assert "section celery stopped by SIGTERM" in log and "section redis stopped" in log
    assert_no_leftovers(tmp_path)


def test_the_example_runs_under_pytest_as_its_readme_says(tmp_path):
    assert workers.README_PYTEST in (workers.EXAMPLE / "README.md").read_text()
    project = workers.shop_project(tmp_path)
    run = workers.run_tests(project, "-p", "no:cacheprovider", command=workers.README_PYTEST)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "4 passed" in run.stdout and "lost data" not in run.stdout + run.stderr
    assert stops(run.stdout + run.stderr) == STOP_ORDER
    assert_exact(project, tmp_path, workers.all_paths())
    assert_no_leftovers(tmp_path)


NAP_JOB = '''

def nap(seconds):
    import pathlib, time
    pathlib.Path("napping").write_text("")
    time.sleep(seconds)
'''
KILL_A_HORSE = '''
import os, pathlib, signal, time
from redis import Redis
from rq import Queue
from nose2_servercov import ServerTestCase

def horses():
    """RQ's work horses: rq processes whose parent is an rq process, in this folder."""
    def command(pid):
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read()
    found = []
    for entry in os.listdir("/proc"):
        try:
            if entry.isdigit() and b"rq.cli" in command(entry):
                with open(f"/proc/{entry}/stat") as f:
                    parent = f.read().rsplit(")", 1)[1].split()[1]
                if b"rq.cli" in command(parent) and os.path.samefile(
                        f"/proc/{entry}/cwd", os.getcwd()):
                    found.append(int(entry))
        except OSError:
            pass
    return found

class KillHorse(ServerTestCase):
    def test_kill_the_horse_mid_job(self):
        from shop import jobs
        redis = Redis(port=int(os.environ["SERVERCOV_PORT_REDIS"]))
        Queue("shop", connection=redis).enqueue(jobs.nap, 60)
        deadline = time.monotonic() + 60
        while not pathlib.Path("napping").exists():
            assert time.monotonic() < deadline, "the job did not start"
            time.sleep(0.02)
        (horse,) = horses()
        pathlib.Path("killed").write_text(str(horse))
        os.kill(horse, signal.SIGKILL)
'''


def test_an_rq_work_horse_killed_is_named_with_its_section_and_fails_the_run(tmp_path):
    project = workers.shop_project(tmp_path)
    with open(project / "shop" / "jobs.py", "a") as jobs:
        jobs.write(NAP_JOB)
    (project / "tests" / "test_kill_horse.py").write_text(KILL_A_HORSE)
    run = workers.run_tests(project, "test_kill_horse")
    assert run.returncode == 1, run.stdout + run.stderr
    killed = (project / "killed").read_text()
    lost = [line for line in servercov_lines(run.stderr) if line.startswith("servercov: lost")]
    assert lost and lost[0].startswith(f"servercov: lost data: [servercov:rq] pid {killed} "), \
        run.stderr
    assert len(lost) == 1, lost
    assert_no_leftovers(tmp_path)
