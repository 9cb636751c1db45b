#!/usr/bin/env bash
# Container smoke test (`make smoke`; not part of the test suite): builds the image with podman, checks
# its size and that it carries no training stack, runs it, waits for its HEALTHCHECK, calls /embed,
# /classify and /metrics, compares its answers with the host's, checks the SIGTERM shutdown, then
# brings the compose stack up (host networking) and reads a bertserve series back through Prometheus'
# HTTP API, and takes it down; then the compose "scaled" profile (two replicas behind haproxy, one Redis,
# Prometheus scraping each): both replicas answer /embed through the balancer and Prometheus has both
# targets up. Prints PASS/FAIL/SKIP per step; exits non-zero on the first failure.
#
# Works offline from image registries: the base image is a Debian bookworm rootfs made by debootstrap
# and imported; redis and prometheus images are built locally from it with Debian's packages. pip inside
# the build uses the host's CA bundle, and the host's find-links folder for the CPU build of torch. The
# same goes for haproxy (the scaled profile's balancer).
# Needs root, podman, runc, debootstrap (see DEVELOPERS.md) and podman-compose (pip; in .venv).
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${SMOKE_WORK:-/tmp/bertserve-smoke}
BASE=localhost/bertserve-base:bookworm
IMAGE=localhost/bertserve:smoke
PORT=${SMOKE_PORT:-18080}              # the single container
BERTSERVE_PORT=8080                    # the compose stack (docker/prometheus.host.yml scrapes 8080)
BERTSERVE_2_PORT=8081                  # the scaled profile's second replica (prometheus.host.yml: 8081)
BALANCER_PORT=${SMOKE_BALANCER_PORT:-18000}
REDIS_PORT=${SMOKE_REDIS_PORT:-16379}
PROMETHEUS_PORT=${SMOKE_PROMETHEUS_PORT:-19090}
COMPOSE=${COMPOSE:-$(command -v podman-compose || echo .venv/bin/podman-compose)}
BUILD_TIMEOUT=${SMOKE_BUILD_TIMEOUT:-2400}
MAX_IMAGE_MB=${SMOKE_MAX_IMAGE_MB:-700}  # the CPU serving image (decimal MB, as podman images shows)
export BUILDAH_FORMAT=docker           # keeps HEALTHCHECK in the image
export CONTAINERS_CONF=$WORK/containers.conf
export REDIS_PORT PROMETHEUS_PORT BERTSERVE_PORT BERTSERVE_2_PORT BALANCER_PORT
export BERTSERVE_IMAGE=$IMAGE REDIS_IMAGE=localhost/bertserve-redis:smoke
export PROMETHEUS_IMAGE=localhost/bertserve-prometheus:smoke HAPROXY_IMAGE=localhost/bertserve-haproxy:smoke
COMPOSE_FILES=(-f docker-compose.yml -f docker-compose.host.yml --profile scaled)

step() { printf '\n== %s\n' "$*"; }
pass() { printf 'PASS: %s\n' "$*"; }
skip() { printf 'SKIP: %s\n' "$*"; }
fail() {
  printf 'FAIL: %s\n' "$*"
  exit 1
}

cleanup() {
  podman rm -f bertserve-smoke >/dev/null 2>&1 || true
  "$COMPOSE" "${COMPOSE_FILES[@]}" down >/dev/null 2>&1 || true
}
trap cleanup EXIT

setup() {
  mkdir -p "$WORK"
  cat >"$CONTAINERS_CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
[engine]
runtime = "runc"
EOF
  # pip inside the build: the host's CA bundle, and its wheel folder (the CPU build of torch).
  local links
  links=$(pip config get global.find-links 2>/dev/null || echo "${PIP_FIND_LINKS:-}")
  printf '[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n' >"$WORK/pip.conf"
  BUILD_MOUNTS=(-v /etc/ssl/certs/ca-certificates.crt:/etc/ssl/certs/ca-certificates.crt:ro
    -v "$WORK/pip.conf:/etc/pip.conf:ro")
  if [[ -n $links && -d $links ]]; then
    printf 'find-links = %s\n' "$links" >>"$WORK/pip.conf"
    BUILD_MOUNTS+=(-v "$links:$links:ro")
  fi
  # (8404: haproxy's stats page, deploy/haproxy/haproxy.cfg)
  for port in "$PORT" "$BERTSERVE_PORT" "$BERTSERVE_2_PORT" "$BALANCER_PORT" 8404 "$REDIS_PORT" "$PROMETHEUS_PORT"; do
    if ss -ltn "sport = :$port" | grep -q LISTEN; then fail "port $port is in use"; fi
  done
}

