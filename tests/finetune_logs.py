"""Test outputs as the SWE-bench harness logs them, for the failure categorizer tests.

`harness_output(...)` wraps a test run the way `test_output.txt` holds it: the eval script's
xtrace lines, `git status` / `git show` / `git diff` of the evaluated patch (whose `+`/`-`
lines and indented commit message hold exception names and asserts that must not count),
the test patch applied with `git apply -v`, then the run between the harness's markers.
The runs below follow pytest 7, Django's runtests.py and sympy's bin/test as they print
for SWE-bench Lite instances (instance ids, files and tests are the real ones).
"""

from __future__ import annotations

# The evaluated patch shown by `git diff` before the tests: names that are not raised.
_DIFF_NOISE = """\
diff --git a/{path} b/{path}
index a308e27297..45bea36085 100644
--- a/{path}
+++ b/{path}
@@ -240,9 +240,11 @@ def _helper(left, right):
     if not isinstance(right, Model):
-        raise TypeError("right must be a model")
+        raise ValueError("right must be a model")
+    assert right.n_inputs > 0
 SyntaxError: an old docstring line
-ImportError: cannot import name 'x'
+AssertionError
     return np.hstack([cleft, cright])
"""


def harness_output(repo_dir: str, path: str, test_cmd: str, run: str, *, end: bool = True,
                   tail: str = "") -> str:
    """`test_output.txt` of one evaluation: preamble, `run` between the markers, `tail`."""
    out = (
        "+ source /opt/miniconda3/bin/activate\n"
        "++ _CONDA_ROOT=/opt/miniconda3\n"
        "++ . /opt/miniconda3/etc/profile.d/conda.sh\n"
        "+ conda activate testbed\n"
        f"+ cd {repo_dir}\n"
        f"+ git config --global --add safe.directory {repo_dir}\n"
        "+ git status\n"
        "On branch main\n"
        "Changes not staged for commit:\n"
        '  (use "git add <file>..." to update what will be committed)\n'
        f"\tmodified:   {path}\n\n"
        "+ git show\n"
        "commit d16bfe05a744909de4b27f5875fe0d4ed41ce607\n"
        "Author: William Jamieson <wjamieson@stsci.edu>\n"
        "Date:   Thu Mar 3 15:14:54 2022 -0500\n\n"
        "    Fix TypeError: raised on nested models\n"
        "    Traceback (most recent call last):\n"
        "    KeyError: 'quoted in the commit message'\n\n"
        "+ git -c core.fileMode=false diff d16bfe05a744909de4b27f5875fe0d4ed41ce607\n"
        + _DIFF_NOISE.format(path=path)
        + "+ git checkout d16bfe05a744909de4b27f5875fe0d4ed41ce607 tests/\n"
        "Updated 0 paths from 4d9ea46e57\n"
        "+ git apply -v -\n"
        "Checking patch tests/test_file.py...\n"
        "Applied patch tests/test_file.py cleanly.\n"
        "+ : '>>>>> Start Test Output'\n"
        f"+ {test_cmd}\n"
        + run
    )
    if end:
        out += ("+ : '>>>>> End Test Output'\n"
                "+ git checkout d16bfe05a744909de4b27f5875fe0d4ed41ce607 tests/\n"
                "Updated 1 path from 4d9ea46e57\n")
    return out + tail


PYTEST_HEAD = """\
<frozen importlib._bootstrap>:228: RuntimeWarning: numpy.ndarray size changed, may indicate binary incompatibility. Expected 80 from C header, got 96 from PyObject
============================= test session starts ==============================
platform linux -- Python 3.9.20, pytest-7.4.0, pluggy-1.3.0
rootdir: /testbed
configfile: setup.cfg
"""

