#!/bin/sh
# CI job on a pull request, run in the checkout of its branch: plan the branch's manifests and config
# against the production state and post the plan as the pull request's comment. Changes nothing.
#   DFE_PRODUCTION  the production workspace (its state and resources; read access is enough)
#   PLAN_DIR        where plan.json and comment.md are kept for the merge job (a CI artifact)
#   POST_COMMENT    the command that posts a file as the comment (default: print it)
set -eu
mkdir -p "$PLAN_DIR"
code=0
dfe plan --root "$DFE_PRODUCTION" --manifests manifests --config config \
  --out "$PLAN_DIR/plan.json" --output markdown > "$PLAN_DIR/comment.md" || code=$?
${POST_COMMENT:-cat} "$PLAN_DIR/comment.md"
# 0 no changes, 2 changes to review; 1 invalid manifests or a refused prune (the comment says why)
[ "$code" -ne 1 ]
