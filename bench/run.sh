#!/usr/bin/env bash
# DeepSpace Gateway load benchmark: runs the shared harness (../shared/bench/run_baseline.sh)
# with our gateway as its `gateway` target, once per (database, pacing), then prints one
# summary with the gateway/pt-tornado ratios. See bench/README.md.
#
#   bash bench/run.sh                        # PostgreSQL + SQLite, unpaced + paced (5 ms/chunk)
#   DBS=postgres PACES=0 TARGETS="direct pt-tornado pt-httpx gateway litellm" bash bench/run.sh
#   DBS=sqlite PACES=0 TARGETS="pt-tornado gateway" bash bench/run.sh
#   DBS=postgres PACES=5 TARGETS="pt-tornado gateway litellm" bash bench/run.sh
#   DUR=3 CONCS="1 16" DBS=sqlite PACES=0 TARGETS="pt-tornado gateway" bash bench/run.sh   # quick look
#
# Knobs (environment):
#   DBS="postgres sqlite"   databases, in this order (postgres = a fresh dsl_bench_* database
#                           on BENCH_PG_URL, default postgresql://postgres@127.0.0.1:5432,
#                           dropped after the run unless KEEP_DB=1; sqlite = a file in the run's logs)
#   PACES="0 5"             CHUNK_DELAY_MS values of the mock (0 = unpaced; 5 = 200 tokens/s)
#   PACED_CONCS="1 16"  PACED_MODES="stream"  PACED_TARGETS=(TARGETS)   for the runs with PACE > 0
#   BENCH_HOME              harness state + results (default $HOME/.cache/deepspace-bench)
#   SHARED_BENCH            the shared harness folder (default <project>/../shared/bench)
#   DSL_PYTHON              python with deepspace_lab installed (default <project>/.venv/bin/python)
#   BENCH_REV               measure this commit (e.g. HEAD) instead of the working tree: a
#                           git-archive snapshot installed under BENCH_HOME/src/<sha>
#   GATEWAY_KEY             bench key imported into the DB (dsk_<12 hex>_<20+ chars>)
#   Everything else is the harness's and passes through: TARGETS DUR CONCS MODES CHUNKS PIN
#   LITELLM_WORKERS GATEWAY_PORT ... (see ../shared/bench/README.md). DEEPSPACE_* variables
#   reach the gateway (the launcher sets DATA_DIR, DATABASE_URL, SECRET_KEY and LOG_LEVEL).
set -u
die() { echo "bench/run.sh: $*" >&2; exit 1; }

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P) || die "cannot find the project folder"
SHARED_BENCH=${SHARED_BENCH:-$ROOT/../shared/bench}
[ -f "$SHARED_BENCH/run_baseline.sh" ] || die "no shared harness at $SHARED_BENCH (set SHARED_BENCH)"
SHARED_BENCH=$(cd "$SHARED_BENCH" && pwd -P)
if [ -z "${DSL_PYTHON:-}" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then DSL_PYTHON=$ROOT/.venv/bin/python; else DSL_PYTHON=python3; fi
fi
"$DSL_PYTHON" -c 'import deepspace_lab' 2>/dev/null || die "$DSL_PYTHON cannot import deepspace_lab (set DSL_PYTHON)"

export BENCH_HOME=${BENCH_HOME:-${HOME:?set BENCH_HOME}/.cache/deepspace-bench}
case "$(mkdir -p "$BENCH_HOME" && cd "$BENCH_HOME" && pwd -P)/" in
  "$ROOT/"*) die "BENCH_HOME ($BENCH_HOME) must be outside the repository";;
  /) die "cannot create BENCH_HOME ($BENCH_HOME)";;
esac
BENCH_HOME=$(cd "$BENCH_HOME" && pwd -P)
mkdir -p "$BENCH_HOME/results" || die "cannot write to $BENCH_HOME"

