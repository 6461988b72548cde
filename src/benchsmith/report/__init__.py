"""The run report (`benchsmith report`): one self-contained HTML page of a run.

queries: SQL aggregates and capped samples of the ledger; shared: the sections every run
has; charts: sections' charts as Plotly figures; page: the HTML; build: reading the run and
writing the page. Recipes add their own sections through `Recipe.report_sections`.
"""
