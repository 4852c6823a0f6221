#!/bin/sh
# CI job after the merge, on the production host, in the production workspace: move it to the
# merged commit and apply exactly the reviewed plan. An instance whose plan no longer holds is
# left alone and reported stale (exit 1); changed manifests or config refuse the whole plan.
#   PLAN_DIR  the merged pull request's plan.json (its CI artifact)
set -eu
git pull --ff-only --quiet
dfe reconcile --plan "$PLAN_DIR/plan.json"
