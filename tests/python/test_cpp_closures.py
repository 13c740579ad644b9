"""C++ closures (PARC_CLOSURE in a shared library) called from Python."""

import os
from pathlib import Path

import pytest

LIBRARY = Path(os.environ.get("PARC_BUILD_DIR", "build")) / "tests" / "libparc_test_closures.so"

APP = f"""
import parc
parc.load_library({str(LIBRARY)!r})


@parc.closure
def ramp(n):
    return [float(i) for i in range(n)]


def main():
    divide = parc.cpp_closure("divide")
    with parc.TaskFarm() as farm:
        print("divide", farm.submit(divide, 1, 4).result())
        print("greet", list(farm.map(parc.cpp_closure("greet"), ["a", "b"], [1, 2])))
        scaled = farm.submit(parc.cpp_closure("scale"), [1, 2, 3], 2.0).result()
        print("scale", scaled.tolist(), scaled.dtype)
        print("total", farm.submit(parc.cpp_closure("total"), range(10)).result())
        # a Python task's result, kept on its worker (PARC_KEEP_BYTES=100), as the
        # argument of a C++ closure: fetched on rank 0, which encodes C++ arguments
        from_python = farm.submit(parc.cpp_closure("scale"), farm.submit(ramp, 50), 2.0)
        print("from python", sum(from_python.result()))
        try:
            farm.submit(divide, 1, 0).result()
        except ValueError as error:
            print("ValueError", error, "|", error.__notes__[0], "|", error.parc_rank >= 1 or parc.serial())
        try:
            farm.submit(parc.cpp_closure("nested_failure"), 3).result()
        except parc.RemoteError as error:
            print("nested", error.type_name, "<-", type(error.__cause__).__name__, error.__cause__)
        for bad in [lambda: farm.submit(parc.cpp_closure("nope"), 1),
                    lambda: farm.submit(divide, 1),
                    lambda: farm.submit(divide, "x", 1),
                    lambda: farm.submit(divide, 1, b=2)]:
            try:
                bad()
            except (parc.UsageError, TypeError) as error:
                print("rejected", type(error).__name__, error)
    try:
        with parc.TaskFarm(policy="collect_all") as farm:
            list(farm.map(divide, [1, 2, 3, 4], [1, 0, 1, 0]))
    except* ValueError as group:
        print("group", [e.parc_index for e in group.exceptions])
    weighted = parc.cpp_closure("weighted_sum")
    sums = parc.Spmd().run(weighted, 2.0)
    n = len(sums)
    print("spmd", sums == [2.0 * n * (n + 1) / 2] * n)
    for bad in [lambda: parc.TaskFarm().submit(weighted, 1.0),
                lambda: parc.Spmd().run(divide, 1, 2)]:
        try:
            bad()
        except parc.UsageError as error:
            print("rejected", type(error).__name__, error)

parc.run(main)
"""


@pytest.fixture(scope="module", autouse=True)
def library_built():
    if not LIBRARY.exists():
        pytest.fail(f"{LIBRARY} is missing: build the tests (make build)")


def test_cpp_closures_from_python(launch, mode):
    result = launch(APP, env={"PARC_KEEP_BYTES": "100"}, **mode)
    assert result.returncode == 0, result.output
    out = result.stdout
    assert "from python 2450.0" in out
    assert "divide 0.25" in out
    assert "greet ['hello a', 'hello b, hello b']" in out
    assert "scale [2.0, 4.0, 6.0] float64" in out
    assert "total 45" in out
    assert "ValueError divide: b is zero | rank " in out and "task " in out and "| True" in out
    assert "nested cpp_test::Checked <- IndexError index 3 out of range" in out
    assert "rejected UsageError parc.cpp_closure: no C++ closure named 'nope'" in out
    assert "declared: crash, divide, greet, nested_failure, scale, total, weighted_sum" in out
    assert "rejected TypeError divide (double (double, double)) takes 2 arguments, got 1" in out
    assert "rejected TypeError argument 1 of divide" in out
    assert "rejected TypeError divide is a C++ closure" in out
    assert "group [1, 3]" in out
    assert "spmd True" in out
    assert "weighted_sum (double (parc::SpmdContext&, double)) takes a parc::SpmdContext&" in out
    assert "divide (double (double, double)) does not take a parc::SpmdContext&" in out


def test_loading_after_start_is_an_error(launch):
    app = f"""
import parc
parc.rank()
try:
    parc.load_library({str(LIBRARY)!r})
except parc.UsageError as error:
    print("refused:", error)
"""
    result = launch(app)
    assert "refused: parc.load_library" in result.stdout and "before parc.run" in result.stdout
