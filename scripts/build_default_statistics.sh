#!/usr/bin/env bash
# Rebuild the statistics and the prototype split shipped in src/synthxrd/resources/statistics/.
#
#   scripts/build_default_statistics.sh [SOURCE]
#
# SOURCE defaults to mp_experimental/structures.tar.xz of the shared data folder (synthxrd.files.shared_data_dir:
# $SYNTHXRD_SHARED_DATA, else ../shared/data from the repository).
# Environment: WORKERS (default 2), WORKDIR (default ${TMPDIR:-/tmp}/synthxrd-statistics) for the
# statistics of the whole collection, which are not shipped.
#
# Steps (docs/statistics.md):
#   1. stats of the whole collection (all records, failures listed in its metadata);
#   2. prototype split of the whole collection, seed 0, 30 % of the prototype groups to `test`;
#   3. the shipped statistics = the records of step 1 restricted to the `statistics` part.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python}
SOURCE=${1:-$("$PY" -c "from synthxrd.files import shared_data_dir; print(shared_data_dir())")/mp_experimental/structures.tar.xz}
WORKERS=${WORKERS:-2}
WORKDIR=${WORKDIR:-${TMPDIR:-/tmp}/synthxrd-statistics}
OUTDIR=src/synthxrd/resources/statistics
mkdir -p "$WORKDIR" "$OUTDIR"

start=$(date +%s)
"$PY" -m synthxrd stats "$SOURCE" --out "$WORKDIR/all.npz" --workers "$WORKERS" --symprec 0.1 --no-progress \
    --overwrite
echo "stats of the whole collection: $(( $(date +%s) - start )) s wall with $WORKERS workers"

"$PY" -m synthxrd split "$WORKDIR/all.npz" --out "$OUTDIR/default_split.csv.gz" --seed 0 --test-fraction 0.3 \
    --overwrite
"$PY" -m synthxrd stats "$WORKDIR/all.npz" --split "$OUTDIR/default_split.csv.gz" --part statistics \
    --out "$OUTDIR/default.npz" --overwrite
ls -l "$OUTDIR"
