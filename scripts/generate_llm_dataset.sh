#!/usr/bin/env bash
# Generate a SkyRL tool-use dataset with `benchsmith skyrl synth` (see README, "SkyRL
# tool-use datasets"). Runs under bash 3.2 (macOS): no associative arrays, no ${var,,},
# no mapfile, no `&>>`.
#
#   scripts/generate_llm_dataset.sh OUTPUT_DIR
#
# Exit codes: 0 done; 2 usage (a missing argument or a bad variable); 1 OPENAI_API_KEY not
# set or benchsmith not found; otherwise benchsmith's own (1 error, 2 budget, 3 auth,
# 4 some tasks without a valid plan, 130 interrupted).
set -eu

usage() {
  cat <<'USAGE'
usage: generate_llm_dataset.sh OUTPUT_DIR

Writes OUTPUT_DIR/train.parquet, OUTPUT_DIR/validation.parquet and
OUTPUT_DIR/raw_llm/<run_id>.jsonl.gz with `benchsmith skyrl synth`.

Environment variables (all optional but OPENAI_API_KEY):
  OPENAI_API_KEY   API key (not needed with DRY_RUN=1)
  N_SAMPLES        tasks to synthesize (default 200)
  OPENAI_MODEL     model name (default gpt-5-mini)
  OPENAI_BACKEND   responses | chat (default responses)
  OPENAI_BASE_URL  endpoint base URL (default https://api.openai.com/v1)
  DOMAINS          e.g. "devops,data analysis" or "devops:2,data analysis:1"
  COMPLEXITIES     e.g. "simple:0.3,moderate:0.5,complex:0.2"
  MAX_TURNS        agent turns per task, most plan steps (default 8)
  MAX_TOOLS        most distinct tools a plan uses (default 5)
  INVENTORY        tool inventory YAML/JSON (default: the example inventory)
  DRY_RUN          1: print what would be asked; call no model (default 0)
  VERBOSE          1: print the command and show progress (default 0)
USAGE
}

die() {
  echo "generate_llm_dataset.sh: $1" >&2
  exit "${2:-1}"
}

count() {
  case "$2" in
    *[!0-9]*) die "$1 must be a whole number of at least 1 (got '$2')" 2 ;;
    *[1-9]*) ;;
    *) die "$1 must be a whole number of at least 1 (got '$2')" 2 ;;
  esac
}

if [ "$#" -eq 1 ]; then
  case "$1" in
    -h|--help) usage; exit 0 ;;
  esac
fi
if [ "$#" -ne 1 ] || [ -z "$1" ]; then
  usage >&2
  exit 2
fi
OUTPUT_DIR=$1

N_SAMPLES=${N_SAMPLES:-200}
OPENAI_MODEL=${OPENAI_MODEL:-gpt-5-mini}
OPENAI_BACKEND=${OPENAI_BACKEND:-responses}
MAX_TURNS=${MAX_TURNS:-8}
MAX_TOOLS=${MAX_TOOLS:-5}
case "${DRY_RUN:-0}" in
  1|true|TRUE|True|yes|YES|Yes) dry=1 ;;
  0|false|FALSE|False|no|NO|No|'') dry=0 ;;
  *) die "DRY_RUN must be 1 or 0 (got '$DRY_RUN')" 2 ;;
esac
case "${VERBOSE:-0}" in
  1|true|TRUE|True|yes|YES|Yes) verbose=1 ;;
  0|false|FALSE|False|no|NO|No|'') verbose=0 ;;
  *) die "VERBOSE must be 1 or 0 (got '$VERBOSE')" 2 ;;
esac
count N_SAMPLES "$N_SAMPLES"
count MAX_TURNS "$MAX_TURNS"
count MAX_TOOLS "$MAX_TOOLS"
case "$OPENAI_BACKEND" in
  responses|chat) ;;
  *) die "OPENAI_BACKEND must be responses or chat (got '$OPENAI_BACKEND')" 2 ;;
esac
key_set=0
case "${OPENAI_API_KEY:-}" in
  *[![:space:]]*) key_set=1 ;;
esac
if [ "$dry" = 0 ] && [ "$key_set" = 0 ]; then
  die "OPENAI_API_KEY is not set; export your API key in it (or run with DRY_RUN=1)"
fi

# benchsmith on PATH, else the module in this Python.
if command -v benchsmith >/dev/null 2>&1; then
  set -- benchsmith
elif "${PYTHON:-python3}" -c 'import benchsmith' >/dev/null 2>&1; then
  set -- "${PYTHON:-python3}" -m benchsmith
else
  die "benchsmith not found: install it (pip install benchsmith) or set PYTHON to a Python that has it"
fi

set -- "$@" skyrl synth --out "$OUTPUT_DIR" --n-samples "$N_SAMPLES" \
  --model "$OPENAI_MODEL" --api "$OPENAI_BACKEND" \
  --max-turns "$MAX_TURNS" --max-tools "$MAX_TOOLS"
if [ -n "${OPENAI_BASE_URL:-}" ]; then
  set -- "$@" --base-url "$OPENAI_BASE_URL"
fi
if [ -n "${DOMAINS:-}" ]; then
  set -- "$@" --domains "$DOMAINS"
fi
if [ -n "${COMPLEXITIES:-}" ]; then
  set -- "$@" --complexities "$COMPLEXITIES"
fi
if [ -n "${INVENTORY:-}" ]; then
  set -- "$@" --inventory "$INVENTORY"
fi
if [ "$dry" = 1 ]; then
  set -- "$@" --dry-run
fi
if [ "$verbose" = 1 ]; then
  echo "+ $*" >&2
else
  set -- "$@" --quiet
fi

status=0
"$@" || status=$?
if [ "$status" -ne 0 ]; then
  die "benchsmith skyrl synth stopped with exit code $status (see the messages above)" "$status"
fi
