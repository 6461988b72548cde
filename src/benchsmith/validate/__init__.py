"""The validate-run audit of a finished run: the shared checks plus what the run's recipe
declares (run_checks/). Answer checks live in their recipe's folder."""
