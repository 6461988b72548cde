"""Edit-history benches (RealisticEditBench's schema) turned into infbench files: the first
steps of a pull request's edit history as context, the rest as the answer to predict.

Modules: `bench` (bench rows, checked), `split` (info-pct split), `diffs` (unified diffs:
parse, apply, fragments), `bm25` (top-n
files of a commit), `prompt` (the prompt text and its parts), `build` (bench -> infbench),
`names` (run ids from file names, merge-infbench).
"""
