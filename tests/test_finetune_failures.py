"""The failure categorizer and error-context extractor on pytest, Django and sympy output,
raw and as the SWE-bench harness logs it (`test_output.txt`, `run_instance.log`)."""

from __future__ import annotations

import pytest
from finetune_logs import (
    BROKEN_PATCH,
    DJANGO_DOTTED,
    DJANGO_FAIL,
    DJANGO_IMPORT_SYNTAX,
    DJANGO_NO_TESTS,
    GIT_APPLY_ERRORS,
    GNU_PATCH_MALFORMED,
    GOOD_PATCH,
    INSTANCE_LOG_HUNK_FAILED,
    INSTANCE_LOG_TIMEOUT,
    PYTEST_ASSERT,
    PYTEST_DOCTEST,
    PYTEST_IMPORT,
    PYTEST_NO_TESTS,
    PYTEST_PASS,
    PYTEST_SYNTAX,
    PYTEST_TB_NO,
    PYTEST_TIMEOUT,
    PYTEST_TYPEERROR,
    SYMPY_ASSERT,
    SYMPY_EXCEPTION,
    SYMPY_NO_TESTS,
    SYMPY_TRACEBACK_ONLY,
    harness_output,
)

from benchsmith.finetune.failures import (
    MAX_CONTEXT_CHARS,
    MAX_LINE_CHARS,
    categorize,
    error_context,
    patch_problem,
)

PYTEST = "pytest -rA astropy/modeling/tests/test_separable.py"
DJANGO = "./tests/runtests.py --verbosity 2 --settings=test_sqlite --parallel 1 auth_tests"
SYMPY = "bin/test -C --verbose sympy/core/tests/test_basic.py"

# (name, run, test command, category, the line the error context is centred on)
RUNS = [
    ("pytest-assert", PYTEST_ASSERT, PYTEST, "assertion_failure", "E       assert False"),
    ("pytest-typeerror", PYTEST_TYPEERROR, PYTEST, "exception:TypeError",
     "E       TypeError: __init__() missing 4 required positional arguments: 'lineno', "
     "'msg', 'args', and 'exc_info'"),
    ("pytest-tb-no", PYTEST_TB_NO, PYTEST, "exception:TypeError",
     "FAILED sklearn/linear_model/tests/test_ridge.py::test_ridge_classifier_cv_store_cv_values"
     " - TypeError: __init__() got an unexpected keyword argument 'store_cv_values'"),
    ("pytest-import", PYTEST_IMPORT, PYTEST, "import_error",
     "E   ImportError: cannot import name 'builtin_str' from 'requests.compat' "
     "(/testbed/requests/compat.py)"),
    ("pytest-syntax", PYTEST_SYNTAX, PYTEST, "syntax_error", "E   SyntaxError: invalid syntax"),
    ("pytest-timeout", PYTEST_TIMEOUT, PYTEST, "timeout", "E       Failed: Timeout >60.0s"),
    ("pytest-no-tests", PYTEST_NO_TESTS, PYTEST, "no_tests_run", "collected 0 items"),
    ("pytest-doctest", PYTEST_DOCTEST, PYTEST, "assertion_failure",
     "/testbed/sympy/core/numbers.py:12: DocTestFailure"),
    ("django-fail", DJANGO_FAIL, DJANGO, "assertion_failure",
     "AssertionError: ValidationError not raised"),
    ("django-dotted", DJANGO_DOTTED, DJANGO, "exception:ImproperlyConfigured",
     "django.core.exceptions.ImproperlyConfigured: Requested setting "
     "DEFAULT_INDEX_TABLESPACE, but settings are not configured."),
    ("django-import-syntax", DJANGO_IMPORT_SYNTAX, DJANGO, "syntax_error",
     "IndentationError: unexpected indent"),
    ("django-no-tests", DJANGO_NO_TESTS, DJANGO, "no_tests_run", "Ran 0 tests in 0.000s"),
    ("sympy-assert", SYMPY_ASSERT, SYMPY, "assertion_failure", "AssertionError"),
    ("sympy-exception", SYMPY_EXCEPTION, SYMPY, "exception:KeyError", "KeyError: '\\\\,'"),
    ("sympy-traceback-only", SYMPY_TRACEBACK_ONLY, SYMPY, "exception:PolificationFailed",
     "sympy.polys.polyerrors.PolificationFailed: can't construct a polynomial from x*y"),
    ("sympy-no-tests", SYMPY_NO_TESTS, SYMPY, "no_tests_run",
     "================== tests finished: 0 passed, in 0.00 seconds ==================="),
]