# astropy__astropy-12907: separability_matrix of nested CompoundModels
PYTEST_ASSERT = PYTEST_HEAD + """\
collected 15 items

astropy/modeling/tests/test_separable.py ..........F....                 [100%]

=================================== FAILURES ===================================
___________________ test_separable[compound_model6-result6] ____________________

compound_model = <CompoundModel(offset_1=1., offset_2=2., angle_3=0.)>
result = (array([False, False,  True,  True]), array([[ True,  True, False, False]]))

    @pytest.mark.parametrize(('compound_model', 'result'), compound_models.values())
    def test_separable(compound_model, result):
>       assert np.all(is_separable(compound_model) == result[0])
E       assert False
E        +  where False = <function all at 0x7f3b2c>(array([False, False, False, False]) == array([False, False,  True,  True]))

astropy/modeling/tests/test_separable.py:151: AssertionError
=============================== warnings summary ===============================
astropy/modeling/tests/test_separable.py::test_coord_matrix
  /testbed/astropy/modeling/core.py:12: DeprecationWarning: the imp module is deprecated
    import imp

-- Docs: https://docs.pytest.org/en/stable/how-to/capture-warnings.html
==================================== PASSES ====================================
=========================== short test summary info ============================
PASSED astropy/modeling/tests/test_separable.py::test_coord_matrix
PASSED astropy/modeling/tests/test_separable.py::test_cdot
FAILED astropy/modeling/tests/test_separable.py::test_separable[compound_model6-result6] - assert False
==================== 1 failed, 14 passed, 1 warning in 0.41s ====================
"""

# pytest-dev__pytest-5227 style: a test raising TypeError inside the code under test
PYTEST_TYPEERROR = PYTEST_HEAD + """\
collected 4 items

testing/logging/test_formatter.py ..F.                                   [100%]

=================================== FAILURES ===================================
_________________________ test_coloredlogformatter __________________________

    def test_coloredlogformatter():
        logfmt = "%(filename)-25s %(lineno)4d %(levelname)-8s %(message)s"
>       record = logging.LogRecord(name="dummy", level=logging.INFO, pathname="dummypath")
E       TypeError: __init__() missing 4 required positional arguments: 'lineno', 'msg', 'args', and 'exc_info'

testing/logging/test_formatter.py:19: TypeError
=========================== short test summary info ============================
PASSED testing/logging/test_formatter.py::test_multiline_message
FAILED testing/logging/test_formatter.py::test_coloredlogformatter - TypeError: __init__() missing 4 required positional arguments: 'lineno', 'msg', 'args', and 'exc_info'
========================= 1 failed, 3 passed in 0.08s ==========================
"""

# scikit-learn__scikit-learn-10297 run as SWE-bench runs sklearn (`--tb=no`): only the
# short summary line names the exception
PYTEST_TB_NO = """\
============================= test session starts ==============================
collected 32 items

sklearn/linear_model/tests/test_ridge.py ...............F................ [100%]

==================================== PASSES ====================================
=========================== short test summary info ============================
PASSED sklearn/linear_model/tests/test_ridge.py::test_ridge
PASSED sklearn/linear_model/tests/test_ridge.py::test_ridge_singular
FAILED sklearn/linear_model/tests/test_ridge.py::test_ridge_classifier_cv_store_cv_values - TypeError: __init__() got an unexpected keyword argument 'store_cv_values'
=================== 1 failed, 31 passed, 1 warning in 1.06s ====================
"""

# psf__requests-2317: the test module cannot import a name the patch removed
PYTEST_IMPORT = PYTEST_HEAD + """\
collected 0 items / 1 error

==================================== ERRORS ====================================
_____________________ ERROR collecting test_requests.py ______________________
ImportError while importing test module '/testbed/test_requests.py'.
Hint: make sure your test modules/packages have valid Python names.
Traceback:
/opt/miniconda3/envs/testbed/lib/python3.9/importlib/__init__.py:127: in import_module
    return _bootstrap._gcd_import(name[level:], package, level)
test_requests.py:17: in <module>
    from requests.compat import str, cookielib, getproxies, urljoin, urlparse, is_py3, builtin_str
E   ImportError: cannot import name 'builtin_str' from 'requests.compat' (/testbed/requests/compat.py)
=========================== short test summary info ============================
ERROR test_requests.py
!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!
=============================== 1 error in 0.21s ===============================
"""

