"""Local validation of answers: schemas and sanity rules. Validators return lists of issues."""