# BENCH_REV=<commit>: measure that commit instead of the working tree (which others may be
# editing mid-run). It is exported with `git archive` to BENCH_HOME/src/<sha> and installed
# (not editable, --no-deps) into a small venv there that borrows every dependency from
# DSL_PYTHON's site-packages. Nothing in the repository is touched.
SOURCE="working tree"
if [ -n "${BENCH_REV:-}" ]; then
  sha=$(git -C "$ROOT" rev-parse --verify --quiet "$BENCH_REV^{commit}") || die "BENCH_REV=$BENCH_REV is not a commit"
  SRC=$BENCH_HOME/src/${sha:0:12}
  if [ ! -f "$SRC/.ok" ]; then
    echo "== installing commit ${sha:0:12} into $SRC/venv"
    rm -rf "$SRC" && mkdir -p "$SRC/tree" || die "cannot create $SRC"
    git -C "$ROOT" archive "$sha" | tar -x -C "$SRC/tree" || die "git archive $sha failed"
    deps=$("$DSL_PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
    "$DSL_PYTHON" -m venv "$SRC/venv" > "$SRC/install.log" 2>&1 || die "venv failed (log: $SRC/install.log)"
    echo "$deps" > "$("$SRC/venv/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_dsl_bench_deps.pth"
    "$SRC/venv/bin/python" -m pip install -q --no-deps "$SRC/tree" >> "$SRC/install.log" 2>&1 \
      || { tail -20 "$SRC/install.log" >&2; die "installing ${sha:0:12} failed (log: $SRC/install.log)"; }
    touch "$SRC/.ok"
  fi
  DSL_PYTHON=$SRC/venv/bin/python
  where=$(cd / && "$DSL_PYTHON" -c 'import deepspace_lab, os; print(os.path.dirname(deepspace_lab.__file__))') \
    || die "$DSL_PYTHON cannot import deepspace_lab"
  case "$where/" in "$SRC/"*) ;; *) die "the snapshot venv imports deepspace_lab from $where, not from $SRC";; esac
  SOURCE="commit ${sha:0:12}"
fi

DBS=${DBS:-"postgres sqlite"}
PACES=${PACES:-${CHUNK_DELAY_MS:-"0 5"}}
PACED_CONCS=${PACED_CONCS:-"1 16"}
PACED_MODES=${PACED_MODES:-stream}
export GATEWAY_KEY=${GATEWAY_KEY:-dsk_0000000be7c4_benchmark-key-benchmark-key}
export GATEWAY_MODEL=${GATEWAY_MODEL:-mock-gpt}
export GATEWAY_URL_PREFIX=/deepspace
export GATEWAY_READY_PATH=/deepspace/v1/models
export GATEWAY_CWD=$ROOT
# {logs} etc. are the harness's placeholders; the paths are quoted for bash -c.
export GATEWAY_CMD="$(printf '%q' "$DSL_PYTHON") $(printf '%q' "$ROOT/bench/launch_gateway.py") --port {port} --upstream {upstream} --key {key} --model {model} --logs {logs}"
for db in $DBS; do case $db in postgres|sqlite) ;; *) die "DBS: unknown database '$db' (postgres, sqlite)";; esac; done
for pace in $PACES; do [[ $pace =~ ^[0-9]+([.][0-9]+)?$ ]] || die "PACES: '$pace' is not a number of ms"; done
if [[ " $DBS " == *" postgres "* ]]; then
  ( cd / && "$DSL_PYTHON" -c 'import sys; sys.path.insert(0, sys.argv[1]); import launch_gateway as l; l._pg_admin_connect().close()' "$ROOT/bench" ) \
    || die "PostgreSQL is not reachable on ${BENCH_PG_URL:-postgresql://postgres@127.0.0.1:5432}"
fi

STAMP=$(date +%Y%m%d-%H%M%S)
if [ -n "${BENCH_REV:-}" ]; then
  GIT_REV=${sha:0:12}; GIT_DIRTY=n/a
else
  GIT_REV=$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
  GIT_DIRTY=$(git -C "$ROOT" status --porcelain -- deepspace_lab server_extension widgets dashboards pyproject.toml 2>/dev/null | wc -l)