# scikit-learn__scikit-learn-10297: a syntax error in a module the tests import
PYTEST_SYNTAX = PYTEST_HEAD + """\
collected 0 items / 1 error

==================================== ERRORS ====================================
_______________ ERROR collecting sklearn/linear_model/tests/test_ridge.py _______________
/opt/miniconda3/envs/testbed/lib/python3.6/site-packages/_pytest/python.py:578: in _importtestmodule
    mod = import_path(self.fspath, mode=importmode, root=self.config.rootpath)
sklearn/linear_model/__init__.py:25: in <module>
    from .ridge import (Ridge, RidgeCV, RidgeClassifier, RidgeClassifierCV,
E     File "/testbed/sklearn/linear_model/ridge.py", line 1337
E       def __init__(self, alphas=(0.1, 1.0, 10.0), fit_intercept=True, store_cv_values=False
E                                                                                            ^
E   SyntaxError: invalid syntax
=========================== short test summary info ============================
ERROR sklearn/linear_model/tests/test_ridge.py
!!!!!!!!!!!!!!!!!!!! Interrupted: 1 error during collection !!!!!!!!!!!!!!!!!!!!
=============================== 1 error in 0.35s ===============================
"""

# pytest-timeout on a hanging test (signal method)
PYTEST_TIMEOUT = PYTEST_HEAD + """\
collected 3 items

tests/test_sessions.py .F.                                               [100%]

=================================== FAILURES ===================================
______________________________ test_redirect_loop ______________________________

    def test_redirect_loop():
>       r = requests.get(httpbin('redirect/1'), allow_redirects=True)
E       Failed: Timeout >60.0s

tests/test_sessions.py:42: Failed
"""

# The F2P test id does not exist after a wrong patch: nothing is collected
PYTEST_NO_TESTS = PYTEST_HEAD + """\
collected 0 items

============================ no tests ran in 0.02s =============================
ERROR: not found: /testbed/tests/test_ext_autodoc.py::test_autodoc_typed_instance_variables
(no name '/testbed/tests/test_ext_autodoc.py::test_autodoc_typed_instance_variables' in any of [<Module tests/test_ext_autodoc.py>])
"""

PYTEST_PASS = PYTEST_HEAD + """\
collected 2 items

tests/test_a.py ..                                                       [100%]

==================================== PASSES ====================================
=========================== short test summary info ============================
PASSED tests/test_a.py::test_one
PASSED tests/test_a.py::test_two
============================== 2 passed in 0.01s ===============================
"""

# A doctest failure: "Expected:" / "Got:" are not exception names
PYTEST_DOCTEST = PYTEST_HEAD + """\
collected 1 item

sympy/core/numbers.py F                                                  [100%]

=================================== FAILURES ===================================
____________________ [doctest] sympy.core.numbers.igcd ____________________
012     >>> igcd(2, 4)
Expected:
    2
Got:
    4

/testbed/sympy/core/numbers.py:12: DocTestFailure
"""

DJANGO_HEAD = """\
Testing against Django installed in '/testbed/django'
Importing application auth_tests
Skipping setup of unused database(s): other.
Operations to perform:
  Synchronize unmigrated apps: auth, auth_tests, contenttypes, messages, sessions, staticfiles
  Apply all migrations: admin, sites
Synchronizing apps without migrations:
  Creating tables...
    Running deferred SQL...
Running migrations:
  Applying admin.0001_initial... OK
System check identified no issues (0 silenced).
"""

# django__django-11099: UsernameValidator still accepts a trailing newline
DJANGO_FAIL = DJANGO_HEAD + """\
test_help_text (auth_tests.test_validators.MinimumLengthValidatorTest) ... ok
test_ascii_validator (auth_tests.test_validators.UsernameValidatorsTests) ... FAIL
test_unicode_validator (auth_tests.test_validators.UsernameValidatorsTests) ... ok

======================================================================
FAIL: test_ascii_validator (auth_tests.test_validators.UsernameValidatorsTests)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/testbed/tests/auth_tests/test_validators.py", line 256, in test_ascii_validator
    v(invalid)
  File "/opt/miniconda3/envs/testbed/lib/python3.6/contextlib.py", line 88, in __exit__
    next(self.gen)
AssertionError: ValidationError not raised

----------------------------------------------------------------------
Ran 24 tests in 0.102s

FAILED (failures=1)
Destroying test database for alias 'default' ('file:memorydb_default?mode=memory&cache=shared')...
"""

