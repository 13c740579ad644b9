"""Task output under mpiexec: whole lines only, optionally prefixed with the rank; the
automatic progress bar's switch; parc.rank() inside serial tasks."""

import os
import pty
import re
import subprocess

import pytest

from conftest import MPIEXEC, PACKAGE_DIR, PYTHON, REPO, app, report

# Every task prints 40 long lines (some longer than a pipe's atomic 4 KiB), half of
# them in pieces, to stdout and stderr, while the other workers do the same.
NOISY = r'''
@parc.closure
def noisy(task):
    for line in range(40):
        text = f"<task {task} line {line} " + "x" * (100 + 97 * line) + " end>"
        stream = sys.stdout if line % 2 else sys.stderr
        if line % 4 < 2:
            print(text, file=stream)
        else:
            for start in range(0, len(text), 37):  # a line written in pieces
                stream.write(text[start:start + 37])
                stream.flush()
                if start == 37:
                    time.sleep(0.005)  # mid-line: the other workers write meanwhile
            stream.write("\n")
    print("a last line without its newline", end="")
    return task


def main():
    print("main says hello")
    with parc.TaskFarm() as farm:
        done = list(farm.map(noisy, range(12)))
    emit(done)


if __name__ == "__main__":
    parc.run(main)
'''

LINE = re.compile(r"<task (\d+) line (\d+) (x+) end>")


def check_lines(text, prefix):
    """Every task line of `text` is whole; returns {(task, line)} seen."""
    seen = set()
    for line in text.splitlines():
        if prefix:
            assert re.match(r"\[rank \d+\] ", line), line[:200]
            line = line.split("] ", 1)[1]
        if "task" not in line or line.startswith("REPORT"):
            continue
        match = LINE.fullmatch(line)
        assert match, f"a merged or split line: {line[:200]}..."
        task, number, xs = int(match[1]), int(match[2]), match[3]
        assert len(xs) == 100 + 97 * number, line[:200]
        seen.add((task, number))
    return seen


@pytest.mark.parametrize("prefix", [False, True], ids=["plain", "prefix"])
def test_task_lines_from_several_ranks_are_never_merged(launch, prefix):
    env = {"PARC_OUTPUT": "prefix"} if prefix else {}
    for _ in range(2):
        result = launch(app(NOISY), ranks=3, env=env)
        assert result.returncode == 0, result.output[-3000:]
        seen = check_lines(result.stdout, prefix) | check_lines(result.stderr, prefix)
        assert seen == {(t, n) for t in range(12) for n in range(40)}
        # A task's partial last line goes out when the task ends, as a line of its own.
        tails = [line for line in result.stdout.splitlines() if "without its newline" in line]
        assert len(tails) == 12, tails
        if prefix:
            assert all(re.fullmatch(r"\[rank [12]\] a last line without its newline", line)
                       for line in tails), tails
            assert "[rank 0] main says hello" in result.stdout.splitlines()
            assert f"[rank 0] REPORT {list(range(12))}" in result.stdout.splitlines()
            ranks = {int(r) for r in re.findall(r"^\[rank (\d+)\] <task", result.stdout, re.M)}
            assert ranks <= {1, 2} and ranks, ranks
        else:
            assert "main says hello" in result.stdout.splitlines()
            assert report(result) == list(range(12))


def test_prefix_serially_names_the_simulated_worker(launch):
    result = launch(app(r'''
        @parc.closure
        def hello(x):
            print("hello from", x)
            return parc.rank()

        def main():
            print("main")
            with parc.TaskFarm() as farm:
                return list(farm.map(hello, range(6)))

        print("ranks", parc.run(main))
    '''), serial=3, env={"PARC_OUTPUT": "prefix"})
    assert result.returncode == 0, result.output
    lines = result.stdout.splitlines()
    assert "[rank 0] main" in lines
    for line in lines:
        if "hello from" in line:
            rank = int(re.match(r"\[rank (\d+)\] hello from \d+$", line)[1])
            assert 1 <= rank <= 3, line
    ranks = re.search(r"ranks \[([\d, ]+)\]", result.stdout)[1]
    assert {int(r) for r in ranks.split(", ")} <= {1, 2, 3}