build_base() {
  step "base image $BASE (debootstrap bookworm minbase + python3)"
  if podman image exists "$BASE"; then
    pass "base image present"
    return
  fi
  rm -rf "$WORK/rootfs"
  debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates bookworm "$WORK/rootfs" \
    http://deb.debian.org/debian >"$WORK/debootstrap.log" 2>&1 || fail "debootstrap (see $WORK/debootstrap.log)"
  cp /etc/apt/sources.list.d/debian.sources "$WORK/rootfs/etc/apt/sources.list.d/" 2>/dev/null || true
  local full
  full=$(du -sm "$WORK/rootfs" | cut -f1)
  slim_rootfs "$WORK/rootfs"
  tar -C "$WORK/rootfs" -c . | podman import - "$BASE" >/dev/null || fail "podman import"
  rm -rf "$WORK/rootfs"
  pass "base image imported: ${full} MiB rootfs slimmed to $(($(podman image inspect "$BASE" --format '{{.Size}}') / 1000000)) MB"
}

# Makes the debootstrap rootfs resemble Debian's slim images, which python:3.11-slim-bookworm (the
# Dockerfile's default base) is built on: no docs (but copyright files), man pages, info pages or
# translations, no apt package cache or lists; dpkg leaves them out of later installs too.
slim_rootfs() { # rootfs
  local root=$1
  cat >"$root/etc/dpkg/dpkg.cfg.d/slim" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
  find "$root/usr/share/doc" -type f ! -name copyright -delete
  find "$root/usr/share/doc" -type l -delete
  find "$root/usr/share/doc" -mindepth 1 -type d -empty -delete
  find "$root/usr/share/locale" -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
  rm -rf "$root"/usr/share/{man,groff,info,lintian,linda}/* "$root"/var/lib/apt/lists/* \
    "$root"/var/cache/apt/*.bin "$root"/var/cache/apt/archives/*.deb "$root"/var/log/*.log
}

build_images() {
  step "build $IMAGE (podman, --pull=never --network host)"
  local started=$SECONDS
  timeout "$BUILD_TIMEOUT" podman build --pull=never --network host "${BUILD_MOUNTS[@]}" \
    --build-arg BASE_IMAGE="$BASE" --build-arg TORCH_INDEX_URL= -t "$IMAGE" . >"$WORK/build.log" 2>&1 ||
    fail "image build (tail of $WORK/build.log: $(tail -5 "$WORK/build.log"))"
  pass "image built in $((SECONDS - started)) s, $(podman image inspect "$IMAGE" --format '{{.Size}}') bytes"
  [[ $(podman image inspect "$IMAGE" --format '{{.Config.User}}') == 10001:10001 ]] || fail "not non-root"
  [[ -n $(podman image inspect "$IMAGE" --format '{{.Config.Healthcheck}}') ]] || fail "no HEALTHCHECK"
  pass "image runs as 10001:10001 and has a HEALTHCHECK"
  local size
  size=$(podman image inspect "$IMAGE" --format '{{.Size}}')
  ((size <= MAX_IMAGE_MB * 1000 * 1000)) || fail "image is $((size / 1000000)) MB, over $MAX_IMAGE_MB MB"
  pass "image size $((size / 1000000)) MB (at most $MAX_IMAGE_MB MB)"
  local found
  found=$(podman run --rm --network none --entrypoint python3 "$IMAGE" -c 'import importlib.util as u
names = ["torch", "transformers", "sentence_transformers", "scipy", "sklearn", "sympy", "models.training"]
print(" ".join(n for n in names if u.find_spec(n) is not None))') || fail "python in the image"
  [[ -z $found ]] || fail "training stack importable in the serving image: $found"
  pass "no training stack in the image (torch, transformers, models.training, ... not importable)"
  for name in redis prometheus haproxy; do
    podman build --pull=never --network host --build-arg BASE_IMAGE="$BASE" \
      -f "docker/smoke/$name.Dockerfile" -t "localhost/bertserve-$name:smoke" docker/smoke \
      >"$WORK/build-$name.log" 2>&1 || fail "$name image build (see $WORK/build-$name.log)"
  done
  pass "local redis, prometheus and haproxy images built (Debian packages)"
}

wait_healthy() { # container, seconds
  local deadline=$((SECONDS + $2))
  until podman healthcheck run "$1" >/dev/null 2>&1; do
    [[ $(podman inspect "$1" --format '{{.State.Running}}') == true ]] ||
      fail "$1 exited: $(podman logs --tail 5 "$1" 2>&1)"
    ((SECONDS < deadline)) || fail "$1 not healthy after $2 s: $(podman logs --tail 5 "$1" 2>&1)"
    sleep 2
  done
}

wait_http() { # url, seconds
  local deadline=$((SECONDS + $2))
  until curl -fsS -o /dev/null "$1"; do
    ((SECONDS < deadline)) || fail "$1 not answering 200 after $2 s"
    sleep 2
  done
}

run_container() {
  step "run the image alone on 127.0.0.1:$PORT"
  podman run -d --name bertserve-smoke --network host -e BERTSERVE_HOST=127.0.0.1 \
    -e BERTSERVE_PORT="$PORT" "$IMAGE" >/dev/null || fail "podman run"
  local started=$SECONDS
  wait_healthy bertserve-smoke 180
  pass "healthy (podman healthcheck run) after $((SECONDS - started)) s"
  wait_http "http://127.0.0.1:$PORT/ready" 120
  pass "/ready 200 after $((SECONDS - started)) s"
  local url=http://127.0.0.1:$PORT out
  out=$(curl -fsS "$url/embed" -H 'content-type: application/json' -d '{"inputs": ["Hello world"]}') ||
    fail "/embed"
  python3 -c 'import json,sys; v=json.loads(sys.argv[1]); assert len(v)==1 and len(v[0])==384' "$out" ||
    fail "/embed answer: ${out:0:200}"
  pass "/embed: one 384-dim vector"
  out=$(curl -fsS -D "$WORK/headers" "$url/classify" -H 'content-type: application/json' \
    -H 'X-Request-ID: smoke-1' -d '{"inputs": "A gorgeous, moving film."}') || fail "/classify"
  [[ $out == *'"label":"positive"'* ]] || fail "/classify answer: $out"
  grep -qi '^x-request-id: smoke-1' "$WORK/headers" || fail "x-request-id not returned"
  pass "/classify: $out (request id returned)"
  out=$(curl -fsS "$url/metrics")
  for metric in 'bertserve_requests_total{model="all-MiniLM-L6-v2",route="/embed",status="200"} 1.0' \
    'bertserve_batch_size_count{model="minilm-sentiment"}' 'bertserve_ready 1.0'; do
    grep -qF "$metric" <<<"$out" || fail "/metrics lacks: $metric"
  done
  pass "/metrics: request, batch and ready series"
  podman logs bertserve-smoke 2>&1 | grep -E '"request_id": ?"smoke-1"' | python3 -c \
    'import json,sys; line=json.loads(sys.stdin.readline()); assert line["route"]=="/classify"' ||
    fail "no JSON access line for the request id"
  pass "JSON access log line with the request id"
  out=$(python docker/smoke/compare.py "$url" 2>"$WORK/compare.log") ||
    fail "answers differ from the host's: $out (see $WORK/compare.log)"
  pass "same answers as the host: $out"
}

stop_container() {
  step "SIGTERM: graceful shutdown"
  local started=$SECONDS
  podman stop -t 40 bertserve-smoke >/dev/null || fail "podman stop"
  local code
  code=$(podman inspect bertserve-smoke --format '{{.State.ExitCode}}')
  [[ $code == 0 ]] || fail "exit code $code after SIGTERM"
  pass "exited 0 on SIGTERM after $((SECONDS - started)) s"
  podman rm bertserve-smoke >/dev/null
}

# The stack's container for a compose service NAME_1 (podman-compose names it PROJECT_NAME_1, Docker
# Compose PROJECT-NAME-1). Polled: `up -d` can return before every container is listed.
stack_container() {
  local name=$1 found i
  for i in $(seq 1 30); do
    found=$(podman ps -a --format '{{.Names}}' | grep -m1 -e "_${name}\$" -e "-${name/_/-}\$") && {
      echo "$found"
      return 0
    }
    sleep 1
  done
  return 1
}

compose_stack() {
  step "compose stack (podman-compose, host networking): bertserve, redis, prometheus"
  "$COMPOSE" "${COMPOSE_FILES[@]}" up -d --no-build bertserve redis prometheus >"$WORK/compose.log" 2>&1 ||
    fail "podman-compose up (see $WORK/compose.log)"
  local container
  container=$(stack_container bertserve_1) || fail "no bertserve container in the stack"
  wait_healthy "$container" 180
  wait_http "http://127.0.0.1:$BERTSERVE_PORT/ready" 120
  pass "bertserve healthy and ready in the stack ($container)"
  local body='{"inputs": ["cached through redis"]}'
  curl -fsS -o /dev/null "http://127.0.0.1:$BERTSERVE_PORT/embed" -H 'content-type: application/json' -d "$body"
  sleep 1
  curl -fsS -o /dev/null "http://127.0.0.1:$BERTSERVE_PORT/embed" -H 'content-type: application/json' \
    -H 'Cache-Control: no-cache' -d "$body"
  local keys
  keys=$(podman exec "$(podman ps --format '{{.Names}}' | grep -m1 redis)" redis-cli -p "$REDIS_PORT" dbsize)
  ((keys > 0)) || fail "no bertserve keys in the stack's redis"
  pass "redis holds $keys cached row(s)"
  local query="http://127.0.0.1:$PROMETHEUS_PORT/api/v1/query" deadline=$((SECONDS + 90)) found=""
  while ((SECONDS < deadline)); do
    found=$(curl -fsS "$query" --data-urlencode 'query=bertserve_requests_total{route="/embed"}' 2>/dev/null |
      python3 -c 'import json,sys; r=json.load(sys.stdin)["data"]["result"]; print(r[0]["metric"]["job"], r[0]["value"][1]) if r else None' 2>/dev/null || true)
    [[ -n $found && $found != None ]] && break
    sleep 3
  done
  [[ -n $found && $found != None ]] || fail "prometheus returned no bertserve series"
  pass "prometheus query API: bertserve_requests_total{route=\"/embed\"} -> job, value = $found"
  skip "grafana: no grafana image can be had here (no registry; not packaged by Debian); the dashboard" \
    "JSON is checked by tests/unit/test_deploy.py"
  "$COMPOSE" "${COMPOSE_FILES[@]}" down >>"$WORK/compose.log" 2>&1 || fail "podman-compose down"
  pass "stack down"
}

embed_count() { # port: the replica's count of answered /embed requests
  curl -fsS "http://127.0.0.1:$1/metrics" | python3 -c 'import re,sys
print(int(sum(float(v) for v in re.findall(r"^bertserve_requests_total\{[^}]*route=\"/embed\",status=\"200\"\} (\S+)$", sys.stdin.read(), re.M))))'
}

compose_scaled() {
  step "compose scaled profile: bertserve and bertserve-2 behind haproxy, one redis, prometheus"
  "$COMPOSE" "${COMPOSE_FILES[@]}" up -d --no-build bertserve bertserve-2 haproxy redis prometheus \
    >>"$WORK/compose.log" 2>&1 || fail "podman-compose --profile scaled up (see $WORK/compose.log)"
  local name container
  for name in bertserve_1 bertserve-2_1; do
    container=$(stack_container "$name") || fail "no $name container in the stack"
    wait_healthy "$container" 180
  done
  wait_http "http://127.0.0.1:$BERTSERVE_PORT/ready" 120
  wait_http "http://127.0.0.1:$BERTSERVE_2_PORT/ready" 120
  wait_http "http://127.0.0.1:$BALANCER_PORT/ready" 60
  sleep 6 # haproxy's slowstart (5 s): both replicas at full weight
  pass "both replicas healthy and ready, balancer on 127.0.0.1:$BALANCER_PORT"
  local i out
  for i in $(seq 1 20); do
    out=$(curl -fsS "http://127.0.0.1:$BALANCER_PORT/embed" -H 'content-type: application/json' \
      -d "{\"inputs\": [\"through the balancer $i\"]}") || fail "/embed through the balancer"
    python3 -c 'import json,sys; v=json.loads(sys.argv[1]); assert len(v)==1 and len(v[0])==384' "$out" ||
      fail "/embed answer through the balancer: ${out:0:200}"
  done
  local first second
  first=$(embed_count "$BERTSERVE_PORT") && second=$(embed_count "$BERTSERVE_2_PORT") ||
    fail "/metrics of a replica"
  ((first > 0 && second > 0 && first + second == 20)) ||
    fail "20 /embed through the balancer: $first on bertserve, $second on bertserve-2"
  pass "20 /embed through the balancer: $first answered by bertserve, $second by bertserve-2"
  local query="http://127.0.0.1:$PROMETHEUS_PORT/api/v1/query" deadline=$((SECONDS + 90)) up=""
  while ((SECONDS < deadline)); do
    up=$(curl -fsS "$query" --data-urlencode 'query=up{job="bertserve"}' 2>/dev/null | python3 -c 'import json,sys
r=json.load(sys.stdin)["data"]["result"]; print(" ".join(sorted(m["metric"]["instance"]+"="+m["value"][1] for m in r)))' \
      2>/dev/null || true)
    [[ $up == "127.0.0.1:$BERTSERVE_PORT=1 127.0.0.1:$BERTSERVE_2_PORT=1" ]] && break
    sleep 3
  done
  [[ $up == "127.0.0.1:$BERTSERVE_PORT=1 127.0.0.1:$BERTSERVE_2_PORT=1" ]] ||
    fail "prometheus up{job=\"bertserve\"}: ${up:-nothing} (want both replicas up)"
  pass "prometheus up{job=\"bertserve\"}: $up"
  "$COMPOSE" "${COMPOSE_FILES[@]}" down >>"$WORK/compose.log" 2>&1 || fail "podman-compose down"
  pass "scaled stack down"
}

setup
build_base
build_images
run_container
stop_container
compose_stack
compose_scaled
printf '\nsmoke: all steps passed\n'