def _lines_around(text: str, line: str, n: int) -> str:
    lines = text.split("\n")
    i = lines.index(line)
    return "\n".join(lines[max(0, i - n):i + n + 1]).strip("\n")


@pytest.mark.parametrize(("name", "run", "cmd", "category", "line"), RUNS,
                         ids=[r[0] for r in RUNS])
def test_raw_and_harness_logged_runs(name: str, run: str, cmd: str, category: str,
                                     line: str) -> None:
    logged = harness_output("/testbed", "astropy/modeling/separable.py", cmd, run)
    for text in (run, logged):
        assert categorize(text) == category
        # the context is the error line with three lines each side, from the test run
        assert error_context(text) == _lines_around(run, line, 3)
    assert error_context(run, lines_around=0) == line
    assert error_context(run, lines_around=1) == _lines_around(run, line, 1)


def test_context_shows_the_failing_assert_and_its_source() -> None:
    ctx = error_context(PYTEST_ASSERT)
    assert ">       assert np.all(is_separable(compound_model) == result[0])" in ctx
    assert "E       assert False" in ctx
    # unittest's FAIL: header alone says an assertion failed; the context is its header
    header_only = DJANGO_FAIL.replace("AssertionError: ValidationError not raised",
                                      "ValidationError not raised")
    assert categorize(header_only) == "assertion_failure"
    assert error_context(header_only, 0) == ("FAIL: test_ascii_validator "
                                             "(auth_tests.test_validators.UsernameValidatorsTests)")
    ctx = error_context(SYMPY_ASSERT)
    assert "    assert not hasattr(b1, '__dict__')\nAssertionError" in ctx


def test_first_exception_by_position_and_precedence() -> None:
    two = PYTEST_TYPEERROR.replace(
        "E       TypeError: __init__()", "E       ValueError: bad level\nE       TypeError: __init__()")
    assert categorize(two) == "exception:ValueError"
    # an assertion failure anywhere beats an exception; an import error beats both;
    # a syntax error beats the import error it caused
    assert categorize(PYTEST_TYPEERROR + DJANGO_FAIL) == "assertion_failure"
    assert categorize(DJANGO_FAIL + PYTEST_IMPORT) == "import_error"
    assert categorize(PYTEST_IMPORT + PYTEST_SYNTAX) == "syntax_error"
    assert categorize(DJANGO_DOTTED + DJANGO_NO_TESTS) == "exception:ImproperlyConfigured"
    # a timeout beats everything but a patch that did not apply
    assert categorize(PYTEST_SYNTAX + PYTEST_TIMEOUT) == "timeout"
    assert categorize(PYTEST_TIMEOUT + GIT_APPLY_ERRORS) == "patch_apply_failure"
    # other shapes: pytest.raises not raised, a summary line only, a missing module
    assert categorize("E       Failed: DID NOT RAISE <class 'ValueError'>\n") == "assertion_failure"
    assert categorize("FAILED tests/t.py::test_x[a - b] - astropy.units.core.UnitsError: "
                      "'m' and 's' are not convertible\n") == "exception:UnitsError"
    assert categorize("ERROR tests/t.py - ModuleNotFoundError: No module named 'erfa'\n"
                      ) == "import_error"


def test_names_outside_a_test_run_do_not_count() -> None:
    # The harness preamble (git show / git diff of the patch) names SyntaxError,
    # ImportError, AssertionError, TypeError, KeyError and "cannot import name" on
    # indented and diff lines: a passing run stays unknown, and a failing one is read
    # from the test region only.
    logged = harness_output("/testbed", "astropy/modeling/separable.py", PYTEST, PYTEST_PASS)
    assert "+AssertionError" in logged and "-ImportError: cannot import name" in logged
    assert categorize(PYTEST_PASS) == categorize(logged) == "unknown"
    assert error_context(logged) == ""
    # warnings, doctest "Expected:/Got:", pytest's "Hint:" are not exceptions
    assert categorize(PYTEST_PASS.replace("collected 2 items", "Hint: something\nExpected:\n"
                                          "Got:\nDeprecationWarning: soon")) == "unknown"