def test_bad_parc_output_is_refused(launch):
    result = launch(app("print('MAIN RAN' if parc.run(lambda: 1) else '')\n"),
                    env={"PARC_OUTPUT": "ranks"})
    assert result.returncode == 2, result.output
    assert "MAIN RAN" not in result.stdout
    assert "PARC_OUTPUT=ranks is not an output mode; set it to prefix" in result.stderr


@pytest.mark.parametrize("mode", [dict(), dict(serial=3)], ids=["serial", "serial3"])
def test_rank_inside_a_serial_task_is_the_worker_the_error_names(launch, mode):
    result = launch(app(r'''
        @parc.closure
        def where(x):
            if x == 5:
                raise ValueError(f"on {parc.rank()}")
            return parc.rank()

        def main():
            with parc.TaskFarm() as farm:
                ranks = list(farm.map(where, range(5)))
                try:
                    farm.submit(where, 5).result()
                except ValueError as error:
                    emit({"ranks": ranks, "said": str(error), "rank": error.parc_rank,
                          "main": parc.rank()})

        parc.run(main)
    '''), **mode)
    r = report(result)
    workers = mode.get("serial", 1)
    assert set(r["ranks"]) <= set(range(1, workers + 1)), r
    assert r["said"] == f"on {r['rank']}" and 1 <= r["rank"] <= workers, r
    assert r["main"] == 0


PROGRESS = r'''
@parc.closure
def square(x):
    return x * x

def main():
    with parc.TaskFarm() as farm:
        emit(sum(farm.map(square, range(1500))))

parc.run(main)
'''


@pytest.mark.parametrize("value, shown", [("1", True), ("0", False), (None, False)])
def test_parc_progress_switches_the_automatic_bar(launch, value, shown):
    # stderr is a pipe here, as rank 0's always is under mpiexec.
    env = {"PARC_PROGRESS": value} if value is not None else {}
    result = launch(app(PROGRESS), ranks=2, env=env)
    assert report(result) == sum(x * x for x in range(1500))
    assert ("1500/1500" in result.stderr) == shown, result.stderr[-500:]


def test_bad_parc_progress_is_refused(launch):
    result = launch(app(PROGRESS), env={"PARC_PROGRESS": "yes"})
    assert result.returncode != 0
    assert "PARC_PROGRESS=yes is not 0 or 1" in result.stderr, result.output


def test_the_bar_shows_under_mpiexec_from_a_terminal(launch, tmp_path):
    # mpiexec runs on a terminal (a pty); rank 0's stderr is still a pipe to hydra.
    (tmp_path / "app.py").write_text(app(PROGRESS))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([PACKAGE_DIR, str(REPO / "tests" /
                                                                         "python")]))
    env.pop("PARC_PROGRESS", None)
    leader, follower = pty.openpty()
    process = subprocess.Popen(["timeout", "-k", "10", "120", MPIEXEC, "-n", "2", PYTHON,
                                str(tmp_path / "app.py")], stdin=follower, stdout=follower,
                               stderr=follower, env=env, cwd=tmp_path)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the terminal closed: every process exited
            break
        if not chunk:
            break
        output += chunk
    os.close(leader)
    assert process.wait() == 0, output.decode(errors="replace")
    text = output.decode(errors="replace")
    assert "1500/1500" in text, text[-1000:]
    assert f"REPORT {sum(x * x for x in range(1500))}" in text


@pytest.mark.parametrize("mode", [dict(serial=3), dict(ranks=3)], ids=["serial3", "np3"])
def test_rank_inside_a_region_is_the_workers(launch, mode):
    result = launch(app(r'''
        @parc.closure
        def region(ctx):
            return [ctx.rank, parc.rank()]

        parc.run(lambda: emit(parc.Spmd().run(region)))
    '''), **mode)
    workers = mode.get("serial") or mode["ranks"] - 1
    assert report(result) == [[r, r + 1] for r in range(workers)]