# django__django-11179: a dotted exception name without an Error suffix
DJANGO_DOTTED = DJANGO_HEAD + """\
test_fast_delete_qs (delete.tests.FastDeleteTests) ... ok
test_fast_delete_instance_set_pk_none (delete.tests.FastDeleteTests) ... ERROR

======================================================================
ERROR: test_fast_delete_instance_set_pk_none (delete.tests.FastDeleteTests)
----------------------------------------------------------------------
Traceback (most recent call last):
  File "/testbed/tests/delete/tests.py", line 497, in test_fast_delete_instance_set_pk_none
    u.delete()
  File "/testbed/django/db/models/base.py", line 917, in delete
    collector.collect([self], keep_parents=keep_parents)
django.core.exceptions.ImproperlyConfigured: Requested setting DEFAULT_INDEX_TABLESPACE, but settings are not configured.

----------------------------------------------------------------------
Ran 44 tests in 0.390s

FAILED (errors=1)
"""

# A syntax error in a module the test module imports: ImportError first, SyntaxError wins
DJANGO_IMPORT_SYNTAX = DJANGO_HEAD + """\
test_validators (unittest.loader._FailedTest) ... ERROR

======================================================================
ERROR: test_validators (unittest.loader._FailedTest)
----------------------------------------------------------------------
ImportError: Failed to import test module: test_validators
Traceback (most recent call last):
  File "/opt/miniconda3/envs/testbed/lib/python3.6/unittest/loader.py", line 153, in loadTestsFromName
    module = __import__(module_name)
  File "/testbed/tests/auth_tests/test_validators.py", line 4, in <module>
    from django.contrib.auth import validators
  File "/testbed/django/contrib/auth/validators.py", line 10
    regex = r'\\A[\\w.@+-]+\\Z'
        ^
IndentationError: unexpected indent


----------------------------------------------------------------------
Ran 1 test in 0.000s

FAILED (errors=1)
"""

DJANGO_NO_TESTS = DJANGO_HEAD + """\

----------------------------------------------------------------------
Ran 0 tests in 0.000s

OK
"""

SYMPY_HEAD = """\
============================= test process starts ==============================
executable:         /opt/miniconda3/envs/testbed/bin/python  (3.9.19-final-0) [CPython]
architecture:       64-bit
cache:              no
ground types:       python 
numpy:              None
random seed:        55398513
hash randomization: on (PYTHONHASHSEED=2385960311)

"""

# sympy__sympy-20590: Symbol instances have __dict__
SYMPY_ASSERT = SYMPY_HEAD + """\
sympy/core/tests/test_basic.py[22] 
test__aresame ok
test_structure ok
test_immutable F

________________________________________________________________________________
_______________ sympy/core/tests/test_basic.py:test_immutable ________________
Traceback (most recent call last):
  File "/testbed/sympy/core/tests/test_basic.py", line 106, in test_immutable
    assert not hasattr(b1, '__dict__')
AssertionError

============= tests finished: 21 passed, 1 failed, in 0.25 seconds =============
DO *NOT* COMMIT!
"""

# sympy__sympy-13798: latex() with an arbitrary mul_symbol; an assert line in the traceback
# is not an assertion failure: the KeyError is
SYMPY_EXCEPTION = SYMPY_HEAD + """\
sympy/printing/tests/test_latex.py[1] E                                   [FAIL]

________________________________________________________________________________
____ sympy/printing/tests/test_latex.py:test_latex_basic _____
Traceback (most recent call last):
  File "/testbed/sympy/printing/tests/test_latex.py", line 60, in test_latex_basic
    assert latex(3*x**2/y, mul_symbol='\\\\,') == r'\\frac{3 \\, x^{2}}{y}'
  File "/testbed/sympy/printing/latex.py", line 160, in __init__
    self._settings['mul_symbol_latex'] = mul_symbol_table[self._settings['mul_symbol']]
KeyError: '\\\\,'

= tests finished: 0 passed, 1 exceptions, in 0.05 seconds =
DO *NOT* COMMIT!
"""