def test_harness_patch_apply_failures() -> None:
    assert categorize(INSTANCE_LOG_HUNK_FAILED) == "patch_apply_failure"
    ctx = error_context(INSTANCE_LOG_HUNK_FAILED, lines_around=2)
    assert ctx.split("\n")[2] == "2024-10-24 16:49:03,622 - INFO - >>>>> Patch Apply Failed:"
    assert "Hunk #1 FAILED at 7." in ctx
    assert categorize(GIT_APPLY_ERRORS) == "patch_apply_failure"
    assert error_context(GIT_APPLY_ERRORS, 0) == "error: patch failed: sympy/core/basic.py:28"
    assert categorize(GNU_PATCH_MALFORMED) == "patch_apply_failure"
    # the test patch not applying after the model's patch is logged in test_output.txt
    logged = harness_output("/testbed", "sympy/core/basic.py", SYMPY, "", end=False)
    logged = logged.replace("Applied patch tests/test_file.py cleanly.\n", GIT_APPLY_ERRORS)
    assert categorize(logged) == "patch_apply_failure"


def test_harness_timeouts() -> None:
    # test_output.txt: the run was cut (no end marker) and the harness appended its line
    cut = harness_output("/testbed", "sympy/core/basic.py", SYMPY, SYMPY_ASSERT, end=False,
                         tail="\n\nTimeout error: 1800 seconds exceeded.")
    assert categorize(cut) == "timeout"
    assert error_context(cut, 0) == "Timeout error: 1800 seconds exceeded."
    assert categorize(INSTANCE_LOG_TIMEOUT) == "timeout"
    assert categorize("E   subprocess.TimeoutExpired: Command '['git']' timed out after 5 "
                      "seconds\n") == "timeout"


def test_patch_argument_when_the_output_says_nothing() -> None:
    assert patch_problem(GOOD_PATCH) is None
    assert "counts" in (patch_problem(BROKEN_PATCH) or "")
    assert patch_problem("just some text\n") == "no hunk (@@ -a,b +c,d @@)"
    assert categorize(None, BROKEN_PATCH) == "patch_apply_failure"
    assert categorize("", "not a diff") == "patch_apply_failure"
    assert categorize(None, GOOD_PATCH) == "unknown"
    assert categorize(None, "") == categorize(None) == categorize("") == "unknown"
    # the output decides first
    assert categorize(DJANGO_FAIL, BROKEN_PATCH) == "assertion_failure"
    # a hunk ending without a final newline marker, and a new file
    new_file = ("diff --git a/x.py b/x.py\nnew file mode 100644\n--- /dev/null\n+++ b/x.py\n"
                "@@ -0,0 +1,2 @@\n+a = 1\n+b = 2\n\\ No newline at end of file\n")
    assert patch_problem(new_file) is None


def test_context_is_bounded() -> None:
    long_line = "E       AssertionError: " + "x" * 100_000
    ctx = error_context("before\n" + long_line + "\nafter\n")
    assert ctx.split("\n")[0] == "before" and ctx.split("\n")[2] == "after"
    assert len(ctx.split("\n")[1]) == MAX_LINE_CHARS + len(" [...]")
    many = "\n".join(f"E       AssertionError: {'y' * 390} {i}" for i in range(200))
    assert len(error_context(many, lines_around=100)) <= MAX_CONTEXT_CHARS + len(" [...]")
    assert error_context(None) == error_context("") == ""
    assert error_context(PYTEST_PASS) == ""


def test_large_output() -> None:
    # MBs of passing lines with one failure at the end (not a timing test: see the
    # module's docstring; it must still find the one line)
    passing = "".join(f"PASSED tests/test_many.py::test_{i}\n" for i in range(100_000))
    text = harness_output("/testbed", "x.py", PYTEST, passing + PYTEST_TYPEERROR)
    assert len(text) > 3_000_000
    assert categorize(text) == "exception:TypeError"
    assert error_context(text, 0).startswith("E       TypeError: __init__() missing")