fi
OUTS=()
FAILED=()
sampler=""; pg_db=""
on_exit() {  # stop our sampler; on an interrupted run, drop the half-used database
  [ -n "$sampler" ] && kill -TERM "$sampler" 2>/dev/null
  if [ -n "$pg_db" ] && [ "${KEEP_DB:-0}" != 1 ]; then
    "$DSL_PYTHON" "$ROOT/bench/launch_gateway.py" --drop-pg-db "$pg_db" 2>/dev/null
  fi
}
trap on_exit EXIT
trap 'exit 130' INT TERM HUP
for db in $DBS; do
  for pace in $PACES; do
    name=dsl-$STAMP-$db-$([ "$pace" = 0 ] && echo unpaced || echo "paced${pace}ms")
    out=$BENCH_HOME/results/$name.jsonl
    info=$BENCH_HOME/results/$name.db.json
    # Our own "# meta:" line first: the harness appends to OUT and its table prints it.
    echo "# meta: deepspace-lab db=$db chunk_delay_ms=$pace source=${SOURCE// /_} git=$GIT_REV uncommitted_gateway_files=$GIT_DIRTY" > "$out"
    pg_db=""
    [ "$db" = postgres ] && pg_db=dsl_bench_${STAMP//-/_}_$db$([ "$pace" = 0 ] || echo "_p${pace//./_}")
    echo
    echo "######## $name: db=$db CHUNK_DELAY_MS=$pace${pg_db:+ (database $pg_db)}"
    envs=(BENCH_DB="$db" BENCH_DB_INFO="$info" OUT="$out" CHUNK_DELAY_MS="$pace")
    [ -n "$pg_db" ] && envs+=(BENCH_PG_DB="$pg_db")
    if [ "$pace" != 0 ]; then
      envs+=(CONCS="$PACED_CONCS" MODES="$PACED_MODES")
      [ -n "${PACED_TARGETS:-}" ] && envs+=(TARGETS="$PACED_TARGETS")
    fi
    # PostgreSQL's CPU is not in the gateway's "gw CPU" (the server is not the gateway's
    # process): sample the CPU of the backends connected to this run's database (only ours),
    # and note the whole server's CPU over the run too (other databases included).
    pg_cpu0=""; sampler=""; sample=$BENCH_HOME/results/$name.pgcpu
    if [ "$db" = postgres ]; then
      pg_cpu0=$("$DSL_PYTHON" "$ROOT/bench/launch_gateway.py" --pg-cpu-seconds 2>/dev/null)
      "$DSL_PYTHON" "$ROOT/bench/launch_gateway.py" --pg-sample-db "$pg_db" --out "$sample" 2>/dev/null &
      sampler=$!
    fi
    ( cd "$ROOT" && env "${envs[@]}" bash "$SHARED_BENCH/run_baseline.sh" )
    rc=$?
    pg_meta=""
    if [ -n "$sampler" ]; then
      kill -TERM "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null; sampler=""
      pg_cpu1=$("$DSL_PYTHON" "$ROOT/bench/launch_gateway.py" --pg-cpu-seconds 2>/dev/null)
      [ -s "$sample" ] && { read -r db_cpu db_backends < "$sample"; pg_meta+=" pg_db_backends_cpu_s=$db_cpu pg_db_backends=$db_backends"; }
      [ -n "$pg_cpu0" ] && [ -n "$pg_cpu1" ] && pg_meta+=" pg_server_cpu_s=$("$DSL_PYTHON" -c 'import sys;print(f"{float(sys.argv[2])-float(sys.argv[1]):.2f}")' "$pg_cpu0" "$pg_cpu1")"
      rm -f "$sample"
    fi
    OUTS+=("$out")
    [ $rc = 0 ] || FAILED+=("$name (harness exit $rc)")
    if [ -f "$info" ]; then
      url=$("$DSL_PYTHON" -c 'import json,sys;print(json.load(open(sys.argv[1]))["database_url"])' "$info")
      logs=$("$DSL_PYTHON" -c 'import json,sys;print(json.load(open(sys.argv[1]))["logs"])' "$info")
      counts=$(cd "$ROOT" && "$DSL_PYTHON" bench/launch_gateway.py --audit-count "$url" 2>/dev/null)
      if [ -n "$counts" ]; then
        read -r rows bad <<< "$counts"
        if [[ $pg_meta == *pg_db_backends_cpu_s=* ]]; then
          # whole-run CPU of our database's backends / audit rows (one row per gateway request)
          pg_meta+=" pg_db_cpu_ms_per_gateway_request=$("$DSL_PYTHON" -c 'import sys;r=int(sys.argv[2]);print(f"{float(sys.argv[1])*1000/r:.3f}" if r else "-")' "$db_cpu" "$rows")"
        fi
        echo "# meta: audit_rows=$rows audit_rows_status_ge_400=$bad$pg_meta gateway_log=$logs/gateway.log" >> "$out"
        echo "  audit rows in the gateway's database: $rows ($bad with status >= 400)${pg_meta:+;$pg_meta}; gateway log: $logs/gateway.log"
      fi
      if [ -n "$pg_db" ] && [ "${KEEP_DB:-0}" != 1 ]; then
        ( cd "$ROOT" && "$DSL_PYTHON" bench/launch_gateway.py --drop-pg-db "$pg_db" ) && echo "  dropped database $pg_db (KEEP_DB=1 keeps it)"
      fi
      rm -f "$info"
    fi
    pg_db=""
  done
done

SUMMARY=$BENCH_HOME/results/dsl-$STAMP-summary.md
echo
echo "######## summary (also in $SUMMARY)"
"$DSL_PYTHON" "$ROOT/bench/summarize.py" "${OUTS[@]}" | tee "$SUMMARY"
if [ ${#FAILED[@]} -gt 0 ]; then
  echo "FAILED: ${FAILED[*]}" >&2
  exit 1
fi