# sympy__sympy-18057: a sympy exception without an Error suffix, only in a traceback
SYMPY_TRACEBACK_ONLY = SYMPY_HEAD + """\
sympy/polys/tests/test_polytools.py[1] E                                  [FAIL]

________________________________________________________________________________
______ sympy/polys/tests/test_polytools.py:test_Poly_from_expr ______
Traceback (most recent call last):
  File "/testbed/sympy/polys/tests/test_polytools.py", line 310, in test_Poly_from_expr
    Poly.from_expr(x*y)
  File "/testbed/sympy/polys/polytools.py", line 186, in _from_expr
    rep, opt = _dict_from_expr(rep, opt)
sympy.polys.polyerrors.PolificationFailed: can't construct a polynomial from x*y

= tests finished: 0 passed, 1 exceptions, in 0.03 seconds =
"""

SYMPY_NO_TESTS = SYMPY_HEAD + """\
================== tests finished: 0 passed, in 0.00 seconds ===================
"""

# run_instance.log of an evaluation whose patch did not apply (GNU patch was the last try)
INSTANCE_LOG_HUNK_FAILED = """\
2024-10-24 16:49:03,107 - INFO - Creating container for django__django-11099...
2024-10-24 16:49:03,129 - INFO - Container for django__django-11099 created: 9bd0a4f1e8
2024-10-24 16:49:03,339 - INFO - Container for django__django-11099 started: 9bd0a4f1e8
2024-10-24 16:49:03,339 - INFO - Intermediate patch for django__django-11099 written to logs/run_evaluation/r1/m/django__django-11099/patch.diff, now applying to container...
2024-10-24 16:49:03,486 - INFO - Failed to apply patch to container: git apply --verbose
2024-10-24 16:49:03,550 - INFO - Failed to apply patch to container: git apply --verbose --reject
2024-10-24 16:49:03,622 - INFO - Failed to apply patch to container: patch --batch --fuzz=5 -p1 -i
2024-10-24 16:49:03,622 - INFO - >>>>> Patch Apply Failed:
patching file django/contrib/auth/validators.py
Hunk #1 FAILED at 7.
1 out of 1 hunk FAILED -- saving rejects to file django/contrib/auth/validators.py.rej

2024-10-24 16:49:03,623 - INFO - Traceback (most recent call last):
  File "/home/user/SWE-bench/swebench/harness/run_evaluation.py", line 130, in run_instance
    raise EvaluationError(
swebench.harness.run_evaluation.EvaluationError: django__django-11099: >>>>> Patch Apply Failed:
"""

# git apply's own errors, as a log shows them
GIT_APPLY_ERRORS = """\
Checking patch sympy/core/basic.py...
error: while searching for:
    __slots__ = ('_mhash',)
error: patch failed: sympy/core/basic.py:28
error: sympy/core/basic.py: patch does not apply
"""

GNU_PATCH_MALFORMED = "patch: **** malformed patch at line 14: def _print_Mul(self, expr):\n"

INSTANCE_LOG_TIMEOUT = """\
2024-10-24 17:02:11,500 - INFO - Test runtime: 1800.12 seconds
2024-10-24 17:02:11,501 - INFO - Traceback (most recent call last):
swebench.harness.run_evaluation.EvaluationError: sympy__sympy-11870: Test timed out after 1800 seconds.
"""

BROKEN_PATCH = """\
diff --git a/sympy/core/basic.py b/sympy/core/basic.py
--- a/sympy/core/basic.py
+++ b/sympy/core/basic.py
@@ -26,7 +26,7 @@ class Basic(metaclass=ManagedProperties):
     is_number = False
-    __slots__ = ('_mhash',)
+    __slots__ = ('_mhash', '_args')
"""
GOOD_PATCH = BROKEN_PATCH.replace("@@ -26,7 +26,7 @@", "@@ -26,2 +26,2 @@")
